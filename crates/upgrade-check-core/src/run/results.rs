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
//!
//! The baseline's check (the noise its double replay found, its verdict on
//! preloading) is also kept in the cache, by a key of its own that leaves
//! out what does not decide it (the config's matrix and exploration tables,
//! the accepted snapshots): every checkout of the same inputs given the
//! same cache folder (a CI clone that restores the default branch's cache,
//! another matrix of the same service) replays the baseline once instead
//! of twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use serde::de::DeserializeOwned;
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

/// What the baseline's double replay found: the noise it masks, and why it
/// turned preloading off, if it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BaselineCheck {
    pub noise: Vec<Noise>,
    pub preloading_off: Option<String>,
}

/// The digests of what a run's cells share as inputs: one for their
/// results, one for the baseline's check.
#[derive(Debug, Clone)]
pub(crate) struct RunDigests {
    pub results: String,
    pub check: String,
}

/// The keys of one cell's recorded result and of its check (the baseline's).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub result: String,
    pub check: String,
}

impl Keys {
    pub(crate) fn of(digests: &RunDigests, cell: &Cell, set: &ResolvedSet) -> Keys {
        Keys {
            result: key(&digests.results, cell, set),
            check: key(&digests.check, cell, set),
        }
    }
}

/// The digests of everything a run's cells share as inputs; `pin_files`
/// are the service's requirements files, left out. The harness counts by
/// its build (a digest of its own executable, remembered in `cache`), not
/// its version: a rebuilt harness that behaves differently must not reuse
/// what the old one judged. The variables it passes on to services count
/// with their values. The baseline's check is decided by the same inputs
/// but the config's matrix and exploration tables and the accepted
/// snapshots.
pub(crate) fn run_digests(
    config: &Config,
    source: &SourceTree,
    cache: &Path,
    python: &str,
    switches: &str,
    pin_files: &[PathBuf],
) -> anyhow::Result<RunDigests> {
    let passed: String = crate::exec::service::passed_through(&config.service.pass_env)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}\0"))
        .collect();
    let config_text = fs_err::read_to_string(&config.path)?;
    let (source, snapshots) = inputs_digests(config, source, pin_files)?;
    let harness = harness_build(cache)?;
    let shared = [harness.as_str(), python, switches, &passed];
    let digest_of = |parts: &[&str]| {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(hasher.finalize())
    };
    let results = [
        &["results-v3"],
        &shared[..],
        &[&config_text, &source, &snapshots],
    ]
    .concat();
    let check_config = without_tables(&config_text, &["matrix", "explore"]);
    let check = [
        &["baseline-check-v1"],
        &shared[..],
        &[&check_config, &source],
    ]
    .concat();
    Ok(RunDigests {
        results: digest_of(&results),
        check: digest_of(&check),
    })
}

/// A config's text without `tables`, in a canonical form (comments and
/// layout do not count either); the whole text when it does not parse.
fn without_tables(text: &str, tables: &[&str]) -> String {
    let Ok(mut document) = text.parse::<toml::Table>() else {
        return text.to_owned();
    };
    for table in tables {
        document.remove(*table);
    }
    toml::to_string(&document).unwrap_or_else(|_| text.to_owned())
}

/// The digests of the service's source with its scenarios, and of its
/// accepted snapshots.
fn inputs_digests(
    config: &Config,
    source: &SourceTree,
    pin_files: &[PathBuf],
) -> anyhow::Result<(String, String)> {
    let mut hasher = Sha256::new();
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
    let mut snapshots = Sha256::new();
    // Accepted snapshots only: pending ones are what runs write.
    state::hash_tree(&config.replay.snapshots, &mut snapshots, |path| {
        path.extension().is_some_and(|ext| ext == "snap")
    })?;
    Ok((
        hex::encode(hasher.finalize()),
        hex::encode(snapshots.finalize()),
    ))
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
fn key(digest: &str, cell: &Cell, set: &ResolvedSet) -> String {
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
    load_signed(&dirs.results_dir().join(format!("{key}.json")), key)
}

/// The recorded result a cell of `keys` takes instead of running, when
/// the run may take one.
pub(crate) fn reusable(settings: &super::RunSettings, keys: Option<&Keys>) -> Option<Recorded> {
    let keys = keys.filter(|_| settings.reuse_results)?;
    load(&settings.dirs, &keys.result)
}

/// Records a result, whole or not at all, signed for this machine.
pub(crate) fn store(dirs: &StateDirs, key: &str, recorded: &Recorded) -> anyhow::Result<()> {
    store_signed(
        &dirs.results_dir().join(format!("{key}.json")),
        key,
        recorded,
    )
}

/// The baseline's check recorded for `keys`: this project's recorded
/// result first, else what a run of the same inputs in another checkout
/// left in the cache; either only as this machine's harness signed it.
pub(crate) fn load_check(dirs: &StateDirs, keys: &Keys) -> Option<BaselineCheck> {
    if let Some(recorded) = load(dirs, &keys.result) {
        return Some(BaselineCheck {
            noise: recorded.noise,
            preloading_off: recorded.preloading_off,
        });
    }
    load_signed(
        &check_path(dirs, &keys.check),
        &check_signed_as(&keys.check),
    )
}

/// Keeps the baseline's check in the cache for other checkouts.
pub(crate) fn store_check(
    dirs: &StateDirs,
    key: &str,
    check: &BaselineCheck,
) -> anyhow::Result<()> {
    let path = check_path(dirs, key);
    fs_err::create_dir_all(dirs.baseline_checks_dir())?;
    store_signed(&path, &check_signed_as(key), check)
}

fn check_path(dirs: &StateDirs, key: &str) -> PathBuf {
    dirs.baseline_checks_dir().join(format!("{key}.json"))
}

/// A check is signed under a name of its own, so that no signed result
/// passes for a check or the other way round.
fn check_signed_as(key: &str) -> String {
    format!("baseline-check {key}")
}

/// `path`'s contents, when they carry this machine's signature for `key`.
fn load_signed<T: DeserializeOwned>(path: &Path, key: &str) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    let (tag, contents) = bytes.split_at(bytes.iter().position(|byte| *byte == b'\n')?);
    let tag = hex::decode(tag).ok()?;
    signer(&signing_key().ok()?, key, &contents[1..])
        .verify_slice(&tag)
        .ok()?;
    serde_json::from_slice(&contents[1..]).ok()
}

/// Writes `value` to `path` signed for `key`, whole or not at all.
fn store_signed<T: Serialize>(path: &Path, key: &str, value: &T) -> anyhow::Result<()> {
    let contents = serde_json::to_vec(value)?;
    let tag = signer(&signing_key()?, key, &contents)
        .finalize()
        .into_bytes();
    let mut signed = hex::encode(tag).into_bytes();
    signed.push(b'\n');
    signed.extend_from_slice(&contents);
    state::write_atomic(path, &signed)
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

    /// A recorded pass of the cell `name`, with no scenario.
    fn recorded(name: &str, baseline: bool) -> Recorded {
        Recorded {
            report: serde_json::from_value(serde_json::json!({
                "id": name.replace(' ', "-"), "name": name, "baseline": baseline,
                "pins": [], "changes": [], "new_warnings": [], "environment": null,
                "scenarios": [], "duration_ms": 1
            }))
            .unwrap(),
            contents: BTreeMap::new(),
            noise: Vec::new(),
            preloading_off: None,
        }
    }

    #[test]
    fn a_result_is_read_only_as_this_machine_signed_it() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = StateDirs {
            state: dir.path().to_owned(),
            cache: dir.path().to_owned(),
        };
        let recorded = recorded("bcrypt 5.0.0", false);
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
    fn the_check_s_config_leaves_out_the_matrix_exploration_and_comments_only() {
        let config = "[service]\ncommand = [\"app\"]\n[matrix.packages]\nbcrypt = [\"5.0.0\"]\n";
        let other_matrix = "# tried again\n[service]\ncommand = [\"app\"]\n\n[explore]\nbudget = 3\n[matrix.packages]\nflask = [\"3.0.0\"]\n";
        let other_service =
            "[service]\ncommand = [\"other\"]\n[matrix.packages]\nbcrypt = [\"5.0.0\"]\n";
        let tables = ["matrix", "explore"];
        assert_eq!(
            without_tables(config, &tables),
            without_tables(other_matrix, &tables)
        );
        assert_ne!(
            without_tables(config, &tables),
            without_tables(other_service, &tables)
        );
    }

    #[test]
    fn a_baseline_check_is_read_from_the_project_first_then_from_the_cache() {
        let (project, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cache = tempfile::tempdir().unwrap();
        let dirs_of = |state: &Path| StateDirs {
            state: state.to_owned(),
            cache: cache.path().to_owned(),
        };
        let (dirs, other) = (dirs_of(project.path()), dirs_of(other.path()));
        let keys = |result: &str, check: &str| Keys {
            result: result.repeat(64),
            check: check.repeat(64),
        };
        let (result, check_key) = ("b".repeat(64), "c".repeat(64));
        assert!(load_check(&other, &keys("b", "c")).is_none());
        let check = BaselineCheck {
            noise: Vec::new(),
            preloading_off: Some("forked differs".into()),
        };
        store_check(&dirs, &check_key, &check).unwrap();
        // Another checkout (another state folder) reads it from the cache.
        let read = load_check(&other, &keys("b", "c")).unwrap();
        assert_eq!(read.preloading_off.as_deref(), Some("forked differs"));

        // A signed result moved in as a check is no check: each is signed
        // under a name of its own.
        store(&dirs, &result, &recorded("baseline", true)).unwrap();
        let moved = "d".repeat(64);
        fs_err::copy(
            dirs.results_dir().join(format!("{result}.json")),
            check_path(&dirs, &moved),
        )
        .unwrap();
        assert!(load_check(&other, &keys("e", "d")).is_none());
        // The project's own recorded result speaks first.
        assert_eq!(
            load_check(&dirs, &keys("b", "c")).unwrap().preloading_off,
            None
        );
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
