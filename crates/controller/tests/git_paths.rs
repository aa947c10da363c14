//! The git endpoint serves git's smart HTTP protocol and nothing else:
//! hostile paths are answered 404 (403 for a repository the user may not
//! write) before git runs, never a 5xx; a normal push and clone still work.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::Engine as _;
use serde_json::json;
use support::{fixture_repo, git, push, Api, Controller};

/// Send `method path` exactly as written (no client normalises `..`) and
/// return the status code and the body.
fn raw_request(port: u16, method: &str, path: &str, basic: Option<(&str, &str)>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some((user, token)) = basic {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
        head.push_str(&format!("Authorization: Basic {credentials}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn only_smart_http_paths_reach_git() {
    let controller = Controller::start(&[]);
    let port = controller.port();
    // The first user is an admin, who may write every repository.
    Api::new(&controller.url).login("root", "pass-word-root");
    let mut alice = Api::new(&controller.url);
    alice.login("alice", "pass-word-alice");
    let mut eve = Api::new(&controller.url);
    eve.login("eve", "pass-word-eve");
    for (api, app) in [(&alice, "paths-app"), (&eve, "eves-app")] {
        let created = api.post("/v2/apps/", json!({"id": app}));
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let alice_token = alice.token.clone().expect("token");
    let eve_token = eve.token.clone().expect("token");

    // A normal push works, and creates the repository on disk.
    let repo = fixture_repo("webapp");
    let (ok, output) = push(
        repo.path(),
        &controller.url,
        "paths-app",
        "alice",
        &alice_token,
    );
    assert!(ok, "push failed:\n{output}\n{}", controller.log());
    let clone = tempfile::tempdir().expect("temp dir");
    let host = controller.url.trim_start_matches("http://");
    git(
        clone.path(),
        &[
            "clone",
            "-q",
            &format!("http://alice:{alice_token}@{host}/git/paths-app.git"),
            "copy",
        ],
    );
    assert!(clone.path().join("copy/Procfile").exists(), "a clone works");

    let alice_basic = Some(("alice", alice_token.as_str()));
    let hostile = [
        ("GET", "/git/paths-app.git/../../drycc.db"),
        ("GET", "/git/paths-app.git/%2e%2e/%2e%2e/drycc.db"),
        ("GET", "/git/paths-app.git/%2E%2E/%2E%2E/drycc.db"),
        ("GET", "/git/paths-app.git/..%2f..%2fdrycc.db"),
        ("GET", "/git/../drycc.db"),
        ("GET", "/git/%2e%2e/drycc.db"),
        ("GET", "/git/paths-app.git/HEAD"),
        ("GET", "/git/paths-app.git/config"),
        ("GET", "/git/paths-app.git/hooks/pre-receive"),
        ("GET", "/git/paths-app.git/objects/info/packs"),
        ("GET", "/git/paths-app.git/info/refs"),
        (
            "GET",
            "/git/paths-app.git/info/refs?service=git-upload-archive",
        ),
        ("GET", "/git/paths-app.git/git-upload-pack"),
        (
            "POST",
            "/git/paths-app.git/info/refs?service=git-receive-pack",
        ),
        (
            "GET",
            "/git/paths-app.git/../eves-app.git/info/refs?service=git-upload-pack",
        ),
        (
            "POST",
            "/git/paths-app.git/../eves-app.git/git-receive-pack",
        ),
        (
            "POST",
            "/git/paths-app.git/%2e%2e/eves-app.git/git-receive-pack",
        ),
        ("GET", "/git/paths-app/info/refs?service=git-upload-pack"),
    ];
    for (method, path) in hostile {
        for basic in [alice_basic, None] {
            let (status, body) = raw_request(port, method, path, basic);
            assert_eq!(
                status,
                404,
                "{method} {path} (credentials: {}): {body}",
                basic.is_some()
            );
        }
    }

    // A repository that does not exist: 404 to a user, while anonymous
    // clients learn nothing but that they must authenticate.
    let missing = "/git/no-such-app.git/info/refs?service=git-upload-pack";
    assert_eq!(raw_request(port, "GET", missing, alice_basic).0, 404);
    assert_eq!(raw_request(port, "GET", missing, None).0, 401);

    // Another user's repository: 403 with valid credentials, whatever the
    // smart request; without credentials, the Basic challenge.
    for (method, path) in [
        ("GET", "/git/eves-app.git/info/refs?service=git-upload-pack"),
        (
            "GET",
            "/git/eves-app.git/info/refs?service=git-receive-pack",
        ),
        ("POST", "/git/eves-app.git/git-upload-pack"),
        ("POST", "/git/eves-app.git/git-receive-pack"),
    ] {
        let (status, body) = raw_request(port, method, path, alice_basic);
        assert_eq!(status, 403, "{method} {path}: {body}");
        let (status, body) = raw_request(port, method, path, None);
        assert_eq!(status, 401, "{method} {path}: {body}");
        let (status, body) = raw_request(port, method, path, Some(("alice", &eve_token)));
        assert_eq!(
            status, 401,
            "a token of another user: {method} {path}: {body}"
        );
    }
    // The owner's own smart request still reaches git.
    let (status, body) = raw_request(
        port,
        "GET",
        "/git/paths-app.git/info/refs?service=git-upload-pack",
        alice_basic,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("refs/heads/main"), "{body}");
    assert!(
        !controller.log().contains("git http-backend failed"),
        "{}",
        controller.log()
    );
}
