//! The exec WebSocket frame decoder, as the controller (client frames)
//! and the CLI (server frames) run it: it never panics, and a decoded
//! frame encodes back to a frame that decodes the same.
#![no_main]

use drycc_api_types::{channel, decode_exec_frame, encode_exec_frame, ExecFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = decode_exec_frame(data) else {
        return;
    };
    let encoded = match &frame {
        ExecFrame::Stdin(bytes) => encode_exec_frame(channel::STDIN, bytes),
        ExecFrame::Stdout(bytes) => encode_exec_frame(channel::STDOUT, bytes),
        ExecFrame::Stderr(bytes) => encode_exec_frame(channel::STDERR, bytes),
        ExecFrame::Status(status) => {
            // The CLI turns a status into its exit code.
            let _ = status.exit_code();
            let json = serde_json::to_vec(status).expect("a status serialises");
            encode_exec_frame(channel::STATUS, &json)
        }
        ExecFrame::Resize(size) => {
            let json = serde_json::to_vec(size).expect("a size serialises");
            encode_exec_frame(channel::RESIZE, &json)
        }
    };
    if matches!(
        frame,
        ExecFrame::Stdin(_) | ExecFrame::Stdout(_) | ExecFrame::Stderr(_)
    ) {
        assert_eq!(encoded, data);
    }
    assert_eq!(decode_exec_frame(&encoded).as_ref(), Ok(&frame));
});
