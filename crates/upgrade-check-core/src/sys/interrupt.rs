//! Turns SIGINT and SIGTERM into cancellation.
//!
//! The first signal kills every child process group at once and tells the
//! run, which stops waiting, writes a report marked cancelled and exits 130.
//! A second signal means "now": the harness kills the groups again and exits
//! without writing anything more. CI systems send SIGINT, then SIGTERM a few
//! seconds later, then SIGKILL; both of the first two end up here.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::sys::failpoint::failpoint;
use crate::sys::process;

/// The first signal's name, set as it arrives, before any child is killed.
static SIGNALLED: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// The signal that arrived, if one did: from then on a service that dies
/// was killed by it, and what a cell answered since is no result.
pub(crate) fn signalled() -> Option<&'static str> {
    SIGNALLED.get().copied()
}

/// Tells the run whether, and by which signal, it was interrupted.
pub(crate) struct Interrupt {
    fired: watch::Receiver<Option<&'static str>>,
    /// Set once the cells run: from then on the run itself handles a signal.
    cells: AtomicBool,
}

impl Interrupt {
    /// Starts listening; call inside the runtime, before any child starts.
    /// `told` hears each signal's name, and whether it is the second (then
    /// the process exits right after, with 130).
    pub(crate) fn install(
        told: impl Fn(&'static str, bool) + Send + 'static,
    ) -> std::io::Result<Interrupt> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (tell, fired) = watch::channel(None);
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let name = tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                };
                let _ = SIGNALLED.set(name);
                process::kill_all();
                seen += 1;
                told(name, seen > 1);
                if seen == 1 {
                    // The tests widen the moment between the kill and the run hearing of it.
                    if let Some(ms) = failpoint("slow-cancel").and_then(|ms| ms.parse().ok()) {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    let _ = tell.send(Some(name));
                } else {
                    crate::sys::state::remove_temp_dirs_for_good();
                    std::process::exit(130);
                }
            }
        });
        Ok(Interrupt {
            fired,
            cells: AtomicBool::new(false),
        })
    }

    /// From now on a signal is the run's to handle: it writes a cancelled report.
    pub(crate) fn cells_started(&self) {
        self.cells.store(true, Ordering::SeqCst);
    }

    /// Resolves with the signal's name if one arrives before the cells run.
    pub(crate) async fn wait_before_cells(&self) -> &'static str {
        let name = self.wait().await;
        if self.cells.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        name
    }

    /// Resolves with the signal's name once one arrived.
    pub(crate) async fn wait(&self) -> &'static str {
        let mut fired = self.fired.clone();
        match fired.wait_for(Option::is_some).await {
            Ok(name) => name.unwrap_or("a signal"),
            // The listener is gone: no signal can come any more.
            Err(_) => std::future::pending().await,
        }
    }
}
