//! Commands against a fake controller: the paths, bodies and headers sent,
//! and the exact output.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const PS_TABLE: &str = "NAME                                        RELEASE    STATE    TYPE       STARTED\n\
steely-mainsail-sleeper-76c45b967c-4qm6w    v3         up       sleeper    2023-12-08T02:25:00UTC\n\
steely-mainsail-web-c4f44c4b4-7p7dh         v3         up       web        2023-12-08T02:25:00UTC\n";

fn pods() -> String {
    pods_json(&[
        ("steely-mainsail-web-c4f44c4b4-7p7dh", "web"),
        ("steely-mainsail-sleeper-76c45b967c-4qm6w", "sleeper"),
    ])
}

#[test]
fn ps_list_prints_the_table_with_the_token() {
    let fake = FakeController::start(|_| (200, pods()));
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, stderr) =
        run(drycc(home.path())
            .arg("-c")
            .arg(&config)
            .args(["ps", "-a", "steely-mainsail"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, PS_TABLE);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].target, "/v2/apps/steely-mainsail/pods/");
    assert_eq!(reqs[0].header("authorization"), Some("token tok-123"));
}

#[test]
fn empty_ps_list() {
    let fake = FakeController::start(|_| (200, pods_json(&[])));
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, _) = run(drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["ps:list", "-a", "foo"]));
    assert_eq!(code, 0);
    assert_eq!(stdout, "No processes found in foo app.\n");
}

#[test]
fn scale_posts_the_structure_then_lists() {
    let fake = FakeController::start(|r| match (r.method.as_str(), r.target.as_str()) {
        ("POST", "/v2/apps/steely-mainsail/scale/") => (204, String::new()),
        ("GET", "/v2/apps/steely-mainsail/pods/") => (200, pods()),
        _ => (404, r#"{"detail": "Not found."}"#.into()),
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, stderr) = run(drycc(home.path())
        .env("DRYCC_DRINK_OF_CHOICE", "tea")
        .arg("-c")
        .arg(&config)
        .args(["scale", "web=2", "sleeper=1", "-a", "steely-mainsail"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!("Scaling processes... but first, tea!\ndone in 0s\n\n{PS_TABLE}")
    );
    let reqs = fake.requests();
    assert_eq!(reqs[0].json(), json!({"web": 2, "sleeper": 1}));
    assert_eq!(reqs[0].header("authorization"), Some("token tok-123"));
}

#[test]
fn server_errors_show_the_detail() {
    let fake = FakeController::start(|r| match r.target.as_str() {
        "/v2/apps/foo/scale/" => (
            404,
            r#"{"detail": "Container type worker does not exist in application"}"#.into(),
        ),
        _ => (
            400,
            r#"{"id": ["App with this id already exists."]}"#.into(),
        ),
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, stderr) = run(drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["scale", "worker=1", "-a", "foo"]));
    assert_eq!(code, 1);
    assert_eq!(stdout, "Scaling processes... but first, coffee!\n\n");
    assert_eq!(
        stderr,
        "Error: Container type worker does not exist in application\n"
    );
    let (code, _, stderr) =
        run(drycc(home.path())
            .arg("-c")
            .arg(&config)
            .args(["apps:create", "foo", "--no-remote"]));
    assert_eq!(code, 1);
    assert_eq!(stderr, "Error: id: App with this id already exists.\n");
}

#[test]
fn bare_limits_with_cpu_sets_cpu_limits() {
    let fake = FakeController::start(|_| (201, config_json(json!({"web": "500m"}), json!({}))));
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, stderr) = run(drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["limits", "--cpu", "web=500m", "-a", "foo"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "Applying limits... done\n\nTYPE    CPU     MEMORY\nweb     500m    unlimited\n"
    );
    let reqs = fake.requests();
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].target, "/v2/apps/foo/config/");
    assert_eq!(reqs[0].json(), json!({"cpu": {"web": "500m"}}));
}

#[test]
fn timeouts_and_autoscale_bodies() {
    let fake = FakeController::start(|r| match r.target.as_str() {
        "/v2/apps/foo/settings/" => (
            201,
            json!({"uuid": "s", "app": "foo", "owner": "alice", "autoscale": {},
                   "routable": true, "created": "", "updated": ""})
            .to_string(),
        ),
        _ => (201, config_json(json!({}), json!({}))),
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, stderr) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "autoscale:set",
        "web",
        "--min=3",
        "--max=8",
        "--cpu-percent=75",
        "-a",
        "foo",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "Applying autoscale settings for process type web on foo... done\n"
    );
    let (code, stdout, _) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "autoscale:unset",
        "web",
        "-a",
        "foo",
    ]));
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "Removing autoscale for process type web on foo... done\n"
    );
    let (code, _, _) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "timeouts:set",
        "web=60",
        "-a",
        "foo",
    ]));
    assert_eq!(code, 0);
    let reqs = fake.requests();
    assert_eq!(reqs[0].target, "/v2/apps/foo/settings/");
    assert_eq!(
        reqs[0].json(),
        json!({"autoscale": {"web": {"min": 3, "max": 8, "cpu_percent": 75}}})
    );
    assert_eq!(reqs[1].json(), json!({"autoscale": {"web": null}}));
    assert_eq!(reqs[2].target, "/v2/apps/foo/config/");
    assert_eq!(
        reqs[2].json(),
        json!({"termination_grace_period": {"web": 60}})
    );
}

#[test]
fn pull_reports_the_new_release() {
    let fake = FakeController::start(|r| {
        match (r.method.as_str(), r.target.as_str()) {
        ("POST", "/v2/apps/foo/builds/") => (
            201,
            json!({"uuid": "b", "app": "foo", "owner": "alice", "image": "nginx", "stack": "container",
                   "sha": "", "procfile": {"web": "nginx -g 'daemon off;'"}, "dockerfile": "",
                   "created": "", "updated": ""})
            .to_string(),
        ),
        ("GET", t) if t.starts_with("/v2/apps/foo/releases/") => {
            let rel = |v: u32| json!({"uuid": "r", "app": "foo", "owner": "alice", "version": v,
                "summary": "", "build": null, "config": "c", "failed": false, "exception": "",
                "created": "", "updated": ""});
            (200, json!({"count": 2, "next": null, "previous": null, "results": [rel(2), rel(1)]}).to_string())
        }
        _ => (404, r#"{"detail": "Not found."}"#.into()),
    }
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, stderr) = run(drycc(home.path())
        .current_dir(home.path())
        .arg("-c")
        .arg(&config)
        .args([
            "pull",
            "nginx",
            "-a",
            "foo",
            "--procfile",
            "web: nginx -g 'daemon off;'",
        ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "Creating build... done, v2\n");
    let reqs = fake.requests();
    assert_eq!(
        reqs[0].json(),
        json!({"image": "nginx", "stack": null, "procfile": {"web": "nginx -g 'daemon off;'"},
               "sha": null, "dockerfile": null})
    );
    assert_eq!(reqs[1].target, "/v2/apps/foo/releases/?limit=100&offset=0");
}

#[test]
fn logs_get_the_last_lines() {
    let fake = FakeController::start(|_| (200, "line one\nline two".into()));
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, _) = run(drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["logs", "-n", "5", "-a", "foo"]));
    assert_eq!(code, 0);
    assert_eq!(stdout, "line one\nline two\n");
    let (code, _, _) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "ps:logs",
        "foo-web-abc-12345",
        "-a",
        "foo",
    ]));
    assert_eq!(code, 0);
    let reqs = fake.requests();
    assert_eq!(reqs[0].target, "/v2/apps/foo/logs/?log_lines=5");
    assert_eq!(
        reqs[1].target,
        "/v2/apps/foo/logs/?log_lines=300&process=foo-web-abc-12345"
    );
}

#[test]
fn login_writes_the_configuration_0600() {
    let fake = FakeController::start(|r| match r.target.as_str() {
        "/v2/auth/register/" => (
            201,
            json!({"id": "1", "username": "alice", "email": "", "is_superuser": true,
                   "date_joined": ""})
            .to_string(),
        ),
        "/v2/auth/login/" => (200, json!({"token": "fresh"}).to_string()),
        "/v2/auth/whoami/" => (
            200,
            json!({"id": "1", "username": "alice", "email": "", "is_superuser": true,
                   "date_joined": ""})
            .to_string(),
        ),
        "/v2/auth/logout/" => (204, String::new()),
        _ => (404, r#"{"detail": "Not found."}"#.into()),
    });
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(drycc(home.path()).args([
        "register",
        &fake.url,
        "--username=alice",
        "--password=s3cret",
        "--email=a@example.com",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let path = home.path().join(".drycc/client.json");
    assert_eq!(
        stdout,
        format!(
            "Logged in as alice\nConfiguration file written to {}\n",
            path.display()
        )
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["token"], "fresh");
    assert_eq!(saved["controller"], fake.url);
    let reqs = fake.requests();
    assert_eq!(
        reqs[0].json(),
        json!({"username": "alice", "password": "s3cret", "email": "a@example.com"})
    );
    assert_eq!(
        reqs[1].json(),
        json!({"username": "alice", "password": "s3cret"})
    );

    let (code, stdout, _) = run(drycc(home.path()).arg("whoami"));
    assert_eq!(code, 0);
    assert_eq!(stdout, format!("You are alice at {}\n", fake.url));
    assert_eq!(
        fake.requests()[2].header("authorization"),
        Some("token fresh")
    );

    let (code, stdout, _) = run(drycc(home.path()).arg("logout"));
    assert_eq!(code, 0);
    assert_eq!(stdout, "Logged out\n");
    assert!(!path.exists());
    // The token was revoked on the server before it was forgotten.
    let requests = fake.requests();
    let revoke = requests.last().expect("a logout request");
    assert_eq!(
        (revoke.method.as_str(), revoke.target.as_str()),
        ("POST", "/v2/auth/logout/")
    );
    assert_eq!(revoke.header("authorization"), Some("token fresh"));
}

#[test]
fn create_adds_the_remote_and_a_working_credential_helper() {
    let fake = FakeController::start(|r| match r.target.as_str() {
        "/v2/apps/" => (201, app_json("steely-mainsail")),
        "/v2/apps/steely-mainsail/pods/" => (200, pods()),
        _ => (404, r#"{"detail": "Not found."}"#.into()),
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let repo = home.path().join("Project");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, home.path(), &["init", "-q"]);
    // A global helper that would store passwords must not see the token.
    std::fs::write(
        home.path().join(".gitconfig"),
        "[credential]\n\thelper = store\n",
    )
    .unwrap();

    let (code, stdout, stderr) = run(drycc(home.path())
        .current_dir(&repo)
        .arg("-c")
        .arg(&config)
        .arg("create"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "Creating Application... done, created steely-mainsail\n\
         Git remote drycc successfully created for app steely-mainsail.\n"
    );
    let url = git(&repo, home.path(), &["config", "--get", "remote.drycc.url"]);
    assert_eq!(url.trim(), format!("{}/git/steely-mainsail.git", fake.url));

    // git asks our helper, which reads the token from the configuration.
    let host = fake.url.trim_start_matches("http://");
    let mut fill = Command::new("git")
        .args(["credential", "fill"])
        .current_dir(&repo)
        .env("HOME", home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = fill.stdin.as_mut().unwrap();
        write!(
            stdin,
            "protocol=http\nhost={host}\npath=git/steely-mainsail.git\n\n"
        )
        .unwrap();
    }
    let out = fill.wait_with_output().unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.contains("username=alice\n"), "{answer}");
    assert!(answer.contains("password=tok-123\n"), "{answer}");
    // Approving the credential must not write the token anywhere.
    let mut approve = Command::new("git")
        .args(["credential", "approve"])
        .current_dir(&repo)
        .env("HOME", home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = approve.stdin.as_mut().unwrap();
        writeln!(stdin, "{answer}").unwrap();
    }
    approve.wait().unwrap();
    assert!(!home.path().join(".git-credentials").exists());
    let repo_config = std::fs::read_to_string(repo.join(".git/config")).unwrap();
    assert!(!repo_config.contains("tok-123"), "{repo_config}");

    // The app is now found from the remote.
    let (code, stdout, _) = run(drycc(home.path())
        .current_dir(&repo)
        .arg("-c")
        .arg(&config)
        .arg("ps"));
    assert_eq!(code, 0);
    assert_eq!(stdout, PS_TABLE);

    // Creating again: the existing remote is reported, not an error.
    let (code, stdout, _) = run(drycc(home.path())
        .current_dir(&repo)
        .arg("-c")
        .arg(&config)
        .args(["create", "steely-mainsail"]));
    assert_eq!(code, 0);
    assert!(
        stdout.ends_with("Git remote drycc already exists for app steely-mainsail.\n"),
        "{stdout}"
    );
    let reqs = fake.requests();
    assert_eq!(reqs[0].json(), json!({"id": null}));
}

#[test]
fn no_such_app_names_the_app_and_where_its_name_came_from() {
    let fake = FakeController::start(|_| {
        (
            404,
            r#"{"detail": "No App matches the given query."}"#.into(),
        )
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    // Outside any repository: the directory's name.
    let dir = home.path().join("Lost-App");
    std::fs::create_dir(&dir).unwrap();
    let (code, stdout, stderr) = run(drycc(home.path())
        .current_dir(&dir)
        .arg("-c")
        .arg(&config)
        .arg("ps"));
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(&format!(
            "Error: No app named lost-app (guessed from the directory name {}",
            dir.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("-a <app>"), "{stderr}");
    assert_eq!(fake.requests()[0].target, "/v2/apps/lost-app/pods/");

    // A repository whose drycc remote names an app that is gone.
    git(&dir, home.path(), &["init", "-q"]);
    git(
        &dir,
        home.path(),
        &[
            "remote",
            "add",
            "drycc",
            &format!("{}/git/gone.git", fake.url),
        ],
    );
    let (code, _, stderr) = run(drycc(home.path())
        .current_dir(&dir)
        .arg("-c")
        .arg(&config)
        .args(["config:list"]));
    assert_eq!(code, 1);
    assert!(
        stderr
            .starts_with("Error: No app named gone (from the git remote drycc of this repository)"),
        "{stderr}"
    );
    assert!(stderr.contains("-a <app>"), "{stderr}");

    // Named with -a.
    let (code, _, stderr) = run(drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["ps", "-a", "nope"]));
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("Error: No app named nope (given with -a)."),
        "{stderr}"
    );
}

#[test]
fn restart_of_an_unknown_name_says_neither_type_nor_process() {
    let fake = FakeController::start(|r| match (r.method.as_str(), r.target.as_str()) {
        ("GET", "/v2/apps/foo/pods/") => (200, pods()),
        _ => (
            404,
            r#"{"detail": "Container type nosuch does not exist in application"}"#.into(),
        ),
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, _, stderr) =
        run(drycc(home.path())
            .arg("-c")
            .arg(&config)
            .args(["ps:restart", "nosuch", "-a", "foo"]));
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "Error: foo has neither a process type nor a process named nosuch (`drycc ps` lists them)\n"
    );
    let reqs = fake.requests();
    assert_eq!(reqs[1].target, "/v2/apps/foo/pods/nosuch/restart/");
}

#[test]
fn autoscale_unset_without_a_rule_is_an_error() {
    let fake = FakeController::start(|_| {
        (
            404,
            r#"{"detail": "No autoscale rule for process type web; `drycc autoscale:list` shows the rules"}"#.into(),
        )
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &fake.url);
    let (code, stdout, stderr) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "autoscale:unset",
        "web",
        "-a",
        "foo",
    ]));
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout, "Removing autoscale for process type web on foo... \n",
        "no `done`"
    );
    assert_eq!(
        stderr,
        "Error: No autoscale rule for process type web; `drycc autoscale:list` shows the rules\n"
    );
}
