//! `<message>... ` then `done`: the long-operation lines, with a spinner
//! drawn only when stdout is a terminal.

use crate::style::{self, Stream};
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// `$DRYCC_DRINK_OF_CHOICE`, else coffee.
pub fn drink_of_choice() -> String {
    std::env::var("DRYCC_DRINK_OF_CHOICE")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| "coffee".to_string())
}

/// A running operation: the spinner (if any) and its start time.
pub struct Progress {
    started: Instant,
    stop: Option<oneshot::Sender<()>>,
    spinner: Option<tokio::task::JoinHandle<()>>,
}

const FRAMES: [&str; 4] = ["...", "o..", ".o.", "..o"];

impl Progress {
    /// Prints `prefix` (no newline added) and starts the spinner.
    pub fn start(prefix: &str) -> Progress {
        print!("{prefix}");
        let _ = std::io::stdout().flush();
        let (tx, mut rx) = oneshot::channel::<()>();
        let spinner = std::io::stdout().is_terminal().then(|| {
            tokio::spawn(async move {
                let mut out = std::io::stdout();
                for frame in FRAMES.iter().cycle() {
                    let _ = write!(out, "{frame}");
                    let _ = out.flush();
                    let stopped = tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(400)) => false,
                        _ = &mut rx => true,
                    };
                    let _ = write!(out, "\x08\x08\x08   \x08\x08\x08");
                    let _ = out.flush();
                    if stopped {
                        break;
                    }
                }
            })
        });
        Progress {
            started: Instant::now(),
            stop: Some(tx),
            spinner,
        }
    }

    async fn stop_spinner(&mut self) {
        self.stop.take();
        if let Some(handle) = self.spinner.take() {
            let _ = handle.await;
        }
    }

    /// Whole seconds since [`Progress::start`].
    pub fn elapsed_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Prints `done<suffix>` and a newline.
    pub async fn done(mut self, suffix: &str) {
        self.stop_spinner().await;
        println!("{}{suffix}", style::green("done", Stream::Stdout));
    }

    /// Ends the line when the operation failed (the error follows on stderr).
    pub async fn fail(mut self) {
        self.stop_spinner().await;
        println!();
    }
}
