//! Recorded results: a cell whose inputs are all unchanged since a recorded
//! run is not run again.
//!
//! The inputs are the service's source, the scenarios, the accepted
//! snapshots, the config, the interpreter, the harness itself and the run's
//! own switches (one digest per run), plus the cell's id, profile and
//! resolved set. The requirements files that declare the baseline are left
//! out of the source: what they decide is in each cell's resolved set, so a
//! pull request that bumps one package re-runs only the cells whose
//! environment it changes. Results live in the state folder (`results/`),
//! not the shared cache: they are this project's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::env::ResolvedSet;
use crate::input::config::Config;
use crate::model::cell::Cell;
use crate::model::findings::Noise;
use crate::model::report::CellReport;
use crate::sys::state::{self, StateDirs};

/// One cell's recorded result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub report: CellReport,
    /// Rendered scenario contents, for comparisons with the baseline.
    pub contents: BTreeMap<String, String>,
    /// What the baseline's two runs found; empty for other cells.
    pub noise: Vec<Noise>,
    /// Why the baseline's check turned preloading off, if it did.
    #[serde(default)]
    pub preloading_off: Option<String>,
}

/// The digest of everything a run's cells share as inputs; `pin_files` are
/// the service's requirements files, left out. The harness counts by its
/// build (a digest of its own executable), not its version: a rebuilt harness
/// that behaves differently must not reuse what the old one judged. The
/// variables it passes on to services count with their values.
pub fn run_digest(
    config: &Config,
    python: &str,
    switches: &str,
    pin_files: &[PathBuf],
) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    let passed: String = crate::exec::service::passed_through(&config.service.pass_env)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}\0"))
        .collect();
    for part in [
        "results-v2",
        &harness_build()?,
        python,
        switches,
        &passed,
        &fs_err::read_to_string(&config.path)?,
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let pin_files: BTreeSet<PathBuf> = pin_files
        .iter()
        .filter_map(|path| path.canonicalize().ok())
        .collect();
    // The harness's own files may sit inside the service's tree (a config at
    // its root): they are inputs of their own (below) or none at all (pending
    // snapshots; the state and cache folders `hash_tree` leaves out), never
    // the service's source.
    let harness_files: Vec<PathBuf> = [
        config.path.as_path(),
        &config.replay.scenarios,
        &config.replay.snapshots,
    ]
    .iter()
    .filter_map(|path| path.canonicalize().ok())
    .collect();
    state::hash_tree(&config.service.root, &mut hasher, |path| {
        path.canonicalize().map_or(true, |path| {
            !pin_files.contains(&path) && !harness_files.iter().any(|own| path.starts_with(own))
        })
    })?;
    state::hash_tree(&config.replay.scenarios, &mut hasher, |_| true)?;
    // Accepted snapshots only: pending ones are what runs write.
    state::hash_tree(&config.replay.snapshots, &mut hasher, |path| {
        path.extension().is_some_and(|ext| ext == "snap")
    })?;
    Ok(hex::encode(hasher.finalize()))
}

/// A digest of the running harness's executable, computed once per process.
fn harness_build() -> anyhow::Result<String> {
    static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(build) = BUILD.get() {
        return Ok(build.clone());
    }
    use std::io::Read;
    let exe = std::env::current_exe()?;
    let mut file = fs_err::File::open(&exe)?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut chunk)? {
            0 => break,
            read => hasher.update(&chunk[..read]),
        }
    }
    Ok(BUILD.get_or_init(|| hex::encode(hasher.finalize())).clone())
}

/// The key of one cell's result within a run of `digest`.
pub fn key(digest: &str, cell: &Cell, set: &ResolvedSet) -> String {
    let mut hasher = Sha256::new();
    for part in [digest, &cell.id, &cell.profile, &set.to_requirements()] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The recorded result for `key`, if a readable one exists.
pub fn load(dirs: &StateDirs, key: &str) -> Option<Recorded> {
    let text = std::fs::read_to_string(dirs.results_dir().join(format!("{key}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Records a result, whole or not at all.
pub fn store(dirs: &StateDirs, key: &str, recorded: &Recorded) -> anyhow::Result<()> {
    let path = dirs.results_dir().join(format!("{key}.json"));
    state::write_atomic(&path, &serde_json::to_vec(recorded)?)
}
