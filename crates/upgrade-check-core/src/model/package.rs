//! Package names and versions, each under its ecosystem's own rules.
//!
//! A name is validated and normalised once, where it is read (PEP 503 for
//! Python, the registry's crate-name rules for cargo, npm's package-name
//! rules for Node); a version is a PEP 440 or a semver version and is only
//! ever compared with one of its kind.
//! Everything downstream (plans, bisection, reports) handles both alike.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a service's dependencies come from, and whose rules they follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ecosystem {
    /// Pins in a requirements file or `pyproject.toml`; environments built with uv.
    Python,
    /// Pins in `Cargo.lock`; each resolved set built once with cargo.
    Cargo,
    /// Pins in `package-lock.json`, `pnpm-lock.yaml` or `yarn.lock`; each
    /// resolved set installed once by the package manager that locked it.
    Node,
}

impl Ecosystem {
    /// As the config names it: `ecosystem = "python"`.
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Python => "python",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Node => "node",
        }
    }

    /// The rules its versions follow, as messages name them.
    pub fn version_rules(self) -> &'static str {
        match self {
            Ecosystem::Python => "PEP 440",
            Ecosystem::Cargo | Ecosystem::Node => "semver",
        }
    }

    /// Where its packages' versions are listed, as messages name it.
    pub fn index_name(self) -> &'static str {
        match self {
            Ecosystem::Python => "the package index",
            Ecosystem::Cargo => "the registry index",
            Ecosystem::Node => "the npm registry",
        }
    }
}

/// A range in its ecosystem's own terms.
#[derive(Debug, Clone)]
pub enum Requirement {
    /// PEP 440 specifiers: `>=3.2,<6`.
    Pep440(pep508_rs::pep440_rs::VersionSpecifiers),
    /// A cargo version requirement: `>=0.7, <0.9`, `^1.2`.
    Semver(semver::VersionReq),
}

impl Requirement {
    /// Reads a range in `ecosystem`'s terms; the error says what it is not.
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Result<Requirement, String> {
        match ecosystem {
            Ecosystem::Python => pep508_rs::pep440_rs::VersionSpecifiers::from_str(text)
                .map(Requirement::Pep440)
                .map_err(|err| format!("`{text}` is not a PEP 440 version range: {err}")),
            Ecosystem::Cargo => semver::VersionReq::parse(text)
                .map(Requirement::Semver)
                .map_err(|err| format!("`{text}` is not a cargo version requirement: {err}")),
            // One range of comparators, written as cargo writes them (npm's
            // `>=4 <6` is `>=4, <6`): a matrix range, not a package's own.
            Ecosystem::Node => semver::VersionReq::parse(text)
                .map(Requirement::Semver)
                .map_err(|err| {
                    format!("`{text}` is not a version range (comparators separated by commas, `>=4, <6`): {err}")
                }),
        }
    }

    /// Whether `version` is inside. A cargo pre-release counts by its
    /// release (`1.5.0-rc.1` as `1.5.0`): `pre` decides whether it is
    /// wanted at all, as for Python.
    pub fn contains(&self, version: &Version) -> bool {
        match (self, version) {
            (Requirement::Pep440(specifiers), Version::Python(version)) => {
                specifiers.contains(version)
            }
            (Requirement::Semver(requirement), Version::Semver(version)) => {
                let mut release = version.clone();
                release.pre = semver::Prerelease::EMPTY;
                requirement.matches(&release)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::Pep440(specifiers) => specifiers.fmt(f),
            Requirement::Semver(requirement) => requirement.fmt(f),
        }
    }
}

/// A dependency's name, normalised for its ecosystem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageName(String);

/// Crate names longer than this are refused by the registry.
const MAX_CRATE_NAME: usize = 64;

/// npm package names longer than this are refused by the registry.
const MAX_NPM_NAME: usize = 214;

impl PackageName {
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Result<PackageName, String> {
        match ecosystem {
            Ecosystem::Python => PackageName::python(text),
            Ecosystem::Cargo => PackageName::crate_name(text),
            Ecosystem::Node => PackageName::npm(text),
        }
    }

    /// A PEP 503 name: lower case, runs of `-`, `_` and `.` as one `-`.
    pub fn python(text: &str) -> Result<PackageName, String> {
        pep508_rs::PackageName::new(text.to_owned())
            .map(|name| PackageName(name.to_string()))
            .map_err(|err| err.to_string())
    }

    /// A crate name as the registry accepts it: an ASCII letter, then
    /// letters, digits, `-` and `_`, at most 64 characters. Kept as written:
    /// cargo matches package specs by their exact name.
    pub fn crate_name(text: &str) -> Result<PackageName, String> {
        let valid = text.len() <= MAX_CRATE_NAME
            && text.starts_with(|c: char| c.is_ascii_alphabetic())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(PackageName(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not a crate name (an ASCII letter, then letters, digits, - and _, at most {MAX_CRATE_NAME})"
            ))
        }
    }

    /// An npm package name as the registry accepts new ones: lower case
    /// letters, digits, `-`, `.`, `_` and `~`, not starting with `.` or `_`,
    /// optionally under a `@scope/`, at most 214 characters. Kept as written.
    pub fn npm(text: &str) -> Result<PackageName, String> {
        let part = |part: &str| {
            !part.is_empty()
                && !part.starts_with(['.', '_'])
                && part.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '-' | '.' | '_' | '~')
                })
        };
        let valid = text.len() <= MAX_NPM_NAME
            && match text.strip_prefix('@') {
                Some(scoped) => scoped
                    .split_once('/')
                    .is_some_and(|(scope, name)| part(scope) && part(name)),
                None => part(text),
            };
        if valid {
            Ok(PackageName(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not an npm package name (lower case letters, digits, - . _ ~, optionally under @scope/, at most {MAX_NPM_NAME})"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PackageName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PackageName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One exact version of a package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Version {
    /// PEP 440: `2.8.0`, `5.0.0rc1`, `1.0.post1`.
    Python(pep508_rs::pep440_rs::Version),
    /// Semantic versioning, as cargo and npm read it: `2.0.5`, `1.0.0-alpha.1`.
    Semver(semver::Version),
}

impl Version {
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Result<Version, String> {
        match ecosystem {
            Ecosystem::Python => Version::python(text),
            Ecosystem::Cargo | Ecosystem::Node => semver::Version::parse(text)
                .map(Version::Semver)
                .map_err(|err| format!("`{text}` is not a semver version: {err}")),
        }
    }

    pub fn python(text: &str) -> Result<Version, String> {
        pep508_rs::pep440_rs::Version::from_str(text)
            .map(Version::Python)
            .map_err(|err| err.to_string())
    }

    /// The PEP 440 version, for what only Python has (specifier ranges).
    pub fn as_pep440(&self) -> Option<&pep508_rs::pep440_rs::Version> {
        match self {
            Version::Python(version) => Some(version),
            Version::Semver(_) => None,
        }
    }

    /// An alpha, beta, release candidate or dev release (PEP 440), or any
    /// semver pre-release.
    pub fn is_prerelease(&self) -> bool {
        match self {
            Version::Python(version) => version.any_prerelease(),
            Version::Semver(version) => !version.pre.is_empty(),
        }
    }

    /// Semver-compatible: the same major version, or below 1.0 the same minor.
    /// Cargo links at most one version of a crate per such range.
    pub fn is_compatible_with(&self, other: &Version) -> bool {
        let (a, b) = (self.release(), other.release());
        match (a.first(), b.first()) {
            (Some(0), Some(0)) => a.get(1) == b.get(1),
            (major, other) => major == other,
        }
    }

    /// The release numbers: `[5, 0, 0]` for 5.0.0rc1 as for 5.0.0.
    pub fn release(&self) -> Vec<u64> {
        match self {
            Version::Python(version) => version.release().to_vec(),
            Version::Semver(version) => vec![version.major, version.minor, version.patch],
        }
    }
}

impl Ord for Version {
    /// Versions of one ecosystem by its rules; a plan never mixes the two.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Version::Python(a), Version::Python(b)) => a.cmp(b),
            (Version::Semver(a), Version::Semver(b)) => a.cmp(b),
            (Version::Python(_), Version::Semver(_)) => Ordering::Less,
            (Version::Semver(_), Version::Python(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Python(version) => version.fmt(f),
            Version::Semver(version) => version.fmt(f),
        }
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_ecosystem() {
        assert_eq!(PackageName::python("PyJWT").unwrap().as_str(), "pyjwt");
        assert_eq!(
            PackageName::python("zope.interface").unwrap().as_str(),
            "zope-interface"
        );
        // Cargo matches `-p serde_json` exactly: the name stays as written.
        assert_eq!(
            PackageName::crate_name("serde_json").unwrap().as_str(),
            "serde_json"
        );
        for bad in [
            "",
            "1up",
            "serde json",
            "mime_guess;id",
            "../x",
            &"a".repeat(65),
        ] {
            assert!(PackageName::crate_name(bad).is_err(), "{bad}");
        }
        for good in ["express", "@types/node", "sql.js", "lodash.merge", "a~b"] {
            assert_eq!(PackageName::npm(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Express",
            ".bin",
            "_private",
            "@scope",
            "@scope/",
            "@../x",
            "../x",
            "a/b",
            "x;id",
            &"a".repeat(215),
        ] {
            assert!(PackageName::npm(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_compare_by_their_own_rules() {
        let python = |text| Version::parse(Ecosystem::Python, text).unwrap();
        let cargo = |text| Version::parse(Ecosystem::Cargo, text).unwrap();
        assert!(python("5.0.0rc1") < python("5.0.0"));
        assert!(python("1.10") > python("1.9"));
        assert!(cargo("1.0.0-alpha.1") < cargo("1.0.0"));
        assert!(cargo("2.0.10") > cargo("2.0.9"));
        assert!(cargo("1.0.0-beta").is_prerelease());
        assert_eq!(cargo("2.0.5").release(), [2, 0, 5]);
        // PEP 440 would read this as 1.0 with a local label; semver refuses it.
        assert!(Version::parse(Ecosystem::Cargo, "1.0").is_err());
        assert!(Version::parse(Ecosystem::Cargo, "2.0.5; rm -rf /").is_err());
    }
}
