//! Every limit on what a client controls answers with a 4xx (or, on a
//! WebSocket, a close code) that names it and its setting: request bodies
//! and headers, WebSocket messages, exec sessions per user, pushes per
//! app, Procfile size and lines, apps per user; long log lines are cut.
//! One controller with small limits serves every test of this file.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{push, tree_repo, Api, Controller};

const LONG: Duration = Duration::from_secs(60);

const LIMITS: &[(&str, &str)] = &[
    ("DRYCC_MAX_BODY_KIB", "4"),
    ("DRYCC_MAX_HEADER_KIB", "2"),
    ("DRYCC_MAX_WS_MESSAGE_KIB", "1"),
    ("DRYCC_MAX_EXEC_SESSIONS_PER_USER", "1"),
    ("DRYCC_MAX_PUSHES_PER_APP", "1"),
    ("DRYCC_MAX_PROCFILE_KIB", "1"),
    ("DRYCC_MAX_PROCFILE_LINES", "3"),
    ("DRYCC_MAX_APPS_PER_USER", "2"),
    ("DRYCC_MAX_LOG_LINE_KIB", "1"),
    ("DRYCC_DEPLOY_TIMEOUT", "4"),
];

fn detail(answer: &support::Answer) -> String {
    answer.body["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A repository with these files (name, content).
fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let source = tempfile::tempdir().expect("temp dir");
    for (name, content) in files {
        std::fs::write(source.path().join(name), content).expect("file");
    }
    tree_repo(source.path())
}

fn push_files(
    controller: &Controller,
    api: &Api,
    app: &str,
    files: &[(&str, &str)],
) -> (bool, String) {
    let repo = repo(files);
    let token = api.token.clone().expect("token");
    push(repo.path(), &controller.url, app, "alice", &token)
}

fn create(api: &Api, app: &str) {
    let created = api.post("/v2/apps/", json!({ "id": app }));
    assert_eq!(created.status, 201, "{}", created.text);
}

#[test]
fn request_bodies_and_headers_are_bounded() {
    let controller = Controller::start(LIMITS);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    create(&api, "big-bodies");
    let values: Value = json!({"values": {"BIG": "x".repeat(5 * 1024)}});
    let answer = api.post("/v2/apps/big-bodies/config/", values);
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(
        detail(&answer).contains("at most 4096 bytes")
            && detail(&answer).contains("DRYCC_MAX_BODY_KIB"),
        "{}",
        answer.text
    );
    // Within the limit: accepted.
    let answer = api.post(
        "/v2/apps/big-bodies/config/",
        json!({"values": {"SMALL": "x".repeat(1024)}}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);

    let answer = reqwest::blocking::Client::new()
        .get(format!("{}/v2/apps/", controller.url))
        .header(
            "Authorization",
            format!("token {}", api.token.as_deref().unwrap_or_default()),
        )
        .header("X-Padding", "y".repeat(3 * 1024))
        .send()
        .expect("request");
    assert_eq!(answer.status().as_u16(), 431);
    let text = answer.text().unwrap_or_default();
    assert!(text.contains("DRYCC_MAX_HEADER_KIB"), "{text}");
}

#[test]
fn apps_per_user_are_bounded_for_users_not_admins() {
    let controller = Controller::start(LIMITS);
    let mut admin = Api::new(&controller.url);
    admin.login("alice", "alice-password");
    let mut bob = Api::new(&controller.url);
    bob.login("bob", "bob-password");
    create(&bob, "bob-one");
    create(&bob, "bob-two");
    let answer = bob.post("/v2/apps/", json!({"id": "bob-three"}));
    assert_eq!(answer.status, 409, "{}", answer.text);
    assert!(
        detail(&answer).contains("bob owns 2 apps")
            && detail(&answer).contains("DRYCC_MAX_APPS_PER_USER"),
        "{}",
        answer.text
    );
    // With a generated name too.
    let answer = bob.post("/v2/apps/", json!({}));
    assert_eq!(answer.status, 409, "{}", answer.text);
    // Destroying one makes room.
    let gone = bob.request("DELETE", "/v2/apps/bob-two/", None);
    assert_eq!(gone.status, 204, "{}", gone.text);
    create(&bob, "bob-three");
    // The administrator is not bound.
    for app in ["admin-one", "admin-two", "admin-three"] {
        create(&admin, app);
    }
}

#[test]
fn procfiles_are_bounded_in_size_and_lines() {
    let controller = Controller::start(LIMITS);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    create(&api, "long-procfile");
    let (ok, output) = push_files(
        &controller,
        &api,
        "long-procfile",
        &[("Procfile", "a1: true\nb1: true\nc1: true\nd1: true\n")],
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("4 lines") && output.contains("DRYCC_MAX_PROCFILE_LINES"),
        "{output}"
    );
    let big = format!("web: echo {}\n", "x".repeat(2048));
    let (ok, output) = push_files(&controller, &api, "long-procfile", &[("Procfile", &big)]);
    assert!(!ok, "{output}");
    assert!(output.contains("DRYCC_MAX_PROCFILE_KIB"), "{output}");

    // The builds endpoint's Procfile too.
    let procfile: serde_json::Map<String, Value> = ["aaa", "bbb", "ccc", "ddd"]
        .iter()
        .map(|t| (t.to_string(), json!("true")))
        .collect();
    let answer = api.post(
        "/v2/apps/long-procfile/builds/",
        json!({"image": "busybox:latest", "procfile": procfile}),
    );
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(
        detail(&answer).contains("DRYCC_MAX_PROCFILE_LINES"),
        "{}",
        answer.text
    );
}

#[test]
fn pushes_to_one_app_are_bounded() {
    let controller = Controller::start(LIMITS);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    create(&api, "busy-pushes");
    // A web process that never listens: its push waits for the deploy
    // timeout, holding the app's one push place meanwhile.
    let slow = repo(&[("Procfile", "web: exec sleep 900\n")]);
    let url = controller.url.clone();
    let token = api.token.clone().expect("token");
    let first = std::thread::spawn(move || {
        let result = push(slow.path(), &url, "busy-pushes", "alice", &token);
        drop(slow);
        result
    });
    api.wait_pods("busy-pushes", LONG, "the first push's rollout", |pods| {
        pods.iter().any(|p| p["type"] == "web")
    });
    let (ok, output) = push_files(
        &controller,
        &api,
        "busy-pushes",
        &[("Procfile", "web: exec sleep 900\n"), ("other", "x")],
    );
    assert!(!ok, "{output}");
    assert!(
        refused_with_429(&output),
        "refused while the first push runs: {output}"
    );
    let (first_ok, first_output) = first.join().expect("first push");
    assert!(!first_ok, "the never-ready rollout fails: {first_output}");
    // Its place was given back: the next push runs (and fails the same way).
    let (_, output) = push_files(
        &controller,
        &api,
        "busy-pushes",
        &[("Procfile", "web: exec sleep 900\n"), ("third", "x")],
    );
    assert!(!refused_with_429(&output), "{output}");
    assert!(output.contains("Rolling out"), "{output}");
}

/// Whether git says the controller answered 429 (as git words an HTTP
/// error), not merely that "429" appears somewhere, in a commit id say.
fn refused_with_429(git_output: &str) -> bool {
    git_output.contains("error: 429") || git_output.contains("HTTP 429")
}

/// An exec WebSocket with a running `sleep`; `Err((status, body))` when
/// refused.
async fn open_exec(
    api: &Api,
    app: &str,
    name: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    (u16, String),
> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
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
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
            return Err((response.status().as_u16(), body.into_owned()));
        }
        Err(other) => panic!("exec connect: {other}"),
    };
    let start = json!({"command": ["sleep", "60"], "tty": false, "stdin": true});
    socket
        .send(Message::Text(start.to_string().into()))
        .await
        .expect("send start");
    Ok(socket)
}

#[test]
fn exec_sessions_websocket_messages_and_log_lines_are_bounded() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let controller = Controller::start(LIMITS);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    create(&api, "bounded-exec");
    let line = "z".repeat(3000);
    let procfile = "worker: python3 -c \"print('z' * 3000)\"; exec sleep 900\n";
    let (ok, output) = push_files(&controller, &api, "bounded-exec", &[("Procfile", procfile)]);
    assert!(ok, "{output}");
    let scaled = api.post("/v2/apps/bounded-exec/scale/", json!({"worker": 1}));
    assert_eq!(scaled.status, 204, "{}", scaled.text);
    let pods = api.wait_pods("bounded-exec", LONG, "a worker", |pods| {
        pods.iter()
            .any(|p| p["type"] == "worker" && p["state"] == "up")
    });
    let name = pods[0]["name"].as_str().expect("name").to_string();

    // The 3000-byte line is kept as lines of at most 1 KiB.
    let deadline = Instant::now() + LONG;
    loop {
        let logs = api.get("/v2/apps/bounded-exec/logs/?log_lines=100").text;
        let pieces: Vec<&str> = logs
            .lines()
            .filter_map(|l| l.split_once("]: ").map(|(_, text)| text))
            .filter(|text| text.starts_with('z'))
            .collect();
        if pieces.concat() == line {
            assert!(pieces.iter().all(|p| p.len() <= 1024), "{pieces:?}");
            assert_eq!(pieces.len(), 3, "{pieces:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the long line is not in the logs:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut first = open_exec(&api, "bounded-exec", &name)
            .await
            .expect("the first session is accepted");
        // A second one at once: refused, naming the limit.
        let (status, body) = open_exec(&api, "bounded-exec", &name)
            .await
            .expect_err("a second session is refused");
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("DRYCC_MAX_EXEC_SESSIONS_PER_USER"), "{body}");

        // A message over 1 KiB ends the session with 1009, naming the limit.
        let mut frame = vec![0u8];
        frame.extend(std::iter::repeat_n(b'a', 2048));
        first
            .send(Message::Binary(frame.into()))
            .await
            .expect("send a big frame");
        let mut reason = None;
        while let Some(message) = tokio::time::timeout(LONG, first.next())
            .await
            .expect("an answer to the big frame")
        {
            match message {
                Ok(Message::Close(Some(close))) => {
                    reason = Some((u16::from(close.code), close.reason.to_string()));
                    break;
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        let (code, text) = reason.expect("a close frame");
        assert_eq!(code, 1009, "{text}");
        assert!(text.contains("DRYCC_MAX_WS_MESSAGE_KIB"), "{text}");
        drop(first);

        // The session's place is given back once it ended.
        let deadline = Instant::now() + LONG;
        loop {
            match open_exec(&api, "bounded-exec", &name).await {
                Ok(_) => break,
                Err((429, _)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(refused) => panic!("exec still refused: {refused:?}"),
            }
        }
    });
}
