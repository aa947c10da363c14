//! Helpers of the integration tests: run the built `drycc`, write a client
//! configuration, and a tiny fake controller that records requests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const TOKEN: &str = "tok-123";

/// `drycc` with a clean environment: HOME in `home`, no profile, no colour.
pub fn drycc(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drycc"));
    cmd.env("HOME", home)
        .env_remove("DRYCC_PROFILE")
        .env_remove("DRYCC_DRINK_OF_CHOICE")
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    cmd
}

pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd.output().expect("run drycc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a client configuration for `controller` and returns its path.
pub fn write_config(dir: &Path, controller: &str) -> PathBuf {
    let path = dir.join("client.json");
    let json = serde_json::json!({
        "username": "alice",
        "controller": controller,
        "token": TOKEN,
        "ssl_verify": true,
        "response_limit": 100,
    });
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    path
}

/// A listener nobody answers on: the test asserts it saw no connection.
pub struct Silent {
    listener: TcpListener,
    pub url: String,
}

impl Silent {
    pub fn new() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Silent { listener, url }
    }

    pub fn assert_untouched(&self) {
        match self.listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(_) => panic!("drycc connected to the controller"),
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A port that was bound and closed: connecting is refused.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

type Handler = dyn Fn(&Request) -> (u16, String) + Send + Sync;

/// An HTTP/1.1 server answering each request with `handler`.
pub struct FakeController {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeController {
    pub fn start(handler: impl Fn(&Request) -> (u16, String) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let recorded = recorded.clone();
                let handler = handler.clone();
                std::thread::spawn(move || serve(stream, &recorded, &*handler));
            }
        });
        FakeController { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, recorded: &Mutex<Vec<Request>>, handler: &Handler) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    let request = Request {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    recorded.lock().unwrap().push(request.clone());
    let (status, body) = handler(&request);
    let mut stream = stream;
    let content_type = if body.starts_with('{') || body.starts_with('[') {
        "application/json"
    } else {
        "text/plain"
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nDRYCC_API_VERSION: 2.3\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

pub fn pod_json(name: &str, ptype: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name, "release": "v3", "type": ptype, "state": "up",
        "started": "2023-12-08T02:25:00Z", "ready": "1/1", "restarts": 0
    })
}

pub fn pods_json(pods: &[(&str, &str)]) -> String {
    let results: Vec<_> = pods.iter().map(|(n, t)| pod_json(n, t)).collect();
    serde_json::json!({"count": results.len(), "results": results}).to_string()
}

pub fn app_json(id: &str) -> String {
    serde_json::json!({
        "uuid": "0b7e-1", "id": id, "owner": "alice", "structure": {},
        "created": "2023-12-08T02:25:00Z", "updated": "2023-12-08T02:25:00Z"
    })
    .to_string()
}

pub fn config_json(cpu: serde_json::Value, memory: serde_json::Value) -> String {
    serde_json::json!({
        "uuid": "c-1", "app": "foo", "owner": "alice", "values": {},
        "cpu": cpu, "memory": memory, "healthcheck": {},
        "termination_grace_period": {}, "tags": {},
        "created": "2023-12-08T02:25:00Z", "updated": "2023-12-08T02:25:00Z"
    })
    .to_string()
}
