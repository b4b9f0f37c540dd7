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
//!
//! A recorded result is trusted only when this machine's harness wrote it:
//! each file carries an HMAC of its key and contents under a secret kept in
//! the user's own state folder, outside any checkout. The key of a result
//! can be computed by anyone with the same release and the same files; a
//! pull request that commits a result recorded as a pass still gets its
//! cells run, because it cannot sign it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::env::ResolvedSet;
use crate::input::config::Config;
use crate::model::cell::Cell;
use crate::model::findings::Noise;
use crate::model::report::CellReport;
use crate::sys::source_tree::SourceTree;
use crate::sys::state::{self, StateDirs};

/// One cell's recorded result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Recorded {
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
/// build (a digest of its own executable, remembered in `cache`), not its version: a rebuilt harness
/// that behaves differently must not reuse what the old one judged. The
/// variables it passes on to services count with their values.
pub(crate) fn run_digest(
    config: &Config,
    source: &SourceTree,
    cache: &Path,
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
        &harness_build(cache)?,
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
    source.hash_into(&mut hasher, |path| {
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

/// A digest of the running harness's executable, computed once per build:
/// the cache remembers it (`harness-build`) with the executable's device,
/// inode, size and modification time, which any rebuild changes. A debug
/// build is some 200 MB, and hashing it took longer than judging a run.
fn harness_build(cache: &Path) -> anyhow::Result<String> {
    static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(build) = BUILD.get() {
        return Ok(build.clone());
    }
    let digest = remembered_digest(&std::env::current_exe()?, &cache.join("harness-build"))?;
    Ok(BUILD.get_or_init(|| digest).clone())
}

/// The digest of `exe`, from `memo` when it was taken of the same file as
/// it is now; else hashed, and remembered there.
fn remembered_digest(exe: &Path, memo: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs_err::metadata(exe)?;
    let stamp = format!(
        "{} {} {} {}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    let remembered = std::fs::read_to_string(memo).ok().and_then(|text| {
        let (at, digest) = text.trim_end().rsplit_once(' ')?;
        (at == stamp && digest.len() == 64).then(|| digest.to_owned())
    });
    if let Some(digest) = remembered {
        return Ok(digest);
    }
    let digest = crate::sys::state::file_digest(exe)?;
    // Not remembered only costs the next run the hashing.
    let _ = state::write_atomic(memo, format!("{stamp} {digest}\n").as_bytes());
    Ok(digest)
}

/// The key of one cell's result within a run of `digest`.
pub(crate) fn key(digest: &str, cell: &Cell, set: &ResolvedSet) -> String {
    let mut hasher = Sha256::new();
    for part in [digest, &cell.id, &cell.profile, &set.to_requirements()] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The recorded result for `key`, if one exists that this machine's harness
/// signed; a file it did not sign (copied, committed, edited) is not read.
pub(crate) fn load(dirs: &StateDirs, key: &str) -> Option<Recorded> {
    let bytes = std::fs::read(dirs.results_dir().join(format!("{key}.json"))).ok()?;
    let (tag, contents) = bytes.split_at(bytes.iter().position(|byte| *byte == b'\n')?);
    let tag = hex::decode(tag).ok()?;
    signer(&signing_key().ok()?, key, &contents[1..])
        .verify_slice(&tag)
        .ok()?;
    serde_json::from_slice(&contents[1..]).ok()
}

/// Records a result, whole or not at all, signed for this machine.
pub(crate) fn store(dirs: &StateDirs, key: &str, recorded: &Recorded) -> anyhow::Result<()> {
    let path = dirs.results_dir().join(format!("{key}.json"));
    let contents = serde_json::to_vec(recorded)?;
    let tag = signer(&signing_key()?, key, &contents)
        .finalize()
        .into_bytes();
    let mut signed = hex::encode(tag).into_bytes();
    signed.push(b'\n');
    signed.extend_from_slice(&contents);
    state::write_atomic(&path, &signed)
}

type Signer = hmac::Hmac<Sha256>;

/// An HMAC over a result's key and contents: a signed result cannot be
/// moved to another key.
fn signer(secret: &[u8], key: &str, contents: &[u8]) -> Signer {
    let mut mac = Signer::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&(key.len() as u64).to_le_bytes());
    mac.update(key.as_bytes());
    mac.update(contents);
    mac
}

/// The secret results are signed with: made once per user, kept in a
/// folder only that user may read, outside every checkout.
fn signing_key() -> anyhow::Result<Vec<u8>> {
    static SECRET: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if let Some(secret) = SECRET.get() {
        return Ok(secret.clone());
    }
    let secret = state::private_secret(&state::user_state_dir()?.join("results-key"))?;
    Ok(SECRET.get_or_init(|| secret).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_read_only_as_this_machine_signed_it() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = StateDirs {
            state: dir.path().to_owned(),
            cache: dir.path().to_owned(),
        };
        let recorded = Recorded {
            report: serde_json::from_value(serde_json::json!({
                "id": "bcrypt-5.0.0", "name": "bcrypt 5.0.0", "baseline": false,
                "pins": [], "changes": [], "new_warnings": [], "environment": null,
                "scenarios": [], "duration_ms": 1
            }))
            .unwrap(),
            contents: BTreeMap::new(),
            noise: Vec::new(),
            preloading_off: None,
        };
        let key = "a".repeat(64);
        store(&dirs, &key, &recorded).unwrap();
        assert!(load(&dirs, &key).is_some(), "what it signed is read back");

        let path = dirs.results_dir().join(format!("{key}.json"));
        let signed = fs_err::read(&path).unwrap();
        // Moved to another key: the signature names the key.
        let other = "b".repeat(64);
        fs_err::write(dirs.results_dir().join(format!("{other}.json")), &signed).unwrap();
        assert!(load(&dirs, &other).is_none());
        // Edited, or written without the secret (as a pull request would
        // commit it): not read.
        let text = String::from_utf8(signed.clone()).unwrap();
        fs_err::write(&path, text.replace("bcrypt 5.0.0", "bcrypt 5.0.1")).unwrap();
        assert!(load(&dirs, &key).is_none());
        let (_, contents) = text.split_once('\n').unwrap();
        fs_err::write(&path, contents).unwrap();
        assert!(load(&dirs, &key).is_none());
    }

    #[test]
    fn an_executable_is_hashed_once_per_build() {
        let dir = tempfile::tempdir().unwrap();
        let (exe, memo) = (dir.path().join("harness"), dir.path().join("memo"));
        fs_err::write(&exe, b"one build").unwrap();
        let digest = remembered_digest(&exe, &memo).unwrap();
        assert_eq!(digest, crate::sys::state::file_digest(&exe).unwrap());

        // The same file as it was: the memo is read, not the file.
        let text = fs_err::read_to_string(&memo).unwrap();
        let remembered = "0".repeat(64);
        fs_err::write(&memo, text.replace(&digest, &remembered)).unwrap();
        assert_eq!(remembered_digest(&exe, &memo).unwrap(), remembered);

        // Rebuilt (another size, another time): hashed again.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs_err::write(&exe, b"another build").unwrap();
        let rebuilt = remembered_digest(&exe, &memo).unwrap();
        assert_eq!(rebuilt, crate::sys::state::file_digest(&exe).unwrap());
        assert_ne!(rebuilt, digest);
    }
}
