//! Autoscaler cost: the controller's CPU time per autoscaler pass over 500
//! processes of one autoscaled type (sampling every process's CPU and
//! memory, deciding, logging the decision). Measured as the controller's
//! CPU over a window with the rule, minus the same window without it,
//! divided by the passes.
//!
//! Usage: `cargo run --release -p drycc-bench --bin drycc-bench-autoscale`.
//! `DRYCC_BENCH_COUNT` (default 500), `DRYCC_BENCH_SECONDS` (default 10).

use std::time::Duration;

use anyhow::{bail, Result};
use drycc_bench::{cpu_time, env_or, Api, Controller};
use serde_json::json;

fn main() -> Result<()> {
    let count = env_or("DRYCC_BENCH_COUNT", 500);
    let seconds = env_or("DRYCC_BENCH_SECONDS", 10);
    let max = count.max(100).to_string();
    let controller = Controller::start(&[
        ("DRYCC_MAX_PROCESSES_PER_TYPE", &max),
        ("DRYCC_AUTOSCALE_SYNC_PERIOD", "1"),
    ])?;
    let api = Api::register(&controller.url)?;
    api.create_and_push("bench-app", "worker: exec sleep 600\n")?;
    let answer = api.post(
        "/v2/apps/bench-app/config/",
        json!({"cpu": {"worker": "10m"}}),
    )?;
    if answer.status().as_u16() != 201 {
        bail!("setting the CPU limit answered {}", answer.status());
    }
    api.scale("bench-app", json!({"worker": count}))?;
    let window = Duration::from_secs(seconds);
    let measure = || -> Result<f64> {
        let before = cpu_time(controller.pid())?;
        std::thread::sleep(window);
        Ok((cpu_time(controller.pid())? - before).as_secs_f64())
    };
    let idle = measure()?;
    let answer = api.post(
        "/v2/apps/bench-app/settings/",
        json!({"autoscale": {"worker": {"min": count, "max": count, "cpu_percent": 50}}}),
    )?;
    if answer.status().as_u16() != 201 {
        bail!(
            "setting the rule answered {}: {}",
            answer.status(),
            answer.text()?
        );
    }
    let busy = measure()?;
    let passes = seconds as f64;
    println!("{count} processes, one autoscaled type, a pass every second for {seconds} s");
    println!(
        "controller CPU: {:.1} ms/s without the rule, {:.1} ms/s with it",
        idle * 1000.0 / passes,
        busy * 1000.0 / passes
    );
    println!(
        "one autoscaler pass over {count} processes: {:.2} ms of CPU",
        (busy - idle).max(0.0) * 1000.0 / passes
    );
    Ok(())
}
