//! `exec` against a scripted WebSocket API server.

use bytes::Bytes;
use drycc_engine::{EngineError, ExecInput, ExecOutput, ExecRequest, ExecSession};
use drycc_engine_kube::exec::exec;
use serde_json::json;

use crate::mock::GUARD;
use crate::ws::{self, next, send, send_status, CLOSE, RESIZE, STDERR, STDIN, STDOUT, V5};

const POD: &str = "myapp-web-5d8f7c9b4-7p7dh";

fn exec_path() -> String {
    format!("/api/v1/namespaces/myapp/pods/{POD}/exec")
}

fn request(command: &[&str], stdin: bool, tty: bool, size: Option<(u16, u16)>) -> ExecRequest {
    ExecRequest {
        command: command.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        size,
    }
}

/// Everything the session outputs, up to and including `Exit`, which
/// must be the last message.
#[derive(Debug, Default)]
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
}

async fn collect(session: &mut ExecSession) -> Collected {
    let mut got = Collected::default();
    let read = async {
        while let Some(output) = session.output.recv().await {
            assert!(got.exit.is_none(), "output after the exit: {output:?}");
            match output {
                ExecOutput::Stdout(data) => got.stdout.extend_from_slice(&data),
                ExecOutput::Stderr(data) => got.stderr.extend_from_slice(&data),
                ExecOutput::Exit(code) => got.exit = Some(code),
            }
        }
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("the session did not end");
    got
}

/// Output until `want` appeared on stdout.
async fn read_stdout_until(session: &mut ExecSession, want: &str) -> String {
    let mut seen = Vec::new();
    let read = async {
        while !String::from_utf8_lossy(&seen).contains(want) {
            match session.output.recv().await.expect("the session ended") {
                ExecOutput::Stdout(data) => seen.extend_from_slice(&data),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("no such output");
    String::from_utf8(seen).unwrap()
}

async fn finish(server: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(GUARD, server)
        .await
        .expect("the server's side did not finish")
        .expect("the server's side failed");
}

fn success() -> serde_json::Value {
    json!({"metadata": {}, "status": "Success"})
}

#[tokio::test]
async fn stdin_is_echoed_to_stdout_until_its_end() {
    let (client, server) = ws::serve(|upgrade, mut ws| async move {
        assert_eq!(upgrade.path, exec_path());
        assert_eq!(upgrade.values("command"), ["cat"]);
        assert_eq!(upgrade.values("container"), ["web"]);
        assert_eq!(
            upgrade.keys(),
            ["command", "container", "stderr", "stdin", "stdout"]
        );
        assert!(upgrade.offered.starts_with(V5), "{}", upgrade.offered);
        // The API server opens each stream with an empty frame.
        send(&mut ws, STDOUT, b"").await;
        send(&mut ws, STDERR, b"").await;
        loop {
            match next(&mut ws)
                .await
                .expect("the client closed before the end of stdin")
            {
                (STDIN, data) => send(&mut ws, STDOUT, &data).await,
                (CLOSE, data) => {
                    assert_eq!(data, [STDIN], "only stdin is closed");
                    break;
                }
                (channel, data) => panic!("unexpected frame on {channel}: {data:?}"),
            }
        }
        send(&mut ws, STDERR, b"done\n").await;
        send_status(&mut ws, success()).await;
        let _ = ws.close(None).await;
    })
    .await;
    let mut session = exec(
        client,
        "myapp",
        POD,
        Some("web"),
        request(&["cat"], true, false, None),
    )
    .await
    .unwrap();
    session
        .input
        .send(ExecInput::Stdin(Bytes::from("hello\n")))
        .await
        .unwrap();
    assert_eq!(read_stdout_until(&mut session, "hello\n").await, "hello\n");
    session
        .input
        .send(ExecInput::Stdin(Bytes::from("world\n")))
        .await
        .unwrap();
    session.input.send(ExecInput::Eof).await.unwrap();
    let got = collect(&mut session).await;
    assert_eq!(String::from_utf8_lossy(&got.stdout), "world\n");
    assert_eq!(String::from_utf8_lossy(&got.stderr), "done\n");
    assert_eq!(got.exit, Some(0));
    finish(server).await;
}

#[tokio::test]
async fn the_exit_code_comes_from_the_status_channel() {
    let (client, server) = ws::serve(|upgrade, mut ws| async move {
        assert_eq!(upgrade.values("command"), ["sh", "-c", "echo bye; exit 3"]);
        assert_eq!(upgrade.keys(), ["command", "stderr", "stdout"]);
        send(&mut ws, STDOUT, b"bye\n").await;
        send(&mut ws, STDERR, b"oops\n").await;
        send_status(
            &mut ws,
            json!({
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing command [sh -c echo bye; exit 3], exit code 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
            }),
        )
        .await;
        let _ = ws.close(None).await;
    })
    .await;
    let mut session = exec(
        client,
        "myapp",
        POD,
        None,
        request(&["sh", "-c", "echo bye; exit 3"], false, false, None),
    )
    .await
    .unwrap();
    let got = collect(&mut session).await;
    assert_eq!(String::from_utf8_lossy(&got.stdout), "bye\n");
    assert_eq!(String::from_utf8_lossy(&got.stderr), "oops\n");
    assert_eq!(got.exit, Some(3));
    finish(server).await;
}

#[tokio::test]
async fn a_tty_session_sends_its_size_and_every_resize() {
    let (client, server) = ws::serve(|upgrade, mut ws| async move {
        // One stream on a terminal: no stderr.
        assert_eq!(upgrade.keys(), ["command", "stdin", "stdout", "tty"]);
        assert_eq!(upgrade.values("tty"), ["true"]);
        let size = |frame: (u8, Vec<u8>)| {
            assert_eq!(frame.0, RESIZE, "a resize: {frame:?}");
            serde_json::from_slice::<serde_json::Value>(&frame.1).unwrap()
        };
        let first = next(&mut ws).await.unwrap();
        assert_eq!(size(first), json!({"Width": 80, "Height": 24}));
        send(&mut ws, STDOUT, b"$ ").await;
        let second = next(&mut ws).await.unwrap();
        let second = size(second);
        assert_eq!(second, json!({"Width": 120, "Height": 40}));
        send(&mut ws, STDOUT, b"120x40\r\n$ ").await;
        assert_eq!(next(&mut ws).await.unwrap(), (STDIN, b"exit\r".to_vec()));
        send(&mut ws, STDOUT, b"exit\r\n").await;
        send_status(&mut ws, success()).await;
        let _ = ws.close(None).await;
    })
    .await;
    let mut session = exec(
        client,
        "myapp",
        POD,
        None,
        request(&["bash"], true, true, Some((80, 24))),
    )
    .await
    .unwrap();
    assert_eq!(read_stdout_until(&mut session, "$ ").await, "$ ");
    session
        .input
        .send(ExecInput::Resize {
            width: 120,
            height: 40,
        })
        .await
        .unwrap();
    read_stdout_until(&mut session, "120x40").await;
    session
        .input
        .send(ExecInput::Stdin(Bytes::from("exit\r")))
        .await
        .unwrap();
    let got = collect(&mut session).await;
    assert!(String::from_utf8_lossy(&got.stdout).ends_with("exit\r\n"));
    assert!(got.stderr.is_empty());
    assert_eq!(got.exit, Some(0));
    finish(server).await;
}

#[tokio::test]
async fn a_command_missing_from_the_image_exits_127() {
    let message = r#"failed to exec in container: failed to start exec "0f3c": OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": executable file not found in $PATH: unknown"#;
    let (client, server) = ws::serve(move |_, mut ws| async move {
        send_status(
            &mut ws,
            json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500}),
        )
        .await;
        let _ = ws.close(None).await;
    })
    .await;
    let mut session = exec(
        client,
        "myapp",
        POD,
        None,
        request(&["nope"], false, false, None),
    )
    .await
    .unwrap();
    let got = collect(&mut session).await;
    assert_eq!(got.exit, Some(127));
    assert_eq!(String::from_utf8_lossy(&got.stderr), format!("{message}\n"));
    finish(server).await;
}

#[tokio::test]
async fn a_connection_lost_without_a_status_says_so() {
    let (client, server) = ws::serve(|_, mut ws| async move {
        send(&mut ws, STDOUT, b"partial").await;
        // The server goes away without a status or a close handshake.
        drop(ws);
    })
    .await;
    let mut session = exec(
        client,
        "myapp",
        POD,
        None,
        request(&["sleep", "60"], false, false, None),
    )
    .await
    .unwrap();
    let got = collect(&mut session).await;
    assert_eq!(String::from_utf8_lossy(&got.stdout), "partial");
    assert_eq!(got.exit, Some(255));
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(stderr.starts_with("the exec connection"), "{stderr}");
    finish(server).await;
}

#[tokio::test]
async fn a_client_that_goes_away_closes_the_connection() {
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let (client, server) = ws::serve(|_, mut ws| async move {
        send(&mut ws, STDOUT, b"started\n").await;
        // Nothing more comes from the client but the end of the connection.
        while let Some(frame) = next(&mut ws).await {
            assert_eq!(frame.0, CLOSE, "unexpected {frame:?}");
        }
        let _ = closed_tx.send(());
    })
    .await;
    let mut session = exec(
        client,
        "myapp",
        POD,
        None,
        request(&["sleep", "60"], true, false, None),
    )
    .await
    .unwrap();
    read_stdout_until(&mut session, "started\n").await;
    drop(session);
    tokio::time::timeout(GUARD, closed_rx)
        .await
        .expect("the connection stayed open")
        .unwrap();
    finish(server).await;
}

#[tokio::test]
async fn exec_in_a_missing_pod_is_a_missing_process() {
    let (client, server) = ws::refuse(
        404,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("pods \"{POD}\" not found"),
            "reason": "NotFound", "details": {"name": POD, "kind": "pods"}, "code": 404
        }),
    )
    .await;
    let error = match exec(
        client,
        "myapp",
        POD,
        None,
        request(&["ls"], false, false, None),
    )
    .await
    {
        Err(error) => error,
        Ok(_) => panic!("exec in a missing pod started"),
    };
    assert!(
        matches!(&error, EngineError::ProcessNotFound(name) if name == POD),
        "{error:?}"
    );
    let upgrade = server.await.unwrap();
    assert_eq!(upgrade.path, exec_path());
}

#[tokio::test]
async fn exec_refused_by_rbac_names_the_missing_permission() {
    let (client, server) = ws::refuse(
        403,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure",
            "message": format!("pods \"{POD}\" is forbidden: User \"system:serviceaccount:drycc:drycc-controller\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"myapp\""),
            "reason": "Forbidden", "details": {"name": POD, "kind": "pods"}, "code": 403
        }),
    )
    .await;
    let error = match exec(
        client,
        "myapp",
        POD,
        None,
        request(&["ls"], false, false, None),
    )
    .await
    {
        Err(error) => error,
        Ok(_) => panic!("a forbidden exec started"),
    };
    assert_eq!(
        error.to_string(),
        format!(
            "engine unavailable: exec in process {POD}: the controller's service account \
             (system:serviceaccount:drycc:drycc-controller) lacks the permission to create \
             pods/exec in namespace \"myapp\"; grant it in the controller's RBAC rules"
        )
    );
    server.await.unwrap();
}

#[tokio::test]
async fn exec_needs_a_command() {
    // Nothing listens there: an empty command is refused before any call.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let error = match exec(client, "myapp", POD, None, request(&[], false, false, None)).await {
        Err(error) => error,
        Ok(_) => panic!("an empty command started"),
    };
    assert!(matches!(error, EngineError::Invalid(_)), "{error:?}");
}

#[tokio::test]
async fn all_output_comes_before_the_exit() {
    // More than every buffer on the way holds, so the exit code is read
    // while output is still being relayed.
    const FRAMES: usize = 256;
    const SIZE: usize = 4096;
    let (client, server) = ws::serve(|_, mut ws| async move {
        for i in 0..FRAMES {
            let byte = b'a' + (i % 26) as u8;
            send(&mut ws, STDOUT, &[byte; SIZE]).await;
            send(&mut ws, STDERR, &[byte; 16]).await;
        }
        send_status(&mut ws, success()).await;
        let _ = ws.close(None).await;
    })
    .await;
    let mut session = exec(
        client,
        "myapp",
        POD,
        None,
        request(&["yes"], false, false, None),
    )
    .await
    .unwrap();
    let got = collect(&mut session).await;
    assert_eq!(got.exit, Some(0));
    assert_eq!(got.stdout.len(), FRAMES * SIZE);
    assert_eq!(got.stderr.len(), FRAMES * 16);
    // In order: each frame's bytes follow the previous frame's.
    for (i, chunk) in got.stdout.chunks(SIZE).enumerate() {
        assert!(
            chunk.iter().all(|&b| b == b'a' + (i % 26) as u8),
            "frame {i}"
        );
    }
    finish(server).await;
}

#[tokio::test]
async fn an_older_server_speaking_v4_works_too() {
    let (client, server) = ws::serve_with(ws::V4, |upgrade, mut ws| async move {
        assert!(upgrade.offered.contains(ws::V4), "{}", upgrade.offered);
        assert_eq!(next(&mut ws).await.unwrap(), (STDIN, b"hi\n".to_vec()));
        send(&mut ws, STDOUT, b"hi\n").await;
        send_status(
            &mut ws,
            json!({
                "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                "message": "command terminated with non-zero exit code: exit code 2",
                "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}
            }),
        )
        .await;
        let _ = ws.close(None).await;
    })
    .await;
    let mut session = exec(
        client,
        "myapp",
        POD,
        None,
        request(&["head", "-1"], true, false, None),
    )
    .await
    .unwrap();
    session
        .input
        .send(ExecInput::Stdin(Bytes::from("hi\n")))
        .await
        .unwrap();
    let got = collect(&mut session).await;
    assert_eq!(String::from_utf8_lossy(&got.stdout), "hi\n");
    assert_eq!(got.exit, Some(2));
    finish(server).await;
}
