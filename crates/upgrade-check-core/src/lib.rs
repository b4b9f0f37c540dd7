//! upgrade-check: does the service still answer the same way with these
//! dependency versions?
//!
//! The library: it never prints and knows no command line. Folders are
//! layers, lowest first; a module imports only from its own layer or below
//! (`xtask/tests/tidy.rs` checks it):
//!
//! ```text
//! sys        processes, signals, state folders, redaction
//! model      packages, pins, cells, plans, findings, the report's schema, events
//! input      config, scenarios, baseline files
//! plan       strategies, PR diff, shards
//! env        resolve and build environments, the index's versions
//! exec       databases, the service, replay
//! judge      normalise, compare with snapshots, noise
//! run        drive a plan's cells, recorded results
//! follow_up  interactions, bisection
//! report     renderers of the result model
//! session    one check from start to end, as phases
//! ```
//!
//! [`upgrade_check`] is the entry point; it reports what happens as
//! [`model::event::RunEvent`]s and returns a [`Finished`]. The layers are
//! private: what the command line, the bench and the tests use is re-exported
//! below, and `unreachable_pub` keeps everything else `pub(crate)`.

#![warn(unreachable_pub)]

mod env;
mod exec;
mod follow_up;
mod input;
mod judge;
pub mod model;
mod plan;
mod report;
mod run;
mod session;
mod sys;

// The facade: what the command line, the bench and the tests reach. Every
// other item is the crate's own (`unreachable_pub` keeps it so).

/// The files a check reads, as they are written: `upgrade-check.toml` and scenarios.
pub use input::{config, scenario};

/// One check from start to end, and the commands beside it.
pub use session::{
    Acceptance, Action, CheckSettings, ExploreRequest, Finished, Folders, Options, default_jobs,
    import, init, record, refuse_accepting_in_ci, state_dirs, upgrade_check,
};

/// Bisection's request and answer, shown by the command line.
pub use follow_up::bisect::{BisectRequest, Bisected};

/// Snapshots waiting for review.
pub use judge::snapshot;

/// Splitting a plan across CI jobs.
pub use plan::shard;

/// Exploration's variants of recorded scenarios.
pub use plan::variants;

/// The state and cache folders, and the collector that trims them.
pub use sys::{gc, state::StateDirs};

/// Renderers of a result.
pub mod render {
    pub use crate::report::{bisect, cell_diff, headline, html, merge, terminal, write_all};
}

/// Text from services and users made safe to show.
pub use sys::redact;

/// Small helpers the binary, the bench and the tests share with the library.
pub mod util {
    pub use crate::exec::service::listeners;
    pub use crate::sys::http::client_builder;
    pub use crate::sys::state::{copy_tree, relative, write_atomic};
    pub use crate::sys::sweep::is_running;
}

/// Pieces below the session that the bench drives directly to time them
/// against other tools. Not a stable interface.
#[doc(hidden)]
pub mod internals {
    pub use crate::env::{UvBuilder, python, uv};
    pub use crate::exec::{db, replay};
    pub use crate::input::baseline::{BaselineFile, DeclaredHashes};
    pub use crate::judge::normalize;
    pub use crate::plan::plan;
    pub use crate::run::scenario_runs;
    pub use crate::sys::process;
}
