//! Test support: a real controller on free ports in a temp data dir, an
//! HTTP client for its API, and `git push` of fixture apps.

#![allow(dead_code)]

pub mod cli;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// What a cluster walkthrough needs: the testbed's cluster (`KUBECONFIG`),
/// a Docker engine and a registry (`scripts/with-docker.sh`). A missing
/// part fails the test under `DRYCC_K8S_REQUIRED=1` (CI) and skips it,
/// saying why, elsewhere.
pub fn cluster_prerequisites(test: &str) -> Option<(drycc_images::testing::Docker, String)> {
    let missing = |what: &str| {
        if std::env::var("DRYCC_K8S_REQUIRED").as_deref() == Ok("1") {
            panic!("{test}: {what}, and DRYCC_K8S_REQUIRED=1");
        }
        eprintln!("SKIPPED {test}: {what}");
    };
    if std::env::var_os("KUBECONFIG").is_none() {
        missing("KUBECONFIG is not set (scripts/k8s-testbed.sh up prints it)");
        return None;
    }
    let (Some(docker), Some(registry)) = (
        drycc_images::testing::docker_from_env(),
        drycc_images::testing::test_registry(),
    ) else {
        missing(
            "DOCKER_HOST and DRYCC_TEST_REGISTRY are not set (scripts/with-docker.sh sets them)",
        );
        return None;
    };
    Some((docker, registry))
}

/// The port of a `http://127.0.0.1:<port>` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A database of its own on the PostgreSQL server named by
/// `DRYCC_TEST_DATABASE_URL`, dropped with the controller.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

impl TestDatabase {
    pub fn create(admin_url: &str) -> TestDatabase {
        use sqlx::Connection;
        let name = format!("drycc_ctl_{}", uuid::Uuid::new_v4().simple());
        block_on(async {
            let mut admin = sqlx::PgConnection::connect(admin_url)
                .await
                .expect("connect to DRYCC_TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .expect("create database");
        });
        let (server, _) = admin_url
            .rsplit_once('/')
            .expect("a postgres:// URL with a database");
        TestDatabase {
            admin_url: admin_url.to_string(),
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        block_on(async {
            if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut admin)
                .await;
            }
        });
    }
}

pub struct Controller {
    pub child: Option<Child>,
    pub url: String,
    pub router_url: String,
    pub data_dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    /// PostgreSQL instead of SQLite when DRYCC_TEST_DATABASE_URL is set.
    pub database: Option<TestDatabase>,
}

impl Controller {
    pub fn start(extra_env: &[(&str, &str)]) -> Controller {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut controller = Controller {
            child: None,
            url: String::new(),
            router_url: String::new(),
            data_dir,
            env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            database: std::env::var("DRYCC_TEST_DATABASE_URL")
                .ok()
                .filter(|url| !url.is_empty())
                .map(|url| TestDatabase::create(&url)),
        };
        controller.spawn();
        controller
    }

    /// Start (again) on new free ports with the same data dir.
    pub fn spawn(&mut self) {
        self.spawn_at(free_port(), free_port());
    }

    /// The API's port.
    pub fn port(&self) -> u16 {
        port_of(&self.url)
    }

    /// The router's port.
    pub fn router_port(&self) -> u16 {
        port_of(&self.router_url)
    }

    /// Stop (SIGTERM) and start again on the same ports and data dir,
    /// where the CLI knows it.
    pub fn restart(&mut self) {
        let (port, router_port) = (self.port(), self.router_port());
        self.stop();
        self.spawn_at(port, router_port);
    }

    /// SIGKILL, as a crash would; app processes keep running.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("controller running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Start (again) on the given ports with the same data dir.
    pub fn spawn_at(&mut self, port: u16, router_port: u16) {
        self.url = format!("http://127.0.0.1:{port}");
        self.router_url = format!("http://127.0.0.1:{router_port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("controller.log"))
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_drycc-controller"));
        command
            .env("DRYCC_LISTEN", format!("127.0.0.1:{port}"))
            .env("DRYCC_ROUTER_LISTEN", format!("127.0.0.1:{router_port}"))
            .env("DRYCC_DATA_DIR", self.data_dir.path())
            .env("DRYCC_RUN_DIR", self.data_dir.path().join("run"))
            .env("DRYCC_TERMINATION_GRACE_PERIOD", "5")
            .env("DRYCC_DEPLOY_TIMEOUT", "30")
            .env("DRYCC_CRASH_BACKOFF", "0.2")
            .env("DRYCC_LOG", "info")
            .env(
                "DRYCC_DATABASE_URL",
                self.database
                    .as_ref()
                    .map(|d| d.url.as_str())
                    .unwrap_or_default(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().expect("start drycc-controller"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = reqwest::blocking::get(format!("{}/healthz", self.url)) {
                if response.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("controller exited at start: {status}\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "controller did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("controller.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("controller running");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("controller did not stop within 90 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pids of the process groups the engine recorded: process records
    /// (`<name>.json`) and exec sessions (`<name>.pid`).
    pub fn recorded_pids(&self) -> Vec<i32> {
        let run = self.data_dir.path().join("run");
        let Ok(entries) = std::fs::read_dir(run) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(record) => record["pid"].as_i64().map(|p| p as i32),
                    Err(_) => text.split_whitespace().next()?.parse().ok(),
                }
            })
            .collect()
    }

    /// Stop every app process left running (`drycc-controller stop-apps`,
    /// with the controller stopped).
    pub fn stop_apps(&self) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_drycc-controller"));
        command
            .arg("stop-apps")
            .env("DRYCC_DATA_DIR", self.data_dir.path())
            .env("DRYCC_RUN_DIR", self.data_dir.path().join("run"))
            .env("DRYCC_TERMINATION_GRACE_PERIOD", "5");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.output().expect("run drycc-controller stop-apps")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.stop()));
        }
        // App processes outlive the controller by design; none may outlive
        // the test. Containers are the Docker engine's to find.
        if std::env::var_os("DOCKER_HOST").is_some() {
            let _ = self.stop_apps();
        }
        for pid in self.recorded_pids() {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie is gone for our purposes: check /proc state too.
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A blocking API client with a token.
pub struct Api {
    pub url: String,
    pub token: Option<String>,
    pub client: reqwest::blocking::Client,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Api {
    pub fn new(url: &str) -> Api {
        Api {
            url: url.to_string(),
            token: None,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(180))
                .build()
                .expect("client"),
        }
    }

    pub fn request(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    pub fn raw(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .client
            .request(method, format!("{}{}", self.url, path))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("token {token}"));
        }
        let response = request.send().expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Answer {
        self.request("POST", path, Some(body))
    }

    /// Register (if needed) and log in; the token is kept.
    pub fn login(&mut self, username: &str, password: &str) {
        self.post(
            "/v2/auth/register/",
            json!({"username": username, "password": password, "email": format!("{username}@example.com")}),
        );
        let answer = self.post(
            "/v2/auth/login/",
            json!({"username": username, "password": password}),
        );
        assert_eq!(answer.status, 200, "login: {}", answer.text);
        self.token = Some(answer.body["token"].as_str().expect("token").to_string());
    }

    pub fn pods(&self, app: &str) -> Vec<Value> {
        let answer = self.get(&format!("/v2/apps/{app}/pods/"));
        assert_eq!(answer.status, 200, "pods: {}", answer.text);
        answer.body["results"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn pods_of(&self, app: &str, ptype: &str) -> Vec<Value> {
        self.pods(app)
            .into_iter()
            .filter(|p| p["type"] == ptype)
            .collect()
    }

    pub fn describe(&self, app: &str, name: &str) -> Value {
        let answer = self.get(&format!("/v2/apps/{app}/pods/{name}/describe/"));
        assert_eq!(answer.status, 200, "describe: {}", answer.text);
        answer.body["results"][0].clone()
    }

    /// Poll the pod list until `check` holds (or fail after `limit`).
    pub fn wait_pods(
        &self,
        app: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let pods = self.pods(app);
            if check(&pods) {
                return pods;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; pods: {pods:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Copy a fixture app into a fresh git repository with one commit on main.
pub fn fixture_repo(name: &str) -> tempfile::TempDir {
    repo_from(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
}

/// The README's example app (`examples/hello`) in a fresh repository.
pub fn example_repo() -> tempfile::TempDir {
    repo_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello"))
}

fn repo_from(source: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(source).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    commit_all(dir.path(), "init");
    dir
}

/// A directory tree (subdirectories included) in a fresh repository with
/// one commit on main.
pub fn tree_repo(source: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new("cp")
        .arg("-R")
        .arg(format!("{}/.", source.display()))
        .arg(dir.path())
        .status()
        .expect("cp runs");
    assert!(status.success(), "copy {}", source.display());
    git(dir.path(), &["init", "-q", "-b", "main"]);
    commit_all(dir.path(), "init");
    dir
}

/// GET `/` of `app` through the router; (status, body).
pub fn routed(router_url: &str, app: &str) -> (u16, String) {
    match reqwest::blocking::Client::new()
        .get(format!("{router_url}/"))
        .header("Host", format!("{app}.localhost"))
        .send()
    {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().unwrap_or_default())
        }
        Err(error) => (0, error.to_string()),
    }
}

/// Commit every change in the work tree.
pub fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            message,
        ],
    );
}

pub fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `git push` to the controller with HTTP Basic credentials; returns
/// (success, combined output).
pub fn push(dir: &Path, controller: &str, app: &str, user: &str, token: &str) -> (bool, String) {
    let host = controller.trim_start_matches("http://");
    let remote = format!("http://{user}:{token}@{host}/git/{app}.git");
    let output = Command::new("git")
        .args(["push", &remote, "main"])
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git push runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

pub fn temp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Run a command in a process over the exec WebSocket; returns
/// (stdout, stderr, exit code).
pub fn exec(
    api: &Api,
    app: &str,
    name: &str,
    command: &[&str],
    stdin: Option<&str>,
) -> (String, String, i32) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = format!(
            "{}/v2/apps/{app}/pods/{name}/exec/",
            api.url.replacen("http://", "ws://", 1)
        );
        let mut request = url.into_client_request().expect("ws request");
        request.headers_mut().insert(
            "Authorization",
            format!("token {}", api.token.as_deref().unwrap_or_default())
                .parse()
                .expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connect");
        let start = json!({"command": command, "tty": false, "stdin": stdin.is_some()});
        socket
            .send(Message::Text(start.to_string().into()))
            .await
            .expect("send start");
        if let Some(input) = stdin {
            let mut frame = vec![0u8];
            frame.extend_from_slice(input.as_bytes());
            socket
                .send(Message::Binary(frame.into()))
                .await
                .expect("stdin");
            socket
                .send(Message::Binary(vec![0u8].into()))
                .await
                .expect("eof");
        }
        let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Binary(bytes)) if !bytes.is_empty() => match bytes[0] {
                    1 => out.extend_from_slice(&bytes[1..]),
                    2 => err.extend_from_slice(&bytes[1..]),
                    3 => {
                        let status: drycc_api_types::ExecStatus =
                            serde_json::from_slice(&bytes[1..]).expect("status json");
                        code = Some(status.exit_code());
                    }
                    _ => {}
                },
                Ok(Message::Close(_)) | Err(_) => break,
                _ => {}
            }
        }
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
            code.expect("a final status frame"),
        )
    })
}

/// Follow the app's log over the WebSocket (no backlog) until a line of a
/// `sleeper` process arrives or 60 s pass; returns the lines seen.
pub fn follow_logs(api: &Api, app: &str) -> std::thread::JoinHandle<Vec<String>> {
    let marker = format!("[{app}-sleeper-");
    follow_logs_until(api, app, move |lines| {
        lines.last().is_some_and(|l| l.contains(&marker))
    })
}

/// Follow the app's logs (WebSocket) from now until `done` says the lines
/// so far are enough, or 60 s pass; the lines read.
pub fn follow_logs_until(
    api: &Api,
    app: &str,
    done: impl Fn(&[String]) -> bool + Send + 'static,
) -> std::thread::JoinHandle<Vec<String>> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let url = format!(
        "{}/v2/apps/{app}/logs",
        api.url.replacen("http://", "ws://", 1)
    );
    let token = api.token.clone().unwrap_or_default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut request = url.into_client_request().expect("ws request");
            request.headers_mut().insert(
                "Authorization",
                format!("token {token}").parse().expect("header"),
            );
            let (mut socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("ws connect");
            socket
                .send(Message::Text(
                    json!({"lines": 0, "follow": true}).to_string().into(),
                ))
                .await
                .expect("first frame");
            let _ = ready_tx.send(());
            let mut lines = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let next = tokio::time::timeout_at(deadline, socket.next()).await;
                match next {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        lines.push(text.to_string());
                        if done(&lines) {
                            break;
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            lines
        })
    });
    // The subscription exists before the caller makes the sleeper log.
    let _ = ready_rx.recv_timeout(Duration::from_secs(30));
    handle
}

/// An HTTP client for requests through the router.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// (status, body) of `GET /` for `host` through the router at `url`.
pub fn through(client: &reqwest::blocking::Client, url: &str, host: &str) -> (u16, String) {
    match client.get(format!("{url}/")).header("Host", host).send() {
        Ok(response) => (
            response.status().as_u16(),
            response.text().unwrap_or_default(),
        ),
        Err(error) => (0, error.to_string()),
    }
}

/// A controller with the webapp fixture pushed to `app` (web=1 up).
pub fn deployed(app: &str, env: &[(&str, &str)]) -> (Controller, Api) {
    let controller = Controller::start(env);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    let created = api.post("/v2/apps/", json!({"id": app}));
    assert_eq!(created.status, 201, "{}", created.text);
    let repo = fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push: {output}\n{}", controller.log());
    (controller, api)
}
