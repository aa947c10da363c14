//! What a clean stop leaves behind: a plain-text log (no colour codes when
//! it goes to a file).

mod support;

use support::Controller;

#[test]
fn a_clean_stop_leaves_a_plain_log() {
    let mut controller = Controller::start(&[]);
    let status = controller.stop();
    assert!(status.success(), "{status}\n{}", controller.log());
    let log = controller.log();
    assert!(log.contains("Releasing the engine"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI escape codes in a log file: {log:?}"
    );
}
