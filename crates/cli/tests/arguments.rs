//! Argument errors: exit 1, the exact message, and nothing sent to the
//! controller; the missing-configuration and unreachable-controller messages.

mod common;

use common::*;

/// Runs `drycc -c <config> <args>` against a silent listener and checks
/// the error message and that no connection was made.
fn assert_rejected(args: &[&str], message: &str) {
    let home = tempfile::tempdir().unwrap();
    let silent = Silent::new();
    let config = write_config(home.path(), &silent.url);
    let (code, stdout, stderr) = run(drycc(home.path()).arg("-c").arg(&config).args(args));
    assert_eq!(code, 1, "{args:?}: stdout={stdout} stderr={stderr}");
    assert_eq!(stderr, format!("Error: {message}\n"), "{args:?}");
    assert_eq!(stdout, "", "{args:?}");
    silent.assert_untouched();
}

#[test]
fn scale_pattern_errors() {
    assert_rejected(
        &["scale", "web", "-a", "foo"],
        "'web' does not match the pattern 'type=num', ex: web=2",
    );
    assert_rejected(
        &["ps:scale", "web=2", "Worker=1", "-a", "foo"],
        "'Worker=1' does not match the pattern 'type=num', ex: web=2",
    );
    assert_rejected(
        &["pts", "scale", "web=-1", "-a", "foo"],
        "'web=-1' does not match the pattern 'type=num', ex: web=2",
    );
}

#[test]
fn limits_pattern_errors() {
    assert_rejected(
        &["limits:set", "--cpu", "web=500M", "-a", "foo"],
        "'web=500M' does not match the pattern 'type=cpu', ex: web=500m",
    );
    assert_rejected(
        &["limits", "--memory", "web=512", "-a", "foo"],
        "'web=512' does not match the pattern 'type=memory', ex: web=512M",
    );
    assert_rejected(
        &["limits:set", "web", "-a", "foo"],
        "'web' does not match the pattern 'type=memory', ex: web=512M",
    );
    assert_rejected(
        &["limits:unset", "--cpu", "web=1", "-a", "foo"],
        "'web=1' is not a valid process type, ex: web",
    );
}

#[test]
fn other_pattern_errors() {
    assert_rejected(
        &["domains:add", "a/b.example.com", "-a", "foo"],
        "'a/b.example.com' is not a domain name, e.g. www.example.com",
    );
    assert_rejected(
        &["domains:remove", "www.example.com/x", "-a", "foo"],
        "'www.example.com/x' is not a domain name, e.g. www.example.com",
    );
    assert_rejected(
        &["timeouts:set", "web=30s", "-a", "foo"],
        "'web=30s' does not match the pattern 'type=seconds', ex: web=30",
    );
    assert_rejected(
        &["config:set", "FOO", "-a", "foo"],
        "'FOO' does not match the pattern 'key=var', ex: MODE=test",
    );
    assert_rejected(
        &["releases:info", "three", "-a", "foo"],
        "'three' is not a valid release version, ex: v3",
    );
    assert_rejected(
        &["rollback", "vx", "-a", "foo"],
        "'vx' is not a valid release version, ex: v3",
    );
    assert_rejected(
        &[
            "autoscale:set",
            "web",
            "--min=5",
            "--max=3",
            "--cpu-percent=50",
            "-a",
            "foo",
        ],
        "--max (3) must not be below --min (5)",
    );
    assert_rejected(
        &[
            "autoscale:set",
            "web",
            "--min=0",
            "--max=3",
            "--cpu-percent=50",
            "-a",
            "foo",
        ],
        "--min must be at least 1",
    );
    assert_rejected(
        &[
            "healthchecks:set",
            "startupProbe",
            "httpGet",
            "80",
            "-a",
            "foo",
        ],
        "'startupProbe' is not a health check type: use livenessProbe or readinessProbe",
    );
    assert_rejected(
        &["builds:create", "nginx", "--procfile", "web", "-a", "foo"],
        "Procfile: line 1, column 4: no ':' on this line; each line must be \"<type>: <command>\", a comment starting with '#', or blank",
    );
}

#[test]
fn apps_run_is_not_supported() {
    let home = tempfile::tempdir().unwrap();
    let silent = Silent::new();
    let config = write_config(home.path(), &silent.url);
    let (code, _, stderr) = run(drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["run", "-a", "foo", "ls", "-la"]));
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("Error: apps:run is not supported"),
        "{stderr}"
    );
    silent.assert_untouched();
}

#[test]
fn usage_errors_exit_1_with_usage_on_stderr() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["scale"][..],
        &["ps:frobnicate"],
        &["nope"],
        &["ps:list", "--bogus"],
        &["ps:exec", "foo-web-1"],
        &["ps:exec", "foo-web-1", "--"],
        &["ps:describe"],
        &["autoscale:set", "web", "--min=1"],
        &[],
    ] {
        let (code, stdout, stderr) = run(drycc(home.path()).args(args));
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(stdout, "", "{args:?}");
        assert!(stderr.contains("Usage: drycc"), "{args:?}: {stderr}");
    }
    let (_, _, stderr) = run(drycc(home.path()).arg("scale"));
    assert!(stderr.contains("Usage: drycc ps:scale"), "{stderr}");
}

#[test]
fn help_goes_to_stdout() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["ps:scale", "--help"],
        &["help", "limits:set"],
        &["ps", "--help"],
    ] {
        let (code, stdout, _) = run(drycc(home.path()).args(args));
        assert_eq!(code, 0, "{args:?}");
        assert!(stdout.contains("Usage: drycc"), "{args:?}: {stdout}");
    }
    let (_, stdout, _) = run(drycc(home.path()).args(["help", "limits:set"]));
    assert!(stdout.contains("Usage: drycc limits:set"), "{stdout}");
}

#[test]
fn completions_are_generated() {
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(drycc(home.path()).args(["completions", "bash"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("drycc"));
}

#[test]
fn missing_configuration() {
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(drycc(home.path()).args(["ps", "-a", "foo"]));
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "Error: client configuration file not found at: {}/.drycc/client.json\n\
             Are you logged in? Use 'drycc login' or 'drycc register' to get started\n",
            home.path().display()
        )
    );
    // $DRYCC_PROFILE picks another file.
    let (_, _, stderr) = run(drycc(home.path())
        .env("DRYCC_PROFILE", "staging")
        .args(["whoami"]));
    assert!(
        stderr.contains(&format!("{}/.drycc/staging.json", home.path().display())),
        "{stderr}"
    );
}

#[test]
fn unreachable_controller() {
    let home = tempfile::tempdir().unwrap();
    let url = closed_port_url();
    let config = write_config(home.path(), &url);
    let (code, stdout, stderr) = run(drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["ps", "-a", "foo"]));
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!("Error: cannot reach the controller at {url}: connection refused\n")
    );
    // The same for a WebSocket command.
    let (code, _, stderr) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "ps:exec",
        "-a",
        "foo",
        "foo-web-1-2",
        "--",
        "ls",
    ]));
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        format!("Error: cannot reach the controller at {url}: connection refused\n")
    );
    // And for login, which has no configuration yet.
    let (code, _, stderr) =
        run(drycc(home.path()).args(["login", &url, "--username=alice", "--password=secret"]));
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        format!("Error: cannot reach the controller at {url}: connection refused\n")
    );
}
