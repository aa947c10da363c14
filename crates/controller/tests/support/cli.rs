//! The real `drycc` binary: commands run in a directory with their own
//! HOME, `ps` tables read back, and `ps:exec -it` under a pseudo-terminal.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `drycc` is built next to `drycc-controller` by `cargo test --workspace`.
pub fn drycc_bin() -> PathBuf {
    let controller = PathBuf::from(env!("CARGO_BIN_EXE_drycc-controller"));
    let path = controller.with_file_name("drycc");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p drycc-cli`) first",
        path.display()
    );
    path
}

pub struct Cli {
    pub home: tempfile::TempDir,
    pub cwd: PathBuf,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(drycc_bin());
        command
            .args(args)
            .current_dir(&self.cwd)
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("DRYCC_PROFILE")
            .env_remove("DRYCC_DRINK_OF_CHOICE");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .expect("drycc runs");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.code, 0,
            "drycc {args:?} failed:\n{}\n{}",
            output.stdout, output.stderr
        );
        output.stdout
    }
}

/// Rows of a `ps` table after checking its header: (name, release, state, type).
pub fn ps_rows(table: &str) -> Vec<(String, String, String, String)> {
    let mut lines = table.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "RELEASE", "STATE", "TYPE", "STARTED"],
        "{table}"
    );
    lines
        .map(|line| {
            assert!(
                line.contains("    "),
                "columns are separated by 4 spaces: {line:?}"
            );
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells.len(), 5, "{line}");
            assert!(
                cells[4].ends_with("UTC") && cells[4].len() == 22,
                "STARTED like 2023-12-08T02:25:00UTC: {line}"
            );
            (
                cells[0].into(),
                cells[1].into(),
                cells[2].into(),
                cells[3].into(),
            )
        })
        .collect()
}

pub fn count(rows: &[(String, String, String, String)], ptype: &str) -> usize {
    rows.iter().filter(|r| r.3 == ptype && r.2 == "up").count()
}

/// `Scaling processes... but first, coffee!`, `done in Ns`, a blank line, the table.
pub fn scaled(output: &str, verb: &str) -> Vec<(String, String, String, String)> {
    let mut lines = output.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{verb} processes... but first, coffee!").as_str()),
        "{output}"
    );
    let done = lines.next().unwrap_or_default();
    assert!(
        done.starts_with("done in ") && done.ends_with('s'),
        "{output}"
    );
    assert_eq!(lines.next(), Some(""), "{output}");
    ps_rows(&lines.collect::<Vec<_>>().join("\n"))
}

/// `ps:exec <name> -it -- sh` (of `app`, else the app of the directory):
/// a line typed in, its output and exit code read back.
pub fn interactive_exec(cli: &Cli, name: &str, app: Option<&str>) {
    let mut args = vec!["ps:exec", name, "-it"];
    if let Some(app) = app {
        args.extend(["-a", app]);
    }
    args.extend(["--", "sh"]);
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let slave = || Stdio::from(pty.slave.try_clone().expect("slave fd"));
    let mut child = cli
        .command(&args)
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .expect("drycc ps:exec -it");
    let mut master = std::fs::File::from(pty.master);
    // Read the terminal on a thread so the child never blocks on output.
    let mut reader = master.try_clone().expect("master fd");
    let (sender, receiver) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    master
        .write_all(b"echo hi; exit 4\n")
        .expect("type into the terminal");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let status = loop {
        while let Ok(chunk) = receiver.try_recv() {
            seen.extend(chunk);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "interactive exec did not finish: {}",
            String::from_utf8_lossy(&seen)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(pty.slave);
    while let Ok(chunk) = receiver.recv_timeout(Duration::from_millis(200)) {
        seen.extend(chunk);
    }
    let text = String::from_utf8_lossy(&seen).replace('\r', "");
    assert!(
        text.lines().any(|l| l.trim() == "hi"),
        "`hi` on its own line: {text:?}"
    );
    assert_eq!(status.code(), Some(4), "{text:?}");
    let _ = master.as_raw_fd();
}

/// A CLI in a home of its own, registered (and so logged in) as `user` at
/// `controller`.
pub fn registered(controller: &super::Controller, user: &str) -> Cli {
    let home = tempfile::tempdir().expect("home");
    let cwd = home.path().to_path_buf();
    let cli = Cli { home, cwd };
    cli.ok(&[
        "register",
        &controller.url,
        &format!("--username={user}"),
        "--password=walkthrough-pass",
        &format!("--email={user}@example.com"),
    ]);
    cli
}

/// The REST API with the token the CLI holds.
pub fn api_of(controller: &super::Controller, cli: &Cli) -> super::Api {
    let text =
        std::fs::read_to_string(cli.home.path().join(".drycc/client.json")).expect("client config");
    let config: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut api = super::Api::new(&controller.url);
    api.token = Some(config["token"].as_str().expect("token").to_string());
    api
}
