//! Scale benchmark: one scale request `{"worker": 500}` against a real
//! controller, timed until all 500 processes are `up`, then back to 0, with
//! the controller's RSS idle and at 500 processes.
//!
//! Usage: `cargo run --release -p drycc-bench --bin drycc-bench-scale`
//! (uses `target/release/drycc-controller`, or `$DRYCC_CONTROLLER_BIN`).
//! `DRYCC_BENCH_COUNT` changes the count (default 500), `DRYCC_BENCH_ROUNDS`
//! the number of rounds (default 5). With `DRYCC_BENCH_DOCKER=1` (and
//! `DOCKER_HOST`, e.g. under `scripts/with-docker.sh`) the processes are
//! containers of a busybox image built locally (default count 50).

use std::time::Duration;

use anyhow::{bail, Result};
use drycc_bench::{env_or, rss_kib, summary, Api, Controller};
use serde_json::json;

fn main() -> Result<()> {
    let rounds = env_or("DRYCC_BENCH_ROUNDS", 5);
    let docker = env_or("DRYCC_BENCH_DOCKER", 0) == 1;
    let count = env_or("DRYCC_BENCH_COUNT", if docker { 50 } else { 500 });
    let max = count.max(100).to_string();
    let controller = Controller::start(&[("DRYCC_MAX_PROCESSES_PER_TYPE", &max)])?;
    let pid = controller.pid();
    let fresh = rss_kib(pid)?;
    let api = Api::register(&controller.url)?;
    let what = if docker {
        let image = bench_image()?;
        api.post("/v2/apps/", json!({"id": "bench-app"}))?;
        let answer = api.post(
            "/v2/apps/bench-app/builds/",
            json!({"image": image, "procfile": {"worker": "sleep 600"}}),
        )?;
        if answer.status().as_u16() != 201 {
            bail!(
                "pulling {image} answered {}: {}",
                answer.status(),
                answer.text()?
            );
        }
        format!("containers of {image}: worker: sleep 600")
    } else {
        api.create_and_push("bench-app", "worker: exec sleep 600\n")?;
        "worker: exec sleep 600".to_string()
    };
    // With a CPU limit every process is confined to a control group.
    let limit = std::env::var("DRYCC_BENCH_CPU_LIMIT").ok();
    if let Some(limit) = &limit {
        let answer = api.post(
            "/v2/apps/bench-app/config/",
            json!({"cpu": {"worker": limit}}),
        )?;
        if answer.status().as_u16() != 201 {
            bail!("setting the CPU limit answered {}", answer.status());
        }
    }
    // Let the push's work settle before reading the idle size.
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid)?;
    let (mut ups, mut downs, mut at_count) = (Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        ups.push(api.scale("bench-app", json!({"worker": count}))?);
        let up = api
            .pods("bench-app")?
            .iter()
            .filter(|p| p["type"] == "worker" && p["state"] == "up")
            .count();
        if up != count as usize {
            bail!("only {up} of {count} processes up after the scale answered");
        }
        at_count = at_count.max(rss_kib(pid)?);
        downs.push(api.scale("bench-app", json!({"worker": 0}))?);
    }
    println!(
        "{rounds} rounds of one scale request 0 -> {count} -> 0 ({what}, CPU limit {})",
        limit.as_deref().unwrap_or("none")
    );
    println!(
        "scale 0 -> {count}, request until all up: {}",
        summary(&mut ups)
    );
    println!(
        "scale {count} -> 0, request until all gone: {}",
        summary(&mut downs)
    );
    println!(
        "controller RSS just started: {:.1} MiB",
        fresh as f64 / 1024.0
    );
    println!(
        "controller RSS idle (after login and a push): {:.1} MiB",
        idle as f64 / 1024.0
    );
    println!(
        "controller RSS at {count} processes (largest seen): {:.1} MiB",
        at_count as f64 / 1024.0
    );
    Ok(())
}

/// A busybox image built on the Docker engine of `DOCKER_HOST`.
fn bench_image() -> Result<String> {
    let Some(docker) = drycc_images::testing::docker_from_env() else {
        bail!("DRYCC_BENCH_DOCKER=1 needs DOCKER_HOST (run under scripts/with-docker.sh)");
    };
    let image = "drycc-bench/busybox:1";
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(drycc_images::testing::build_busybox_image(
            &docker,
            image,
            "CMD [\"httpd\", \"-f\", \"-p\", \"5000\"]",
        ))?;
    Ok(image.to_string())
}
