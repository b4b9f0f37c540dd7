//! Cells and plans: which pins a run tries, the values every later stage is handed.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::package::{PackageName, Version};

/// The id of a pull request's whole-change cell.
const WHOLE_CHANGE: &str = "whole-change";

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
    pub fn with_profile(profile: &str) -> Cell {
        Cell {
            id: format!("profile-{profile}"),
            name: format!("profile {profile}"),
            pins: Vec::new(),
            profile: profile.to_owned(),
            from_file: None,
            is_baseline: false,
        }
    }

    /// A pull request's whole change: what several asked-for moves make together.
    pub fn is_whole_change(&self) -> bool {
        self.id == WHOLE_CHANGE
    }

    /// A requirements file resolved as it is; `pins` are the versions it changes.
    pub fn from_file(path: &Path, name: &str, profile: &str, pins: Vec<Pin>) -> Cell {
        Cell {
            id: WHOLE_CHANGE.to_owned(),
            name: name.to_owned(),
            pins,
            profile: profile.to_owned(),
            from_file: Some(path.to_owned()),
            is_baseline: false,
        }
    }

    /// The one package a change asked for, with what moved along, as the
    /// changed file resolves it: a cell of that package, built from the file.
    pub fn change_from_file(path: &Path, pins: Vec<Pin>, profile: &str) -> Cell {
        Cell {
            from_file: Some(path.to_owned()),
            ..Cell::with_pins(pins, profile)
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
