//! `drycc`: the command-line client of the Drycc controller.
//!
//! The argument words are first rewritten from Drycc's `topic:command`
//! grammar ([`argv`]), parsed with clap ([`cli`]), then run by one module
//! per topic ([`commands`]). Errors print `Error: <message>` on stderr and
//! exit with 1; `ps:exec` exits with the remote command's code. Exit codes
//! are listed in the crate's README.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod app;
mod argv;
mod cli;
mod client;
mod commands;
mod config;
mod credential;
mod exec;
mod git;
mod logs;
mod progress;
mod session;
mod style;
mod table;
mod terminal;
mod timefmt;
mod validate;
mod ws;

use clap::FromArgMatches;
use style::Stream;

fn main() {
    let code = run();
    std::process::exit(code.clamp(0, 255));
}

fn run() -> i32 {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let words = argv::normalise(&args);
    let matches = match cli::command()
        .try_get_matches_from(std::iter::once("drycc".to_string()).chain(words))
    {
        Ok(m) => m,
        Err(e) => return clap_exit(e),
    };
    let parsed = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_exit(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(commands::dispatch(parsed));
    // Pending background work (a spinner) must not delay the exit.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => report(e),
    }
}

/// The exit code of every usage error: arguments clap refuses and those the
/// CLI's own checks refuse before any I/O ([`validate`]). The spec
/// (`shared/spec/cli.md`) asks for 1, as Drycc's CLI does, so a usage error
/// and a failed command share it.
const EXIT_USAGE: i32 = 1;
/// The exit code of a command that failed (the controller refused it, or
/// could not be reached).
const EXIT_ERROR: i32 = 1;

/// Help and version go to stdout (exit 0); usage errors to stderr.
fn clap_exit(e: clap::Error) -> i32 {
    let _ = e.print();
    if e.use_stderr() {
        EXIT_USAGE
    } else {
        0
    }
}

fn report(e: anyhow::Error) -> i32 {
    eprintln!("{} {e:#}", style::red("Error:", Stream::Stderr));
    if e.downcast_ref::<validate::Invalid>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_ERROR
    }
}
