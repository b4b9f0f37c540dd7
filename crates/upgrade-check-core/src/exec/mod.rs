//! Runs a cell's scenarios for real: a fresh database per scenario run, the
//! service started in its own process group, the recorded steps replayed.

pub mod db;
pub(crate) mod db_ahead;
pub(crate) mod preload;
pub(crate) mod proxy;
pub mod replay;
pub(crate) mod service;
