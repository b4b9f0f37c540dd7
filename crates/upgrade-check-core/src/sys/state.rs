//! Where runtime state lives, and the two ways the harness writes it safely.
//!
//! Reports and logs go under the state folder (`target/upgrade-check/` by
//! default); tools, resolutions and environments go under the cache folder,
//! which defaults to the same place and may be shared between runs. Nothing
//! here writes into the source tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use anyhow::Context;

use crate::sys::redact;

#[derive(Debug, Clone)]
pub struct StateDirs {
    /// Reports, logs: one run's output.
    pub state: PathBuf,
    /// uv, resolutions, environments: content-addressed, shared between runs.
    pub cache: PathBuf,
}

impl StateDirs {
    pub fn report_dir(&self) -> PathBuf {
        self.state.join("report")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.state.join("logs")
    }

    pub fn tools_dir(&self) -> PathBuf {
        self.cache.join("tools")
    }

    pub fn resolutions_dir(&self) -> PathBuf {
        self.cache.join("resolutions")
    }

    /// Cached answers of the package index: which versions a package has.
    pub fn index_dir(&self) -> PathBuf {
        self.cache.join("index")
    }

    /// The baselines' checks (noise, preloading's verdict), by the key of
    /// their results: shared by every checkout of the same inputs.
    pub fn baseline_checks_dir(&self) -> PathBuf {
        self.cache.join("baseline-checks")
    }

    /// Results of cells, by the hash of everything that decides them.
    pub fn results_dir(&self) -> PathBuf {
        self.state.join("results")
    }

    pub fn envs_dir(&self) -> PathBuf {
        self.cache.join("envs")
    }

    /// Cargo's build output for cargo services, shared by every cell's build
    /// so that unchanged crates compile once.
    pub fn cargo_target_dir(&self) -> PathBuf {
        self.cache.join("cargo-target")
    }

    /// The lock held while an environment is built or checked: `envs/<id>.lock`
    /// beside `envs/<id>/`.
    pub fn env_lock(&self, id: &str) -> PathBuf {
        self.envs_dir().join(format!("{id}.lock"))
    }

    /// The lock every run holds, shared, while its services may run from an
    /// environment: `envs/<id>.use`. `gc` removes none that is held.
    pub fn env_use(&self, id: &str) -> PathBuf {
        self.envs_dir().join(format!("{id}.use"))
    }

    /// Scratch space for one run: service copies, databases. Removed on drop,
    /// or by `remove_temp_dirs` on a hard exit.
    pub fn scratch(&self) -> anyhow::Result<TempDir> {
        let parent = self.state.join("tmp");
        fs_err::create_dir_all(&parent)?;
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&parent)
            .with_context(|| format!("cannot create a temp folder in {}", parent.display()))?;
        Ok(TempDir::registered(dir))
    }
}

/// A folder in the system's temp folder for one build step (a resolution's
/// input, a copy of the service to build), removed on drop and also by
/// [`remove_temp_dirs`], so that an interrupted build leaves none.
pub(crate) fn temp_dir() -> anyhow::Result<TempDir> {
    // Made and registered under the quitting lock: a folder made while a hard
    // exit removes the registered ones would otherwise be left behind.
    unless_quitting(|| {
        let dir = tempfile::tempdir().context("cannot create a temp folder")?;
        Ok(TempDir::registered(dir))
    })
}

/// A temp folder that is also removed by [`remove_temp_dirs`].
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn registered(dir: tempfile::TempDir) -> TempDir {
        register_temp_dir(dir.path());
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Temp folders made by this run. Dropping their [`TempDir`] removes them;
/// [`remove_temp_dirs`] removes them again at exit, in case a task that was
/// still winding down wrote into one after that, and on a hard exit.
static TEMP_DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Remembers a temp folder that a hard exit must still remove.
pub(crate) fn register_temp_dir(path: &Path) {
    TEMP_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_owned());
}

/// Set once a hard exit has removed the temp folders: from then on nothing
/// may write into one. Writers hold it shared while they write.
static QUITTING: RwLock<bool> = RwLock::new(false);

/// Runs `write`, which creates files in a temp folder, unless the harness is
/// quitting at once (an error then): a task still winding down on another
/// thread must not recreate a folder the hard exit just removed.
pub(crate) fn unless_quitting<T>(write: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let quitting = QUITTING.read().unwrap_or_else(|e| e.into_inner());
    if *quitting {
        anyhow::bail!("the harness is quitting");
    }
    write()
}

/// Removes every registered temp folder for good, for quitting without
/// unwinding: waits for writes in flight, forbids new ones, removes.
pub(crate) fn remove_temp_dirs_for_good() {
    let mut quitting = QUITTING.write().unwrap_or_else(|e| e.into_inner());
    *quitting = true;
    remove_temp_dirs();
}

/// Removes every registered temp folder. A child killed a moment ago may
/// still finish the write it was in (a file made as its folder is
/// emptied), so a folder that is still there is tried again, for a while.
pub(crate) fn remove_temp_dirs() {
    let dirs = std::mem::take(&mut *TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    for dir in dirs {
        for _ in 0..25 {
            let _ = std::fs::remove_dir_all(&dir);
            if !dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Temp files [`write_atomic`] makes are named `.upgrade-check-<pid>-…`, so
/// that a run can remove the ones a killed run left ([`remove_stale_temp_files`]).
const TEMP_FILE_PREFIX: &str = ".upgrade-check-";

/// Writes a whole file or nothing: a temp file beside it, synced, then renamed.
///
/// A reader (or a crash) sees the old contents or the new, never a mix. The
/// contents pass through [`redact::scrub_bytes`] first: no file the harness
/// writes can hold a registered secret. The file gets the permissions a plain
/// `create` would (0666 less the umask), not the temp file's private 0600.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_whole(path, contents, true)
}

/// [`write_atomic`] for a file that must not exist yet: when it does, it is
/// left as it is and the error says so.
pub(crate) fn write_new(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_whole(path, contents, false)
}

/// [`write_atomic`] for a file only this user may read (0600): settings
/// that may hold a registry's token.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_with_mode(path, contents, true, 0o600)
}

fn write_whole(path: &Path, contents: &[u8], replace: bool) -> anyhow::Result<()> {
    write_with_mode(path, contents, replace, 0o666 & !umask())
}

fn write_with_mode(path: &Path, contents: &[u8], replace: bool, mode: u32) -> anyhow::Result<()> {
    let contents = &*redact::scrub_bytes(contents);
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent folder", path.display()))?;
    fs_err::create_dir_all(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_FILE_PREFIX}{}-", std::process::id()))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temp file in {}", dir.display()))?;
    stall_if_asked(path, &mut temp, contents);
    let mode = std::fs::Permissions::from_mode(mode);
    temp.write_all(contents)
        .and_then(|()| temp.as_file().set_permissions(mode))
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if replace {
        temp.persist(path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
    } else {
        temp.persist_noclobber(path)
            .with_context(|| format!("{} exists already", path.display()))?;
    }
    Ok(())
}

/// The process's umask, read without changing it (`/proc/self/status`);
/// 022 where that cannot be read.
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status.lines().find_map(|line| {
                    u32::from_str_radix(line.strip_prefix("Umask:")?.trim(), 8).ok()
                })
            })
            .unwrap_or(0o022)
    })
}

/// The `stall-in-write=<file name>` failpoint: half the contents are in the
/// temp file when the write stops, so a test can kill the harness there.
fn stall_if_asked(path: &Path, temp: &mut tempfile::NamedTempFile, contents: &[u8]) {
    let asked = crate::sys::failpoint::failpoint("stall-in-write");
    if asked.is_some_and(|name| path.file_name().is_some_and(|file| file == name.as_str())) {
        let _ = temp.write_all(&contents[..contents.len() / 2]);
        let _ = temp.as_file().sync_all();
        crate::sys::failpoint::announce(&format!(
            "failpoint stall-in-write: {} half written",
            path.display()
        ));
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

/// Removes the temp files a killed run's [`write_atomic`] left in `dirs`;
/// those of a live process (another run writing now) stay.
pub(crate) fn remove_stale_temp_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let writer = name
                .strip_prefix(TEMP_FILE_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = writer
                && !crate::sys::sweep::is_running(pid)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed.push(entry.path());
            }
        }
    }
    removed
}

/// Feeds every source file under `dir` that `keep` accepts (as
/// [`copy_tree`] copies it) into `hasher`: relative paths and contents, in
/// path order.
pub(crate) fn hash_tree(
    dir: &Path,
    hasher: &mut impl sha2::Digest,
    keep: impl Fn(&Path) -> bool,
) -> anyhow::Result<()> {
    super::source_tree::SourceTree::read(dir)?.hash_into(hasher, keep)
}

/// The user's own folder for what must never live in a checkout (the key
/// recorded results are signed with): `$XDG_STATE_HOME/upgrade-check`, else
/// `~/.local/state/upgrade-check`; made 0700, refused when it is a link or
/// another user's.
pub(crate) fn user_state_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
        })
        .context("neither XDG_STATE_HOME nor HOME is set: there is no private folder for the key that signs recorded results")?;
    let dir = base.join("upgrade-check");
    fs_err::create_dir_all(&dir)?;
    fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let meta = fs_err::symlink_metadata(&dir)?;
    use std::os::unix::fs::MetadataExt;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
        anyhow::bail!(
            "{} is not a folder of this user's own; remove it",
            dir.display()
        );
    }
    Ok(dir)
}

/// A random secret kept in `path` (made 0600 on first use), read back after.
pub(crate) fn private_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = fs_err::read_to_string(path)
        && let Ok(secret) = hex::decode(text.trim())
        && secret.len() == 32
    {
        return Ok(secret);
    }
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|err| anyhow::anyhow!("no random bytes: {err}"))?;
    let staging = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        use fs_err::os::unix::fs::OpenOptionsExt;
        let mut file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)?;
        file.write_all(hex::encode(&secret).as_bytes())?;
    }
    // Two runs making it at once: the first one kept is everyone's.
    if fs_err::hard_link(&staging, path).is_err() {
        let _ = fs_err::remove_file(&staging);
        return private_secret(path);
    }
    let _ = fs_err::remove_file(&staging);
    Ok(secret)
}

/// Refuses a state or cache folder the repository controls: one that holds
/// files git tracks (a committed result or environment would be taken for
/// this machine's), or one reached through a symlink git tracks (every
/// write would go where the repository points it).
pub(crate) fn refuse_repository_controlled(dirs: &StateDirs, near: &Path) -> anyhow::Result<()> {
    let near = if near.as_os_str().is_empty() {
        Path::new(".")
    } else {
        near
    };
    // In a process group of its own like every child, and bounded in time.
    let git = |args: &[&std::ffi::OsStr]| {
        crate::sys::process::run_captured(
            duct::cmd("git", args).dir(near).stdin_null(),
            std::time::Duration::from_secs(30),
        )
        .ok()
        .flatten()
        .filter(|output| output.status.success())
        .map(|output| output.stdout)
    };
    let Some(top) = git(&["rev-parse".as_ref(), "--show-toplevel".as_ref()]) else {
        return Ok(());
    };
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim_end());
    let top = fs_err::canonicalize(&top).unwrap_or(top);
    for (what, dir) in [("state", &dirs.state), ("cache", &dirs.cache)] {
        let Ok(inside) = dir.strip_prefix(&top) else {
            continue;
        };
        let mut path = top.clone();
        for part in inside.components() {
            path.push(part);
            let is_link = std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_symlink());
            let tracked = || {
                git(&[
                    "ls-files".as_ref(),
                    "--error-unmatch".as_ref(),
                    "--".as_ref(),
                    path.as_os_str(),
                ])
                .is_some()
            };
            if is_link && tracked() {
                anyhow::bail!(
                    "{} is a symlink committed to the repository, and the {what} folder {} lies behind it: \
                     the harness would write where the repository points; remove the link or pass --{what}-dir outside the checkout",
                    path.display(),
                    dir.display()
                );
            }
        }
        if let Some(listed) = git(&[
            "ls-files".as_ref(),
            "-z".as_ref(),
            "--".as_ref(),
            dir.as_os_str(),
        ]) && let Some(first) = listed
            .split(|byte| *byte == 0)
            .find(|name| !name.is_empty())
        {
            anyhow::bail!(
                "the {what} folder {} holds files tracked by git (first: {}): what is recorded there must be this machine's, \
                 not the repository's; remove them from git or pass --{what}-dir outside the checkout",
                dir.display(),
                String::from_utf8_lossy(first)
            );
        }
    }
    Ok(())
}

/// What a built tree is, file by file, without reading the files: each
/// entry's relative path with its kind, size, mode, inode, and modification
/// and change times. A write to any file changes its change time, which no
/// program can set back, so a cached environment that a service changed
/// (a module appended to) is told from the one that was built.
pub(crate) fn tree_listing(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    use std::os::unix::fs::MetadataExt;
    let mut listing = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in fs_err::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            let meta = fs_err::symlink_metadata(&path)?;
            let relative = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let link = if meta.is_symlink() {
                fs_err::read_link(&path)?.to_string_lossy().into_owned()
            } else {
                String::new()
            };
            listing.insert(
                relative,
                format!(
                    "{:o} {} {} {}.{} {}.{} {link}",
                    meta.mode(),
                    meta.len(),
                    meta.ino(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.ctime(),
                    meta.ctime_nsec()
                ),
            );
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    Ok(listing)
}

/// The first line of a listing whose lines carry each file's digest.
const LISTING_WITH_DIGESTS: &str = "# listing v2: digest, stamp, path";

/// Keeps `dir`'s listing in `record`, to be checked with [`changed_since`],
/// with each regular file's digest: a file whose only change is its change
/// time (a hard link to it made elsewhere, by a backup, a deduplicating
/// tool or a profiler's cache) is then told from one whose bytes changed.
pub(crate) fn record_listing(dir: &Path, record: &Path) -> anyhow::Result<()> {
    let mut text = format!("{LISTING_WITH_DIGESTS}\n");
    for (path, stamp) in tree_listing(dir)? {
        let full = dir.join(&path);
        let digest = match fs_err::symlink_metadata(&full)?.is_file() {
            true => file_digest(&full)?,
            false => "-".to_owned(),
        };
        text.push_str(&format!("{digest}\t{stamp}\t{path}\n"));
    }
    write_atomic(record, text.as_bytes())
}

/// The SHA-256 of a file's bytes, in hex.
pub(crate) fn file_digest(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = fs_err::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut chunk)? {
            0 => break,
            read => hasher.update(&chunk[..read]),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A listed entry's stamp, and its digest when it is a regular file of a
/// listing that has them.
struct Recorded<'a> {
    stamp: &'a str,
    digest: Option<&'a str>,
}

/// The first path of `dir` that differs from the listing kept in `record`
/// (changed, added or removed), or None when it is as it was recorded. A
/// missing or unreadable record counts as a change: nothing vouches for it.
/// An entry whose stamp differs only in its change time is as recorded
/// when its bytes still have the recorded digest.
pub(crate) fn changed_since(dir: &Path, record: &Path) -> Option<String> {
    let Ok(text) = std::fs::read_to_string(record) else {
        return Some(format!(
            "{} (no record of how it was built)",
            record.display()
        ));
    };
    let with_digests = text.starts_with(LISTING_WITH_DIGESTS);
    let recorded: BTreeMap<&str, Recorded<'_>> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (digest, line) = match with_digests {
                true => {
                    let (digest, rest) = line.split_once('\t')?;
                    (Some(digest).filter(|digest| *digest != "-"), rest)
                }
                false => (None, line),
            };
            let (stamp, path) = line.split_once('\t')?;
            Some((path, Recorded { stamp, digest }))
        })
        .collect();
    let Ok(now) = tree_listing(dir) else {
        return Some(format!("{} (unreadable)", dir.display()));
    };
    let as_recorded = |path: &str, stamp: &str| {
        recorded.get(path).is_some_and(|was| {
            was.stamp == stamp
                || (without_change_time(was.stamp) == without_change_time(stamp)
                    && was.digest.is_some_and(|digest| {
                        file_digest(&dir.join(path)).is_ok_and(|now| now == digest)
                    }))
        })
    };
    now.iter()
        .find(|(path, stamp)| !as_recorded(path, stamp))
        .map(|(path, _)| path.clone())
        .or_else(|| {
            recorded
                .keys()
                .find(|path| !now.contains_key(**path))
                .map(|path| format!("{path} (removed)"))
        })
}

/// A stamp of [`tree_listing`] without its change time (its fifth field).
fn without_change_time(stamp: &str) -> String {
    stamp
        .splitn(6, ' ')
        .enumerate()
        .filter(|(field, _)| *field != 4)
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Refuses to write `path` when a symlink on its way leads out of
/// `boundary` (the folder a command writes the source tree in): the nearest
/// folder of `path` that exists must resolve inside it. Folders made below
/// that one are new, not links, and a rename replaces a link at `path`
/// itself rather than following it.
pub(crate) fn refuse_outside(boundary: &Path, path: &Path) -> anyhow::Result<()> {
    let real_boundary = fs_err::canonicalize(if boundary.as_os_str().is_empty() {
        Path::new(".")
    } else {
        boundary
    })
    .unwrap_or_else(|_| boundary.to_owned());
    // A relative path's last ancestor is "", the current folder.
    let existing = path
        .ancestors()
        .skip(1)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        })
        .find(|dir| dir.exists())
        .unwrap_or(boundary);
    let real = fs_err::canonicalize(existing).unwrap_or_else(|_| existing.to_owned());
    if real.starts_with(&real_boundary) {
        return Ok(());
    }
    anyhow::bail!(
        "{}: {} leads outside {} through a symlink (to {}); nothing was written",
        path.display(),
        existing.display(),
        real_boundary.display(),
        real.display()
    )
}

/// Serialises work on one cache entry between threads and between harness
/// processes; the lock dies with the process, so a killed run leaves none.
pub(crate) fn lock(path: &Path) -> anyhow::Result<File> {
    let file = lock_file(path)?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// Like [`lock`], shared: any number of holders, none while [`lock`] or a
/// `try_lock` holds it.
pub(crate) fn lock_shared(path: &Path) -> anyhow::Result<File> {
    let file = lock_file(path)?;
    file.lock_shared()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// The lock file at `path`, made with its folder when missing.
fn lock_file(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))
}

/// Keeps the harness's own folders (state, cache), which may lie inside
/// the service's tree, out of every copy and digest of it.
pub(crate) fn keep_out_of_source(dirs: &StateDirs) {
    super::source_tree::keep_out(&[&dirs.state, &dirs.cache]);
}

/// `path` relative to `base` for messages, or as it is when outside it.
pub fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Copies the source under `from` into `to`: what
/// `sys::source_tree` counts as source, links inside kept as links.
pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    super::source_tree::SourceTree::read(from)?.copy_to(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A built tree with a module, and its recorded listing beside it.
    fn recorded_tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let tree = root.path().join("venv");
        fs_err::create_dir_all(tree.join("lib")).unwrap();
        let module = tree.join("lib/module.py");
        fs_err::write(&module, "ANSWER = 42\n").unwrap();
        let record = root.path().join("contents");
        record_listing(&tree, &record).unwrap();
        assert_eq!(changed_since(&tree, &record), None);
        (root, tree, record)
    }

    #[test]
    fn a_hard_link_made_elsewhere_leaves_a_file_as_it_was_built() {
        let (root, tree, record) = recorded_tree();
        // Its change time moves (the link count changed), its bytes do not.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs_err::hard_link(tree.join("lib/module.py"), root.path().join("linked.py")).unwrap();
        assert_eq!(changed_since(&tree, &record), None);
    }

    #[test]
    fn a_file_rewritten_with_its_old_size_and_modification_time_is_changed() {
        let (_root, tree, record) = recorded_tree();
        let module = tree.join("lib/module.py");
        let modified = fs_err::metadata(&module).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs_err::write(&module, "ANSWER = 41\n").unwrap();
        // The modification time set back, as a careful writer would.
        File::options()
            .write(true)
            .open(&module)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert_eq!(
            changed_since(&tree, &record).as_deref(),
            Some("lib/module.py")
        );
    }

    #[test]
    fn a_listing_recorded_without_digests_still_counts_a_new_change_time() {
        let (root, tree, record) = recorded_tree();
        // As an older harness wrote it: stamps and paths only.
        let old: String = fs_err::read_to_string(&record)
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| format!("{}\n", line.split_once('\t').unwrap().1))
            .collect();
        fs_err::write(&record, old).unwrap();
        assert_eq!(changed_since(&tree, &record), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs_err::hard_link(tree.join("lib/module.py"), root.path().join("linked.py")).unwrap();
        assert_eq!(
            changed_since(&tree, &record).as_deref(),
            Some("lib/module.py")
        );
    }

    #[test]
    fn a_write_through_a_symlink_out_of_its_folder_is_refused() {
        let tree = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.path().join("link")).unwrap();
        let within = tree
            .path()
            .join("snapshots/alternatives/login/bcrypt-5.snap");
        assert!(
            refuse_outside(tree.path(), &within).is_ok(),
            "new folders inside"
        );
        let through = tree.path().join("link/alternatives/login/bcrypt-5.snap");
        let err = refuse_outside(tree.path(), &through)
            .unwrap_err()
            .to_string();
        assert!(err.contains("leads outside"), "{err}");
        // A config in the current folder: its paths are relative, their
        // folders not made yet.
        assert!(refuse_outside(Path::new(""), Path::new("no-folder-yet/new.toml")).is_ok());
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/report.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["report.json"]);
    }

    #[test]
    fn only_temp_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let stale = dir.path().join(format!(".upgrade-check-{dead_pid}-abc"));
        let live = dir
            .path()
            .join(format!(".upgrade-check-{}-def", std::process::id()));
        let other = dir.path().join("report.json");
        for path in [&stale, &live, &other] {
            std::fs::write(path, "x").unwrap();
        }
        let removed = remove_stale_temp_files(&[dir.path().to_owned()]);
        assert_eq!(removed, std::slice::from_ref(&stale));
        assert!(!stale.exists() && live.exists() && other.exists());
    }

    /// A disk that fills up mid-write leaves the old file whole.
    ///
    /// Needs root to mount a 64 KiB tmpfs (CI runs as root); elsewhere it says
    /// so and checks nothing.
    #[test]
    fn a_full_disk_leaves_the_old_file_whole() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: cannot mount a small tmpfs; the full-disk check did not run");
            return;
        }
        let mount_point = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(mount_point.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "mount a 64 KiB tmpfs");
        let path = mount_point.path().join("report.json");
        let outcome = std::panic::catch_unwind(|| {
            write_atomic(&path, b"the old report").unwrap();
            let err = write_atomic(&path, &vec![b'x'; 1 << 20]).unwrap_err();
            assert!(format!("{err:#}").contains("No space left"), "{err:#}");
            assert_eq!(std::fs::read(&path).unwrap(), b"the old report");
            let names: Vec<_> = std::fs::read_dir(mount_point.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["report.json"], "no half-written temp file is left");
        });
        let _ = std::process::Command::new("umount")
            .arg(mount_point.path())
            .status();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
