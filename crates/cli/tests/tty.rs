//! `ps:exec -it` on a pseudo-terminal: raw mode during the session (a key
//! arrives without Enter), the initial size and SIGWINCH resizes, the exit
//! code, and the terminal settings restored afterwards.

mod common;

use common::*;
use drycc_api_types::{ExecStart, ExecStatus, TerminalSize};
use futures::{SinkExt, StreamExt};
use nix::pty::{openpty, Winsize};
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{tcgetattr, LocalFlags};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

nix::ioctl_write_ptr_bad!(tiocswinsz, nix::libc::TIOCSWINSZ, nix::libc::winsize);

fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

#[test]
fn interactive_tty_session() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (events, events_rx) = mpsc::channel::<String>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            let mut frames = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Text(t) => {
                        let start: ExecStart = serde_json::from_str(&t).unwrap();
                        assert!(start.tty && start.stdin);
                        assert_eq!(start.command, vec!["sh".to_string()]);
                    }
                    Message::Binary(b) => {
                        match b[0] {
                            4 => {
                                let size: TerminalSize = serde_json::from_slice(&b[1..]).unwrap();
                                events
                                    .send(format!("resize {}x{}", size.width, size.height))
                                    .unwrap();
                            }
                            0 => {
                                events
                                    .send(format!("stdin {}", String::from_utf8_lossy(&b[1..])))
                                    .unwrap();
                                if &b[1..] == b"x" {
                                    break;
                                }
                            }
                            other => panic!("unexpected channel {other}"),
                        }
                        frames.push(b);
                    }
                    _ => {}
                }
            }
            ws.send(Message::Binary(b"\x01got x\r\n".to_vec().into()))
                .await
                .unwrap();
            let mut status = vec![3u8];
            status.extend(serde_json::to_vec(&ExecStatus::from_exit_code(7)).unwrap());
            ws.send(Message::Binary(status.into())).await.unwrap();
            let _ = ws
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                })))
                .await;
            while let Some(Ok(_)) = ws.next().await {}
        });
    });

    let pty = openpty(Some(&winsize(100, 30)), None).unwrap();
    let before = tcgetattr(&pty.slave).unwrap();
    assert!(before
        .local_flags
        .contains(LocalFlags::ICANON | LocalFlags::ECHO));
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), &url);
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut child = drycc(home.path())
        .arg("-c")
        .arg(&config)
        .args(["ps:exec", "-it", "-a", "foo", "foo-web-1-2", "--", "sh"])
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap();

    // Drain the terminal's output so that the child never blocks on it.
    let mut master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let output = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&all).contains("got x") {
                break;
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });

    let wait = Duration::from_secs(10);
    assert_eq!(events_rx.recv_timeout(wait).unwrap(), "resize 100x30");
    // A window change: new size on the terminal, then SIGWINCH.
    let new = winsize(120, 40);
    // SAFETY: TIOCSWINSZ reads one valid `winsize`.
    unsafe { tiocswinsz(master.as_raw_fd(), &new) }.unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGWINCH).unwrap();
    assert_eq!(events_rx.recv_timeout(wait).unwrap(), "resize 120x40");
    // Raw mode: one key, no Enter, reaches the server at once.
    master.write_all(b"x").unwrap();
    assert_eq!(events_rx.recv_timeout(wait).unwrap(), "stdin x");

    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert!(output.join().unwrap().contains("got x"));
    server.join().unwrap();

    let after = tcgetattr(&pty.slave).unwrap();
    assert_eq!(after.local_flags, before.local_flags);
    assert_eq!(after.input_flags, before.input_flags);
    assert_eq!(after.output_flags, before.output_flags);
}
