//! Why a released package moved: the requirement of an installed package
//! that the baseline's version does not meet, read from the environment's
//! own metadata (`Requires-Dist` in each `.dist-info/METADATA`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::{Requirement, VersionOrUrl};

use super::{PythonEnvironment, ResolvedSet};
use crate::model::findings::VersionChange;
use crate::model::package::PackageName;

/// Fills `forced_by` of each transitive change in `changes`: the installed
/// packages whose requirement on it excludes the baseline's version.
pub(crate) fn explain(
    python: &PythonEnvironment,
    set: &ResolvedSet,
    baseline: &ResolvedSet,
    changes: &mut [VersionChange],
) {
    let Some(site_packages) = site_packages(&python.venv) else {
        return;
    };
    for change in changes.iter_mut().filter(|change| change.transitive) {
        let (Ok(package), Some(_)) = (PackageName::python(&change.package), &change.after) else {
            continue;
        };
        let Some(resolved) = set.packages.get(&package) else {
            continue;
        };
        let before = baseline
            .packages
            .get(&package)
            .and_then(|before| before.version.as_pep440().cloned());
        for dependent in resolved.via.iter().filter(|via| !via.starts_with('-')) {
            let Ok(dependent) = PackageName::python(dependent) else {
                continue;
            };
            let Some(installed) = set.packages.get(&dependent) else {
                continue;
            };
            for requirement in requirements_of(&site_packages, &dependent) {
                let forces = match (&requirement.version_or_url, &before) {
                    (Some(VersionOrUrl::VersionSpecifier(specifiers)), Some(before)) => {
                        !specifiers.contains(before)
                    }
                    // A package the baseline did not have: required, so it came.
                    (_, None) => true,
                    _ => false,
                };
                if requirement.name.as_ref() == package.to_string() && forces {
                    let specifiers = match &requirement.version_or_url {
                        Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers.to_string(),
                        _ => String::new(),
                    };
                    change.forced_by.push(format!(
                        "{dependent} {} requires {package}{specifiers}",
                        installed.version
                    ));
                }
            }
        }
    }
}

/// The first requirement an installed package declares that a cell's pin
/// breaks (`fastapi 0.95.2 requires pydantic<2.0.0`, under a pin of
/// pydantic 2.5.3 forced over it): such a cell is not installable alone,
/// and what its service answers says nothing of the pinned version. Only
/// requirements without an environment marker count: they hold everywhere.
pub(crate) fn broken_requirement(
    python: &PythonEnvironment,
    set: &ResolvedSet,
    pins: &[crate::model::cell::Pin],
) -> Option<String> {
    let site_packages = site_packages(&python.venv)?;
    for (dependent, installed) in &set.packages {
        if pins.iter().any(|pin| &pin.package == dependent) {
            continue;
        }
        for requirement in requirements_of(&site_packages, dependent) {
            let Some(pin) = pins
                .iter()
                .find(|pin| requirement.name.as_ref() == pin.package.to_string())
            else {
                continue;
            };
            let (Some(VersionOrUrl::VersionSpecifier(specifiers)), Some(version)) =
                (&requirement.version_or_url, pin.version.as_pep440())
            else {
                continue;
            };
            if requirement.marker.is_true() && !specifiers.contains(version) {
                return Some(format!(
                    "{dependent} {} requires {}{specifiers}",
                    installed.version, pin.package
                ));
            }
        }
    }
    None
}

/// `venv/lib/pythonX.Y/site-packages`.
fn site_packages(venv: &Path) -> Option<PathBuf> {
    fs_err::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages"))
        .find(|path| path.is_dir())
}

/// The unconditional and environment-marked requirements of an installed
/// distribution (those behind an extra are left out: no extra is installed).
fn requirements_of(site_packages: &Path, package: &PackageName) -> Vec<Requirement> {
    let Ok(entries) = fs_err::read_dir(site_packages) else {
        return Vec::new();
    };
    let Some(dist_info) = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".dist-info"))
                .and_then(|name| name.rsplit_once('-'))
                .is_some_and(|(name, _)| {
                    PackageName::python(name).is_ok_and(|name| &name == package)
                })
        })
    else {
        return Vec::new();
    };
    let metadata = fs_err::read_to_string(dist_info.join("METADATA")).unwrap_or_default();
    metadata
        .lines()
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix("Requires-Dist:"))
        .filter(|requirement| !requirement.contains("extra =="))
        .filter_map(|requirement| Requirement::from_str(requirement.trim()).ok())
        .collect()
}
