//! A Node service's `yarn.lock`, Yarn 1's (`# yarn lockfile v1`, a format
//! of its own) or Yarn 2+'s ("Berry": YAML with a `__metadata` entry): its
//! registry packages as pins with their lines, what each needs, the
//! service's own dependencies, checked against the `package.json` beside it.
//!
//! Only parses, with the same refusals as `npm_lock.rs`: a name that is no
//! npm package name or a version that is no semver version stops here with
//! its line. Packages taken from a path, git, a URL, an alias or a patch are
//! the lock's to keep, never pins.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use super::declared::{DeclaredPin, Direct, NodeLock, Requires};
use super::npm_lock::{Stale, read_json};
use crate::input::source::{InputError, Source};
use crate::model::package::{Ecosystem, PackageName, Version};

/// Whether `path` names a lock this module reads.
pub(crate) fn is_lock(path: &Path) -> bool {
    path.file_name() == Some(std::ffi::OsStr::new("yarn.lock"))
}

/// Which Yarn wrote a lock: Berry's carry a `__metadata` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// Yarn 1 ("classic").
    Classic,
    /// Yarn 2 and later.
    Berry,
}

impl Flavour {
    pub(crate) fn of(text: &str) -> Flavour {
        match text.lines().any(|line| line.starts_with("__metadata:")) {
            true => Flavour::Berry,
            false => Flavour::Classic,
        }
    }
}

/// The dependency kinds a `package.json` declares.
const KINDS: [&str; 3] = ["dependencies", "devDependencies", "optionalDependencies"];

/// One entry of either flavour: the specifiers it answers (`name@range`,
/// Berry's `name@npm:range`), and what it resolved to.
#[derive(Debug, Default)]
struct Entry {
    specifiers: Vec<String>,
    line: usize,
    version: Option<String>,
    /// Berry's `resolution` (`name@npm:1.2.3`); Yarn 1 has none.
    resolution: Option<String>,
    /// Yarn 1's `integrity`, Berry's `checksum`.
    checked: bool,
    needs: Vec<String>,
}

/// `name@range` as its two parts (the `@` of a scope is the name's).
fn split_specifier(specifier: &str) -> Option<(&str, &str)> {
    let at = specifier.get(1..)?.find('@')? + 1;
    Some((&specifier[..at], &specifier[at + 1..]))
}

/// An entry's header (`a@^1, "b@~2":`) as its specifiers, unquoted.
fn specifiers(header: &str) -> Vec<String> {
    header
        .trim_end_matches(':')
        .split(", ")
        .map(|part| part.trim().trim_matches('"').to_owned())
        .collect()
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches('"').to_owned()
}

/// Yarn 1's format: unindented headers, two-space fields (`version "1.2.3"`),
/// four-space entries under `dependencies:` and `optionalDependencies:`.
fn classic_entries(source: &Source) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut in_needs = false;
    for (index, line) in source.text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if indent == 0 {
            entries.push(Entry {
                specifiers: specifiers(text),
                line: index + 1,
                ..Entry::default()
            });
            in_needs = false;
            continue;
        }
        let Some(entry) = entries.last_mut() else {
            continue;
        };
        if indent <= 2 {
            in_needs = matches!(text, "dependencies:" | "optionalDependencies:");
            let (field, value) = text.split_once(' ').unwrap_or((text, ""));
            match field {
                "version" => entry.version = Some(unquote(value)),
                "integrity" => entry.checked = true,
                _ => {}
            }
        } else if in_needs && let Some((name, _)) = text.split_once(' ') {
            entry.needs.push(unquote(name));
        }
    }
    entries
}

/// Berry's YAML: each entry's `version`, `resolution`, `checksum` and
/// `dependencies`, with the line of its key.
fn berry_entries(source: &Source) -> Result<Vec<Entry>, InputError> {
    let documents = YamlLoader::load_from_str(&source.text).map_err(|err| InputError {
        line: err.marker().line().max(1),
        column: err.marker().col() + 1,
        ..InputError::in_file(&source.path, format!("not a yarn.lock: {err}"))
    })?;
    let Some(Yaml::Hash(lock)) = documents.first() else {
        return Err(InputError::in_file(&source.path, "an empty yarn.lock"));
    };
    let mut entries = Vec::new();
    for (key, entry) in lock {
        let Some(key) = key.as_str() else { continue };
        if key == "__metadata" {
            continue;
        }
        let mut needs = Vec::new();
        for kind in ["dependencies", "optionalDependencies"] {
            if let Yaml::Hash(map) = &entry[kind] {
                needs.extend(map.keys().filter_map(Yaml::as_str).map(str::to_owned));
            }
        }
        entries.push(Entry {
            specifiers: specifiers(key),
            line: header_line(source, key),
            version: text_of(&entry["version"]),
            resolution: text_of(&entry["resolution"]),
            checked: entry["checksum"].as_str().is_some(),
            needs,
        });
    }
    Ok(entries)
}

/// A scalar as text: Berry writes `version: 1.2` unquoted.
fn text_of(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The line of an entry whose header is `key` (quoted or not).
fn header_line(source: &Source, key: &str) -> usize {
    let quoted = format!("\"{key}\":");
    let plain = format!("{key}:");
    source
        .text
        .lines()
        .position(|line| line == quoted || line == plain)
        .map_or(1, |index| index + 1)
}

/// A registry package's name and version, if `entry` is one.
fn registry_package(entry: &Entry, flavour: Flavour) -> Option<(&str, &str)> {
    match flavour {
        Flavour::Classic => {
            let (name, range) = split_specifier(entry.specifiers.first()?)?;
            // A path, git, URL or alias (`npm:other@1`): no registry version.
            let elsewhere = range.contains(':') || range.contains('/');
            (!elsewhere).then_some((name, entry.version.as_deref()?))
        }
        Flavour::Berry => {
            let (name, source) = split_specifier(entry.resolution.as_deref()?)?;
            let version = source.strip_prefix("npm:")?;
            // An alias resolves to another package's name.
            let (_, wanted) = split_specifier(entry.specifiers.first()?)?;
            let aliased = wanted.starts_with("npm:") && wanted[4..].contains('@');
            (!aliased && !version.contains('@')).then_some((name, version))
        }
    }
}

/// Reads the lock in `source`.
pub(crate) fn parse(source: &Source) -> Result<NodeLock, InputError> {
    let flavour = Flavour::of(&source.text);
    let entries = match flavour {
        Flavour::Classic => classic_entries(source),
        Flavour::Berry => berry_entries(source)?,
    };
    let mut pins = Vec::new();
    let mut unchecked = Vec::new();
    let mut requires = Requires::new();
    let mut direct = Direct::new();
    for entry in &entries {
        let refuse = |message: String| {
            let mut err = InputError::in_file(&source.path, message);
            err.line = entry.line;
            err.key = entry.specifiers.join(", ");
            err
        };
        // The service's own package, or a workspace member's: what they
        // need is what the service asked for.
        if flavour == Flavour::Berry
            && entry
                .resolution
                .as_deref()
                .is_some_and(|resolution| resolution.contains("@workspace:"))
        {
            direct.extend(
                entry
                    .needs
                    .iter()
                    .filter_map(|name| PackageName::npm(name).ok()),
            );
            continue;
        }
        let Some((name, version)) = registry_package(entry, flavour) else {
            continue;
        };
        let name = PackageName::npm(name).map_err(refuse)?;
        let version = Version::parse(Ecosystem::Node, version).map_err(refuse)?;
        if !entry.checked {
            unchecked.push(format!("{name} {version}"));
        }
        requires.entry(name.clone()).or_default().extend(
            entry
                .needs
                .iter()
                .filter_map(|need| PackageName::npm(need).ok()),
        );
        // One entry per version (a package may be locked at several).
        if !pins
            .iter()
            .any(|pin: &DeclaredPin| pin.package == name && pin.version == version)
        {
            pins.push(DeclaredPin {
                package: name,
                version,
                path: source.path.clone(),
                line: entry.line,
            });
        }
    }
    if flavour == Flavour::Classic {
        // Yarn 1's lock has no entry of the service's own: its direct
        // dependencies are the packages no locked package needs.
        let needed: Direct = requires.values().flatten().cloned().collect();
        direct.extend(
            pins.iter()
                .map(|pin| pin.package.clone())
                .filter(|name| !needed.contains(name)),
        );
    }
    pins.sort_by_key(|pin| pin.line);
    Ok(NodeLock {
        pins,
        requires,
        direct,
        unchecked,
        members: Vec::new(),
    })
}

/// Refuses a lock out of date with its `package.json` (in `manifest`): a
/// dependency declared with a range no entry answers (`yarn install
/// --frozen-lockfile` and `--immutable` refuse it too).
/// So is each workspace member's `package.json` (with its folder); the
/// lock is read once, and the workspace's own packages, which Yarn 1
/// links without an entry, need none.
pub(crate) fn check_in_sync(
    lock: &Source,
    manifest: &Source,
    members: &[(std::path::PathBuf, Source)],
) -> Result<(), InputError> {
    let entries = match Flavour::of(&lock.text) {
        Flavour::Classic => classic_entries(lock),
        Flavour::Berry => berry_entries(lock)?,
    };
    let local: Vec<String> = members
        .iter()
        .filter_map(|(_, member)| {
            let declared: serde_json::Value = serde_json::from_str(&member.text).ok()?;
            Some(declared["name"].as_str()?.to_owned())
        })
        .collect();
    for manifest in std::iter::once(manifest).chain(members.iter().map(|(_, member)| member)) {
        answers(&entries, lock, manifest, &local)?;
    }
    Ok(())
}

/// Whether `entries` answer every range `manifest` declares, but those of
/// the workspace's own packages (`local`).
fn answers(
    entries: &[Entry],
    lock: &Source,
    manifest: &Source,
    local: &[String],
) -> Result<(), InputError> {
    let declared: serde_json::Value = read_json(manifest, "package.json")?;
    let answered = |name: &str, range: &str| {
        let wanted = [format!("{name}@{range}"), format!("{name}@npm:{range}")];
        entries.iter().any(|entry| {
            entry
                .specifiers
                .iter()
                .any(|specifier| wanted.contains(specifier))
        })
    };
    for kind in KINDS {
        let Some(wanted) = declared.get(kind).and_then(serde_json::Value::as_object) else {
            continue;
        };
        for (name, range) in wanted {
            let Some(range) = range.as_str() else {
                continue;
            };
            // A workspace's, a path's or a link's package needs no entry of its own in Yarn 1.
            let local_range = ["file:", "link:", "workspace:", "portal:"]
                .iter()
                .any(|prefix| range.starts_with(prefix));
            let workspace_package = local.contains(name);
            if local_range || workspace_package || answered(name, range) {
                continue;
            }
            let held: Vec<String> = entries
                .iter()
                .flat_map(|entry| &entry.specifiers)
                .filter_map(|specifier| split_specifier(specifier))
                .filter(|(locked, _)| locked == name)
                .map(|(_, locked)| locked.trim_start_matches("npm:").to_owned())
                .collect();
            let held = held.join("`, `");
            let stale = Stale {
                kind,
                name,
                range,
                held: (!held.is_empty()).then_some(held.as_str()),
            };
            return Err(stale.error(lock, manifest, "yarn"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::source::in_memory as source;

    const CLASSIC: &str = r#"# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@types/node@22.0.0":
  version "22.0.0"
  integrity sha512-abc

debug@2.6.9:
  version "2.6.9"
  integrity sha512-def
  dependencies:
    ms "2.0.0"

express@4.21.2:
  version "4.21.2"
  integrity sha512-ghi
  dependencies:
    debug "2.6.9"

local-lib@file:lib:
  version "1.0.0"

ms@2.0.0, ms@^2.0.0:
  version "2.0.0"
"#;

    const BERRY: &str = r#"# This file is generated by running "yarn install" inside your project.
# Manual changes might be lost - proceed with caution!

__metadata:
  version: 8
  cacheKey: 10c0

"debug@npm:2.6.9":
  version: 2.6.9
  resolution: "debug@npm:2.6.9"
  dependencies:
    ms: "npm:2.0.0"
  checksum: 10c0/abc
  languageName: node
  linkType: hard

"express@npm:4.21.2":
  version: 4.21.2
  resolution: "express@npm:4.21.2"
  dependencies:
    debug: "npm:2.6.9"
  checksum: 10c0/def
  languageName: node
  linkType: hard

"ms@npm:2.0.0":
  version: 2.0.0
  resolution: "ms@npm:2.0.0"
  languageName: node
  linkType: hard

"resolve@patch:resolve@npm%3A1.22.8#optional!builtin<compat/resolve>":
  version: 1.22.8
  resolution: "resolve@patch:resolve@npm%3A1.22.8#optional!builtin<compat/resolve>::version=1.22.8&hash=c3c19d"
  languageName: node
  linkType: hard

"service@workspace:.":
  version: 0.0.0-use.local
  resolution: "service@workspace:."
  dependencies:
    express: "npm:4.21.2"
  languageName: unknown
  linkType: soft
"#;

    fn pins(lock: &NodeLock) -> Vec<String> {
        lock.pins
            .iter()
            .map(|pin| format!("{} {} :{}", pin.package, pin.version, pin.line))
            .collect()
    }

    #[test]
    fn yarn_1_registry_packages_are_pins_with_their_lines_and_paths_are_kept() {
        let lock = parse(&source("yarn.lock", CLASSIC)).unwrap();
        assert_eq!(
            pins(&lock),
            [
                "@types/node 22.0.0 :5",
                "debug 2.6.9 :9",
                "express 4.21.2 :15",
                "ms 2.0.0 :24"
            ]
        );
        let express = PackageName::npm("express").unwrap();
        assert!(lock.requires[&express].contains(&PackageName::npm("debug").unwrap()));
        let direct: Vec<&str> = lock.direct.iter().map(PackageName::as_str).collect();
        assert_eq!(direct, ["@types/node", "express"]);
        assert_eq!(lock.unchecked, ["ms 2.0.0"]);
    }

    #[test]
    fn berry_registry_packages_are_pins_and_the_workspace_names_the_direct_ones() {
        let lock = parse(&source("yarn.lock", BERRY)).unwrap();
        assert_eq!(
            pins(&lock),
            ["debug 2.6.9 :8", "express 4.21.2 :17", "ms 2.0.0 :26"]
        );
        let direct: Vec<&str> = lock.direct.iter().map(PackageName::as_str).collect();
        assert_eq!(direct, ["express"]);
        assert_eq!(lock.unchecked, ["ms 2.0.0"]);
    }

    #[test]
    fn a_berry_workspace_s_members_ask_for_packages_and_are_no_pins() {
        let workspace = BERRY.replace(
            "\"service@workspace:.\":",
            "\"@acme/tokens@npm:1.0.0, @acme/tokens@workspace:packages/tokens\":\n  version: 0.0.0-use.local\n  resolution: \"@acme/tokens@workspace:packages/tokens\"\n  dependencies:\n    ms: \"npm:2.0.0\"\n  languageName: unknown\n  linkType: soft\n\n\"service@workspace:.\":",
        );
        let lock = parse(&source("yarn.lock", &workspace)).unwrap();
        let direct: Vec<&str> = lock.direct.iter().map(PackageName::as_str).collect();
        assert_eq!(direct, ["express", "ms"]);
        assert!(
            lock.pins
                .iter()
                .all(|pin| pin.package.as_str() != "@acme/tokens")
        );
        // The member answers the service's `"@acme/tokens": "1.0.0"`.
        let manifest = source(
            "package.json",
            "{\n  \"dependencies\": {\n    \"@acme/tokens\": \"1.0.0\",\n    \"express\": \"4.21.2\"\n  }\n}\n",
        );
        check_in_sync(&source("yarn.lock", &workspace), &manifest, &[]).unwrap();
    }

    #[test]
    fn a_hostile_name_or_version_is_refused_with_its_line() {
        let hostile = CLASSIC.replace("debug@2.6.9:", "../x@2.6.9:");
        let err = parse(&source("yarn.lock", &hostile)).unwrap_err();
        assert_eq!(err.line, 9, "{err}");
        assert!(err.to_string().contains("not an npm package name"), "{err}");
        let hostile = BERRY.replace(
            "\"express@npm:4.21.2\"\n  dependencies",
            "\"express@npm:$(id)\"\n  dependencies",
        );
        let err = parse(&source("yarn.lock", &hostile)).unwrap_err();
        assert_eq!(err.line, 17, "{err}");
    }

    #[test]
    fn a_lock_out_of_date_with_its_manifest_is_refused_with_the_manifest_s_line() {
        let manifest = |express: &str| {
            source(
                "package.json",
                &format!(
                    "{{\n  \"dependencies\": {{\n    \"express\": \"{express}\",\n    \"local-lib\": \"file:lib\"\n  }}\n}}\n"
                ),
            )
        };
        for lock in [CLASSIC, BERRY] {
            let lock = source("yarn.lock", lock);
            check_in_sync(&lock, &manifest("4.21.2"), &[]).unwrap();
            let err = check_in_sync(&lock, &manifest("^5.1.0"), &[]).unwrap_err();
            assert_eq!(err.line, 3, "{err}");
            assert!(
                err.to_string()
                    .contains("`express: ^5.1.0` here, the lock has `4.21.2`; run `yarn install`"),
                "{err}"
            );
        }
    }
}
