//! Requirements text in and out: the baseline file, and resolved sets from uv.
//!
//! Only parses and prints; it never decides what to install.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::pep440_rs::{Operator, Version};
use pep508_rs::{PackageName, Requirement, VerbatimUrl, VersionOrUrl};
use serde::Serialize;

use crate::input::{InputError, Source};

/// The service's declared dependencies, one requirement per line.
#[derive(Debug, Clone)]
pub struct BaselineFile {
    pub path: PathBuf,
    pub requirements: Vec<Requirement<VerbatimUrl>>,
    /// 1-based line of each requirement, for errors that point at it.
    pub lines: Vec<usize>,
}

impl BaselineFile {
    /// Parses a requirements file of PEP 508 lines, comments and blank lines.
    ///
    /// Options and includes are refused with the line that holds them rather
    /// than passed on, so nothing from the file reaches uv unparsed.
    pub fn load(path: &Path) -> Result<BaselineFile, InputError> {
        BaselineFile::parse(path, &Source::read(path)?)
    }

    /// Parses `source` (which errors name) as the requirements file at `path`:
    /// `pyproject.toml` by its `[project] dependencies`, anything else as
    /// requirement lines.
    pub fn parse(path: &Path, source: &Source) -> Result<BaselineFile, InputError> {
        if path
            .file_name()
            .is_some_and(|name| name == "pyproject.toml")
        {
            return BaselineFile::parse_pyproject(path, source);
        }
        let mut requirements = Vec::new();
        let mut lines = Vec::new();
        let mut offset = 0;
        for line in source.text.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let text = strip_comment(line).trim();
            if text.is_empty() {
                continue;
            }
            let error =
                |message: String| source.error_at(Some(start..start), "requirement", &message);
            if text.starts_with('-') || text.ends_with('\\') {
                return Err(error(format!(
                    "`{text}`: options, includes and line continuations are not supported in a baseline file; list one requirement per line"
                )));
            }
            requirements.push(requirement_of(text).map_err(error)?);
            lines.push(source.line_of(start));
        }
        Ok(BaselineFile {
            path: path.to_owned(),
            requirements,
            lines,
        })
    }

    /// The PEP 508 strings of `[project] dependencies`, each with its line.
    fn parse_pyproject(path: &Path, source: &Source) -> Result<BaselineFile, InputError> {
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
        let mut requirements = Vec::new();
        let mut lines = Vec::new();
        for (index, dependency) in pyproject.project.dependencies.iter().enumerate() {
            let key = format!("project.dependencies[{index}]");
            let requirement = requirement_of(dependency.get_ref())
                .map_err(|message| source.error_at(Some(dependency.span()), &key, &message))?;
            requirements.push(requirement);
            lines.push(source.line_of(dependency.span().start));
        }
        Ok(BaselineFile {
            path: path.to_owned(),
            requirements,
            lines,
        })
    }

    /// The line that requires `package`, if any.
    pub fn line_of(&self, package: &PackageName) -> Option<usize> {
        let index = self
            .requirements
            .iter()
            .position(|requirement| &requirement.name == package)?;
        self.lines.get(index).copied()
    }

    /// Every package pinned with `==`, and its version.
    pub fn pins(&self) -> Vec<(PackageName, Version)> {
        self.requirements
            .iter()
            .filter_map(|requirement| {
                Some((
                    requirement.name.clone(),
                    self.pinned_version(&requirement.name)?,
                ))
            })
            .collect()
    }

    /// The version pinned with `==` for `package`, if the file pins one.
    pub fn pinned_version(&self, package: &PackageName) -> Option<Version> {
        self.requirements
            .iter()
            .filter(|requirement| &requirement.name == package)
            .find_map(|requirement| match &requirement.version_or_url {
                Some(VersionOrUrl::VersionSpecifier(specifiers)) => {
                    match specifiers.iter().collect::<Vec<_>>()[..] {
                        [specifier] if *specifier.operator() == Operator::Equal => {
                            Some(specifier.version().clone())
                        }
                        _ => None,
                    }
                }
                _ => None,
            })
    }
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

/// Every package installed in a cell's environment, transitive ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSet {
    pub packages: BTreeMap<PackageName, Resolved>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub version: Version,
    /// What asked for the package: other packages, or `-r file` for the input.
    pub via: Vec<String>,
}

impl ResolvedSet {
    /// Parses `uv pip compile --annotation-style line` output.
    pub fn parse(text: &str) -> anyhow::Result<ResolvedSet> {
        let mut packages = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
                continue;
            }
            let (requirement, via) = match line.split_once('#') {
                Some((requirement, comment)) => (requirement.trim(), comment.trim()),
                None => (line, ""),
            };
            let (name, version) = requirement
                .split_once("==")
                .ok_or_else(|| anyhow::anyhow!("unexpected line in resolver output: `{line}`"))?;
            let via = via
                .strip_prefix("via")
                .unwrap_or("")
                .split(',')
                .map(|entry| entry.trim().to_owned())
                .filter(|entry| !entry.is_empty())
                .collect();
            packages.insert(
                PackageName::from_str(name.trim())?,
                Resolved {
                    version: Version::from_str(version.trim())?,
                    via,
                },
            );
        }
        Ok(ResolvedSet { packages })
    }

    /// Required by another package of the set (even if also listed directly).
    ///
    /// Such packages move freely in cells: they follow what needs them.
    pub fn is_transitive(&self, package: &PackageName) -> bool {
        self.packages
            .get(package)
            .is_some_and(|resolved| resolved.via.iter().any(|via| !via.starts_with('-')))
    }

    /// `name==version` lines in name order: the install list and the cache key.
    pub fn to_requirements(&self) -> String {
        let mut text = String::new();
        for (name, resolved) in &self.packages {
            let _ = writeln!(text, "{name}=={}", resolved.version);
        }
        text
    }

    /// What differs from `baseline`; packages not in `pinned` moved as a consequence.
    pub fn changes_from(
        &self,
        baseline: &ResolvedSet,
        pinned: &[PackageName],
    ) -> Vec<VersionChange> {
        let names: std::collections::BTreeSet<_> = baseline
            .packages
            .keys()
            .chain(self.packages.keys())
            .collect();
        names
            .into_iter()
            .filter_map(|name| {
                let before = baseline
                    .packages
                    .get(name)
                    .map(|resolved| resolved.version.to_string());
                let after = self
                    .packages
                    .get(name)
                    .map(|resolved| resolved.version.to_string());
                (before != after).then(|| VersionChange {
                    package: name.to_string(),
                    before,
                    after,
                    transitive: !pinned.contains(name),
                })
            })
            .collect()
    }
}

/// A package whose version in a cell differs from the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VersionChange {
    pub package: String,
    /// `None`: not installed at baseline.
    pub before: Option<String>,
    /// `None`: not installed in the cell.
    pub after: Option<String>,
    /// Moved because something else was pinned, not pinned itself.
    pub transitive: bool,
}

impl std::fmt::Display for VersionChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side =
            |version: &Option<String>| version.clone().unwrap_or_else(|| "(none)".to_owned());
        write!(
            f,
            "{} {} → {}",
            self.package,
            side(&self.before),
            side(&self.after)
        )?;
        if self.transitive {
            write!(f, " (transitive)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPILED: &str = "\
bcrypt==3.2.0             # via -r requirements.txt
cffi==1.17.1              # via bcrypt
flask==2.2.5              # via -r requirements.txt
werkzeug==2.2.3           # via flask, -r requirements.txt
";

    fn name(text: &str) -> PackageName {
        PackageName::from_str(text).unwrap()
    }

    #[test]
    fn resolved_set_knows_what_is_transitive() {
        let set = ResolvedSet::parse(COMPILED).unwrap();
        assert_eq!(set.packages.len(), 4);
        assert!(set.is_transitive(&name("Werkzeug")));
        assert!(set.is_transitive(&name("cffi")));
        assert!(!set.is_transitive(&name("flask")));
        assert_eq!(set.to_requirements().lines().next(), Some("bcrypt==3.2.0"));
    }

    #[test]
    fn changes_mark_transitive_moves() {
        let baseline = ResolvedSet::parse(COMPILED).unwrap();
        let cell = ResolvedSet::parse(
            "blinker==1.9.0 # via flask\nbcrypt==3.2.0\ncffi==1.17.1\nflask==3.0.3\nwerkzeug==3.1.3\n",
        )
        .unwrap();
        let changes: Vec<String> = cell
            .changes_from(&baseline, &[name("flask")])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "blinker (none) → 1.9.0 (transitive)",
                "flask 2.2.5 → 3.0.3",
                "werkzeug 2.2.3 → 3.1.3 (transitive)"
            ]
        );
    }

    #[test]
    fn baseline_file_rejects_options_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requirements.txt");
        std::fs::write(
            &path,
            "# pins\nflask==2.2.5\n--extra-index-url http://example.invalid\n",
        )
        .unwrap();
        let err = BaselineFile::load(&path).unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert!(err.message.contains("not supported"), "{err}");
    }

    #[test]
    fn baseline_file_knows_pinned_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requirements.txt");
        std::fs::write(&path, "Flask==2.2.5  # web\nclick>=8\n").unwrap();
        let file = BaselineFile::load(&path).unwrap();
        assert_eq!(
            file.pinned_version(&name("flask")),
            Some("2.2.5".parse().unwrap())
        );
        assert_eq!(file.pinned_version(&name("click")), None);
    }
}
