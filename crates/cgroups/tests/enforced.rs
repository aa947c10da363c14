//! Limits really hold where this process may write cgroups (CI runs as
//! root). As a user without that right, the tests say so and pass: there
//! is nothing to enforce with.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drycc_cgroups::{detect, Cgroups, Limits};

fn cgroups(test: &str) -> Option<(std::sync::Arc<dyn Cgroups>, String)> {
    let parent = format!("drycc-test-{}-{test}", std::process::id());
    let cgroups = detect(&parent);
    if let Err(reason) = cgroups.enforced() {
        assert!(
            !nix::unistd::geteuid().is_root()
                || std::env::var_os("DRYCC_TEST_NO_CGROUPS").is_some(),
            "running as root, but cgroups are not usable: {reason}"
        );
        eprintln!("cgroups are not usable here ({reason}); nothing to test");
        return None;
    }
    Some((cgroups, parent))
}

#[test]
fn a_cpu_limit_of_200m_holds_a_busy_loop_to_a_fifth_of_a_core() {
    let Some((cgroups, parent)) = cgroups("cpu") else {
        return;
    };
    let group = format!("{parent}/busy");
    cgroups
        .create(
            &group,
            Limits {
                cpu_millis: Some(200),
                memory_bytes: None,
            },
        )
        .unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cgroups.add(&group, child.id()).unwrap();
    let before = cgroups.stats(&group).unwrap().cpu_nanos;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = cgroups.stats(&group).unwrap().cpu_nanos - before;
    let cores = used as f64 / started.elapsed().as_nanos() as f64;
    assert_eq!(cgroups.kill_all(&group).unwrap(), 1);
    child.wait().unwrap();
    cgroups.remove(&group).unwrap();
    cgroups.remove(&parent).unwrap();
    println!("a busy loop limited to 200m used {cores:.3} cores");
    assert!(cores > 0.05 && cores < 0.3, "{cores:.3} cores");
}

#[test]
fn a_process_over_its_memory_limit_is_killed_and_counted() {
    let Some((cgroups, parent)) = cgroups("memory") else {
        return;
    };
    let group = format!("{parent}/greedy");
    cgroups
        .create(
            &group,
            Limits {
                cpu_millis: None,
                memory_bytes: Some(32 * 1024 * 1024),
            },
        )
        .unwrap();
    // Waits for its stdin to close (after it was moved), then allocates.
    let mut child = Command::new("python3")
        .args(["-c", "import sys; sys.stdin.read(); b = bytearray(256 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('survived')"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cgroups.add(&group, child.id()).unwrap();
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status}");
    assert!(cgroups.stats(&group).unwrap().oom_kills >= 1);
    cgroups.remove(&group).unwrap();
    cgroups.remove(&parent).unwrap();
}
