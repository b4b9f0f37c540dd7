//! Runs a cell's scenarios for real: a fresh database per scenario run, the
//! service started in its own process group, the recorded steps replayed.

pub mod db;
pub mod db_ahead;
pub mod preload;
pub mod proxy;
pub mod replay;
pub mod service;
