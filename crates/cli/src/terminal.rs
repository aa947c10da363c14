//! The local terminal: raw mode (restored on drop), the window size, and
//! prompts (the password one without echo).

use drycc_api_types::TerminalSize;
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsRawFd;

/// Raw mode on stdin for as long as this value lives.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enable() -> nix::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The window size of the terminal on stdout (else stdin), if any.
pub fn size() -> Option<TerminalSize> {
    let fds = [std::io::stdout().as_raw_fd(), std::io::stdin().as_raw_fd()];
    for fd in fds {
        let mut ws = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the valid pointer.
        let ok = unsafe { tiocgwinsz(fd, &mut ws) }.is_ok();
        if ok && ws.ws_col > 0 && ws.ws_row > 0 {
            return Some(TerminalSize {
                width: ws.ws_col,
                height: ws.ws_row,
            });
        }
    }
    None
}

/// Echo off on stdin for as long as this value lives.
struct NoEcho {
    saved: Termios,
}

impl NoEcho {
    fn enable() -> nix::Result<NoEcho> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
        Ok(NoEcho { saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Prints `label` on stderr and reads one line of stdin (`None` at EOF).
pub fn prompt(label: &str, secret: bool) -> std::io::Result<Option<String>> {
    eprint!("{label}");
    std::io::stderr().flush()?;
    let _echo = if secret && std::io::stdin().is_terminal() {
        NoEcho::enable().ok()
    } else {
        None
    };
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line)?;
    if secret && std::io::stdin().is_terminal() {
        eprintln!();
    }
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}
