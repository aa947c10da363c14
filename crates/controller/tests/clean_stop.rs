//! What a clean stop leaves behind: a plain-text log (no colour codes when
//! it goes to a file) and no run directory when no app process runs.

mod support;

use support::Controller;

#[test]
fn a_clean_stop_leaves_a_plain_log_and_no_idle_run_dir() {
    let mut controller = Controller::start(&[]);
    let run_dir = controller.data_dir.path().join("run");
    assert!(
        run_dir.join("engine.lock").exists(),
        "the engine holds its run dir while it runs"
    );
    let status = controller.stop();
    assert!(status.success(), "{status}\n{}", controller.log());
    assert!(
        !run_dir.exists(),
        "no process record, no run dir: {:?}",
        std::fs::read_dir(&run_dir).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    let log = controller.log();
    assert!(log.contains("Releasing the engine"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI escape codes in a log file: {log:?}"
    );

    // stop-apps with nothing to stop leaves nothing either.
    let stopped = controller.stop_apps();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(!run_dir.exists());
    assert!(!String::from_utf8_lossy(&stopped.stderr).contains('\u{1b}'));
}
