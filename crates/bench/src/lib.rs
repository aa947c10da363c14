//! What the benchmark programs share: a real controller on a temporary
//! data directory and a free port, a user, an app pushed with a Procfile,
//! and readings of `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// A controller the benchmark started; stopped (SIGTERM) when dropped, and
/// every app process it left stopped with `stop-apps`.
pub struct Controller {
    pub child: Option<Child>,
    pub url: String,
    pub data: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Controller {
    /// Start a controller with the given extra environment.
    pub fn start(env: &[(&str, &str)]) -> Result<Controller> {
        let mut controller = Controller {
            child: None,
            url: String::new(),
            data: tempfile::tempdir()?,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        controller.spawn()?;
        Ok(controller)
    }

    fn command(&self) -> Result<Command> {
        let mut command = Command::new(controller_bin()?);
        command
            .env("DRYCC_ROUTER_LISTEN", "off")
            .env("DRYCC_DATA_DIR", self.data.path())
            .env("DRYCC_RUN_DIR", self.data.path().join("run"))
            .env("DRYCC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        Ok(command)
    }

    /// Start (again) on a new free port, same data directory; returns once
    /// it answers `/healthz`.
    pub fn spawn(&mut self) -> Result<()> {
        let port = free_port()?;
        self.url = format!("http://127.0.0.1:{port}");
        let child = self
            .command()?
            .env("DRYCC_LISTEN", format!("127.0.0.1:{port}"))
            .spawn()?;
        self.child = Some(child);
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{}/healthz", self.url)).send().is_err() {
            if Instant::now() > deadline {
                bail!("controller did not start");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, as a crash would.
    pub fn crash(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
        // App processes outlive the controller: stop them explicitly.
        if let Ok(mut command) = self.command() {
            let _ = command.arg("stop-apps").stdout(Stdio::null()).status();
        }
    }
}

/// A logged-in API client of one controller.
pub struct Api {
    pub url: String,
    pub token: String,
    client: reqwest::blocking::Client,
}

impl Api {
    /// Register and log in a user.
    pub fn register(url: &str) -> Result<Api> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()?;
        let mut api = Api {
            url: url.to_string(),
            token: String::new(),
            client,
        };
        let user = json!({"username": "bench", "password": "bench-pass"});
        api.post("/v2/auth/register/", user.clone())?;
        let answer: Value = api.post("/v2/auth/login/", user)?.json()?;
        api.token = answer["token"].as_str().context("no token")?.to_string();
        Ok(api)
    }

    pub fn post(&self, path: &str, body: Value) -> Result<reqwest::blocking::Response> {
        let mut request = self.client.post(format!("{}{path}", self.url)).json(&body);
        if !self.token.is_empty() {
            request = request.header("Authorization", format!("token {}", self.token));
        }
        Ok(request.send()?)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        Ok(self
            .client
            .get(format!("{}{path}", self.url))
            .header("Authorization", format!("token {}", self.token))
            .send()?
            .json()?)
    }

    /// Create `app` and push a repository holding only `procfile`.
    pub fn create_and_push(&self, app: &str, procfile: &str) -> Result<()> {
        self.post("/v2/apps/", json!({"id": app}))?;
        let repo = tempfile::tempdir()?;
        std::fs::write(repo.path().join("Procfile"), procfile)?;
        commit_all(repo.path(), "bench")?;
        let host = self.url.trim_start_matches("http://");
        git(
            &[
                "push",
                "-q",
                &format!("http://bench:{}@{host}/git/{app}.git", self.token),
                "main",
            ],
            repo.path(),
        )
    }

    /// `git push` of the repository in `dir` to `app`; the time until the
    /// push returned, which is when the new release is ready (the build
    /// runs in the pre-receive hook and waits for the rollout).
    pub fn push_dir(&self, app: &str, dir: &Path) -> Result<Duration> {
        let host = self.url.trim_start_matches("http://");
        let started = Instant::now();
        git(
            &[
                "push",
                "-q",
                &format!("http://bench:{}@{host}/git/{app}.git", self.token),
                "main",
            ],
            dir,
        )?;
        Ok(started.elapsed())
    }

    /// `POST /scale/`; fails unless it answers 204.
    pub fn scale(&self, app: &str, body: Value) -> Result<Duration> {
        let started = Instant::now();
        let answer = self.post(&format!("/v2/apps/{app}/scale/"), body.clone())?;
        let took = started.elapsed();
        if answer.status().as_u16() != 204 {
            bail!(
                "scale {body} answered {}: {}",
                answer.status(),
                answer.text()?
            );
        }
        Ok(took)
    }

    /// The app's processes (`ps`).
    pub fn pods(&self, app: &str) -> Result<Vec<Value>> {
        Ok(self.get(&format!("/v2/apps/{app}/pods/"))?["results"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// A process's pid, from `ps:describe`.
    pub fn pid(&self, app: &str, name: &str) -> Result<u64> {
        self.get(&format!("/v2/apps/{app}/pods/{name}/describe/"))?["results"][0]["pid"]
            .as_u64()
            .context("no pid")
    }
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `target/release/drycc-controller` beside the benchmark, or
/// `$DRYCC_CONTROLLER_BIN`.
pub fn controller_bin() -> Result<PathBuf> {
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

pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS missing")
}

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("bad stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime); `rest` starts at field 3.
    let ticks: u64 = fields
        .get(11..13)
        .context("short stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Commit every change of the work tree in `dir` (a repository is created
/// on the first call).
pub fn commit_all(dir: &Path, message: &str) -> Result<()> {
    if !dir.join(".git").exists() {
        git(&["init", "-q", "-b", "main"], dir)?;
    }
    git(&["add", "-A"], dir)?;
    git(
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@example.com",
            "commit",
            "-qm",
            message,
        ],
        dir,
    )
}

fn git(args: &[&str], dir: &Path) -> Result<()> {
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

/// A number from the environment, or `default` when unset or not one.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `median (min .. max)` in seconds.
pub fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let secs = |d: Option<&Duration>| d.map_or(0.0, Duration::as_secs_f64);
    format!(
        "median {:.3} s (min {:.3} s, max {:.3} s)",
        secs(times.get(times.len() / 2)),
        secs(times.first()),
        secs(times.last())
    )
}
