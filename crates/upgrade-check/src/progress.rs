//! Progress on stderr while cells build and run: which cell, which step, how
//! many left. It is one consumer of the library's run events.
//!
//! On a terminal, a live display: one line per cell at work with its current
//! step, and a bar for the plan; finished cells and other news scroll above
//! it. Anywhere else (a CI log, a pipe), plain lines with the elapsed time,
//! which read the same in both.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use upgrade_check_core::model::event::RunEvent;
use upgrade_check_core::redact;

pub struct Progress {
    started: Instant,
    total: AtomicUsize,
    done: AtomicUsize,
    quiet: bool,
    live: Option<Live>,
}

/// The terminal display: a bar for the plan and a spinner per cell at work.
struct Live {
    multi: MultiProgress,
    plan: ProgressBar,
    cells: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Progress {
    /// Live on a terminal (unless `TERM=dumb`, or `verbose` asks for every
    /// line), plain lines elsewhere; nothing at all when `quiet`.
    pub fn new(quiet: bool, verbose: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal()
            && !verbose
            && std::env::var("TERM").map_or(true, |term| term != "dumb");
        Progress {
            started: Instant::now(),
            total: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            quiet,
            live: (terminal && !quiet).then(Live::new),
        }
    }

    /// Shows one run event: a cell's step on its line, a finished cell with
    /// the count done, anything else as a line of news.
    pub fn show(&self, event: &RunEvent) {
        match event {
            RunEvent::PlanStarted { cells } => self.set_total(*cells),
            RunEvent::CellStep { cell, step } => self.cell(cell, &step.to_string()),
            RunEvent::CellFinished { cell, outcome } => self.cell_done(cell, &outcome.to_string()),
            // Said at once and as they are: the user may be waiting on them.
            RunEvent::Signal { .. } | RunEvent::ToolSetup { .. } => {
                self.suspended(|| crate::errln!("{event}"));
            }
            _ => self.say(&event.to_string()),
        }
    }

    /// A plan of `cells` starts: the count of done cells starts again.
    pub fn set_total(&self, cells: usize) {
        self.total.store(cells, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.plan.set_length(cells as u64);
            live.plan.set_position(0);
        }
    }

    /// One event of one cell.
    pub fn cell(&self, cell: &str, message: &str) {
        match &self.live {
            Some(live) => live.step(cell, &redact::terminal_safe(&redact::scrub(message))),
            None => self.say(&format!("{cell}: {message}")),
        }
    }

    /// A cell finished; says how many are done.
    pub fn cell_done(&self, cell: &str, message: &str) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.total.load(Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.finish_cell(cell);
        }
        self.say(&format!("{cell}: {message} ({done}/{total} cells done)"));
    }

    /// A line of news: above the live display, or on its own.
    pub fn say(&self, message: &str) {
        if self.quiet {
            return;
        }
        let line = format!("[{:>6.1}s] {message}", self.started.elapsed().as_secs_f64());
        self.suspended(|| crate::errln!("{line}"));
    }

    /// Runs `print` with the live display out of the way.
    fn suspended(&self, print: impl FnOnce()) {
        match &self.live {
            Some(live) => live.multi.suspend(print),
            None => print(),
        }
    }

    /// Clears the live display, before the summary is printed below it.
    pub fn finish(&self) {
        if let Some(live) = &self.live {
            for (_, bar) in std::mem::take(&mut *live.lock_cells()) {
                bar.finish_and_clear();
            }
            live.plan.finish_and_clear();
        }
    }
}

/// An early return (an error, a cancellation) still leaves a clean terminal.
impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Live {
    fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let plan = multi.add(ProgressBar::new(0));
        plan.set_style(
            ProgressStyle::with_template(
                "{elapsed:>5} [{bar:30.green/dim}] {pos}/{len} cells done · {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        plan.set_message("preparing");
        plan.enable_steady_tick(Duration::from_millis(200));
        Live {
            multi,
            plan,
            cells: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock_cells(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ProgressBar>> {
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shows `message` on the cell's own line, adding the line on its first step.
    fn step(&self, cell: &str, message: &str) {
        let mut cells = self.lock_cells();
        let bar = cells.entry(cell.to_owned()).or_insert_with(|| {
            let bar = self
                .multi
                .insert_before(&self.plan, ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:.bold}: {wide_msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(cell.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(message.to_owned());
        self.plan.set_message(format!("{} running", cells.len()));
    }

    fn finish_cell(&self, cell: &str) {
        let mut cells = self.lock_cells();
        if let Some(bar) = cells.remove(cell) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.plan.inc(1);
        self.plan.set_message(format!("{} running", cells.len()));
    }
}
