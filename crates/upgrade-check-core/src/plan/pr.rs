//! Pull-request mode: the baseline file at a git ref against the working tree.
//!
//! The old pins are the baseline; every package the change asked for
//! becomes a cell of its own (that version alone on the old pins, with what
//! it needs moving along), and, when more than one moved, one more cell
//! resolves the new file as it is: the whole change. A package that moved
//! only because a package the change moved depends on it (what `cargo
//! update -p tokio` moves besides tokio) follows that package: it is never
//! a cell of its own, where the resolver could not even select it. Both files are parsed and validated before anything runs; git is
//! asked with arguments, never through a shell.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::input::baseline::BaselineFile;
use crate::input::source::{InputError, Source};
use crate::model::cell::{Cell, Pin, Plan};
use crate::model::package::{PackageName, Version};
use crate::model::setting::{Setting, SettingError};
use crate::sys::process;

/// One package's pin before and after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinChange {
    pub package: PackageName,
    pub before: Option<Version>,
    pub after: Option<Version>,
}

impl std::fmt::Display for PinChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |version: &Option<Version>| {
            version
                .as_ref()
                .map_or("(none)".to_owned(), ToString::to_string)
        };
        write!(
            f,
            "{} {} → {}",
            self.package,
            side(&self.before),
            side(&self.after)
        )
    }
}

/// The baseline file as the change found it.
pub(crate) struct Before {
    pub file: BaselineFile,
    /// How errors and reports name it: `REF:path/in/repo`.
    pub name: String,
}

/// Reads the baseline file (and its includes) at `git_ref` and validates it.
pub(crate) fn baseline_at(
    git_ref: &str,
    working: &Path,
    groups: &[String],
) -> anyhow::Result<Result<Before, InputError>> {
    check_ref(git_ref)?;
    let dir = working
        .parent()
        .context("the baseline file has no folder")?;
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let top = PathBuf::from(top.trim());
    let absolute = working
        .canonicalize()
        .with_context(|| format!("cannot find {}", working.display()))?;
    let in_repo = absolute
        .strip_prefix(top.canonicalize()?)
        .with_context(|| {
            format!(
                "{} is not inside the git repository at {}",
                working.display(),
                top.display()
            )
        })?
        .to_owned();
    let spec = format!("{git_ref}:{}", in_repo.display());
    let is_commit = |git_ref: &str| {
        let commit = format!("{git_ref}^{{commit}}");
        git(
            dir,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &commit,
            ],
        )
        .is_ok()
    };
    if !is_commit(git_ref) {
        // A fresh clone of a pull request's branch has the default branch
        // only as the remote's.
        let remote = format!("origin/{git_ref}");
        if is_commit(&remote) {
            bail!(
                "`{git_ref}` is not a commit in this repository, but `{remote}` is: pass `--since {remote}`"
            );
        }
        bail!(
            "`{git_ref}` is not a commit in this repository; on a shallow CI clone, fetch it first (`git fetch origin main`, or `fetch-depth: 0`)"
        );
    }
    let show = |in_repo: &Path| -> Result<Source, InputError> {
        let spec = format!("{git_ref}:{}", in_repo.display());
        let text = git(dir, &["show", "--end-of-options", &spec]).map_err(|err| {
            InputError::in_file(
                Path::new(&spec),
                format!("cannot read at {git_ref}: {err:#}"),
            )
        })?;
        Ok(Source {
            path: PathBuf::from(spec),
            text,
        })
    };
    let source = match show(&in_repo) {
        Ok(source) => source,
        Err(err) => return Ok(Err(err)),
    };
    let folder = in_repo.parent().unwrap_or(Path::new("")).to_owned();
    let read_include = |relative: &Path| show(&folder.join(relative));
    // Its path in the repository: the file name says how to read it.
    Ok(
        BaselineFile::parse_with(&in_repo, &source, &read_include, groups)
            .map(|file| Before { file, name: spec }),
    )
}

/// The service's manifests named `manifest` (`Cargo.toml`, `package.json`)
/// as they were at `git_ref`, where they differ from the working tree's:
/// what a lock-built service's baseline is built with (a Dependabot bump
/// raises a manifest's requirement with the lock). Paths are relative to `root`.
pub(crate) fn manifests_changed_since(
    git_ref: &str,
    root: &Path,
    manifest: &str,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    check_ref(git_ref)?;
    // Relative to the current folder, as `ls-tree` lists them without --full-name.
    let listed = git(
        root,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            "--end-of-options",
            git_ref,
            "--",
            ".",
        ],
    )?;
    let mut changed = Vec::new();
    for path in listed.lines().map(PathBuf::from) {
        if path.file_name() != Some(std::ffi::OsStr::new(manifest)) {
            continue;
        }
        let spec = format!("{git_ref}:./{}", path.display());
        let before = git(root, &["show", "--end-of-options", &spec])?;
        if std::fs::read_to_string(root.join(&path)).ok().as_deref() != Some(before.as_str()) {
            changed.push((path, before));
        }
    }
    Ok(changed)
}

/// The file at `path` (relative to `root`) as it was at `git_ref`; `None`
/// when the ref has no such file (a pull request added it).
pub(crate) fn file_at(git_ref: &str, root: &Path, path: &Path) -> anyhow::Result<Option<String>> {
    check_ref(git_ref)?;
    let path = format!("./{}", path.display());
    let listed = git(
        root,
        &[
            "ls-tree",
            "--name-only",
            "--end-of-options",
            git_ref,
            "--",
            &path,
        ],
    )?;
    if listed.trim().is_empty() {
        return Ok(None);
    }
    let spec = format!("{git_ref}:{path}");
    Ok(Some(git(root, &["show", "--end-of-options", &spec])?))
}

/// Packages whose pin differs between the two files, in name order.
///
/// A lock may hold one crate at several versions: a version that left is
/// paired with the one that came in within its semver compatibility range
/// (or, one out and one in, with each other), else with the newest one the
/// lock held already in that range (npm moving a copy onto a version
/// another copy had: `ms` 2.1.2 → 2.1.3 where `send` kept its own 2.1.3);
/// what stays unpaired was added or removed.
pub(crate) fn changes(before: &BaselineFile, after: &BaselineFile) -> Vec<PinChange> {
    let mut versions: BTreeMap<PackageName, (Vec<Version>, Vec<Version>)> = BTreeMap::new();
    for pin in &before.pins {
        let entry = versions.entry(pin.package.clone()).or_default();
        entry.0.push(pin.version.clone());
    }
    for pin in &after.pins {
        let entry = versions.entry(pin.package.clone()).or_default();
        entry.1.push(pin.version.clone());
    }
    let mut changes = Vec::new();
    for (package, (old, new)) in versions {
        let mut gone: Vec<Version> = old.iter().filter(|v| !new.contains(v)).cloned().collect();
        let mut came: Vec<Version> = new.iter().filter(|v| !old.contains(v)).cloned().collect();
        gone.sort();
        came.sort();
        let mut found = Vec::new();
        if let ([one_gone], [one_came]) = (&gone[..], &came[..]) {
            found.push((Some(one_gone.clone()), Some(one_came.clone())));
            gone.clear();
            came.clear();
        }
        for version in std::mem::take(&mut came) {
            match gone.iter().position(|old| old.is_compatible_with(&version)) {
                Some(index) => found.push((Some(gone.remove(index)), Some(version))),
                None => found.push((None, Some(version))),
            }
        }
        for version in gone {
            let kept = new
                .iter()
                .filter(|kept| old.contains(kept) && **kept > version)
                .filter(|kept| version.is_compatible_with(kept))
                .max()
                .cloned();
            found.push((Some(version), kept));
        }
        changes.extend(found.into_iter().map(|(before, after)| PinChange {
            package: package.clone(),
            before,
            after,
        }));
    }
    changes
}

/// The changes a pull request asked for, and those that followed one of
/// them, each with the package it followed.
#[derive(Debug, Default)]
pub(crate) struct Split<'a> {
    pub asked: Vec<&'a PinChange>,
    pub followed: Vec<(&'a PinChange, PackageName)>,
}

/// Splits `changes` by the dependency graphs of the file before and after
/// (where the file has one: a `Cargo.lock`, a `uv.lock`): a package that is
/// not a direct dependency of the service and that another moved package
/// depends on after the change (or depended on before it, for one removed)
/// followed that package, traced back to one the change asked for.
pub(crate) fn split<'a>(
    changes: &'a [PinChange],
    before: &BaselineFile,
    after: &BaselineFile,
) -> Split<'a> {
    let moved: Vec<&PackageName> = changes.iter().map(|change| &change.package).collect();
    // The moved package that pulled `change` along, if any.
    let leader = |change: &PinChange| -> Option<PackageName> {
        let graph = if change.after.is_some() {
            &after.requires
        } else {
            &before.requires
        };
        moved
            .iter()
            .find(|other| {
                **other != &change.package
                    && graph
                        .get(**other)
                        .is_some_and(|needs| needs.contains(&change.package))
            })
            .map(|other| (*other).clone())
    };
    // A direct dependency the change moved is what it asked for, whatever
    // else depends on it (a grouped fastapi + pydantic bump asks for both).
    let direct =
        |package: &PackageName| before.direct.contains(package) || after.direct.contains(package);
    let mut followed_by: BTreeMap<PackageName, PackageName> = BTreeMap::new();
    for change in changes.iter().filter(|change| !direct(&change.package)) {
        if let Some(leader) = leader(change) {
            followed_by.insert(change.package.clone(), leader);
        }
    }
    let mut split = Split::default();
    for change in changes {
        // Traced to a package nothing moved pulls (a cycle stops the trace).
        let mut root = followed_by.get(&change.package).cloned();
        let mut seen = vec![change.package.clone()];
        while let Some(next) = root.as_ref().and_then(|package| followed_by.get(package)) {
            if seen.contains(next) {
                break;
            }
            seen.push(root.replace(next.clone()).expect("a root to replace"));
        }
        match root {
            Some(root) => split.followed.push((change, root)),
            None => split.asked.push(change),
        }
    }
    // A package the service does not name that came or went with no moved
    // package to pull it (a feature a moved crate turned on; a file with no
    // graph) is no request: with one version move asked, it followed that.
    let moves: Vec<&PinChange> = split
        .asked
        .iter()
        .copied()
        .filter(|change| change.before.is_some() && change.after.is_some())
        .collect();
    if let [only] = moves[..] {
        let (came_or_went, asked): (Vec<&PinChange>, Vec<&PinChange>) =
            split.asked.iter().partition(|change| {
                (change.before.is_none() || change.after.is_none()) && !direct(&change.package)
            });
        split.asked = asked;
        split.followed.extend(
            came_or_went
                .into_iter()
                .map(|change| (change, only.package.clone())),
        );
    }
    split
}

/// The baseline, each package the change asked for alone (what follows it
/// moving along), and the whole change when more than one package moved.
/// A change that asked for one package is one cell: the changed file as it
/// is, named after that package.
pub(crate) fn plan(
    changes: &[PinChange],
    before: &BaselineFile,
    after: &BaselineFile,
    baseline_profile: &str,
) -> Plan {
    let split = split(changes, before, after);
    let mut cells = vec![Cell::baseline(baseline_profile)];
    let mut skipped = Vec::new();
    // One line per package followed: what moved with it, and how many went.
    let mut leaders: Vec<&PackageName> = split.followed.iter().map(|(_, leader)| leader).collect();
    leaders.dedup();
    leaders.sort();
    leaders.dedup();
    for leader in leaders {
        let with: Vec<&PinChange> = split
            .followed
            .iter()
            .filter(|(_, followed)| followed == leader)
            .map(|(change, _)| *change)
            .collect();
        let mut said: Vec<String> = with
            .iter()
            .filter(|change| change.after.is_some())
            .map(ToString::to_string)
            .collect();
        let removed = with.iter().filter(|change| change.after.is_none()).count();
        if removed > 0 {
            said.push(format!("{removed} removed"));
        }
        skipped.push(format!(
            "moved with {leader}: {}; tried with it, never alone",
            said.join(", ")
        ));
    }
    for change in &split.asked {
        match &change.after {
            Some(version) if change.before.is_some() => cells.push(Cell::with_pins(
                vec![Pin {
                    package: change.package.clone(),
                    version: version.clone(),
                }],
                baseline_profile,
            )),
            Some(version) => skipped.push(format!(
                "{} {version} is new: tried only with the whole change",
                change.package
            )),
            None => skipped.push(format!(
                "{} is removed: tried only with the whole change",
                change.package
            )),
        }
    }
    // One package asked for: its cell is the changed file as it is, what
    // moved with it included, named after it.
    if let ([_], [cell]) = (&split.asked[..], &cells[1..])
        && split.followed.len() + 1 == changes.len()
    {
        let pins = cell.pins.clone();
        cells.truncate(1);
        cells.push(Cell::change_from_file(&after.path, pins, baseline_profile));
        return Plan { cells, skipped };
    }
    let tried_alone = cells.len() - 1;
    if changes.len() > 1 || tried_alone < changes.len() {
        // Named after what the change asked for; what followed is in its
        // versions, not its name.
        let mut names: Vec<String> = split
            .asked
            .iter()
            .map(|change| match &change.after {
                Some(version) => format!("{} {version}", change.package),
                None => format!("{} removed", change.package),
            })
            .collect();
        let with = if split.asked.len() == 1 { "it" } else { "them" };
        match split.followed.len() {
            0 => {}
            1 => names.push(format!("1 package moved with {with}")),
            more => names.push(format!("{more} packages moved with {with}")),
        }
        let pins = changes
            .iter()
            .filter_map(|change| {
                Some(Pin {
                    package: change.package.clone(),
                    version: change.after.clone()?,
                })
            })
            .collect();
        let name = format!("whole change ({})", names.join(", "));
        cells.push(Cell::from_file(&after.path, &name, baseline_profile, pins));
    }
    Plan { cells, skipped }
}

/// The short commit hash `git_ref` names in the repository holding `dir`,
/// when `dir` is in one.
pub(crate) fn commit_of(dir: &Path, git_ref: &str) -> Option<String> {
    check_ref(git_ref).ok()?;
    let spec = format!("{git_ref}^{{commit}}");
    let hash = git(
        dir,
        &[
            "rev-parse",
            "--short",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ],
    )
    .ok()?;
    Some(hash.trim().to_owned()).filter(|hash| !hash.is_empty())
}

/// Copies the accepted snapshots (`*.snap` directly in `snapshots`) as they
/// were at `git_ref` into `into`: the base's reference in pull-request mode.
/// A folder the ref does not have yields none.
pub(crate) fn snapshots_at(git_ref: &str, snapshots: &Path, into: &Path) -> anyhow::Result<usize> {
    check_ref(git_ref)?;
    fs_err::create_dir_all(into)?;
    let top = top_of(snapshots).context("the snapshots folder is not in a git repository")?;
    let folder = snapshots.canonicalize()?;
    let relative = folder
        .strip_prefix(&top)
        .context("the snapshots folder is not inside its repository")?;
    let inside = format!("{}/", relative.display());
    let mut args = vec!["ls-tree", "--name-only", "-z", "--end-of-options", git_ref];
    if !relative.as_os_str().is_empty() {
        args.push(&inside);
    }
    let listed = git(&top, &args)?;
    let mut copied = 0;
    for path in listed.split('\0').filter(|path| path.ends_with(".snap")) {
        let Some(name) = Path::new(path).file_name() else {
            continue;
        };
        let text = git(
            &top,
            &["show", "--end-of-options", &format!("{git_ref}:{path}")],
        )?;
        crate::sys::state::write_atomic(&into.join(name), text.as_bytes())?;
        copied += 1;
    }
    Ok(copied)
}

/// The top folder of the git repository holding `dir`, when it is in one.
pub(crate) fn top_of(dir: &Path) -> Option<PathBuf> {
    let top = git(dir, &["rev-parse", "--show-toplevel"]).ok()?;
    PathBuf::from(top.trim()).canonicalize().ok()
}

/// A ref is a name, a hash, or `HEAD~1`-like; never an option or a path trick.
fn check_ref(git_ref: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._/~^@{}-".contains(c);
    if git_ref.is_empty()
        || git_ref.starts_with('-')
        || git_ref.contains("..")
        || !git_ref.chars().all(allowed)
    {
        return Err(SettingError::new(
            Setting::Since,
            format!(
                "`{git_ref}` is not a git ref (letters, digits and . _ / ~ ^ @ {{ }} -, not starting with -)"
            ),
        )
        .into());
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    // A config in the current folder has an empty folder name.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let output = process::run_captured(duct::cmd("git", args).dir(dir), Duration::from_secs(60))?
        .context("git did not answer within 60s")?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        match said.trim() {
            "" => bail!("git {} failed ({})", args.join(" "), output.status),
            said => bail!("git {}: {said}", args.join(" ")),
        }
    }
    Ok(String::from_utf8(output.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> BaselineFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requirements.txt");
        std::fs::write(&path, text).unwrap();
        BaselineFile::load(&path).unwrap()
    }

    #[test]
    fn changes_are_the_pins_that_moved() {
        let before = file("bcrypt==3.2.0\nPyJWT==1.7.1\nFlask==2.2.5\nsix==1.16.0\n");
        let after = file("bcrypt==5.0.0\npyjwt==2.8.0\nFlask==2.2.5\npasslib==1.7.4\n");
        let changed: Vec<String> = changes(&before, &after)
            .iter()
            .map(|c| {
                format!(
                    "{} {:?} {:?}",
                    c.package,
                    c.before.as_ref().map(ToString::to_string),
                    c.after.as_ref().map(ToString::to_string)
                )
            })
            .collect();
        assert_eq!(
            changed,
            [
                "bcrypt Some(\"3.2.0\") Some(\"5.0.0\")",
                "passlib None Some(\"1.7.4\")",
                "pyjwt Some(\"1.7.1\") Some(\"2.8.0\")",
                "six Some(\"1.16.0\") None",
            ]
        );
        let plan = plan(&changes(&before, &after), &before, &after, "dev");
        let names: Vec<&str> = plan.cells.iter().map(|cell| cell.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "baseline",
                "bcrypt 5.0.0",
                "pyjwt 2.8.0",
                "whole change (bcrypt 5.0.0, passlib 1.7.4, pyjwt 2.8.0, six removed)"
            ]
        );
        assert_eq!(plan.skipped.len(), 2);
    }

    /// A `Cargo.lock` of `packages` (`name version dependency…`).
    fn cargo_lock(packages: &[&str]) -> BaselineFile {
        let mut text = String::from(
            "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"tokio\", \"serde\"]\n",
        );
        for package in packages {
            let mut words = package.split_whitespace();
            let (name, version) = (words.next().unwrap(), words.next().unwrap());
            let needs: Vec<String> = words.map(|word| format!("\"{word}\"")).collect();
            text.push_str(&format!(
                "\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\nsource = \"registry+https://example.invalid/index\"\ndependencies = [{}]\n",
                needs.join(", ")
            ));
        }
        let source = Source {
            path: "Cargo.lock".into(),
            text,
        };
        BaselineFile::parse(Path::new("Cargo.lock"), &source, &|_| unreachable!()).unwrap()
    }

    #[test]
    fn what_moved_because_a_moved_crate_needs_it_follows_that_crate_and_is_no_cell() {
        // `cargo update -p tokio --precise 1.54.1`: mio and socket2 move,
        // windows-sys comes, num_cpus goes; serde moves on its own.
        let before = cargo_lock(&[
            "tokio 1.38.0 mio num_cpus",
            "mio 0.8.11",
            "num_cpus 1.17.0",
            "serde 1.0.200",
        ]);
        let after = cargo_lock(&[
            "tokio 1.54.1 mio socket2",
            "mio 1.2.5 windows-sys",
            "socket2 0.6.5",
            "windows-sys 0.61.2",
            "serde 1.0.228",
        ]);
        let changed = changes(&before, &after);
        let split = split(&changed, &before, &after);
        let asked: Vec<String> = split.asked.iter().map(ToString::to_string).collect();
        assert_eq!(asked, ["serde 1.0.200 → 1.0.228", "tokio 1.38.0 → 1.54.1"]);
        let followed: Vec<String> = split
            .followed
            .iter()
            .map(|(change, leader)| format!("{} by {leader}", change.package))
            .collect();
        // windows-sys came with mio, which came with tokio: traced to tokio.
        assert_eq!(
            followed,
            [
                "mio by tokio",
                "num_cpus by tokio",
                "socket2 by tokio",
                "windows-sys by tokio"
            ]
        );
        let plan = plan(&changed, &before, &after, "dev");
        let names: Vec<&str> = plan.cells.iter().map(|cell| cell.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "baseline",
                "serde 1.0.228",
                "tokio 1.54.1",
                "whole change (serde 1.0.228, tokio 1.54.1, 4 packages moved with them)"
            ]
        );
        assert_eq!(
            plan.skipped,
            [
                "moved with tokio: mio 0.8.11 → 1.2.5, socket2 (none) → 0.6.5, windows-sys (none) → 0.61.2, 1 removed; tried with it, never alone"
            ]
        );
    }

    /// npm's `npm update ms`: the copy at 2.1.2 moves to 2.1.3, which
    /// another copy had already (and no longer needs its own); the copy at
    /// 2.0.0 another package needs stays. One move, not a removal.
    #[test]
    fn a_copy_moved_onto_a_version_another_copy_had_is_a_move() {
        let before = cargo_lock(&["ms 2.0.0", "ms 2.1.2", "ms 2.1.3", "serde 1.0.200"]);
        let after = cargo_lock(&["ms 2.0.0", "ms 2.1.3", "serde 1.0.200"]);
        let changed: Vec<String> = changes(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changed, ["ms 2.1.2 → 2.1.3"]);
        // Gone with nothing newer in its range held: removed.
        let after = cargo_lock(&["ms 2.0.0", "serde 1.0.200"]);
        let changed: Vec<String> = changes(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changed, ["ms 2.1.2 → (none)", "ms 2.1.3 → (none)"]);
    }

    #[test]
    fn refs_that_look_like_options_are_refused() {
        for bad in ["--output=/tmp/x", "-p", "HEAD;id", "a..b", "$(id)", ""] {
            assert!(check_ref(bad).is_err(), "{bad}");
        }
        for good in ["HEAD~1", "origin/main", "v1.2.3", "abc123", "HEAD@{1}"] {
            assert!(check_ref(good).is_ok(), "{good}");
        }
    }
}
