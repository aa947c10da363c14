//! Colours: only on a terminal, never with `NO_COLOR`.

use std::io::IsTerminal;

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

fn enabled(stream: Stream) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let tty = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    tty && !no_color
}

fn paint(text: &str, code: &str, stream: Stream) -> String {
    if enabled(stream) {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub fn red(text: &str, stream: Stream) -> String {
    paint(text, "31", stream)
}

pub fn green(text: &str, stream: Stream) -> String {
    paint(text, "32", stream)
}
