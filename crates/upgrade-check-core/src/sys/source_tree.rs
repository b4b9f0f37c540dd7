//! What of a service's folder is its source: decided in one place for every
//! copy a scenario run starts from and every digest that keys recorded
//! results, so that the two never disagree.
//!
//! In a git repository the source is what git would hand a fresh clone plus
//! the untracked files it does not ignore: a developer's ignored `.env` or
//! dev database is not copied, so a local run answers as CI's does. Outside
//! one, every file is. Either way caches and environments are left out
//! (`.git`, `__pycache__`, tool caches, `node_modules`, a folder holding a
//! virtual environment's `pyvenv.cfg` or a build directory's `CACHEDIR.TAG`),
//! and the harness's own folders. A symlink that stays inside the folder is
//! copied as a link to the same place in the copy; one that leads outside it,
//! or nowhere, is left out and named.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

use anyhow::Context as _;

/// Folders that are caches or installed packages, never source, by name.
const NOT_SOURCE: &[&str] = &[
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    "node_modules",
];

/// Files whose presence makes a folder an environment or a build output:
/// a virtual environment's, and the cache-directory tag cargo (and other
/// tools) put in their output folders.
const MARKERS: &[&str] = &["pyvenv.cfg", "CACHEDIR.TAG"];

/// The harness's own folders (state, cache), which may lie inside the
/// service's tree: never copied with it, never hashed as its source.
static HARNESS_DIRS: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());

/// Keeps `dirs` out of every source tree read from now on.
pub(crate) fn keep_out(dirs: &[&Path]) {
    let mut known = HARNESS_DIRS.write().unwrap_or_else(|e| e.into_inner());
    for dir in dirs {
        // Not made yet: a folder that does not exist is known by its
        // absolute path, which is what it will canonicalise to unless a
        // symlink leads there.
        let dir = dir
            .canonicalize()
            .or_else(|_| std::path::absolute(dir))
            .unwrap_or_else(|_| dir.to_path_buf());
        if !known.contains(&dir) {
            known.push(dir);
        }
    }
}

/// Whether the folder `dir` is one of the harness's own.
fn is_harness_dir(dir: &Path) -> bool {
    let known = HARNESS_DIRS.read().unwrap_or_else(|e| e.into_inner());
    !known.is_empty() && dir.canonicalize().is_ok_and(|dir| known.contains(&dir))
}

/// One entry of the source, relative to its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File,
    /// A symlink, with its target rewritten relative to the link's own
    /// folder so that in a copy it points inside the copy.
    Link(PathBuf),
}

/// Something in the folder that is not copied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeftOut {
    pub path: PathBuf,
    pub why: String,
}

/// A folder's source files, read once.
#[derive(Debug, Clone)]
pub(crate) struct SourceTree {
    root: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
    left_out: Vec<LeftOut>,
}

impl SourceTree {
    /// Lists the source under `root`; an absent folder has none.
    pub(crate) fn read(root: &Path) -> anyhow::Result<SourceTree> {
        let mut tree = SourceTree {
            root: root.to_owned(),
            entries: BTreeMap::new(),
            left_out: Vec::new(),
        };
        if !root.is_dir() {
            return Ok(tree);
        }
        let real_root = fs_err::canonicalize(root)?;
        let candidates = match git_listed(root) {
            Some(listed) => listed,
            None => walked(root)?,
        };
        let mut skipped_dirs: BTreeMap<PathBuf, bool> = BTreeMap::new();
        for relative in candidates {
            if in_skipped_dir(root, &relative, &mut skipped_dirs) {
                continue;
            }
            let path = root.join(&relative);
            let Ok(meta) = fs_err::symlink_metadata(&path) else {
                // Tracked but deleted in the working tree.
                continue;
            };
            if meta.file_type().is_symlink() {
                match link_inside(&real_root, &relative, &path) {
                    Ok(target) => {
                        tree.entries.insert(relative, Entry::Link(target));
                    }
                    Err(why) => tree.left_out.push(LeftOut {
                        path: relative,
                        why,
                    }),
                }
            } else if meta.is_file() {
                tree.entries.insert(relative, Entry::File);
            } else if meta.is_dir() {
                // A nested repository git lists as one folder: all of it.
                for inner in walked(&path)? {
                    let inner = relative.join(inner);
                    if !in_skipped_dir(root, &inner, &mut skipped_dirs)
                        && fs_err::symlink_metadata(root.join(&inner)).is_ok_and(|m| m.is_file())
                    {
                        tree.entries.insert(inner, Entry::File);
                    }
                }
            } else {
                tree.left_out.push(LeftOut {
                    path: relative,
                    why: "neither a file, a folder nor a symlink".to_owned(),
                });
            }
        }
        Ok(tree)
    }

    /// What is not copied that a person might expect to be: symlinks that
    /// lead out or nowhere, sockets and the like.
    pub(crate) fn left_out(&self) -> &[LeftOut] {
        &self.left_out
    }

    /// Copies the source into `to` (made if missing), files over files.
    pub(crate) fn copy_to(&self, to: &Path) -> anyhow::Result<()> {
        fs_err::create_dir_all(to)?;
        for (relative, entry) in &self.entries {
            let target = to.join(relative);
            if let Some(parent) = target.parent() {
                fs_err::create_dir_all(parent)?;
            }
            match entry {
                Entry::File => {
                    fs_err::copy(self.root.join(relative), &target)?;
                }
                Entry::Link(points_to) => {
                    let _ = fs_err::remove_file(&target);
                    std::os::unix::fs::symlink(points_to, &target).with_context(|| {
                        format!("cannot make the link {} in the copy", target.display())
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Feeds the source that `keep` accepts into `hasher`: relative paths and
    /// contents (a link's target for a link), in path order.
    pub(crate) fn hash_into(
        &self,
        hasher: &mut impl sha2::Digest,
        keep: impl Fn(&Path) -> bool,
    ) -> anyhow::Result<()> {
        for (relative, entry) in &self.entries {
            let path = self.root.join(relative);
            if !keep(&path) {
                continue;
            }
            let contents = match entry {
                Entry::File => fs_err::read(&path)?,
                Entry::Link(points_to) => [b"-> ", points_to.as_os_str().as_bytes()].concat(),
            };
            for part in [relative.as_os_str().as_bytes(), &contents[..]] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        }
        Ok(())
    }
}

/// The files git would check out plus the untracked ones it does not
/// ignore, relative to `root`; `None` outside a repository or without git.
fn git_listed(root: &Path) -> Option<Vec<PathBuf>> {
    let output = std::process::Command::new("git")
        // No fsmonitor hook: listing runs nothing the repository configures.
        .args(["-c", "core.fsmonitor=false", "-c", "core.quotePath=false"])
        .arg("-C")
        .arg(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mut listed: Vec<PathBuf> = output
        .stdout
        .split(|byte| *byte == 0)
        .filter(|name| !name.is_empty())
        .map(|name| PathBuf::from(OsStr::from_bytes(name.strip_suffix(b"/").unwrap_or(name))))
        .collect();
    listed.sort();
    listed.dedup();
    Some(listed)
}

/// Every file and symlink under `root` (not following links), relative to
/// it, without descending into folders left out (a virtual environment's
/// thousands of files are never read).
fn walked(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        for entry in fs_err::read_dir(root.join(&dir))? {
            let entry = entry?;
            let relative = dir.join(entry.file_name());
            if !entry.file_type()?.is_dir() {
                found.push(relative);
            } else if !is_left_out(&entry.path(), &entry.file_name()) {
                pending.push(relative);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether the folder at `path` (named `name`) is a cache, an environment
/// or the harness's own: by its name, a marker file in it, or the state
/// and cache folders the harness uses.
fn is_left_out(path: &Path, name: &OsStr) -> bool {
    NOT_SOURCE.iter().any(|skip| name == *skip)
        || MARKERS.iter().any(|marker| path.join(marker).is_file())
        || is_harness_dir(path)
}

/// Whether a folder on the way to `relative` is left out: by name, by a
/// marker file, or as one of the harness's own. Answers are kept per folder.
fn in_skipped_dir(root: &Path, relative: &Path, known: &mut BTreeMap<PathBuf, bool>) -> bool {
    let mut dir = PathBuf::new();
    let components: Vec<Component> = relative.components().collect();
    for component in &components[..components.len().saturating_sub(1)] {
        dir.push(component);
        let skipped = *known
            .entry(dir.clone())
            .or_insert_with(|| is_left_out(&root.join(&dir), component.as_os_str()));
        if skipped {
            return true;
        }
    }
    false
}

/// Where the link at `relative` points, relative to its own folder, when
/// that is inside the root; otherwise why it is left out.
fn link_inside(real_root: &Path, relative: &Path, path: &Path) -> Result<PathBuf, String> {
    let written = fs_err::read_link(path).map_err(|err| err.to_string())?;
    let Ok(real) = fs_err::canonicalize(path) else {
        return Err(format!(
            "a symlink to {}, which does not exist",
            written.display()
        ));
    };
    let Ok(inside) = real.strip_prefix(real_root) else {
        return Err(format!(
            "a symlink to {}, outside the service's folder",
            written.display()
        ));
    };
    let depth = relative.components().count().saturating_sub(1);
    let mut target: PathBuf = std::iter::repeat_n("..", depth).collect();
    target.push(inside);
    if target.as_os_str().is_empty() {
        target.push(".");
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn files(tree: &SourceTree) -> Vec<String> {
        tree.entries
            .iter()
            .map(|(path, entry)| match entry {
                Entry::File => path.display().to_string(),
                Entry::Link(to) => format!("{} -> {}", path.display(), to.display()),
            })
            .collect()
    }

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, text).unwrap();
    }

    #[test]
    fn caches_and_environments_are_left_out_and_links_kept_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("service");
        write(&root, "app/main.py", "print(1)\n");
        write(&root, "app/__pycache__/main.cpython-311.pyc", "x");
        write(&root, "env/pyvenv.cfg", "home = /usr\n");
        write(&root, "env/lib/site.py", "x");
        write(&root, "target/CACHEDIR.TAG", "Signature");
        write(&root, "target/debug/service", "x");
        // A package that happens to be named `target` is source.
        write(&root, "app/target/__init__.py", "");
        write(&root, "web/node_modules/left/index.js", "x");
        write(dir.path(), "secret.txt", "outside");
        symlink("app/main.py", root.join("app-main.py")).unwrap();
        fs_err::create_dir_all(root.join("static")).unwrap();
        symlink(root.join("app"), root.join("static/app")).unwrap();
        symlink("../secret.txt", root.join("peek.txt")).unwrap();
        symlink("nowhere.txt", root.join("dangling.txt")).unwrap();

        let tree = SourceTree::read(&root).unwrap();
        assert_eq!(
            files(&tree),
            // In path order, component by component.
            [
                "app/main.py",
                "app/target/__init__.py",
                "app-main.py -> app/main.py",
                "static/app -> ../app",
            ]
        );
        let left: Vec<String> = tree
            .left_out()
            .iter()
            .map(|left| format!("{}: {}", left.path.display(), left.why))
            .collect();
        assert_eq!(
            left,
            [
                "dangling.txt: a symlink to nowhere.txt, which does not exist",
                "peek.txt: a symlink to ../secret.txt, outside the service's folder",
            ]
        );

        let copy = dir.path().join("copy");
        tree.copy_to(&copy).unwrap();
        assert_eq!(
            fs_err::read_to_string(copy.join("static/app/main.py")).unwrap(),
            "print(1)\n",
            "the link points inside the copy"
        );
        assert_eq!(
            fs_err::read_link(copy.join("static/app")).unwrap(),
            Path::new("../app")
        );
        assert!(!copy.join("peek.txt").exists());
    }

    #[test]
    fn in_a_repository_ignored_files_are_left_out_and_untracked_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".gitignore", ".env\n*.sqlite3\n");
        write(root, "app.py", "tracked\n");
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .args(args)
                .current_dir(root)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .unwrap();
            assert!(status.status.success(), "{status:?}");
        };
        git(&["init", "--quiet"]);
        git(&["add", "."]);
        write(root, ".env", "SECRET=mine\n");
        write(root, "dev.sqlite3", "rows");
        write(root, "new_module.py", "untracked\n");
        let tree = SourceTree::read(root).unwrap();
        assert_eq!(files(&tree), [".gitignore", "app.py", "new_module.py"]);

        // The digest covers what is copied, and only that.
        let digest = |tree: &SourceTree| {
            use sha2::Digest as _;
            let mut hasher = sha2::Sha256::new();
            tree.hash_into(&mut hasher, |_| true).unwrap();
            hex::encode(hasher.finalize())
        };
        let before = digest(&tree);
        write(root, ".env", "SECRET=changed\n");
        assert_eq!(digest(&SourceTree::read(root).unwrap()), before);
        write(root, "new_module.py", "edited\n");
        assert_ne!(digest(&SourceTree::read(root).unwrap()), before);
    }
}
