//! A Node service's `pnpm-lock.yaml` (pnpm's lockfile version 9, pnpm 9
//! and later): its registry packages as pins with their lines, what each
//! needs, the service's own dependencies (the `.` importer), checked against
//! the `package.json` beside it.
//!
//! Only parses, with the same refusals as `npm_lock.rs`: a name that is no
//! npm package name or a version that is no semver version stops here with
//! its line. Packages the lock takes from a path, git or a URL (their
//! version is no registry version) are the lock's to keep, never pins.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use super::declared::{DeclaredPin, Direct, NodeLock, Requires};
use super::npm_lock::{Stale, read_json};
use crate::input::source::{InputError, Source};
use crate::model::package::{Ecosystem, PackageName, Version};

/// Whether `path` names a lock this module reads.
pub(crate) fn is_lock(path: &Path) -> bool {
    path.file_name() == Some(std::ffi::OsStr::new("pnpm-lock.yaml"))
}

/// The dependency kinds an importer lists.
const KINDS: [&str; 3] = ["dependencies", "devDependencies", "optionalDependencies"];

fn load(source: &Source) -> Result<Yaml, InputError> {
    let mut documents = YamlLoader::load_from_str(&source.text).map_err(|err| InputError {
        line: err.marker().line().max(1),
        column: err.marker().col() + 1,
        ..InputError::in_file(&source.path, format!("not a pnpm-lock.yaml: {err}"))
    })?;
    match documents.is_empty() {
        true => Err(InputError::in_file(&source.path, "an empty pnpm-lock.yaml")),
        false => Ok(documents.swap_remove(0)),
    }
}

/// `name@version` (`@scope/name@version`, a snapshot's `(peer@1.0.0)`
/// suffix dropped) as its two parts.
fn split_key(key: &str) -> Option<(&str, &str)> {
    let key = key.split('(').next().unwrap_or(key);
    let at = key[1..].find('@')? + 1;
    Some((&key[..at], &key[at + 1..]))
}

/// The line of `key` as a mapping key at the start of a line, indented.
fn line_of(source: &Source, key: &str) -> usize {
    let quoted = format!("'{key}':");
    let plain = format!("{key}:");
    source
        .text
        .lines()
        .position(|line| {
            let line = line.trim_start();
            line.starts_with(&plain) || line.starts_with(&quoted)
        })
        .map_or(1, |index| index + 1)
}

/// Reads the lock in `source`.
pub(crate) fn parse(source: &Source) -> Result<NodeLock, InputError> {
    let lock = load(source)?;
    let version = match &lock["lockfileVersion"] {
        Yaml::String(text) => text.clone(),
        Yaml::Real(text) => text.clone(),
        Yaml::Integer(number) => number.to_string(),
        _ => "none".to_owned(),
    };
    if !version.starts_with('9') {
        let mut err = InputError::in_file(
            &source.path,
            format!(
                "lockfile version {version}: only version 9 (pnpm 9 and later) is read; run `pnpm install --lockfile-only` with pnpm 9 or later to upgrade it"
            ),
        );
        err.line = line_of(source, "lockfileVersion");
        err.key = "lockfileVersion".to_owned();
        return Err(err);
    }
    let mut pins = Vec::new();
    let mut unchecked = Vec::new();
    if let Yaml::Hash(packages) = &lock["packages"] {
        for (key, package) in packages {
            let Some(key) = key.as_str() else { continue };
            let line = line_of(source, key);
            let refuse = |message: String| {
                let mut err = InputError::in_file(&source.path, message);
                err.line = line;
                err.key = format!("packages.{key}");
                err
            };
            let (name, version) =
                split_key(key).ok_or_else(|| refuse(format!("`{key}` is not `name@version`")))?;
            let name = PackageName::npm(name).map_err(refuse)?;
            // A path, git or URL package: its "version" is where it comes from.
            if version.contains(':') || version.contains('/') {
                continue;
            }
            let version = Version::parse(Ecosystem::Node, version).map_err(refuse)?;
            if package["resolution"]["integrity"].as_str().is_none() {
                unchecked.push(format!("{name} {version}"));
            }
            pins.push(DeclaredPin {
                package: name,
                version,
                path: source.path.clone(),
                line,
            });
        }
    }
    let mut requires = Requires::new();
    if let Yaml::Hash(snapshots) = &lock["snapshots"] {
        for (key, snapshot) in snapshots {
            let Some((name, _)) = key.as_str().and_then(split_key) else {
                continue;
            };
            let Ok(name) = PackageName::npm(name) else {
                continue;
            };
            let needs = requires.entry(name).or_default();
            for kind in ["dependencies", "optionalDependencies"] {
                if let Yaml::Hash(map) = &snapshot[kind] {
                    needs.extend(
                        map.keys()
                            .filter_map(Yaml::as_str)
                            .filter_map(|dependency| PackageName::npm(dependency).ok()),
                    );
                }
            }
        }
    }
    // The service's own importer (`.`) and a workspace member's: what they
    // need is what the service asked for.
    let mut direct = Direct::new();
    let mut members = Vec::new();
    if let Yaml::Hash(importers) = &lock["importers"] {
        for (key, importer) in importers {
            let Some(key) = key.as_str() else { continue };
            members.extend(super::npm_lock::member_folder(key).filter(|_| key != "."));
            for kind in KINDS {
                if let Yaml::Hash(map) = &importer[kind] {
                    direct.extend(
                        map.keys()
                            .filter_map(Yaml::as_str)
                            .filter_map(|name| PackageName::npm(name).ok()),
                    );
                }
            }
        }
    }
    pins.sort_by_key(|pin| pin.line);
    Ok(NodeLock {
        pins,
        requires,
        direct,
        unchecked,
        members,
    })
}

/// Refuses a lock out of date with its `package.json` (in `manifest`): a
/// dependency declared with another specifier than the lock's `.` importer
/// records, or one only one side has, as `pnpm install --frozen-lockfile`
/// refuses it.
/// So is each workspace member's (its folder and `package.json`) against
/// its own importer; the lock is read once.
pub(crate) fn check_in_sync(
    lock: &Source,
    manifest: &Source,
    members: &[(std::path::PathBuf, Source)],
) -> Result<(), InputError> {
    let locked = load(lock)?;
    importer_in_sync(&locked, lock, ".", manifest)?;
    for (member, manifest) in members {
        importer_in_sync(&locked, lock, &member.to_string_lossy(), manifest)?;
    }
    Ok(())
}

/// Whether the lock's importer `importer` (`.` for the service's own
/// package, a member's folder for that member's) records what `manifest`
/// declares.
fn importer_in_sync(
    locked: &Yaml,
    lock: &Source,
    importer: &str,
    manifest: &Source,
) -> Result<(), InputError> {
    let declared: serde_json::Value = read_json(manifest, "package.json")?;
    for kind in KINDS {
        let empty = serde_json::Map::new();
        let wanted = declared
            .get(kind)
            .and_then(serde_json::Value::as_object)
            .unwrap_or(&empty);
        let held = &locked["importers"][importer][kind];
        for (name, range) in wanted {
            let specifier = held[name.as_str()]["specifier"].as_str();
            if specifier != range.as_str() {
                let stale = Stale {
                    kind,
                    name,
                    range: range.as_str().unwrap_or("?"),
                    held: specifier,
                };
                return Err(stale.error(lock, manifest, "pnpm"));
            }
        }
        if let Yaml::Hash(map) = held
            && let Some(name) = map
                .keys()
                .filter_map(Yaml::as_str)
                .find(|name| !wanted.contains_key(*name))
        {
            let mut err = InputError::in_file(
                &lock.path,
                format!(
                    "the lock's `{importer}` importer needs {name}, which {} does not declare; run `pnpm install` to update the lock",
                    manifest.path.display()
                ),
            );
            err.line = line_of(lock, name);
            err.key = format!("importers.\"{importer}\".{kind}.{name}");
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::source::in_memory as source;

    const LOCK: &str = "lockfileVersion: '9.0'

settings:
  autoInstallPeers: true

importers:

  .:
    dependencies:
      '@types/node':
        specifier: 22.0.0
        version: 22.0.0
      express:
        specifier: 4.21.2
        version: 4.21.2
      local-lib:
        specifier: file:lib
        version: file:lib

packages:

  '@types/node@22.0.0':
    resolution: {integrity: sha512-abc}

  debug@2.6.9:
    resolution: {integrity: sha512-def}

  express@4.21.2:
    resolution: {integrity: sha512-ghi}
    engines: {node: '>= 0.10.0'}

  local-lib@file:lib:
    resolution: {directory: lib, type: directory}

snapshots:

  '@types/node@22.0.0': {}

  debug@2.6.9: {}

  express@4.21.2(debug@2.6.9):
    dependencies:
      debug: 2.6.9

  local-lib@file:lib: {}
";

    #[test]
    fn registry_packages_are_pins_with_their_lines_and_paths_are_kept() {
        let lock = parse(&source("pnpm-lock.yaml", LOCK)).unwrap();
        let pins: Vec<String> = lock
            .pins
            .iter()
            .map(|pin| format!("{} {} :{}", pin.package, pin.version, pin.line))
            .collect();
        assert_eq!(
            pins,
            [
                "@types/node 22.0.0 :22",
                "debug 2.6.9 :25",
                "express 4.21.2 :28"
            ]
        );
        let express = PackageName::npm("express").unwrap();
        assert!(lock.requires[&express].contains(&PackageName::npm("debug").unwrap()));
        assert_eq!(lock.direct.len(), 3);
        assert!(lock.unchecked.is_empty());
    }

    #[test]
    fn an_old_lock_or_a_hostile_name_is_refused_with_its_line() {
        let old = parse(&source("pnpm-lock.yaml", "lockfileVersion: '6.0'\n")).unwrap_err();
        assert_eq!(old.line, 1);
        assert!(old.to_string().contains("only version 9"), "{old}");
        let hostile = LOCK.replace(
            "  debug@2.6.9:\n    resolution",
            "  ../x@2.6.9:\n    resolution",
        );
        let err = parse(&source("pnpm-lock.yaml", &hostile)).unwrap_err();
        assert_eq!(err.line, 25, "{err}");
        assert!(err.to_string().contains("not an npm package name"), "{err}");
    }

    #[test]
    fn a_lock_out_of_date_with_its_manifest_is_refused_with_the_manifest_s_line() {
        let lock = source("pnpm-lock.yaml", LOCK);
        let manifest = |express: &str| {
            source(
                "package.json",
                &format!(
                    "{{\n  \"dependencies\": {{\n    \"@types/node\": \"22.0.0\",\n    \"express\": \"{express}\",\n    \"local-lib\": \"file:lib\"\n  }}\n}}\n"
                ),
            )
        };
        check_in_sync(&lock, &manifest("4.21.2"), &[]).unwrap();
        let err = check_in_sync(&lock, &manifest("^5.1.0"), &[]).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(
            err.to_string()
                .contains("`express: ^5.1.0` here, the lock has `4.21.2`"),
            "{err}"
        );
    }
}
