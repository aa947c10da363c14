//! Re-adoption benchmark: with 500 processes running, SIGKILL the
//! controller and start it again; time from the new controller's start
//! until `ps` shows all 500 `up` again, then check they kept their pids.
//!
//! Usage: `cargo run --release -p drycc-bench --bin drycc-bench-readopt`.
//! `DRYCC_BENCH_COUNT` (default 500), `DRYCC_BENCH_ROUNDS` (default 5).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use drycc_bench::{env_or, summary, Api, Controller};
use serde_json::json;

/// name -> pid of every process.
fn pids(api: &Api, app: &str) -> Result<BTreeMap<String, u64>> {
    let mut pids = BTreeMap::new();
    for pod in api.pods(app)? {
        let name = pod["name"].as_str().unwrap_or_default().to_string();
        let pid = api.pid(app, &name)?;
        pids.insert(name, pid);
    }
    Ok(pids)
}

fn main() -> Result<()> {
    let count = env_or("DRYCC_BENCH_COUNT", 500);
    let rounds = env_or("DRYCC_BENCH_ROUNDS", 5);
    let max = count.max(100).to_string();
    let mut controller = Controller::start(&[("DRYCC_MAX_PROCESSES_PER_TYPE", &max)])?;
    let mut api = Api::register(&controller.url)?;
    api.create_and_push("bench-app", "worker: exec sleep 600\n")?;
    api.scale("bench-app", json!({"worker": count}))?;
    let before = pids(&api, "bench-app")?;
    let mut times = Vec::new();
    for _ in 0..rounds {
        controller.crash()?;
        let started = Instant::now();
        controller.spawn()?;
        api.url = controller.url.clone();
        loop {
            let up = api
                .pods("bench-app")?
                .iter()
                .filter(|p| p["state"] == "up")
                .count();
            if up == count as usize {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("only {up} of {count} up a minute after the restart");
            }
        }
        times.push(started.elapsed());
        let after = pids(&api, "bench-app")?;
        if after != before {
            bail!("the processes changed across the restart");
        }
    }
    println!("{rounds} rounds: {count} processes running, controller SIGKILLed and started again");
    println!(
        "start of the new controller until ps shows all {count} up, same pids: {}",
        summary(&mut times)
    );
    Ok(())
}
