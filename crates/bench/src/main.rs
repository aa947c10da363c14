//! Scale benchmark: one scale request `{"worker": 500}` against a real
//! controller, timed until all 500 processes are `up`, then back to 0, with
//! the controller's RSS idle and at 500 processes.
//!
//! Usage: `cargo run --release -p drycc-bench` (builds and uses
//! `target/release/drycc-controller`, or `$DRYCC_CONTROLLER_BIN`).
//! `DRYCC_BENCH_COUNT` changes the count (default 500), `DRYCC_BENCH_ROUNDS`
//! the number of rounds (default 5).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

struct Controller {
    child: Child,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn controller_bin() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("DRYCC_CONTROLLER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no exe dir")?;
    let candidate = dir.join("drycc-controller");
    if !candidate.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p drycc-controller`",
            candidate.display()
        );
    }
    Ok(candidate)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS missing")
}

fn run(args: &[&str], dir: &Path) -> Result<()> {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("git {args:?} failed");
    }
    Ok(())
}

/// `median (min .. max)` in seconds.
fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let secs = |d: Option<&Duration>| d.map_or(0.0, Duration::as_secs_f64);
    format!(
        "median {:.3} s (min {:.3} s, max {:.3} s)",
        secs(times.get(times.len() / 2)),
        secs(times.first()),
        secs(times.last())
    )
}

fn main() -> Result<()> {
    let rounds: u32 = std::env::var("DRYCC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let count: u32 = std::env::var("DRYCC_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let data = tempfile::tempdir()?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(controller_bin()?)
        .env("DRYCC_LISTEN", format!("127.0.0.1:{port}"))
        .env("DRYCC_ROUTER_LISTEN", "off")
        .env("DRYCC_DATA_DIR", data.path())
        .env("DRYCC_MAX_PROCESSES_PER_TYPE", count.max(100).to_string())
        .env("DRYCC_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let controller = Controller { child };
    let pid = controller.child.id();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{url}/healthz")).send().is_err() {
        if Instant::now() > deadline {
            bail!("controller did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let fresh = rss_kib(pid)?;
    let post =
        |path: &str, token: Option<&str>, body: Value| -> Result<reqwest::blocking::Response> {
            let mut request = client.post(format!("{url}{path}")).json(&body);
            if let Some(token) = token {
                request = request.header("Authorization", format!("token {token}"));
            }
            Ok(request.send()?)
        };
    post(
        "/v2/auth/register/",
        None,
        json!({"username": "bench", "password": "bench-pass"}),
    )?;
    let token: Value = post(
        "/v2/auth/login/",
        None,
        json!({"username": "bench", "password": "bench-pass"}),
    )?
    .json()?;
    let token = token["token"].as_str().context("no token")?.to_string();
    post("/v2/apps/", Some(&token), json!({"id": "bench-app"}))?;

    let repo = tempfile::tempdir()?;
    std::fs::write(repo.path().join("Procfile"), "worker: exec sleep 600\n")?;
    run(&["init", "-q", "-b", "main"], repo.path())?;
    run(&["add", "."], repo.path())?;
    run(
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@example.com",
            "commit",
            "-qm",
            "bench",
        ],
        repo.path(),
    )?;
    run(
        &[
            "push",
            "-q",
            &format!("http://bench:{token}@127.0.0.1:{port}/git/bench-app.git"),
            "main",
        ],
        repo.path(),
    )?;

    // Let the push's work settle before reading the idle size.
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid)?;
    let scale = |n: u32| -> Result<Duration> {
        let started = Instant::now();
        let answer = post(
            "/v2/apps/bench-app/scale/",
            Some(&token),
            json!({"worker": n}),
        )?;
        let took = started.elapsed();
        if answer.status().as_u16() != 204 {
            bail!(
                "scale to {n} answered {}: {}",
                answer.status(),
                answer.text()?
            );
        }
        Ok(took)
    };
    let (mut ups, mut downs, mut at_count) = (Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        ups.push(scale(count)?);
        let pods: Value = client
            .get(format!("{url}/v2/apps/bench-app/pods/"))
            .header("Authorization", format!("token {token}"))
            .send()?
            .json()?;
        let up = pods["results"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["state"] == "up").count());
        if up != count as usize {
            bail!("only {up} of {count} processes up after the scale answered");
        }
        at_count = at_count.max(rss_kib(pid)?);
        downs.push(scale(0)?);
    }
    println!("{rounds} rounds of one scale request 0 -> {count} -> 0 (worker: exec sleep 600)");
    println!(
        "scale 0 -> {count}, request until all up: {}",
        summary(&mut ups)
    );
    println!(
        "scale {count} -> 0, request until all gone: {}",
        summary(&mut downs)
    );
    println!(
        "controller RSS just started: {:.1} MiB",
        fresh as f64 / 1024.0
    );
    println!(
        "controller RSS idle (after login and a push): {:.1} MiB",
        idle as f64 / 1024.0
    );
    println!(
        "controller RSS at {count} processes (largest seen): {:.1} MiB",
        at_count as f64 / 1024.0
    );
    drop(controller);
    Ok(())
}
