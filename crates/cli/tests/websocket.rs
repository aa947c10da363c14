//! `ps:exec` and `logs -f` against a fake WebSocket controller.

mod common;

use common::*;
use drycc_api_types::{ExecStart, ExecStatus, LogsStart};
use futures::{SinkExt, StreamExt};
use std::io::Write;
use std::process::Stdio;
use std::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Serves one WebSocket connection with `session` on its own thread;
/// returns the URL and a receiver of (path, authorization header).
// The handshake callback's error type is tungstenite's, large by design.
#[allow(clippy::result_large_err)]
fn serve_one<F, Fut>(reject: bool, session: F) -> (String, mpsc::Receiver<(String, String)>)
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send((req.uri().path().to_string(), auth));
                if reject {
                    let mut err = ErrorResponse::new(Some(
                        r#"{"detail": "No process named nope in foo."}"#.to_string(),
                    ));
                    *err.status_mut() = StatusCode::NOT_FOUND;
                    return Err(err);
                }
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            session(ws).await;
        });
    });
    (url, rx)
}

async fn first_text(ws: &mut Ws) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("expected the first frame, got {other:?}"),
        }
    }
}

async fn close(ws: &mut Ws, code: CloseCode, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        })))
        .await;
    // Wait for the client's answer to the close.
    while let Some(Ok(_)) = ws.next().await {}
}

#[test]
fn exec_streams_stdin_and_output_and_exits_with_the_code() {
    let (url, seen) = serve_one(false, |mut ws| async move {
        let start: ExecStart = serde_json::from_str(&first_text(&mut ws).await).unwrap();
        assert_eq!(start.command, vec!["cat".to_string(), "-".to_string()]);
        assert!(start.stdin);
        assert!(!start.tty);
        // Collect stdin until the empty frame that marks EOF.
        let mut input = Vec::new();
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    assert_eq!(b[0], 0, "stdin channel");
                    if b.len() == 1 {
                        break;
                    }
                    input.extend_from_slice(&b[1..]);
                }
                Some(Ok(_)) => {}
                other => panic!("stdin frame expected, got {other:?}"),
            }
        }
        let mut out = vec![1u8];
        out.extend_from_slice(&input);
        ws.send(Message::Binary(out.into())).await.unwrap();
        ws.send(Message::Binary(b"\x02warning\n".to_vec().into()))
            .await
            .unwrap();
        let mut status = vec![3u8];
        status.extend(serde_json::to_vec(&ExecStatus::from_exit_code(3)).unwrap());
        ws.send(Message::Binary(status.into())).await.unwrap();
        close(&mut ws, CloseCode::Normal, "").await;
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &url);
    let mut child = drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args([
            "ps:exec",
            "-a",
            "foo",
            "-i",
            "foo-web-6d5c9f8b7-x2x4z",
            "--",
            "cat",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nworld\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "warning\n");
    assert_eq!(out.status.code(), Some(3));
    let (path, auth) = seen.recv().unwrap();
    assert_eq!(path, "/v2/apps/foo/pods/foo-web-6d5c9f8b7-x2x4z/exec/");
    assert_eq!(auth, format!("token {TOKEN}"));
}

#[test]
fn exec_without_stdin_sends_no_stdin_and_exits_0() {
    let (url, _seen) = serve_one(false, |mut ws| async move {
        let start: ExecStart = serde_json::from_str(&first_text(&mut ws).await).unwrap();
        assert!(!start.stdin);
        ws.send(Message::Binary(b"\x01ok\n".to_vec().into()))
            .await
            .unwrap();
        let mut status = vec![3u8];
        status.extend(serde_json::to_vec(&ExecStatus::from_exit_code(0)).unwrap());
        ws.send(Message::Binary(status.into())).await.unwrap();
        close(&mut ws, CloseCode::Normal, "").await;
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &url);
    let (code, stdout, stderr) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "ps:exec",
        "-a",
        "foo",
        "foo-web-1-2",
        "--",
        "true",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "ok\n");
}

#[test]
fn exec_errors_are_reported() {
    // Refused at the handshake: the detail of the answer.
    let (url, _seen) = serve_one(true, |_ws| async {});
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &url);
    let (code, _, stderr) = run(drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["ps:exec", "-a", "foo", "nope", "--", "ls"]));
    assert_eq!(code, 1);
    assert_eq!(stderr, "Error: No process named nope in foo.\n");

    // Closed with an error and no status: the close reason.
    let (url, _seen) = serve_one(false, |mut ws| async move {
        let _ = first_text(&mut ws).await;
        close(
            &mut ws,
            CloseCode::Error,
            "process foo-web-1-2 is not running",
        )
        .await;
    });
    let config = write_config(home.path(), &url);
    let (code, _, stderr) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "ps:exec",
        "-a",
        "foo",
        "foo-web-1-2",
        "--",
        "ls",
    ]));
    assert_eq!(code, 1);
    assert_eq!(stderr, "Error: process foo-web-1-2 is not running\n");
}

#[test]
fn logs_follow_prints_each_message_as_a_line() {
    let (url, seen) = serve_one(false, |mut ws| async move {
        let start: LogsStart = serde_json::from_str(&first_text(&mut ws).await).unwrap();
        assert_eq!(start.lines, Some(10));
        assert!(start.follow);
        assert_eq!(start.process.as_deref(), Some("foo-web-1-2"));
        for line in ["first", "second\n"] {
            ws.send(Message::Text(line.into())).await.unwrap();
        }
        close(&mut ws, CloseCode::Normal, "").await;
    });
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &url);
    let (code, stdout, stderr) = run(drycc(home.path()).arg("-c").arg(&config).args([
        "ps:logs",
        "foo-web-1-2",
        "-n",
        "10",
        "-f",
        "-a",
        "foo",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "first\nsecond\n");
    let (path, auth) = seen.recv().unwrap();
    assert_eq!(path, "/v2/apps/foo/logs");
    assert_eq!(auth, format!("token {TOKEN}"));
}
