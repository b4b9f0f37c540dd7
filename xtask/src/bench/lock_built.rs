//! What the matrix of a service built from a lock costs: a cargo service's
//! (by default the Rust auth fixture's, `fixtures/rust-auth-service`) or a
//! Node service's (`fixtures/node-auth-service`). Cold, in an empty cache
//! (every crate compiled into an empty shared target folder; every package
//! installed by `npm ci` into an empty environment), warm (every
//! environment reused, every cell replayed), and rebuilt with the crates
//! compiled (npm's own cache full) but no environment or resolution kept:
//! what one more lock costs, per cell.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{Measured, secs, whole_run};

pub struct LockBuiltCosts {
    /// The config's folder name: `rust-auth-service`.
    pub service: String,
    pub cold: Measured,
    pub warm: Measured,
    /// Resolving and building (or installing) one cell's lock with every
    /// crate already compiled in the shared target folder (every package in
    /// npm's cache).
    pub incremental_per_cell: Duration,
    pub rebuilt: usize,
}

impl LockBuiltCosts {
    /// Its three rows: the matrix cold and warm, with what `built` calls
    /// the environments made (cold, warm), and one cell made again (`rebuilt`).
    pub fn write_rows(&self, table: &mut String, kind: &str, built: [&str; 2], rebuilt: &str) {
        use std::fmt::Write as _;
        let service = &self.service;
        let _ = writeln!(
            table,
            "| {kind} `{service}`: cold matrix ({} cells, {} {}) | {:.1} s |",
            self.cold.cells,
            self.cold.environments_built,
            built[0],
            secs(self.cold.wall)
        );
        let _ = writeln!(
            table,
            "| {kind} `{service}`: warm matrix, every cell replayed ({} {}) | {:.1} s |",
            self.warm.environments_built,
            built[1],
            secs(self.warm.wall)
        );
        let _ = writeln!(
            table,
            "| {kind} `{service}`: per cell, {rebuilt} ({} cells) | {:.1} s |",
            self.rebuilt,
            secs(self.incremental_per_cell)
        );
    }
}

pub fn measure(config: &Path, state: &Path, jobs: usize) -> anyhow::Result<LockBuiltCosts> {
    let service = std::path::absolute(config)?
        .parent()
        .and_then(Path::file_name)
        .map_or_else(
            || "the service".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
    let cache = tempfile::Builder::new()
        .prefix(&format!("bench-cache-{service}-"))
        .tempdir_in(state)
        .with_context(|| format!("a cold cache folder for {service}"))?;
    let runs = state.join(format!("bench-{service}"));
    eprintln!("bench: {service}'s matrix, cold (empty cache)…");
    let cold = whole_run(config, &runs, cache.path(), jobs, true, &[])?;
    eprintln!("bench: {service}'s matrix, warm…");
    let warm = whole_run(config, &runs, cache.path(), jobs, true, &[])?;
    eprintln!("bench: {service}'s cells rebuilt on compiled crates (npm's cache)…");
    for kept in ["envs", "resolutions"] {
        fs_err::remove_dir_all(cache.path().join(kept))?;
    }
    let rebuilt = whole_run(config, &runs, cache.path(), jobs, true, &[])?;
    // Builds in the shared target folder take turns, so the extra time is
    // the sum of the cells' builds.
    let per_cell =
        rebuilt.wall.saturating_sub(warm.wall) / rebuilt.environments_built.max(1) as u32;
    Ok(LockBuiltCosts {
        service,
        cold,
        warm,
        incremental_per_cell: per_cell,
        rebuilt: rebuilt.environments_built,
    })
}
