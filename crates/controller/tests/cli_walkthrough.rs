//! The real `drycc` binary against a real controller, command by command
//! through "Managing Application Processes" of the Drycc docs, plus an
//! interactive `ps:exec -it` under a pseudo-terminal.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cli::{count, interactive_exec, ps_rows, scaled, Cli};
use support::Controller;

fn git(dir: &Path, args: &[&str], home: &Path) -> (bool, String) {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn managing_application_processes_walkthrough() {
    let controller = Controller::start(&[]);
    // The README's example app, with the README's commands.
    let repo = readme_repo();
    let cli = Cli {
        home: tempfile::tempdir().expect("home"),
        cwd: repo.path().to_path_buf(),
    };

    // No config yet: a clear message.
    let output = cli.run(&["ps"]);
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains("client configuration file not found at: "),
        "{}",
        output.stderr
    );
    assert!(output
        .stderr
        .contains("Are you logged in? Use 'drycc login' or 'drycc register' to get started"));

    let out = cli.ok(&[
        "register",
        &controller.url,
        "--username=walker",
        "--password=walk-pass",
        "--email=w@example.com",
    ]);
    assert!(out.contains("Logged in as walker"), "{out}");
    assert!(out.contains("Configuration file written to "), "{out}");
    assert_eq!(
        cli.ok(&["whoami"]).trim(),
        format!("You are walker at {}", controller.url)
    );

    // create, then git push drycc main (the credential helper supplies the token).
    let app = "walk-through";
    let out = cli.ok(&["create", app]);
    assert!(
        out.contains(&format!("Creating Application... done, created {app}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Git remote drycc successfully created for app {app}."
        )),
        "{out}"
    );
    let (_, remote) = git(
        repo.path(),
        &["remote", "get-url", "drycc"],
        cli.home.path(),
    );
    assert_eq!(
        remote.trim(),
        format!("{}/git/{app}.git", controller.url),
        "no token in the remote URL"
    );
    let (ok, pushed) = git(repo.path(), &["push", "drycc", "main"], cli.home.path());
    assert!(ok, "git push drycc main:\n{pushed}\n{}", controller.log());
    assert!(pushed.contains("done, v2"), "{pushed}");
    let token_files: Vec<String> = walk_files(repo.path())
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains("\"token\"") || t.contains("password="))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        token_files.is_empty(),
        "the token must not be written into the repository: {token_files:?}"
    );

    // drycc ps: one web process.
    let rows = ps_rows(&cli.ok(&["ps"]));
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str(), rows[0].3.as_str()),
        ("v2", "up", "web")
    );

    let rows = scaled(&cli.ok(&["scale", "sleeper=1", "-a", app]), "Scaling");
    assert_eq!((count(&rows, "web"), count(&rows, "sleeper")), (1, 1));
    let rows = scaled(&cli.ok(&["scale", "web=5"]), "Scaling");
    assert_eq!(count(&rows, "web"), 5);
    let rows = scaled(&cli.ok(&["scale", "web=3"]), "Scaling");
    assert_eq!((count(&rows, "web"), rows.len()), (3, 4));
    let rows = scaled(&cli.ok(&["scale", "sleeper=0"]), "Scaling");
    assert_eq!((count(&rows, "web"), count(&rows, "sleeper")), (3, 0));

    // ps:exec <name> -- date
    let name = rows[0].0.clone();
    let output = cli.run(&["ps:exec", &name, "--", "date"]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output.stdout.contains("UTC"),
        "date prints the time: {}",
        output.stdout
    );
    let output = cli.run(&["ps:exec", &name, "--", "sh", "-c", "exit 3"]);
    assert_eq!(output.code, 3);
    // A command that cannot run: 127, one line on stderr, as in a shell.
    let output = cli.run(&["ps:exec", &name, "--", "/no/such/binary"]);
    assert_eq!(output.code, 127, "{}", output.stderr);
    assert_eq!(
        output.stderr,
        "cannot run /no/such/binary: No such file or directory\n"
    );

    // ps:describe: what really runs (web is `exec python3 server.py`).
    let out = cli.ok(&["ps:describe", &name]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("Command:") && l.trim_end().ends_with("/python3")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("Args:") && l.trim_end().ends_with(" server.py")),
        "{out}"
    );
    assert!(
        !out.contains("Image:") && !out.contains("lastExit") && !out.contains("sh -c"),
        "{out}"
    );

    // ps:restart of something that is neither a type nor a process.
    let output = cli.run(&["ps:restart", "nosuch"]);
    assert_eq!(output.code, 1);
    assert_eq!(
        output.stderr,
        format!("Error: {app} has neither a process type nor a process named nosuch (`drycc ps` lists them)\n")
    );

    // ps:restart <name>: the name changes.
    let rows = scaled(&cli.ok(&["ps:restart", &name]), "Restarting");
    assert_eq!(count(&rows, "web"), 3);
    assert!(!rows.iter().any(|r| r.0 == name), "{name} was replaced");
    // ps:restart web: every name changes.
    let before: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let rows = scaled(&cli.ok(&["ps:restart", "web"]), "Restarting");
    assert_eq!(count(&rows, "web"), 3);
    assert!(rows.iter().all(|r| !before.contains(&r.0)));

    // limits, then autoscale.
    let out = cli.ok(&["limits:set", "--cpu", "web=500m"]);
    assert!(out.starts_with("Applying limits... done"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().take(3).collect::<Vec<_>>()
                == ["web", "500m", "unlimited"]),
        "{out}"
    );
    let out = cli.ok(&[
        "autoscale:set",
        "web",
        "--min=3",
        "--max=8",
        "--cpu-percent=75",
    ]);
    assert_eq!(
        out.trim(),
        format!("Applying autoscale settings for process type web on {app}... done")
    );
    let out = cli.ok(&["autoscale:list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["UUID", "TYPE", "PERCENT", "MIN", "MAX"]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells.len(), 5);
    assert_eq!(&cells[1..], ["web", "75", "3", "8"]);
    assert_eq!(cells[0].len(), 36, "a UUID: {}", cells[0]);
    let output = cli.run(&["scale", "web=4"]);
    assert_eq!(output.code, 1, "scaling an autoscaled type is refused");
    assert!(output.stderr.starts_with("Error: "), "{}", output.stderr);
    let out = cli.ok(&["autoscale:unset", "web"]);
    assert_eq!(
        out.trim(),
        format!("Removing autoscale for process type web on {app}... done")
    );
    assert_eq!(
        cli.ok(&["autoscale:list"]).trim(),
        "No autoscale rules found."
    );
    let output = cli.run(&["autoscale:unset", "web"]);
    assert_eq!(output.code, 1, "no rule left to remove: {}", output.stdout);
    assert!(!output.stdout.contains("done"), "{}", output.stdout);
    assert!(
        output
            .stderr
            .starts_with("Error: No autoscale rule for process type web"),
        "{}",
        output.stderr
    );

    // Argument errors: exit 1, the pattern message.
    let output = cli.run(&["scale", "web"]);
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains("'web' does not match the pattern 'type=num', ex: web=2"),
        "{}",
        output.stderr
    );
    let output = cli.run(&["no-such-command"]);
    assert_eq!(output.code, 1);

    // The app answers through the router, with the README's curl (curl
    // resolves *.localhost to loopback by itself).
    let port = controller.router_port();
    let curl = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            &format!("http://{app}.localhost:{port}/"),
        ])
        .output()
        .expect("curl runs");
    let routed = String::from_utf8_lossy(&curl.stdout);
    assert!(
        routed.starts_with("Hello from walk-through-web-"),
        "{routed}"
    );

    let rows = ps_rows(&cli.ok(&["ps"]));
    // Logs: the app's lines with the process name, and one process's lines.
    let logs = cli.ok(&["logs", "-n", "200"]);
    assert!(
        logs.lines()
            .any(|l| l.contains(&format!("{app}[walk-through-web-")) && l.contains("listening on")),
        "{logs}"
    );
    let web = &rows[0].0;
    let own = cli.ok(&["ps:logs", web, "-n", "10"]);
    assert!(
        !own.is_empty() && own.lines().all(|l| l.contains(&format!("[{web}]"))),
        "{own}"
    );

    // Interactive: ps:exec -it -- sh under a pseudo-terminal.
    interactive_exec(&cli, &rows[0].0, None);

    // Outside the app's repository: the error names the guessed app.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let dir = elsewhere.path().join("Elsewhere");
    std::fs::create_dir(&dir).expect("dir");
    let away = Cli {
        home: cli.home,
        cwd: dir.clone(),
    };
    let output = away.run(&["ps"]);
    assert_eq!(output.code, 1);
    assert!(
        output.stderr.starts_with(&format!(
            "Error: No app named elsewhere (guessed from the directory name {}",
            dir.display()
        )) && output.stderr.contains("-a <app>"),
        "{}",
        output.stderr
    );
}

/// `examples/hello` in a fresh repository made with the README's own
/// commands (the lines after `cp -r examples/hello ...` up to `drycc
/// create`), as on a machine where git has no identity configured.
fn readme_repo() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let lines: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("cp -r examples/hello "))
        .skip(1)
        .take_while(|l| !l.starts_with("drycc create"))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("commit")),
        "the README's walkthrough commits: {lines:?}"
    );
    let repo = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(root.join("examples/hello")).expect("examples/hello") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), repo.path().join(entry.file_name())).expect("copy");
    }
    let home = tempfile::tempdir().expect("empty home");
    for line in lines {
        let output = Command::new("sh")
            .args(["-c", line])
            .current_dir(repo.path())
            .env("HOME", home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // No identity guessed from the user database or the host name.
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "user.useConfigOnly")
            .env("GIT_CONFIG_VALUE_0", "true")
            .env_remove("GIT_AUTHOR_NAME")
            .env_remove("GIT_AUTHOR_EMAIL")
            .env_remove("GIT_COMMITTER_NAME")
            .env_remove("GIT_COMMITTER_EMAIL")
            .env_remove("EMAIL")
            .output()
            .expect("sh runs");
        assert!(
            output.status.success(),
            "README line {line:?} fails on a machine without a git identity:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    repo
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
