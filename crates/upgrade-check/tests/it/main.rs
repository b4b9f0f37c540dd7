//! The integration tests: the real `upgrade-check` binary run on copies of
//! the fixtures. One test binary, in tiers by what the tests need, so that
//! a filter picks a tier (`cargo test --test it offline::`):
//!
//! - `offline`: nothing but the repository's files.
//! - `index`: the package index (environments are built with uv; cached
//!   in one folder shared by every test), SQLite databases.
//! - `postgres`: also PostgreSQL's server binaries.
//! - `tools`: also Chromium with chromedriver, xmllint, cargo-insta (built
//!   from the registry's source when missing) and the wheel maturin builds.
//!
//! The README's test command runs them all.

mod common;

mod offline {
    mod ci_recipe;
    mod import;
    mod packaging;
}

mod index {
    mod adoption;
    mod attack;
    mod bad_input;
    mod caches;
    mod cargo_service;
    mod default_matrix;
    mod exploration;
    mod faults;
    mod kill_during_write;
    mod load;
    mod locks;
    mod matrix_intelligence;
    mod node_service;
    mod pr_mode;
    mod preloading;
    mod progress;
    mod requirements_files;
    mod rust_auth_service;
    mod shards;
    mod snapshots;
    mod variants;
}

mod postgres {
    mod incidents;
    mod interrupt;
    mod other_users;
    mod verdicts;
}

mod tools {
    mod cargo_insta;
    mod html_report;
    mod install;
    mod junit_schema;
    mod recorded_traffic;
}
