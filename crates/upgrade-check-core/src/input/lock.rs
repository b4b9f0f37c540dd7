//! Python lockfiles as the baseline: `uv.lock`, `poetry.lock` and
//! `Pipfile.lock`, each read beside the file that declares the project
//! (`pyproject.toml`, `Pipfile`).
//!
//! A lock becomes the service's direct dependencies, pinned at the lock's
//! versions with its digests (the requirements), and every other package the
//! runtime needs, pinned the same way (the constraints: exact for the
//! baseline, released for a cell so that they move only when a pin forces
//! them). Packages the lock takes from a path, a git repository or a URL are
//! kept as it has them and are never matrix pins.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::declared::{Declared, ReadInclude, Requires};
use super::source::{InputError, Source};
use crate::model::package::PackageName;

/// The lockfiles read, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    Uv,
    Poetry,
    Pipenv,
}

impl LockKind {
    pub(crate) fn of(path: &Path) -> Option<LockKind> {
        match path.file_name()?.to_str()? {
            "uv.lock" => Some(LockKind::Uv),
            "poetry.lock" => Some(LockKind::Poetry),
            "Pipfile.lock" => Some(LockKind::Pipenv),
            _ => None,
        }
    }

    /// The file beside the lock that declares the project.
    fn manifest(self) -> &'static str {
        match self {
            LockKind::Uv | LockKind::Poetry => "pyproject.toml",
            LockKind::Pipenv => "Pipfile",
        }
    }
}

/// What a lock pins for the service's runtime.
#[derive(Debug, Clone, Default)]
pub(crate) struct Locked {
    /// The project's direct dependencies, `name==version` with digests.
    pub requirements: Vec<Declared>,
    /// Every other package the runtime needs, pinned the same way.
    pub constraints: Vec<Declared>,
    /// Packages taken from a path, git or a URL: kept, never pinned by a cell.
    pub kept: Vec<String>,
    /// What each package depends on, by name (a `uv.lock` says; the others do not).
    pub requires: Requires,
}

/// One package as a lock pins it.
struct Entry {
    name: String,
    version: String,
    hashes: Vec<String>,
    marker: Option<String>,
    /// Where it comes from when not a package index.
    origin: Option<Origin>,
    /// Byte offset of the package's entry, for lines in errors.
    at: usize,
}

/// Where a lock takes a package from when not from a package index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A git repository at the commit the lock resolved.
    Git {
        repository: String,
        commit: Option<String>,
    },
    /// A folder or file, relative to the lock's folder (or absolute).
    Path(String),
    /// An archive's URL.
    Url(String),
}

impl Origin {
    /// The PEP 508 direct reference that installs it as the lock has it.
    fn requirement(&self, name: &str, folder: &Path) -> String {
        match self {
            Origin::Git { repository, commit } => {
                let repository = repository.trim_start_matches("git+");
                match commit {
                    Some(commit) => format!("{name} @ git+{repository}@{commit}"),
                    None => format!("{name} @ git+{repository}"),
                }
            }
            Origin::Path(place) => {
                let path =
                    std::path::absolute(folder.join(place)).unwrap_or_else(|_| folder.join(place));
                format!("{name} @ file://{}", path.display())
            }
            Origin::Url(url) => format!("{name} @ {url}"),
        }
    }

    /// Refuses a path source (or a `file:` URL) that leads outside the
    /// repository holding the lock (outside the lock's folder when no
    /// repository does), as `service.root` is refused: a pull request must
    /// not have the harness build and install whatever lies elsewhere on
    /// the machine.
    fn confined(&self, folder: &Path) -> Result<(), String> {
        let place = match self {
            Origin::Path(place) => place.strip_prefix("file://").unwrap_or(place),
            Origin::Url(url) if url.starts_with("file:") => {
                url.trim_start_matches("file:").trim_start_matches("//")
            }
            _ => return Ok(()),
        };
        let folder = std::path::absolute(if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        })
        .map_err(|err| format!("cannot resolve the lock's folder: {err}"))?;
        let real_folder = folder.canonicalize().unwrap_or_else(|_| folder.clone());
        let boundary = real_folder
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .unwrap_or(&real_folder)
            .to_owned();
        let target = real_folder.join(place);
        // What exists is followed through its symlinks; what does not is
        // judged by its words (`..` taken away lexically).
        let resolved = target.canonicalize().unwrap_or_else(|_| {
            let mut lexical = PathBuf::new();
            for part in target.components() {
                match part {
                    std::path::Component::ParentDir => {
                        lexical.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => lexical.push(other),
                }
            }
            lexical
        });
        if resolved.starts_with(&boundary) {
            Ok(())
        } else {
            Err(format!(
                "installed from {place}, which leads outside {} (to {}): a path source must stay inside the repository, as service.root must",
                boundary.display(),
                resolved.display()
            ))
        }
    }

    /// uv.lock's `git = "https://host/repo?rev=main#<commit>"`.
    fn uv_git(place: &str) -> Origin {
        let (before, commit) = match place.split_once('#') {
            Some((before, commit)) => (before, Some(commit.to_owned())),
            None => (place, None),
        };
        let repository = before.split_once('?').map_or(before, |(base, _)| base);
        Origin::Git {
            repository: repository.to_owned(),
            commit,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Git {
                repository,
                commit: Some(commit),
            } => write!(f, "git {repository} at {commit}"),
            Origin::Git { repository, .. } => write!(f, "git {repository}"),
            Origin::Path(place) => write!(f, "path {place}"),
            Origin::Url(url) => write!(f, "url {url}"),
        }
    }
}

/// Reads the lock `source` at `path`; `read` fetches the manifest beside it
/// (from disk, or from git at a ref); `groups` adds dependency groups or
/// extras to the runtime set.
pub(crate) fn parse(
    kind: LockKind,
    path: &Path,
    source: &Source,
    read: ReadInclude,
    groups: &[String],
) -> Result<Locked, InputError> {
    let manifest = read(Path::new(kind.manifest())).map_err(|err| InputError {
        message: format!(
            "a {} is read with the {} beside it: {}",
            file_name(path),
            kind.manifest(),
            err.message
        ),
        ..err
    })?;
    let no_graph = |(entries, direct)| (entries, direct, Requires::new());
    let (entries, direct, requires) = match kind {
        LockKind::Uv => uv(source, &manifest, groups)?,
        LockKind::Poetry => no_graph(poetry(source, &manifest, groups)?),
        LockKind::Pipenv => no_graph(pipenv(source, &manifest, groups)?),
    };
    let mut locked = Locked {
        requires,
        ..Locked::default()
    };
    let folder = path.parent().unwrap_or(Path::new(""));
    for entry in &entries {
        if let Some(origin) = &entry.origin
            && let Err(message) = origin.confined(folder)
        {
            return Err(source.error_at(Some(entry.at..entry.at), &entry.name, &message));
        }
    }
    for entry in entries {
        let marker = entry
            .marker
            .as_deref()
            .map(|marker| format!(" ; {marker}"))
            .unwrap_or_default();
        // Kept as the lock has it: installed from there, a root of every
        // resolution (so that what it needs is installed), never a pin.
        if let Some(origin) = &entry.origin {
            locked.kept.push(format!("{} ({origin})", entry.name));
        }
        let text = match &entry.origin {
            Some(origin) => format!("{}{marker}", origin.requirement(&entry.name, folder)),
            None => format!("{}=={}{marker}", entry.name, entry.version),
        };
        let requirement = text.parse().map_err(|err| {
            source.error_at(
                Some(entry.at..entry.at),
                &entry.name,
                &format!("`{text}` is not a requirement: {err}"),
            )
        })?;
        let declared = Declared {
            requirement,
            path: path.to_owned(),
            line: source.line_of(entry.at),
            hashes: entry.hashes,
        };
        let name = PackageName::python(&entry.name).map_err(|err| {
            source.error_at(Some(entry.at..entry.at), &entry.name, &err.to_string())
        })?;
        if direct.contains(&name) || entry.origin.is_some() {
            locked.requirements.push(declared);
        } else {
            locked.constraints.push(declared);
        }
    }
    Ok(locked)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Names a manifest declares, normalised.
fn names<'a>(
    source: &Source,
    key: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeSet<PackageName>, InputError> {
    names
        .into_iter()
        .map(|name| {
            // A PEP 508 string or a bare name: the name is what comes first.
            let bare = name
                .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                .next()
                .unwrap_or(name);
            PackageName::python(bare).map_err(|err| source.error_at(None, key, &err.to_string()))
        })
        .collect()
}

/// `uv.lock`: the project is the package whose source is `editable` or
/// `virtual` at `.`; the runtime set is what its dependencies (and the asked
/// groups) reach.
/// Also what each package depends on, by name, for pull-request mode's split.
fn uv(
    source: &Source,
    manifest: &Source,
    groups: &[String],
) -> Result<(Vec<Entry>, BTreeSet<PackageName>, Requires), InputError> {
    #[derive(Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
        version: Option<String>,
        #[serde(default)]
        source: BTreeMap<String, toml::Value>,
        #[serde(default)]
        dependencies: Vec<Dependency>,
        #[serde(default, rename = "optional-dependencies")]
        optional: BTreeMap<String, Vec<Dependency>>,
        #[serde(default, rename = "dev-dependencies")]
        dev: BTreeMap<String, Vec<Dependency>>,
        #[serde(default)]
        sdist: Option<Artifact>,
        #[serde(default)]
        wheels: Vec<Artifact>,
    }
    #[derive(Deserialize, Clone)]
    struct Dependency {
        name: String,
        #[serde(default)]
        marker: Option<String>,
        #[serde(default)]
        extra: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Artifact {
        #[serde(default)]
        hash: Option<String>,
    }
    let lock: Lock = source.parse()?;
    let is_project = |package: &Package| {
        ["editable", "virtual"].iter().any(|kind| {
            package
                .source
                .get(*kind)
                .and_then(toml::Value::as_str)
                .is_some_and(|at| at == ".")
        })
    };
    let Some(project) = lock.package.iter().find(|package| is_project(package)) else {
        return Err(source.error_at(
            None,
            "package",
            "no package of the lock is the project itself (source = { editable = \".\" } or { virtual = \".\" })",
        ));
    };
    let locked = names(
        source,
        "package.dependencies",
        project.dependencies.iter().map(|d| d.name.as_str()),
    )?;
    check_up_to_date(manifest, &project.name, &locked)?;
    let mut wanted: Vec<Dependency> = project.dependencies.clone();
    for group in groups {
        let found = project
            .optional
            .get(group)
            .or_else(|| project.dev.get(group))
            .ok_or_else(|| {
                source.error_at(
                    None,
                    "service.groups",
                    &format!(
                        "the lock has no group or extra `{group}` for {}",
                        project.name
                    ),
                )
            })?;
        wanted.extend(found.iter().cloned());
    }
    let direct = names(
        source,
        "package.dependencies",
        wanted.iter().map(|d| d.name.as_str()),
    )?;
    // Walk what the runtime reaches, with the marker of the edge that reached it.
    let by_name: BTreeMap<&str, &Package> = lock
        .package
        .iter()
        .map(|package| (package.name.as_str(), package))
        .collect();
    let mut reached: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut queue = wanted;
    while let Some(dependency) = queue.pop() {
        if reached.contains_key(&dependency.name) {
            continue;
        }
        reached.insert(dependency.name.clone(), dependency.marker.clone());
        if let Some(package) = by_name.get(dependency.name.as_str()) {
            queue.extend(package.dependencies.iter().cloned());
            for extra in &dependency.extra {
                queue.extend(package.optional.get(extra).into_iter().flatten().cloned());
            }
        }
    }
    let mut entries = Vec::new();
    for (name, marker) in reached {
        let Some(package) = by_name.get(name.as_str()) else {
            return Err(source.error_at(
                None,
                &name,
                &format!(
                    "{name} is required but not locked: the lock is out of date; run `uv lock`"
                ),
            ));
        };
        let at = entry_at(&source.text, &name);
        let origin = ["git", "path", "directory", "editable", "url"]
            .iter()
            .find_map(|kind| {
                let place = package.source.get(*kind)?.as_str()?;
                Some(match *kind {
                    "git" => Origin::uv_git(place),
                    "url" => Origin::Url(place.to_owned()),
                    _ => Origin::Path(place.to_owned()),
                })
            });
        let version = package.version.clone().unwrap_or_default();
        let hashes = package
            .sdist
            .iter()
            .chain(&package.wheels)
            .filter_map(|artifact| artifact.hash.clone())
            .collect();
        entries.push(Entry {
            name,
            version,
            hashes,
            marker,
            origin,
            at,
        });
    }
    let requires = lock
        .package
        .iter()
        .filter_map(|package| {
            let name = PackageName::python(&package.name).ok()?;
            let needs = package
                .dependencies
                .iter()
                .filter_map(|dependency| PackageName::python(&dependency.name).ok())
                .collect();
            Some((name, needs))
        })
        .collect();
    Ok((entries, direct, requires))
}

/// A lock that misses a dependency the manifest declares is out of date.
fn check_up_to_date(
    manifest: &Source,
    project: &str,
    locked: &BTreeSet<PackageName>,
) -> Result<(), InputError> {
    #[derive(Deserialize)]
    struct Pyproject {
        project: Option<Project>,
    }
    #[derive(Deserialize)]
    struct Project {
        #[serde(default)]
        dependencies: Vec<toml::Spanned<String>>,
    }
    let pyproject: Pyproject = manifest.parse()?;
    for dependency in pyproject
        .project
        .iter()
        .flat_map(|project| &project.dependencies)
    {
        let declared = names(
            manifest,
            "project.dependencies",
            [dependency.get_ref().as_str()],
        )?;
        if let Some(missing) = declared.iter().find(|name| !locked.contains(name)) {
            return Err(manifest.error_at(
                Some(dependency.span()),
                "project.dependencies",
                &format!(
                    "{missing} is declared but {project}'s lock does not have it: the lock is out of date (as `uv lock --check` says); run `uv lock`"
                ),
            ));
        }
    }
    Ok(())
}

/// `poetry.lock`: the packages of the `main` group (lock format 2.1's
/// `groups`, or 1.x's `category`), and those of the asked groups; direct
/// are the ones `pyproject.toml` declares.
fn poetry(
    source: &Source,
    manifest: &Source,
    groups: &[String],
) -> Result<(Vec<Entry>, BTreeSet<PackageName>), InputError> {
    #[derive(Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
        version: String,
        #[serde(default)]
        optional: bool,
        #[serde(default)]
        groups: Option<Vec<String>>,
        #[serde(default)]
        category: Option<String>,
        #[serde(default)]
        markers: Option<toml::Value>,
        #[serde(default)]
        files: Vec<File>,
        #[serde(default)]
        source: Option<PackageSource>,
    }
    #[derive(Deserialize)]
    struct File {
        hash: String,
    }
    #[derive(Deserialize)]
    struct PackageSource {
        #[serde(rename = "type")]
        kind: String,
        url: Option<String>,
        resolved_reference: Option<String>,
    }
    #[derive(Deserialize)]
    struct Pyproject {
        project: Option<Project>,
        tool: Option<Tool>,
    }
    #[derive(Deserialize)]
    struct Project {
        #[serde(default)]
        dependencies: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Tool {
        poetry: Option<Poetry>,
    }
    #[derive(Deserialize)]
    struct Poetry {
        #[serde(default)]
        dependencies: BTreeMap<String, toml::Value>,
    }
    let lock: Lock = source.parse()?;
    let pyproject: Pyproject = manifest.parse()?;
    let mut declared: Vec<String> = pyproject
        .project
        .map(|project| project.dependencies)
        .unwrap_or_default();
    declared.extend(
        pyproject
            .tool
            .and_then(|tool| tool.poetry)
            .map(|poetry| {
                poetry
                    .dependencies
                    .into_keys()
                    .filter(|name| name != "python")
            })
            .into_iter()
            .flatten(),
    );
    let direct = names(
        manifest,
        "project.dependencies",
        declared.iter().map(String::as_str),
    )?;
    let wanted = |package: &Package| {
        let in_group = |group: &str| group == "main" || groups.iter().any(|asked| asked == group);
        match (&package.groups, &package.category) {
            (Some(of), _) => of.iter().any(|group| in_group(group)),
            (None, Some(category)) => in_group(category),
            (None, None) => true,
        }
    };
    let mut entries = Vec::new();
    for package in lock
        .package
        .iter()
        .filter(|package| wanted(package) && !package.optional)
    {
        let at = entry_at(&source.text, &package.name);
        // Lock 2.1 keys markers by group; the main group's is the runtime's.
        let marker = match &package.markers {
            Some(toml::Value::String(marker)) => Some(marker.clone()),
            Some(toml::Value::Table(by_group)) => by_group
                .get("main")
                .and_then(toml::Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        // `legacy` is a package index (a private one): not elsewhere.
        let origin = package
            .source
            .as_ref()
            .filter(|source| source.kind != "legacy")
            .map(|source| {
                let url = source.url.clone().unwrap_or_default();
                match source.kind.as_str() {
                    "git" => Origin::Git {
                        repository: url,
                        commit: source.resolved_reference.clone(),
                    },
                    "url" => Origin::Url(url),
                    _ => Origin::Path(url),
                }
            });
        entries.push(Entry {
            name: package.name.clone(),
            version: package.version.clone(),
            hashes: package.files.iter().map(|file| file.hash.clone()).collect(),
            marker,
            origin,
            at,
        });
    }
    all_locked(
        manifest,
        "tool.poetry.dependencies",
        &direct,
        &entries,
        "poetry",
    )?;
    Ok((entries, direct))
}

/// `Pipfile.lock`: the `default` section (and `develop` when the `dev` group
/// is asked); direct are the `[packages]` the Pipfile declares.
fn pipenv(
    source: &Source,
    manifest: &Source,
    groups: &[String],
) -> Result<(Vec<Entry>, BTreeSet<PackageName>), InputError> {
    #[derive(Deserialize)]
    struct Lock {
        #[serde(default)]
        default: BTreeMap<String, Package>,
        #[serde(default)]
        develop: BTreeMap<String, Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        version: Option<String>,
        #[serde(default)]
        hashes: Vec<String>,
        markers: Option<String>,
        git: Option<String>,
        #[serde(rename = "ref")]
        reference: Option<String>,
        path: Option<String>,
        file: Option<String>,
    }
    #[derive(Deserialize)]
    struct Pipfile {
        #[serde(default)]
        packages: BTreeMap<String, toml::Value>,
        #[serde(default, rename = "dev-packages")]
        dev: BTreeMap<String, toml::Value>,
    }
    let lock: Lock = serde_json::from_str(&source.text).map_err(|err| {
        let at = offset_of(&source.text, err.line(), err.column());
        source.error_at(Some(at..at), "", &format!("not a Pipfile.lock: {err}"))
    })?;
    let pipfile: Pipfile = manifest.parse()?;
    let dev = groups
        .iter()
        .any(|group| group == "dev" || group == "develop");
    let mut declared: Vec<&str> = pipfile.packages.keys().map(String::as_str).collect();
    if dev {
        declared.extend(pipfile.dev.keys().map(String::as_str));
    }
    let direct = names(manifest, "packages", declared)?;
    let mut sections = vec![&lock.default];
    if dev {
        sections.push(&lock.develop);
    }
    let mut entries = Vec::new();
    for (name, package) in sections.into_iter().flatten() {
        let at = source.text.find(&format!("\"{name}\": {{")).unwrap_or(0);
        let origin = match (&package.git, &package.path, &package.file) {
            (Some(repository), _, _) => Some(Origin::Git {
                repository: repository.clone(),
                commit: package.reference.clone(),
            }),
            (None, Some(place), _) => Some(Origin::Path(place.clone())),
            (None, None, Some(url)) => Some(Origin::Url(url.clone())),
            (None, None, None) => None,
        };
        let version = match (&package.version, &origin) {
            (Some(version), _) => version.trim_start_matches("==").to_owned(),
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err(source.error_at(
                    Some(at..at),
                    name,
                    &format!("{name} has neither a version nor a source"),
                ));
            }
        };
        entries.push(Entry {
            name: name.clone(),
            version,
            hashes: package.hashes.clone(),
            marker: package.markers.clone(),
            origin,
            at,
        });
    }
    all_locked(manifest, "packages", &direct, &entries, "pipenv")?;
    Ok((entries, direct))
}

/// Every dependency the manifest declares must be locked; one that is not
/// means the lock is out of date, which `tool lock` mends.
fn all_locked(
    manifest: &Source,
    key: &str,
    declared: &BTreeSet<PackageName>,
    entries: &[Entry],
    tool: &str,
) -> Result<(), InputError> {
    for name in declared {
        let locked = entries
            .iter()
            .any(|entry| PackageName::python(&entry.name).is_ok_and(|locked| &locked == name));
        if !locked {
            return Err(manifest.error_at(
                None,
                key,
                &format!(
                    "{name} is declared but the lock does not have it: the lock is out of date; run `{tool} lock`"
                ),
            ));
        }
    }
    Ok(())
}

/// Where a TOML lock's `[[package]]` entry for `name` starts (its name line).
fn entry_at(text: &str, name: &str) -> usize {
    let header = "[[package]]\n";
    text.find(&format!("{header}name = \"{name}\""))
        .map_or(0, |at| at + header.len())
}

/// The byte offset of a 1-based line and column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    text.split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn source(name: &str, text: &str) -> Source {
        Source {
            path: PathBuf::from(name),
            text: text.to_owned(),
        }
    }

    fn parse_with(name: &str, lock: &str, manifest: &str) -> Result<Locked, InputError> {
        let kind = LockKind::of(Path::new(name)).unwrap();
        let manifest = source(kind.manifest(), manifest);
        let read = move |_: &Path| Ok(manifest.clone());
        parse(kind, Path::new(name), &source(name, lock), &read, &[])
    }

    fn pinned(declared: &[Declared]) -> Vec<String> {
        declared.iter().map(|d| d.requirement.to_string()).collect()
    }

    const UV_LOCK: &str = r#"version = 1
requires-python = ">=3.9"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "bcrypt" },
    { name = "colorama", marker = "sys_platform == 'win32'" },
    { name = "tool" },
]

[[package]]
name = "bcrypt"
version = "3.2.0"
source = { registry = "https://index.invalid/simple" }
dependencies = [{ name = "cffi" }]
sdist = { url = "https://index.invalid/bcrypt.tar.gz", hash = "sha256:aa" }
wheels = [{ url = "https://index.invalid/bcrypt.whl", hash = "sha256:bb" }]

[[package]]
name = "cffi"
version = "1.17.1"
source = { registry = "https://index.invalid/simple" }

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://index.invalid/simple" }

[[package]]
name = "tool"
version = "1.0.0"
source = { git = "https://git.invalid/tool?rev=main#0123abc" }
"#;

    #[test]
    fn a_uv_lock_pins_direct_dependencies_and_holds_the_rest() {
        let locked = parse_with(
            "uv.lock",
            UV_LOCK,
            "[project]\nname = \"app\"\ndependencies = [\"bcrypt>=3\", \"colorama\", \"tool\"]\n",
        )
        .unwrap();
        // The git package is installed from the commit the lock resolved.
        assert_eq!(
            pinned(&locked.requirements),
            [
                "bcrypt==3.2.0",
                "colorama==0.4.6 ; sys_platform == 'win32'",
                "tool @ git+https://git.invalid/tool@0123abc"
            ]
        );
        assert_eq!(pinned(&locked.constraints), ["cffi==1.17.1"]);
        assert_eq!(locked.requirements[0].hashes, ["sha256:aa", "sha256:bb"]);
        assert_eq!(locked.requirements[0].line, 15, "the line of its entry");
        assert_eq!(
            locked.kept,
            ["tool (git https://git.invalid/tool at 0123abc)"]
        );
    }

    #[test]
    fn a_group_the_config_asks_for_joins_the_runtime_set_and_an_unknown_one_is_refused() {
        let lock = UV_LOCK.replace(
            "    { name = \"tool\" },\n]\n",
            "    { name = \"tool\" },\n]\n\n[package.dev-dependencies]\ndev = [{ name = \"cffi\" }]\n",
        );
        let manifest = source("pyproject.toml", "[project]\nname = \"app\"\n");
        let read = move |_: &Path| Ok(manifest.clone());
        let with = |groups: &[String]| {
            parse(
                LockKind::Uv,
                Path::new("uv.lock"),
                &source("uv.lock", &lock),
                &read,
                groups,
            )
        };
        let locked = with(&["dev".to_owned()]).unwrap();
        assert!(pinned(&locked.requirements).contains(&"cffi==1.17.1".to_owned()));
        let err = with(&["docs".to_owned()]).unwrap_err();
        assert_eq!(err.key, "service.groups");
        assert!(err.message.contains("no group or extra `docs`"), "{err}");
    }

    #[test]
    fn a_lock_that_misses_a_declared_dependency_is_out_of_date() {
        let err = parse_with(
            "uv.lock",
            UV_LOCK,
            "[project]\nname = \"app\"\ndependencies = [\"bcrypt\", \"requests\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.path, PathBuf::from("pyproject.toml"));
        assert!(err.message.contains("requests is declared"), "{err}");
    }

    #[test]
    fn a_pipfile_lock_reads_its_default_section_and_a_broken_one_names_its_line() {
        let lock = r#"{
    "_meta": {},
    "default": {
        "bcrypt": {"hashes": ["sha256:aa"], "markers": "python_version >= '3.6'", "version": "==3.2.0"},
        "cffi": {"hashes": ["sha256:cc"], "version": "==1.17.1"},
        "local": {"path": "./vendor/local"}
    },
    "develop": {"pytest": {"version": "==8.0.0"}}
}"#;
        let locked = parse_with(
            "Pipfile.lock",
            lock,
            "[packages]\nbcrypt = \"*\"\nlocal = {path = \"./vendor/local\"}\n",
        )
        .unwrap();
        let requirements = pinned(&locked.requirements);
        assert_eq!(
            requirements[0],
            "bcrypt==3.2.0 ; python_full_version >= '3.6'"
        );
        // The path package is installed from the folder, beside the lock.
        let here = std::path::absolute("vendor/local").unwrap();
        assert_eq!(
            requirements[1],
            format!("local @ file://{}", here.display())
        );
        assert_eq!(pinned(&locked.constraints), ["cffi==1.17.1"]);
        assert_eq!(locked.kept, ["local (path ./vendor/local)"]);
        let err = parse_with(
            "Pipfile.lock",
            "{\n  \"default\": {\n    \"bcrypt\": \n",
            "[packages]\n",
        )
        .unwrap_err();
        assert_eq!(
            (err.path.to_str(), err.line),
            (Some("Pipfile.lock"), 4),
            "{err}"
        );
    }

    #[test]
    fn a_path_source_outside_the_repository_is_refused_naming_its_line() {
        for place in ["../../../../outside-pkg", "/etc", "file:///etc"] {
            let lock = format!(
                "{{\n  \"default\": {{\n    \"bcrypt\": {{\"version\": \"==3.2.0\"}},\n    \"local\": {{\"path\": \"{place}\"}}\n  }}\n}}"
            );
            let err = parse_with(
                "Pipfile.lock",
                &lock,
                "[packages]\nbcrypt = \"*\"\nlocal = {path = \"x\"}\n",
            )
            .unwrap_err();
            assert_eq!(
                (err.path.to_str(), err.line, err.key.as_str()),
                (Some("Pipfile.lock"), 4, "local"),
                "{err}"
            );
            assert!(
                err.message.contains("must stay inside the repository"),
                "{err}"
            );
        }
        // A file: URL in a uv.lock is a path too.
        let lock = UV_LOCK.replace(
            "source = { git = \"https://git.invalid/tool?rev=main#0123abc\" }",
            "source = { url = \"file:///etc/tool-1.0.0.whl\" }",
        );
        let err = parse_with(
            "uv.lock",
            &lock,
            "[project]\nname = \"app\"\ndependencies = [\"bcrypt>=3\", \"colorama\", \"tool\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "tool", "{err}");
        assert!(err.message.contains("/etc/tool-1.0.0.whl"), "{err}");
    }

    #[test]
    fn a_poetry_lock_takes_the_main_group() {
        let lock = r#"[[package]]
name = "bcrypt"
version = "3.2.0"
optional = false
groups = ["main"]
files = [{file = "bcrypt-3.2.0.tar.gz", hash = "sha256:aa"}]

[[package]]
name = "pytest"
version = "8.0.0"
optional = false
groups = ["dev"]
files = []

[[package]]
name = "tool"
version = "1.0.0"
optional = false
groups = ["main"]
files = []

[package.source]
type = "git"
url = "https://git.invalid/tool.git"
reference = "main"
resolved_reference = "0123abc"
"#;
        let locked = parse_with(
            "poetry.lock",
            lock,
            "[project]\nname = \"app\"\ndependencies = [\"bcrypt==3.2.0\", \"tool\"]\n",
        )
        .unwrap();
        assert_eq!(
            pinned(&locked.requirements),
            [
                "bcrypt==3.2.0",
                "tool @ git+https://git.invalid/tool.git@0123abc"
            ]
        );
        assert!(locked.constraints.is_empty(), "the dev group is left out");
        assert_eq!(
            locked.kept,
            ["tool (git https://git.invalid/tool.git at 0123abc)"]
        );
    }
}
