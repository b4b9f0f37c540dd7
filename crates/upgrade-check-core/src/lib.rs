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
//! [`session::upgrade_check`] is the entry point; it reports what happens
//! as [`model::event::RunEvent`]s and returns a [`session::Finished`].

pub mod env;
pub mod exec;
pub mod follow_up;
pub mod input;
pub mod judge;
pub mod model;
pub mod plan;
pub mod report;
pub mod run;
pub mod session;
pub mod sys;
