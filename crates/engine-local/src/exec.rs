//! `exec` in a native process: run a command (argv, no shell) with the
//! environment and working directory of that process, either over pipes or
//! on a real pseudo-terminal, and stream its output until exactly one final
//! `ExecOutput::Exit`.
//!
//! Each session runs in its own process group (a new session for a tty), is
//! recorded with a pid file like every process, and its whole group is
//! killed when the command exits, when the client goes away, or at shutdown.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::os;
use super::state::Shared;
use drycc_engine::{EngineError, Env, ExecInput, ExecOutput, ExecRequest, ExecSession, Result};

/// Output chunk size; also bounds what one message carries.
const CHUNK: usize = 4096;
/// How long output may still trickle in after the command exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// End-of-file on a terminal is the VEOF character (Ctrl-D), not a close.
const VEOF: u8 = 0x04;
const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// Where the command runs: the process's environment and directory.
pub(crate) struct Target {
    /// The process name, for the pid file.
    pub name: String,
    pub env: Env,
    pub workdir: PathBuf,
    /// The process's user: the command runs as it too.
    pub user: Option<drycc_engine::RunAs>,
}

pub(crate) fn start(
    shared: &Arc<Shared>,
    target: Target,
    request: ExecRequest,
) -> Result<ExecSession> {
    let Some((program, args)) = request.command.split_first() else {
        return Err(EngineError::Invalid("exec needs a command".to_string()));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(&target.env)
        .current_dir(&target.workdir);
    super::isolate::run_as(&mut cmd, target.user);
    let (input_tx, input_rx) = mpsc::channel(16);
    let (output_tx, output_rx) = mpsc::channel(64);
    let session = ExecSession {
        input: input_tx,
        output: output_rx,
    };
    if request.tty {
        if !target.env.contains_key("TERM") {
            cmd.env("TERM", "xterm");
        }
        let size = request.size.unwrap_or(DEFAULT_SIZE);
        let (child, master) = match spawn_tty(cmd, size, target.user) {
            Ok(spawned) => spawned,
            Err(e) => return not_started(program, e, output_tx, session),
        };
        let pgid = register(shared, &target, &child)?;
        let owned = Arc::clone(shared);
        spawn_session(shared, target.name.clone(), pgid, async move {
            let code = run_tty(child, pgid, master, request.stdin, input_rx, &output_tx).await;
            finish(&owned, &target.name, pgid, code, &output_tx).await;
        });
    } else {
        let stdin = if request.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return not_started(program, e, output_tx, session),
        };
        let pgid = register(shared, &target, &child)?;
        let owned = Arc::clone(shared);
        spawn_session(shared, target.name.clone(), pgid, async move {
            let code = run_pipes(child, pgid, input_rx, &output_tx).await;
            finish(&owned, &target.name, pgid, code, &output_tx).await;
        });
    }
    Ok(session)
}

/// A command that could not be started because it is missing or not
/// executable ends like it would in a shell or under kubectl: one line on
/// stderr and exit 127 (not found) or 126 (not executable). Other failures
/// are the engine's errors.
fn not_started(
    program: &str,
    error: io::Error,
    output: mpsc::Sender<ExecOutput>,
    session: ExecSession,
) -> Result<ExecSession> {
    let Some(code) = spawn_failure_code(&error) else {
        return Err(EngineError::Invalid(format!(
            "cannot run {program}: {error}"
        )));
    };
    let reason = match error.raw_os_error() {
        Some(errno) => nix::errno::Errno::from_raw(errno).desc().to_string(),
        None => error.to_string(),
    };
    let line = format!("cannot run {program}: {reason}\n");
    // The channel is new and larger than two messages: these never wait.
    let _ = output.try_send(ExecOutput::Stderr(Bytes::from(line)));
    let _ = output.try_send(ExecOutput::Exit(code));
    Ok(session)
}

/// The shell's exit code for a command that could not be executed.
fn spawn_failure_code(error: &io::Error) -> Option<i32> {
    match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => Some(127),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::ENOEXEC) | Some(libc::EISDIR) => {
            Some(126)
        }
        _ => match error.kind() {
            io::ErrorKind::NotFound => Some(127),
            io::ErrorKind::PermissionDenied => Some(126),
            _ => None,
        },
    }
}

fn exec_file(name: &str, pgid: u32) -> String {
    format!("{name}.exec-{pgid}")
}

fn register(shared: &Shared, target: &Target, child: &Child) -> Result<u32> {
    let pgid = child
        .id()
        .ok_or_else(|| EngineError::Invalid("exec: the command exited at once".to_string()))?;
    shared.add_exec(pgid);
    os::write_pid_file(&shared.config.run_dir, &exec_file(&target.name, pgid), pgid);
    Ok(pgid)
}

/// Run the task of a session, tracked with the engine's tasks: when the
/// engine is released (which kills every session's group first) the task
/// ends wherever it waits, and its pid file goes.
fn spawn_session(
    shared: &Arc<Shared>,
    name: String,
    pgid: u32,
    session: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (owned, cancel) = (Arc::clone(shared), shared.cancel.clone());
    shared.spawn(async move {
        tokio::select! {
            _ = session => {}
            _ = cancel.cancelled() => {
                os::remove_pid_file(&owned.config.run_dir, &exec_file(&name, pgid));
                owned.remove_exec(pgid);
            }
        }
    });
}

async fn finish(
    shared: &Shared,
    name: &str,
    pgid: u32,
    code: i32,
    output: &mpsc::Sender<ExecOutput>,
) {
    os::remove_pid_file(&shared.config.run_dir, &exec_file(name, pgid));
    shared.remove_exec(pgid);
    // The client may be gone; then nobody needs the code.
    let _ = output.send(ExecOutput::Exit(code)).await;
}

/// Wait for the command, or kill it when the client stopped listening.
/// Either way its group is gone afterwards. Returns the exit code.
async fn wait_or_kill(child: &mut Child, pgid: u32, output: &mpsc::Sender<ExecOutput>) -> i32 {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = output.closed() => {
            os::signal_group(pgid, Signal::SIGKILL);
            child.wait().await
        }
    };
    os::signal_group(pgid, Signal::SIGKILL);
    match status {
        Ok(status) => os::exit_code(&status),
        Err(_) => 255,
    }
}

async fn join_within(tasks: Vec<JoinHandle<()>>) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            abort.abort();
        }
    }
}

async fn run_pipes(
    mut child: Child,
    pgid: u32,
    mut input: mpsc::Receiver<ExecInput>,
    output: &mpsc::Sender<ExecOutput>,
) -> i32 {
    let stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(message) = input.recv().await {
            match message {
                ExecInput::Stdin(data) => {
                    if let Some(pipe) = stdin.as_mut() {
                        if pipe.write_all(&data).await.is_err() {
                            // The command closed its stdin; drop the rest.
                            stdin = None;
                        }
                    }
                }
                // Dropping the pipe is the end of file.
                ExecInput::Eof => stdin = None,
                ExecInput::Resize { .. } => {}
            }
        }
    });
    let mut pumps = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(
            stdout,
            output.clone(),
            ExecOutput::Stdout,
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(
            stderr,
            output.clone(),
            ExecOutput::Stderr,
        )));
    }
    let code = wait_or_kill(&mut child, pgid, output).await;
    join_within(pumps).await;
    writer.abort();
    code
}

async fn pump<R>(mut stream: R, output: mpsc::Sender<ExecOutput>, wrap: fn(Bytes) -> ExecOutput)
where
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if output
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Open a pty pair without a window in which another thread's spawn could
/// inherit it (both ends close-on-exec from the start; `openpty` cannot do
/// that), and start the command on it as a new session with the pty as its
/// controlling terminal.
fn spawn_tty(
    mut cmd: Command,
    (width, height): (u16, u16),
    user: Option<drycc_engine::RunAs>,
) -> io::Result<(Child, AsyncFd<OwnedFd>)> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::pty::posix_openpt(flags)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let slave_path = nix::pty::ptsname_r(&master)?;
    // SAFETY: posix_openpt returned a fresh descriptor that we now own.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    let slave = nix::fcntl::open(slave_path.as_str(), flags, Mode::empty())?;
    // SAFETY: open returned a fresh descriptor that we now own.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some(user) = user {
        // The terminal is the session's: programs that reopen it by name
        // (`tty`, `ssh`) must be allowed to.
        std::os::unix::fs::fchown(&slave, Some(user.uid), Some(user.gid))?;
    }
    set_size(master.as_raw_fd(), width, height)?;

    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and
    // exec; fd 0 is the pty slave by then.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // Our copies of the slave must go, or the master never sees the end.
    drop(cmd);
    let fl = nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    let fl = OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))?;
    // SAFETY: the AsyncFd owns `master` (an OwnedFd), which stays open and
    // keeps its number until the AsyncFd is dropped.
    let master = unsafe { AsyncFd::register(master) }.map_err(io::Error::from)?;
    Ok((child, master))
}

fn set_size(fd: RawFd, width: u16, height: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer we pass.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ as _, &size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

async fn run_tty(
    mut child: Child,
    pgid: u32,
    master: AsyncFd<OwnedFd>,
    with_stdin: bool,
    mut input: mpsc::Receiver<ExecInput>,
    output: &mpsc::Sender<ExecOutput>,
) -> i32 {
    let master = Arc::new(master);
    let writer = {
        let master = Arc::clone(&master);
        tokio::spawn(async move {
            while let Some(message) = input.recv().await {
                let result = match message {
                    ExecInput::Stdin(data) if with_stdin => write_all(&master, &data).await,
                    ExecInput::Eof if with_stdin => write_all(&master, &[VEOF]).await,
                    ExecInput::Resize { width, height } => {
                        set_size(master.get_ref().as_raw_fd(), width, height)
                    }
                    ExecInput::Stdin(_) | ExecInput::Eof => Ok(()),
                };
                if result.is_err() {
                    return;
                }
            }
        })
    };
    let reader = {
        let master = Arc::clone(&master);
        let output = output.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match read(&master, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let chunk = Bytes::copy_from_slice(&buf[..n]);
                        if output.send(ExecOutput::Stdout(chunk)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    };
    let code = wait_or_kill(&mut child, pgid, output).await;
    // The group is gone, so every slave is closed: the reader drains what
    // the terminal still holds and then sees EIO.
    join_within(vec![reader]).await;
    writer.abort();
    code
}

async fn read(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| {
            // SAFETY: reads at most buf.len() bytes into buf.
            let n = unsafe { libc::read(inner.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Ok(n)) => return Ok(n),
            // A pty master reads EIO once no slave is open: end of output.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|inner| {
            // SAFETY: writes at most data.len() bytes from data.
            let n = unsafe { libc::write(inner.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}
