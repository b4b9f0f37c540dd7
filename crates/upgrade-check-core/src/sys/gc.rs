//! `upgrade-check gc`: keeps the cache bounded.
//!
//! Environments are the bulk of it. Each one notes when a run last used it;
//! gc removes those unused for longer than the age limit, then the least
//! recently used until the total fits the size limit, and half-built ones a
//! dead run left. An environment another run is building (its lock is held)
//! or may run services from (its use lock is held) is never touched. Resolutions, index answers, the baselines' checks and
//! recorded results are small and go by age alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::sys::state::StateDirs;

/// What gc may keep.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_age: Duration,
    pub max_bytes: u64,
    /// Say what would go, remove nothing.
    pub dry_run: bool,
}

/// What gc removed and kept.
#[derive(Debug, Default)]
pub struct Collected {
    pub removed: Vec<(PathBuf, u64, &'static str)>,
    pub kept_environments: usize,
    pub kept_bytes: u64,
}

/// The file an environment's last use is noted in (its modification time).
pub const USED_FILE: &str = "used";

struct Environment {
    dir: PathBuf,
    lock: PathBuf,
    use_lock: PathBuf,
    bytes: u64,
    last_used: SystemTime,
    complete: bool,
}

/// Collects in the cache folder, and in the state folder (recorded results)
/// only when `state_given`: a state folder gc was not given is another
/// project's, or this one's without the user asking.
pub fn collect(dirs: &StateDirs, policy: Policy, state_given: bool) -> anyhow::Result<Collected> {
    let mut collected = Collected::default();
    let now = SystemTime::now();
    let age = |time: SystemTime| now.duration_since(time).unwrap_or_default();

    let mut environments = environments(dirs)?;
    // Oldest use first: the first to go when over the size limit.
    environments.sort_by_key(|environment| environment.last_used);
    let mut total: u64 = environments
        .iter()
        .map(|environment| environment.bytes)
        .sum();
    for environment in environments {
        let half_built =
            !environment.complete && age(environment.last_used) > Duration::from_secs(3600);
        let reason = if half_built {
            Some("half-built")
        } else if age(environment.last_used) > policy.max_age {
            Some("unused for longer than the age limit")
        } else if total > policy.max_bytes {
            Some("least recently used, over the size limit")
        } else {
            None
        };
        // Both locks held while it goes: a run that comes meanwhile waits,
        // then finds it gone and builds it. The lock files stay: one removed
        // while a run waits on it would let the next run take another.
        let claimed = match reason {
            Some(_) => claim(&environment.lock).zip(claim(&environment.use_lock)),
            None => None,
        };
        match reason {
            Some(reason) if claimed.is_some() => {
                if !policy.dry_run {
                    fs_err::remove_dir_all(&environment.dir)?;
                }
                total -= environment.bytes;
                collected
                    .removed
                    .push((environment.dir, environment.bytes, reason));
            }
            _ => {
                collected.kept_environments += 1;
                collected.kept_bytes += environment.bytes;
            }
        }
    }
    let mut small = vec![
        dirs.resolutions_dir(),
        dirs.index_dir(),
        dirs.baseline_checks_dir(),
    ];
    if state_given {
        small.push(dirs.results_dir());
    }
    for dir in small {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta.modified().is_ok_and(|time| age(time) > policy.max_age);
            if meta.is_file() && old {
                if !policy.dry_run {
                    fs_err::remove_file(entry.path())?;
                }
                collected
                    .removed
                    .push((entry.path(), meta.len(), "older than the age limit"));
            }
        }
    }
    Ok(collected)
}

fn environments(dirs: &StateDirs) -> anyhow::Result<Vec<Environment>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dirs.envs_dir()) else {
        return Ok(found);
    };
    for entry in entries.filter_map(Result::ok) {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let complete = dir.join("complete");
        let used = dir.join(USED_FILE);
        let last_used = [&used, &complete, &dir]
            .into_iter()
            .find_map(|path| {
                std::fs::metadata(path)
                    .and_then(|meta| meta.modified())
                    .ok()
            })
            .unwrap_or(SystemTime::UNIX_EPOCH);
        found.push(Environment {
            bytes: size_of(&dir),
            complete: complete.exists(),
            lock: dirs.env_lock(&entry.file_name().to_string_lossy()),
            use_lock: dirs.env_use(&entry.file_name().to_string_lossy()),
            dir,
            last_used,
        });
    }
    Ok(found)
}

/// Another run holds the environment's lock: it is being built or checked now.
/// `lock` held exclusively for as long as the value lives; `None` when a
/// run holds it. A lock file that is not there is held by no one.
fn claim(lock: &Path) -> Option<Option<std::fs::File>> {
    let Ok(file) = std::fs::File::options().write(true).open(lock) else {
        return Some(None);
    };
    file.try_lock().ok().map(|()| Some(file))
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| size_of(&entry.path()))
                .sum()
        })
        .unwrap_or(0)
}
