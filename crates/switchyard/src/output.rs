//! Everything the CLI prints for a person goes through here; logs go to stderr via tracing.
#![allow(clippy::print_stdout, reason = "this module is the CLI's output")]

use std::io::Write;

pub fn line(s: &str) {
    println!("{s}");
    // Tests and scripts read the "listening on" line through a pipe: do not leave it buffered.
    let _ = std::io::stdout().flush();
}

pub fn warn(s: &str) {
    eprintln!("warning: {s}");
}

pub fn error(s: &str) {
    eprintln!("error: {s}");
}

/// Text as it streams: no newline added, flushed at once.
pub fn text(s: &str) {
    print!("{s}");
    let _ = std::io::stdout().flush();
}
