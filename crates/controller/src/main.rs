//! `drycc-controller`: REST API, state, reconciler, git receiver and router
//! in one process. Started with no flags it is a complete platform on one
//! machine (SQLite state, native processes, router on `*.localhost`).

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// The layers, top to bottom (see docs/architecture.md; `layers` checks
// that every `use crate::...` points down).
mod desired;
mod http;
mod loops;
mod reconciler;
mod service;

// What every layer may use.
mod context;
mod engines;
mod events;
mod git;
mod isolation;
mod role;
mod settings;

// The composition root.
mod server;

#[cfg(test)]
mod layers;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = settings::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(settings::Command::GitHook) => runtime.block_on(git::hook::run()),
        Some(settings::Command::StopApps) => {
            init_tracing();
            runtime
                .block_on(server::stop_apps(cli.settings))
                .map(|()| 0)
        }
        Some(settings::Command::Router) => {
            init_tracing();
            runtime
                .block_on(server::run_router(cli.settings))
                .map(|()| 0)
        }
        None => {
            init_tracing();
            runtime.block_on(server::run(cli.settings)).map(|()| 0)
        }
    };
    match result {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRYCC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .init();
}

/// Colours only on a terminal, and never with a non-empty `NO_COLOR`
/// (no-color.org): a log written to a file stays plain text.
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }
}
