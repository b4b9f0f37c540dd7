//! Files the user writes, read and checked: `upgrade-check.toml`, scenarios,
//! and the baseline file (requirements, `pyproject.toml`, `Cargo.lock`).
//! Every error names file, line, column and key.

pub(crate) mod baseline;
pub(crate) mod cargo_lock;
pub mod config;
pub(crate) mod declared;
pub(crate) mod filter;
pub(crate) mod har;
pub(crate) mod inspect;
pub(crate) mod lock;
pub(crate) mod node_lock;
pub(crate) mod npm_lock;
pub(crate) mod openapi;
pub(crate) mod pnpm_lock;
pub(crate) mod postman;
pub mod scenario;
pub(crate) mod source;
pub(crate) mod traffic;
pub(crate) mod yarn_lock;
pub(crate) mod yarnrc;
