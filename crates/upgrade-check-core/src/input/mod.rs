//! Files the user writes, read and checked: `upgrade-check.toml`, scenarios,
//! and the baseline file (requirements, `pyproject.toml`, `Cargo.lock`).
//! Every error names file, line, column and key.

pub mod baseline;
pub mod cargo_lock;
pub mod config;
pub mod declared;
pub mod har;
pub mod inspect;
pub mod lock;
pub mod postman;
pub mod scenario;
pub mod source;
pub mod traffic;
