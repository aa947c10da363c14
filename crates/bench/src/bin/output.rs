//! Output benchmark: what a process writing as fast as it can costs the
//! controller while nobody follows its logs, and how large its log file
//! gets. The app is `worker: exec yes`; the controller's and the process's
//! CPU time are read from `/proc` over a measured window, and the log file's
//! size is sampled every 10 ms.
//!
//! Usage: `cargo run --release -p drycc-bench --bin drycc-bench-output`.
//! `DRYCC_BENCH_SECONDS` sets the window (default 10).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use drycc_bench::{cpu_time, env_or, Api, Controller};
use serde_json::json;

fn main() -> Result<()> {
    let seconds: u64 = env_or("DRYCC_BENCH_SECONDS", 10);
    let bound_kib = 4096u64;
    let controller = Controller::start(&[("DRYCC_LOG_KIB_PER_PROCESS", &bound_kib.to_string())])?;
    let api = Api::register(&controller.url)?;
    api.create_and_push("noisy", "worker: exec yes\n")?;
    api.scale("noisy", json!({"worker": 1}))?;
    let pods = api.pods("noisy")?;
    let name = pods
        .first()
        .and_then(|p| p["name"].as_str())
        .context("no process")?
        .to_string();
    let pid = u32::try_from(api.pid("noisy", &name)?)?;
    let log = controller
        .data
        .path()
        .join("logs/noisy")
        .join(format!("{name}.log"));
    // Let it reach its steady state.
    std::thread::sleep(Duration::from_secs(1));
    let window = Duration::from_secs(seconds);
    let (controller_before, process_before) = (cpu_time(controller.pid())?, cpu_time(pid)?);
    let started = Instant::now();
    let (mut largest, mut samples, mut total) = (0u64, 0u64, 0u64);
    while started.elapsed() < window {
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        largest = largest.max(size);
        total += size;
        samples += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let controller_cpu = (cpu_time(controller.pid())? - controller_before).as_secs_f64();
    let process_cpu = (cpu_time(pid)? - process_before).as_secs_f64();
    let still = api.pods("noisy")?;
    if still.first().and_then(|p| p["name"].as_str()) != Some(name.as_str()) {
        bail!("the process did not keep running");
    }
    println!("one process running `yes` for {elapsed:.1} s, nobody following its logs");
    println!(
        "controller CPU: {:.2}% of a core; the process: {:.1}% of a core",
        controller_cpu / elapsed * 100.0,
        process_cpu / elapsed * 100.0
    );
    println!(
        "log file (bound {bound_kib} KiB): mean {:.0} KiB, largest {:.0} KiB over {samples} samples",
        total as f64 / samples.max(1) as f64 / 1024.0,
        largest as f64 / 1024.0
    );
    Ok(())
}
