//! The only way the tool writes to stdout and stderr: scrubbed of every
//! registered secret and of terminal control sequences, whatever the text
//! came from (a service's answer, its log, a package name).

use std::io::Write as _;

use upgrade_check_core::redact::{scrub, terminal_safe};

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

/// Prints the terminal summary to stdout: scrubbed and made safe first, then
/// coloured when `colour` says so (the colours are the tool's own, added
/// after the service's text lost any sequence of its own).
pub fn print_summary(text: &str, colour: bool) {
    let scrubbed = scrub(text);
    let safe = terminal_safe(&scrubbed);
    let text = if colour {
        paint(&safe)
    } else {
        safe.into_owned()
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Verdict words of the summary's table and headline, and their colour.
const VERDICTS: &[(&str, &str)] = &[
    ("CHANGED", RED),
    ("STARTUP-FAILED", RED),
    ("BUILD-FAILED", RED),
    ("ERROR", RED),
];

/// Colours a terminal summary by its layout: the headline by its mark, the
/// table's verdicts, section rules in bold, a diff's removed and added lines.
fn paint(text: &str) -> String {
    let mut painted = String::with_capacity(text.len() + 256);
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let styled = if body.starts_with('✗') {
            format!("{BOLD}{RED}{body}{RESET}")
        } else if body.starts_with('✓') {
            format!("{BOLD}{GREEN}{body}{RESET}")
        } else if ["── ", "    ---", "    +++"]
            .iter()
            .any(|rule| body.starts_with(rule))
        {
            format!("{BOLD}{body}{RESET}")
        } else if body.starts_with("    -") {
            format!("{RED}{body}{RESET}")
        } else if body.starts_with("    +") {
            format!("{GREEN}{body}{RESET}")
        } else if !body.starts_with(' ') {
            // A table row: its verdict words, whole words only.
            body.split(' ')
                .map(
                    |word| match VERDICTS.iter().find(|(verdict, _)| *verdict == word) {
                        Some((verdict, colour)) => format!("{colour}{verdict}{RESET}"),
                        None => word.to_owned(),
                    },
                )
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            body.to_owned()
        };
        painted.push_str(&styled);
        painted.push_str(end);
    }
    painted
}

/// Prints one line to stderr, scrubbed and without terminal control sequences.
pub fn print_stderr(line: &str) {
    let scrubbed = scrub(line);
    let line = terminal_safe(&scrubbed);
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_painted_by_its_layout_and_keeps_its_text() {
        let summary = "✗ 1 cell regresses:\n\ncell  login\nbaseline  pass\nbcrypt 5.0.0  CHANGED\n\n── bcrypt 5.0.0 · login: changed ──\n    --- accepted\n    -< 201 Created\n    +< 500 Internal Server Error\n";
        let painted = paint(summary);
        assert!(painted.starts_with("\x1b[1m\x1b[31m✗ 1 cell regresses:\x1b[0m\n"));
        assert!(painted.contains("bcrypt 5.0.0  \x1b[31mCHANGED\x1b[0m\n"));
        assert!(painted.contains("\x1b[31m    -< 201 Created\x1b[0m"));
        assert!(painted.contains("\x1b[32m    +< 500 Internal Server Error\x1b[0m"));
        // Without the colours, the text is the summary.
        assert_eq!(terminal_safe(&painted), summary);
    }
}
