//! Progress lines on stderr while cells build and run: which cell, which step, how many left.
//!
//! Plain lines with the elapsed time, so they read the same in a terminal
//! and in a CI log.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub struct Progress {
    started: Instant,
    total: AtomicUsize,
    done: AtomicUsize,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            started: Instant::now(),
            total: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            quiet,
        }
    }

    pub fn set_total(&self, cells: usize) {
        self.total.store(cells, Ordering::Relaxed);
    }

    /// One event of one cell.
    pub fn cell(&self, cell: &str, message: &str) {
        self.say(&format!("{cell}: {message}"));
    }

    /// A cell finished; prints how many are left.
    pub fn cell_done(&self, cell: &str, message: &str) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.total.load(Ordering::Relaxed);
        self.say(&format!("{cell}: {message} ({done}/{total} cells done)"));
    }

    pub fn say(&self, message: &str) {
        if !self.quiet {
            eprintln!("[{:>6.1}s] {message}", self.started.elapsed().as_secs_f64());
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}
