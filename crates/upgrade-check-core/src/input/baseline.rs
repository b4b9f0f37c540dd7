//! The service's declared dependencies: a requirements file (with its `-r`
//! includes, line continuations and `--hash` options), `pyproject.toml`'s
//! `[project] dependencies`, a cargo service's `Cargo.lock`, or a Node
//! service's `package-lock.json`.
//!
//! Only parses. Every requirement keeps the file and line it came from, so
//! errors and reports point at it. Anything else a requirements file may hold
//! (index options, editable installs, URLs) is refused with its line: nothing
//! from the file reaches uv unparsed.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use pep508_rs::pep440_rs::Operator;
use pep508_rs::{Requirement, VerbatimUrl, VersionOrUrl};

use super::declared::{Declared, DeclaredPin, Direct, ReadInclude, Requires};
use crate::input::source::{InputError, Source};
use crate::model::cell::Pin;
use crate::model::package::{PackageName, Version};

/// How deep `-r` includes may nest; deeper is a mistake or a trap.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The service's declared dependencies, from one file and what it includes.
#[derive(Debug, Clone)]
pub struct BaselineFile {
    pub path: PathBuf,
    /// The top file's text as read: a cargo or Node service's builds start from it.
    pub text: String,
    /// Python requirements as written; empty for a `Cargo.lock`. From a
    /// Python lock: the project's direct dependencies at the lock's versions.
    pub requirements: Vec<Declared>,
    /// From a Python lock: every other package the runtime needs, at the
    /// lock's versions; exact for the baseline, free to move for a cell.
    pub constraints: Vec<Declared>,
    /// From a Python lock: packages it takes from a path, git or a URL.
    pub kept: Vec<String>,
    /// The lock's groups or extras read besides the project's dependencies.
    pub groups: Vec<String>,
    /// Every exact pin: the `==` requirements, or the lock's registry packages.
    pub pins: Vec<DeclaredPin>,
    /// From a `Cargo.lock` or a `uv.lock`: what each package depends on, by
    /// name; empty where the file does not say.
    pub requires: Requires,
    /// From a lock: the packages the service depends on directly.
    pub direct: Direct,
}

impl BaselineFile {
    /// Reads the file at `path` and the includes it names from disk.
    pub fn load(path: &Path) -> Result<BaselineFile, InputError> {
        BaselineFile::load_with(path, &[])
    }

    /// The same, reading a lock's `groups` (dependency groups or extras) too.
    pub fn load_with(path: &Path, groups: &[String]) -> Result<BaselineFile, InputError> {
        let folder = path.parent().unwrap_or(Path::new("."));
        let read = |relative: &Path| read_inside(folder, relative);
        BaselineFile::parse_with(path, &Source::read(path)?, &read, groups)
    }

    /// Parses `source` as the file at `path`: `pyproject.toml` by its
    /// `[project] dependencies`, `Cargo.lock` by its packages, anything else
    /// as requirement lines whose includes `read` fetches.
    pub fn parse(
        path: &Path,
        source: &Source,
        read: ReadInclude,
    ) -> Result<BaselineFile, InputError> {
        BaselineFile::parse_with(path, source, read, &[])
    }

    /// [`BaselineFile::parse`], reading a lock's `groups` too.
    pub fn parse_with(
        path: &Path,
        source: &Source,
        read: ReadInclude,
        groups: &[String],
    ) -> Result<BaselineFile, InputError> {
        let mut requirements = Vec::new();
        let name = path.file_name().unwrap_or(path.as_os_str());
        // A lock a package manager builds from as it is: its pins, nothing
        // else to read.
        let built_from = |pins, requires, direct| BaselineFile {
            path: path.to_owned(),
            text: source.text.clone(),
            requirements: Vec::new(),
            constraints: Vec::new(),
            kept: Vec::new(),
            groups: Vec::new(),
            pins,
            requires,
            direct,
        };
        if let Some(manager) = super::node_lock::Manager::of(path) {
            let lock = manager.parse(source)?;
            return Ok(built_from(lock.pins, lock.requires, lock.direct));
        }
        if super::cargo_lock::is_lock(path) {
            let (requires, direct) = super::cargo_lock::dependencies(source)?;
            let pins = super::cargo_lock::parse(source)?;
            return Ok(built_from(pins, requires, direct));
        }
        let mut constraints = Vec::new();
        let mut kept = Vec::new();
        let mut requires = Requires::new();
        if let Some(kind) = super::lock::LockKind::of(path) {
            let locked = super::lock::parse(kind, path, source, read, groups)?;
            requirements = locked.requirements;
            constraints = locked.constraints;
            kept = locked.kept;
            requires = locked.requires;
        } else if name == "pyproject.toml" {
            parse_pyproject(source, &mut requirements)?;
        } else {
            parse_lines(source, &[PathBuf::from(name)], read, &mut requirements)?;
        }
        let pins = requirements
            .iter()
            .chain(&constraints)
            .filter_map(|declared| {
                Some(DeclaredPin {
                    package: declared.package(),
                    version: declared.pinned_version()?,
                    path: declared.path.clone(),
                    line: declared.line,
                })
            })
            .collect();
        let direct = requirements.iter().map(Declared::package).collect();
        Ok(BaselineFile {
            path: path.to_owned(),
            text: source.text.clone(),
            requirements,
            constraints,
            kept,
            groups: groups.to_vec(),
            pins,
            requires,
            direct,
        })
    }

    /// Where `pin` is written (a lock may pin a crate at several versions),
    /// else where its package is pinned or required: its file and line.
    pub fn origin_of(&self, pin: &Pin) -> Option<(&Path, usize)> {
        let package = &pin.package;
        let pinned = self
            .pins
            .iter()
            .find(|declared| &declared.package == package && declared.version == pin.version)
            .or_else(|| {
                self.pins
                    .iter()
                    .find(|declared| &declared.package == package)
            })
            .map(|declared| (declared.path.as_path(), declared.line));
        pinned.or_else(|| {
            self.requirements
                .iter()
                .find(|declared| &declared.package() == package)
                .map(|declared| (declared.path.as_path(), declared.line))
        })
    }

    /// The version pinned for `package`, the newest when a lock holds several.
    pub fn pinned_version(&self, package: &PackageName) -> Option<Version> {
        self.pins
            .iter()
            .filter(|pin| &pin.package == package)
            .map(|pin| pin.version.clone())
            .max()
    }

    /// The requirements as uv reads them, one per line, without options.
    pub fn requirement_lines(&self) -> String {
        self.requirements
            .iter()
            .map(|declared| format!("{}\n", declared.requirement))
            .collect()
    }

    /// A lock's other packages, one per line: what holds the baseline to
    /// the lock exactly.
    pub fn constraint_lines(&self) -> String {
        self.constraints
            .iter()
            .map(|declared| format!("{}\n", declared.requirement))
            .collect()
    }
}

impl Declared {
    /// The requirement's name; PEP 508 has already normalised it.
    pub fn package(&self) -> PackageName {
        PackageName::python(self.requirement.name.as_ref())
            .expect("a PEP 508 name is a valid PEP 503 name")
    }

    /// The version an `==` requirement pins; `None` for any other.
    pub fn pinned_version(&self) -> Option<Version> {
        let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &self.requirement.version_or_url
        else {
            return None;
        };
        match specifiers.iter().collect::<Vec<_>>()[..] {
            [specifier] if *specifier.operator() == Operator::Equal => {
                Some(Version::Python(specifier.version().clone()))
            }
            _ => None,
        }
    }
}

/// The digests files declare for exact pins: what a hash-checked install
/// verifies downloads against.
#[derive(Debug, Clone, Default)]
pub struct DeclaredHashes(BTreeMap<(PackageName, Version), Vec<String>>);

impl DeclaredHashes {
    /// Adds the hashes of every `==` pin of `file` that carries some.
    pub fn add(&mut self, file: &BaselineFile) {
        for declared in file.requirements.iter().chain(&file.constraints) {
            if let (Some(version), false) = (declared.pinned_version(), declared.hashes.is_empty())
            {
                self.0
                    .insert((declared.package(), version), declared.hashes.clone());
            }
        }
    }

    /// No file declares a hash: installs are not hash-checked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, package: &PackageName, version: &Version) -> Option<&[String]> {
        self.0
            .get(&(package.clone(), version.clone()))
            .map(Vec::as_slice)
    }
}

/// Reads an include from disk, refusing one that a symlink leads out of `folder`.
fn read_inside(folder: &Path, relative: &Path) -> Result<Source, InputError> {
    let path = folder.join(relative);
    let escapes = match (folder.canonicalize(), path.canonicalize()) {
        (Ok(folder), Ok(target)) => !target.starts_with(folder),
        _ => false,
    };
    if escapes {
        return Err(InputError::in_file(
            &path,
            "a symlink leads this include outside the baseline file's folder",
        ));
    }
    Source::read(&path)
}

/// Requirement lines of `source`, whose path relative to the top folder is
/// the last of `chain` (the files including it come before).
fn parse_lines(
    source: &Source,
    chain: &[PathBuf],
    read: ReadInclude,
    requirements: &mut Vec<Declared>,
) -> Result<(), InputError> {
    for (start, text) in logical_lines(&source.text) {
        let text = strip_comment(&text).trim().to_owned();
        if text.is_empty() {
            continue;
        }
        let error = |message: String| source.error_at(Some(start..start), "requirement", &message);
        if text.starts_with('-') {
            let include = include_of(&text).map_err(error)?;
            let relative = inside_top(chain, &include).map_err(error)?;
            if chain.contains(&relative) || chain.len() >= MAX_INCLUDE_DEPTH {
                return Err(error(format!(
                    "`{text}`: includes loop or nest deeper than {MAX_INCLUDE_DEPTH} files"
                )));
            }
            let included = read(&relative)?;
            let mut deeper = chain.to_vec();
            deeper.push(relative);
            parse_lines(&included, &deeper, read, requirements)?;
            continue;
        }
        let (requirement, options) = match text.find(" --").or_else(|| text.find("\t--")) {
            Some(index) => (&text[..index], &text[index..]),
            None => (text.as_str(), ""),
        };
        requirements.push(Declared {
            requirement: requirement_of(requirement.trim()).map_err(error)?,
            path: source.path.clone(),
            line: source.line_of(start),
            hashes: hashes_of(options).map_err(error)?,
        });
    }
    Ok(())
}

/// The PEP 508 strings of `[project] dependencies`, each with its line.
fn parse_pyproject(source: &Source, requirements: &mut Vec<Declared>) -> Result<(), InputError> {
    #[derive(serde::Deserialize)]
    struct Pyproject {
        project: Project,
    }
    #[derive(serde::Deserialize)]
    struct Project {
        #[serde(default)]
        dependencies: Vec<toml::Spanned<String>>,
    }
    let pyproject: Pyproject = source.parse()?;
    for (index, dependency) in pyproject.project.dependencies.iter().enumerate() {
        let key = format!("project.dependencies[{index}]");
        let requirement = requirement_of(dependency.get_ref())
            .map_err(|message| source.error_at(Some(dependency.span()), &key, &message))?;
        requirements.push(Declared {
            requirement,
            path: source.path.clone(),
            line: source.line_of(dependency.span().start),
            hashes: Vec::new(),
        });
    }
    Ok(())
}

/// Lines with `\` continuations joined, each with the byte offset it starts at.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    let mut offset = 0;
    for physical in text.split_inclusive('\n') {
        let start = offset;
        offset += physical.len();
        let body = physical.trim_end_matches(['\n', '\r']);
        let (start, mut joined) = pending.take().unwrap_or((start, String::new()));
        match body.trim_end().strip_suffix('\\') {
            Some(continued) => {
                joined.push_str(continued);
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(body);
                lines.push((start, joined));
            }
        }
    }
    lines.extend(pending);
    lines
}

/// The file an option line includes; any other option is refused.
fn include_of(text: &str) -> Result<String, String> {
    let mut words = text.split_whitespace();
    let option = words.next().unwrap_or_default();
    let target = match option {
        "-r" | "--requirement" => words.next().map(str::to_owned),
        _ => option
            .strip_prefix("--requirement=")
            .or_else(|| option.strip_prefix("-r"))
            .filter(|target| !target.is_empty() && !target.starts_with('-'))
            .map(str::to_owned),
    };
    match (target, words.next()) {
        (Some(target), None) => Ok(target),
        _ => Err(format!(
            "`{text}`: only `-r FILE` includes and `--hash` options are supported in a baseline file; index and install options belong in uv's own configuration"
        )),
    }
}

/// `include`, named from the folder of the last file of `chain`, as a path
/// relative to the top file's folder; refused if it leaves that folder.
fn inside_top(chain: &[PathBuf], include: &str) -> Result<PathBuf, String> {
    let including = chain
        .last()
        .and_then(|path| path.parent())
        .unwrap_or(Path::new(""));
    let joined = including.join(include);
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in joined.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir if parts.pop().is_some() => {}
            _ => {
                return Err(format!(
                    "`-r {include}`: an include must stay inside the baseline file's folder"
                ));
            }
        }
    }
    Ok(parts.iter().collect())
}

/// The digests of `--hash=ALGO:HEX` options; any other option is refused.
fn hashes_of(options: &str) -> Result<Vec<String>, String> {
    let mut hashes = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let digest = match word {
            "--hash" => words.next(),
            _ => word.strip_prefix("--hash="),
        };
        let Some(digest) = digest else {
            return Err(format!(
                "`{word}`: only `--hash` options may follow a requirement"
            ));
        };
        let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
            let length = match algorithm {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => 0,
            };
            hex.len() == length && hex.bytes().all(|byte| byte.is_ascii_hexdigit())
        });
        if !valid {
            return Err(format!(
                "`--hash={digest}` is not a sha256, sha384 or sha512 digest in hex"
            ));
        }
        hashes.push(digest.to_ascii_lowercase());
    }
    Ok(hashes)
}

/// One PEP 508 requirement that names a version, not a URL.
fn requirement_of(text: &str) -> Result<Requirement<VerbatimUrl>, String> {
    let requirement = Requirement::<VerbatimUrl>::from_str(text)
        .map_err(|err| format!("`{text}` is not a PEP 508 requirement: {err}"))?;
    if matches!(requirement.version_or_url, Some(VersionOrUrl::Url(_))) {
        return Err(format!(
            "`{text}`: URL requirements are not supported; pin a version"
        ));
    }
    Ok(requirement)
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(index) => &line[..index],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:56e5da069a76470679f312a7d3d23deb3ac4519991a0361abc11da837087b61d";

    fn name(text: &str) -> PackageName {
        PackageName::python(text).unwrap()
    }

    fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn options_other_than_includes_and_hashes_are_refused_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        for (text, line) in [
            (
                "# pins\nflask==2.2.5\n--extra-index-url http://example.invalid\n",
                3,
            ),
            ("flask==2.2.5\n-e .\n", 2),
            ("flask==2.2.5 --index-url http://example.invalid\n", 1),
            ("-r\n", 1),
            ("-r a.txt b.txt\n", 1),
        ] {
            let path = write(dir.path(), "requirements.txt", text);
            let err = BaselineFile::load(&path).unwrap_err();
            assert_eq!(err.line, line, "{text}: {err}");
        }
    }

    #[test]
    fn pinned_versions_are_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "requirements.txt",
            "Flask==2.2.5  # web\nclick>=8\n",
        );
        let file = BaselineFile::load(&path).unwrap();
        assert_eq!(
            file.pinned_version(&name("flask")),
            Some(Version::python("2.2.5").unwrap())
        );
        assert_eq!(file.pinned_version(&name("click")), None);
    }

    #[test]
    fn includes_are_read_and_each_requirement_keeps_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base/common.txt", "# shared\n\nbcrypt==3.2.0\n");
        write(dir.path(), "base/web.txt", "-r common.txt\nflask==2.2.5\n");
        let top = write(
            dir.path(),
            "requirements.txt",
            "--requirement=base/web.txt\npyjwt==1.7.1\n",
        );
        let file = BaselineFile::load(&top).unwrap();
        let origins: Vec<(String, String, usize)> = file
            .requirements
            .iter()
            .map(|declared| {
                (
                    declared.requirement.name.to_string(),
                    declared
                        .path
                        .strip_prefix(dir.path())
                        .unwrap()
                        .display()
                        .to_string(),
                    declared.line,
                )
            })
            .collect();
        assert_eq!(
            origins,
            [
                ("bcrypt".to_owned(), "base/common.txt".to_owned(), 3),
                ("flask".to_owned(), "base/web.txt".to_owned(), 2),
                ("pyjwt".to_owned(), "requirements.txt".to_owned(), 2),
            ]
        );
    }

    #[test]
    fn includes_that_leave_the_folder_or_loop_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.txt", "flask==2.2.5\n");
        let service = dir.path().join("service");
        write(&service, "loop.txt", "-r requirements.txt\n");
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), service.join("link.txt"))
            .unwrap();
        for (text, expected) in [
            ("flask==2.2.5\n-r ../secret.txt\n", "stay inside"),
            ("-r /etc/passwd\n", "stay inside"),
            ("-r loop.txt\n", "loop"),
            ("-r link.txt\n", "symlink"),
        ] {
            let path = write(&service, "requirements.txt", text);
            let err = BaselineFile::load(&path).unwrap_err();
            assert!(err.message.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn hashes_follow_their_requirement_across_continuation_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "requirements.txt",
            &format!(
                "bcrypt==3.2.0 \\\n    --hash={DIGEST} \\\n    --hash {DIGEST}\n    # via -r in\nflask==2.2.5\n"
            ),
        );
        let file = BaselineFile::load(&path).unwrap();
        assert_eq!(file.requirements[0].hashes, [DIGEST, DIGEST]);
        assert_eq!(file.requirements[1].line, 5);
        let mut hashes = DeclaredHashes::default();
        hashes.add(&file);
        assert_eq!(
            hashes.get(&name("bcrypt"), &Version::python("3.2.0").unwrap()),
            Some(&[DIGEST.to_owned(), DIGEST.to_owned()][..])
        );
        assert_eq!(
            hashes.get(&name("flask"), &Version::python("2.2.5").unwrap()),
            None
        );
    }

    #[test]
    fn malformed_hashes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "bcrypt==3.2.0 --hash=md5:0123\n",
            "bcrypt==3.2.0 --hash=sha256:xyz\n",
            "bcrypt==3.2.0 --hash\n",
        ] {
            let path = write(dir.path(), "requirements.txt", text);
            let err = BaselineFile::load(&path).unwrap_err();
            assert_eq!(err.line, 1, "{text}: {err}");
        }
    }
}
