//! Buildpack benchmark: push-to-ready time of the Python example
//! (`examples/python-greeting`: a virtualenv and a package installed from
//! the repository), first push of a new app (cold cache) and a second push
//! of a changed commit (warm cache), on a fresh app each round; and, for
//! comparison, the first push of `examples/hello` (a Procfile app: the
//! `procfile` buildpack installs nothing).
//!
//! Usage: `cargo run --release -p drycc-bench --bin drycc-bench-buildpack`.
//! `DRYCC_BENCH_ROUNDS` (default 5).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use drycc_bench::{commit_all, summary, Api, Controller};

fn main() -> Result<()> {
    let rounds: u32 = std::env::var("DRYCC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let example = examples.join("python-greeting");
    let controller = Controller::start(&[])?;
    let api = Api::register(&controller.url)?;
    let (mut first, mut second, mut plain): (Vec<Duration>, Vec<Duration>, Vec<Duration>) =
        (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let app = format!("bench-py-{round}");
        api.post("/v2/apps/", serde_json::json!({"id": app}))?;
        let repo = tempfile::tempdir()?;
        copy(&example, repo.path())?;
        commit_all(repo.path(), "first")?;
        first.push(api.push_dir(&app, repo.path())?);
        std::fs::write(repo.path().join("CHANGES"), format!("round {round}\n"))?;
        commit_all(repo.path(), "second")?;
        second.push(api.push_dir(&app, repo.path())?);
        let up = api
            .pods(&app)?
            .iter()
            .filter(|p| p["type"] == "web" && p["state"] == "up")
            .count();
        if up != 1 {
            bail!("{app}: {up} web processes up after the push, expected 1");
        }
        let hello = format!("bench-hello-{round}");
        api.post("/v2/apps/", serde_json::json!({"id": hello}))?;
        let repo = tempfile::tempdir()?;
        copy(&examples.join("hello"), repo.path())?;
        commit_all(repo.path(), "hello")?;
        plain.push(api.push_dir(&hello, repo.path())?);
    }
    println!("python example, push to ready, {rounds} rounds");
    println!("  first push (cold cache):  {}", summary(&mut first));
    println!("  second push (warm cache): {}", summary(&mut second));
    println!("  Procfile app, first push: {}", summary(&mut plain));
    drop(controller);
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    let copied = Command::new("cp")
        .arg("-R")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()?;
    if !copied.success() {
        bail!("cannot copy {}", from.display());
    }
    Ok(())
}
