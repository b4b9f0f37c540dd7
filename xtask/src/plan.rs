//! Turns the matrix into a plan: the baseline cell plus the cells a strategy picks.
//!
//! Planning is pure: it reads the config's matrix and the baseline pins and
//! never touches the network or the disk.

use std::fmt;
use std::path::{Path, PathBuf};

use pep508_rs::PackageName;
use pep508_rs::pep440_rs::Version;
use serde::Serialize;

use crate::config::{Matrix, Strategy};

/// A package at one exact version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Pin {
    pub package: PackageName,
    #[serde(serialize_with = "serialize_display")]
    pub version: Version,
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.package, self.version)
    }
}

fn serialize_display<S: serde::Serializer, T: fmt::Display>(
    value: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// One complete set of pins to try: the baseline with `pins` forced on top.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Stable, file-name-safe identifier, e.g. `bcrypt-5.0.0`.
    pub id: String,
    /// What a reader sees: `baseline`, or what differs from it.
    pub name: String,
    /// Pins that differ from the baseline; empty for the baseline itself.
    pub pins: Vec<Pin>,
    /// The environment profile the service runs with.
    pub profile: String,
    /// Resolve this requirements file as it is, instead of the baseline with
    /// `pins` forced on top (a pull request's whole change).
    pub from_file: Option<PathBuf>,
    is_baseline: bool,
}

impl Cell {
    pub fn baseline(profile: &str) -> Cell {
        Cell {
            id: "baseline".to_owned(),
            name: "baseline".to_owned(),
            pins: Vec::new(),
            profile: profile.to_owned(),
            from_file: None,
            is_baseline: true,
        }
    }

    pub fn is_baseline(&self) -> bool {
        self.is_baseline
    }

    /// The baseline pins under another profile.
    fn with_profile(profile: &str) -> Cell {
        Cell {
            id: format!("profile-{profile}"),
            name: format!("profile {profile}"),
            pins: Vec::new(),
            profile: profile.to_owned(),
            from_file: None,
            is_baseline: false,
        }
    }

    /// A requirements file resolved as it is; `pins` are the versions it changes.
    pub fn from_file(path: &Path, name: &str, profile: &str, pins: Vec<Pin>) -> Cell {
        Cell {
            id: "whole-change".to_owned(),
            name: name.to_owned(),
            pins,
            profile: profile.to_owned(),
            from_file: Some(path.to_owned()),
            is_baseline: false,
        }
    }

    pub fn with_pins(pins: Vec<Pin>, profile: &str) -> Cell {
        let name = pins
            .iter()
            .map(Pin::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let id = pins
            .iter()
            .map(|pin| format!("{}-{}", pin.package, pin.version))
            .collect::<Vec<_>>()
            .join("+");
        Cell {
            id,
            name,
            pins,
            profile: profile.to_owned(),
            from_file: None,
            is_baseline: false,
        }
    }
}

/// The cells to run, baseline first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub cells: Vec<Cell>,
    /// Candidates that add no cell of their own, and why.
    pub skipped: Vec<String>,
}

/// Picks cells from the matrix; `baseline_version` answers which version the
/// service declares today for a package, if it pins one.
pub fn plan(
    matrix: &Matrix,
    baseline_profile: &str,
    baseline_version: impl Fn(&PackageName) -> Option<Version>,
) -> Plan {
    match matrix.strategy {
        Strategy::OneAtATime => one_at_a_time(matrix, baseline_profile, baseline_version),
    }
}

/// The baseline, plus each candidate alone with everything else at baseline,
/// plus each other profile with the baseline pins.
fn one_at_a_time(
    matrix: &Matrix,
    baseline_profile: &str,
    baseline_version: impl Fn(&PackageName) -> Option<Version>,
) -> Plan {
    let mut cells = vec![Cell::baseline(baseline_profile)];
    let mut skipped = Vec::new();
    for (package, candidates) in &matrix.packages {
        let current = baseline_version(package);
        for version in candidates.versions() {
            let pin = Pin {
                package: package.clone(),
                version: version.clone(),
            };
            if current.as_ref() == Some(version) {
                skipped.push(format!("{pin} is the baseline version"));
            } else {
                cells.push(Cell::with_pins(vec![pin], baseline_profile));
            }
        }
    }
    for profile in &matrix.profiles {
        if profile != baseline_profile {
            cells.push(Cell::with_profile(profile));
        }
    }
    Plan { cells, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Candidates;

    fn name(text: &str) -> PackageName {
        PackageName::new(text.to_owned()).unwrap()
    }

    fn version(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn one_at_a_time_skips_the_baseline_version_and_keeps_order() {
        let matrix = Matrix {
            strategy: Strategy::OneAtATime,
            packages: vec![
                (
                    name("bcrypt"),
                    Candidates::Versions(vec![
                        version("3.2.0"),
                        version("4.1.2"),
                        version("5.0.0"),
                    ]),
                ),
                (name("PyJWT"), Candidates::Versions(vec![version("2.8.0")])),
            ],
            profiles: vec!["dev".to_owned(), "staging".to_owned()],
        };
        let plan = plan(&matrix, "dev", |package| {
            (package == &name("bcrypt")).then(|| version("3.2"))
        });
        let ids: Vec<_> = plan.cells.iter().map(|cell| cell.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "baseline",
                "bcrypt-4.1.2",
                "bcrypt-5.0.0",
                "pyjwt-2.8.0",
                "profile-staging"
            ]
        );
        assert_eq!(plan.cells[2].name, "bcrypt 5.0.0");
        assert_eq!(plan.cells[2].profile, "dev");
        let staging = &plan.cells[4];
        assert!(staging.pins.is_empty() && !staging.is_baseline());
        assert_eq!(staging.profile, "staging");

        // 3.2 == 3.2.0 under PEP 440, so no cell repeats the baseline.
        assert_eq!(plan.skipped.len(), 1);
    }
}
