//! Spawn speed of the local engine: one `apply` of 500 `exec sleep 600`
//! workers, timed until all 500 are `up`, then one `apply` of 0, timed until
//! none is left. Prints the numbers (and the controller's RSS at 500).
//!
//! `cargo run --release -p drycc-engine --example spawn500 [-- COUNT [COMMAND]]`
//!
//! The pid files go to a fresh directory beside the engine's default run
//! directory (a tmpfs where there is one), or to `$SPAWN500_RUN_DIR`.

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use drycc_engine::{Artifact, Command, Deployment, Engine, Env, ProcessState, ProcessTemplate};
use drycc_engine_local::{default_run_dir, LocalConfig, LocalEngine};

const APP: &str = "bench-spawn";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let count: u32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 500,
    };
    let command = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "exec sleep 600".to_string());
    let dir = tempfile::tempdir()?;
    let run_dir: PathBuf = match std::env::var_os("SPAWN500_RUN_DIR") {
        Some(dir) => dir.into(),
        None => default_run_dir(nix::unistd::getuid().as_raw())
            .with_file_name(format!("drycc-spawn500-{}", std::process::id())),
    };
    let engine = LocalEngine::new(LocalConfig {
        run_dir: run_dir.clone(),
        ..LocalConfig::default()
    })?;
    let template = ProcessTemplate {
        app: APP.to_string(),
        ptype: "worker".to_string(),
        release: 1,
        hash: drycc_model::naming::template_hash(APP, "worker", 1, 0),
        artifact: Artifact::Checkout {
            path: dir.path().to_path_buf(),
        },
        command: Command::Line(command.clone()),
        env: Env::new(),
        grace_period: Duration::from_secs(30),
        readiness: None,
        liveness: None,
        cpu_millis: None,
        memory_bytes: None,
        user: None,
    };
    let rss_before = rss_kib();
    let mut changes = engine.changes(None);

    let start = Instant::now();
    engine
        .apply(Deployment {
            template: template.clone(),
            replicas: count,
        })
        .await?;
    let apply_returned = start.elapsed();
    loop {
        let procs = engine.processes(APP).await?;
        let up = procs
            .iter()
            .filter(|p| p.state == ProcessState::Up && p.pid.is_some())
            .count();
        if up == count as usize {
            break;
        }
        changes.changed().await?;
    }
    let all_up = start.elapsed();
    let rss_up = rss_kib();

    let start = Instant::now();
    engine
        .apply(Deployment {
            template,
            replicas: 0,
        })
        .await?;
    loop {
        if engine.processes(APP).await?.is_empty() {
            break;
        }
        changes.changed().await?;
    }
    let all_gone = start.elapsed();
    engine.stop_all().await;
    drop(engine);
    std::fs::remove_dir_all(&run_dir)?;

    println!("command:                {command}");
    println!("run_dir:                {}", run_dir.display());
    println!("processes:              {count}");
    println!("apply returned after:   {:.1} ms", ms(apply_returned));
    println!("all up after:           {:.1} ms", ms(all_up));
    println!("all gone after (0):     {:.1} ms", ms(all_gone));
    println!(
        "controller RSS:         {} KiB before, {} KiB with {count} up",
        rss_before, rss_up
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
