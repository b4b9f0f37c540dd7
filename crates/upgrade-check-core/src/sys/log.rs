//! Reading what a process printed into a log: the text as written, its last
//! lines without terminal escapes, for reports and error messages.

use std::path::Path;
use std::sync::LazyLock;

/// Terminal colour and cursor sequences, which mean nothing in a report.
static ANSI_ESCAPE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").expect("valid regex"));

/// A log file as the service wrote it (lossy UTF-8; empty if unreadable).
pub(crate) fn read_log(path: &Path) -> String {
    fs_err::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last `lines` lines of a log's text, without terminal escapes, for reports.
pub(crate) fn tail(log: &str, lines: usize) -> String {
    let text = ANSI_ESCAPE.replace_all(log, "");
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until the log at `path` has not grown for `quiet`, at most `cap`:
/// what a process writes just after it answered reaches the log before it
/// is stopped.
pub(crate) async fn settled(path: &Path, quiet: std::time::Duration, cap: std::time::Duration) {
    let size = || std::fs::metadata(path).map_or(0, |meta| meta.len());
    let begun = std::time::Instant::now();
    let mut last = (size(), std::time::Instant::now());
    while begun.elapsed() < cap {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let now = size();
        if now != last.0 {
            last = (now, std::time::Instant::now());
        } else if last.1.elapsed() >= quiet {
            return;
        }
    }
}

/// The last `lines` lines of a log file, without terminal escapes.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    tail(&read_log(path), lines)
}
