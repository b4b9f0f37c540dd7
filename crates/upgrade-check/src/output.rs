//! The only way the tool writes to stdout and stderr: scrubbed of every
//! registered secret and of terminal control sequences, whatever the text
//! came from (a service's answer, its log, a package name).

use std::io::Write as _;

use upgrade_check_core::sys::redact::{scrub, terminal_safe};

/// `print!` through [`print_stdout`]: the only way the harness writes to stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::print_stdout(&format!($($arg)*)) };
}

/// `println!` through [`print_stdout`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::print_stdout(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` through [`print_stderr`]: the only way the harness writes to stderr.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::print_stderr(&format!($($arg)*)) };
}

/// Prints to stdout, scrubbed and without terminal control sequences.
pub fn print_stdout(text: &str) {
    let scrubbed = scrub(text);
    let text = terminal_safe(&scrubbed);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Prints one line to stderr, scrubbed and without terminal control sequences.
pub fn print_stderr(line: &str) {
    let scrubbed = scrub(line);
    let line = terminal_safe(&scrubbed);
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
