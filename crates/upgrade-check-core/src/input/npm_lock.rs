//! A Node service's `package-lock.json` (npm's lockfile versions 2 and 3):
//! its registry packages, each a pin with the line it is written on, what
//! each needs, and the service's direct dependencies; checked against the
//! `package.json` beside it.
//!
//! Only parses. A lock from a pull request is untrusted text: a name that is
//! no npm package name or a version that is no semver version is refused
//! with its line before anything reads it further. Packages the lock takes
//! from a path, git or a URL (and workspace links) are the lock's to keep,
//! never pins.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::declared::{DeclaredPin, Direct, NodeLock, Requires};
use crate::input::source::{InputError, Source};
use crate::model::package::{Ecosystem, PackageName, Version};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLock {
    lockfile_version: Option<u32>,
    #[serde(default)]
    packages: BTreeMap<String, RawPackage>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPackage {
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(flatten)]
    needs: Needs,
}

/// A package's (or `package.json`'s) dependencies by kind, as `name: range`.
#[derive(Deserialize, Default, PartialEq, Eq, Debug)]
#[serde(rename_all = "camelCase")]
struct Needs {
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
    #[serde(default)]
    dev_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    peer_dependencies: BTreeMap<String, String>,
}

impl Needs {
    /// What is installed for it: every kind but peers (its dependent's).
    fn installed(&self) -> impl Iterator<Item = (&String, &String)> {
        self.dependencies
            .iter()
            .chain(&self.dev_dependencies)
            .chain(&self.optional_dependencies)
    }
}

/// Whether `path` names a lock this module reads.
pub(crate) fn is_lock(path: &Path) -> bool {
    path.file_name() == Some(std::ffi::OsStr::new("package-lock.json"))
}

/// The package a `packages` key installs: the part after its last
/// `node_modules/` (`node_modules/a/node_modules/@s/b` installs `@s/b`);
/// `None` for the service's own entry (`""`) and workspace folders.
fn installed_name(key: &str) -> Option<&str> {
    let at = key.rfind("node_modules/")?;
    Some(&key[at + "node_modules/".len()..])
}

/// Where the lock takes a package from, when not from the registry.
fn kept_origin(package: &RawPackage) -> bool {
    package.link
        || package.resolved.as_deref().is_some_and(|resolved| {
            !(resolved.starts_with("https://") || resolved.starts_with("http://"))
        })
}

/// Reads the lock in `source`.
pub(crate) fn parse(source: &Source) -> Result<NodeLock, InputError> {
    let lock: RawLock = read_json(source, "package-lock.json")?;
    match lock.lockfile_version {
        Some(2 | 3) => {}
        other => {
            let found = other.map_or("none".to_owned(), |version| version.to_string());
            return Err(source.error_at(
                key_span(source, "lockfileVersion"),
                "lockfileVersion",
                &format!(
                    "lockfile version {found}: only versions 2 and 3 (npm 7 and later) list every package; run `npm install --package-lock-only` with npm 7 or later to upgrade it"
                ),
            ));
        }
    }
    let mut pins = Vec::new();
    let mut requires = Requires::new();
    let mut unchecked = Vec::new();
    let mut direct = Direct::new();
    let mut members = Vec::new();
    for (key, package) in &lock.packages {
        let needs: Direct = package
            .needs
            .installed()
            .filter_map(|(name, _)| PackageName::npm(name).ok())
            .collect();
        let Some(name) = installed_name(key) else {
            // The service's own entry, a workspace member's or a `file:`
            // folder's: what they need is what the service asked for.
            direct.extend(needs);
            members.extend(member_folder(key));
            continue;
        };
        let field = format!("packages.\"{key}\"");
        let span = key_span(source, key);
        let name = PackageName::npm(name)
            .map_err(|message| source.error_at(span.clone(), &field, &message))?;
        if kept_origin(package) {
            continue;
        }
        let Some(version) = &package.version else {
            return Err(source.error_at(span, &field, "a registry package without a version"));
        };
        let version = Version::parse(Ecosystem::Node, version).map_err(|message| {
            source.error_at(span.clone(), &format!("{field}.version"), &message)
        })?;
        if package.integrity.is_none() {
            unchecked.push(format!("{name} {version}"));
        }
        requires.entry(name.clone()).or_default().extend(needs);
        pins.push(DeclaredPin {
            package: name,
            version,
            path: source.path.clone(),
            line: span.map_or(1, |span| source.line_of(span.start)),
        });
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

/// A local package's folder inside the lock's (a workspace member, a
/// `file:` folder), as the lock names it: its `package.json` is read and
/// written there, so only a plain relative path is one. A folder outside
/// (`../shared`) is left to the install as it was.
pub(crate) fn member_folder(key: &str) -> Option<std::path::PathBuf> {
    let folder = std::path::PathBuf::from(key);
    let plain = !key.is_empty()
        && folder
            .components()
            .all(|part| matches!(part, std::path::Component::Normal(_)));
    plain.then_some(folder)
}

/// `source` as JSON of `what` shape; an error at the line JSON parsing stopped.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    source: &Source,
    what: &str,
) -> Result<T, InputError> {
    serde_json::from_str(&source.text).map_err(|err| InputError {
        line: err.line().max(1),
        column: err.column().max(1),
        ..InputError::in_file(&source.path, format!("not a {what}: {err}"))
    })
}

/// The span of the first `"key":` in the text: serde_json keeps no spans.
fn key_span(source: &Source, key: &str) -> Option<std::ops::Range<usize>> {
    let quoted = format!("{}:", serde_json::to_string(key).ok()?);
    let compact = source.text.find(&quoted);
    let spaced = || {
        let quoted = format!("{} :", serde_json::to_string(key).ok()?);
        source.text.find(&quoted)
    };
    let start = compact.or_else(spaced)?;
    Some(start..start + key.len() + 2)
}

/// The Node versions `package.json` (in `manifest`) says it runs on
/// (`engines.node`), and the error to give at its line when the Node in
/// use is not one of them.
pub(crate) fn node_engine(manifest: &Source) -> Result<Option<(String, InputError)>, InputError> {
    #[derive(Deserialize)]
    struct Engines {
        engines: Option<BTreeMap<String, serde_json::Value>>,
    }
    let declared: Engines = read_json(manifest, "package.json")?;
    let Some(range) = declared
        .engines
        .as_ref()
        .and_then(|engines| engines.get("node"))
        .and_then(|node| node.as_str())
    else {
        return Ok(None);
    };
    let refused = manifest.error_at(
        key_span(manifest, "engines"),
        "engines.node",
        &format!("the service runs on Node {range}"),
    );
    Ok(Some((range.to_owned(), refused)))
}

/// The member folders a Yarn workspace's root declares (`workspaces` in
/// its `package.json`, a list or `{ "packages": [...] }`), relative to it:
/// `dir/*` names each folder in `dir` with a `package.json`, any other
/// pattern one folder. Yarn 1's lock lists no member, so they are read
/// here; a pattern with another wildcard is refused with its line.
pub(crate) fn workspace_folders(manifest: &Source) -> Result<Vec<std::path::PathBuf>, InputError> {
    let declared: serde_json::Value = read_json(manifest, "package.json")?;
    let patterns = match &declared["workspaces"] {
        serde_json::Value::Array(patterns) => patterns,
        serde_json::Value::Object(settings) => match settings.get("packages") {
            Some(serde_json::Value::Array(patterns)) => patterns,
            _ => return Ok(Vec::new()),
        },
        _ => return Ok(Vec::new()),
    };
    let root = manifest.path.parent().unwrap_or(Path::new("."));
    let mut folders = Vec::new();
    for pattern in patterns.iter().filter_map(serde_json::Value::as_str) {
        let refuse = || {
            manifest.error_at(
                key_span(manifest, "workspaces"),
                "workspaces",
                &format!(
                    "`{pattern}`: only a folder or `folder/*` is read as a workspace's members"
                ),
            )
        };
        let (parent, every) = match pattern.strip_suffix("/*") {
            Some(parent) => (parent, true),
            None => (pattern, false),
        };
        let parent = parent.trim_start_matches("./");
        if parent.contains(['*', '?', '[', '{', '!']) {
            return Err(refuse());
        }
        let Some(parent) = member_folder(parent) else {
            return Err(refuse());
        };
        if !every {
            folders.push(parent);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(root.join(&parent)) else {
            continue;
        };
        let mut found: Vec<std::path::PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().join("package.json").is_file())
            .map(|entry| parent.join(entry.file_name()))
            .collect();
        found.sort();
        folders.extend(found);
    }
    Ok(folders)
}

/// A dependency `package.json` declares otherwise than its lock records.
pub(crate) struct Stale<'a> {
    /// `dependencies`, `devDependencies`, `optionalDependencies`.
    pub kind: &'a str,
    pub name: &'a str,
    /// As `package.json` declares it.
    pub range: &'a str,
    /// As the lock records it, if it does.
    pub held: Option<&'a str>,
}

impl Stale<'_> {
    /// The error at the dependency's line in `manifest`, telling to run
    /// `tool install`, as the tool itself would refuse the lock.
    pub(crate) fn error(&self, lock: &Source, manifest: &Source, tool: &str) -> InputError {
        let Stale {
            kind,
            name,
            range,
            held,
        } = self;
        let said = match held {
            Some(other) => format!("the lock has `{other}`"),
            None => "the lock does not have it".to_owned(),
        };
        manifest.error_at(
            key_span(manifest, name),
            &format!("{kind}.{name}"),
            &format!(
                "{} is out of date with this file: `{name}: {range}` here, {said}; run `{tool} install` to update the lock",
                lock.path.display()
            ),
        )
    }
}

/// Refuses a lock out of date with its `package.json` (in `manifest`): a
/// dependency the manifest declares that the lock's own entry does not, or
/// declares otherwise, named with the manifest's line, as `npm ci` refuses.
/// So is each local package's (a workspace member's, a `file:` folder's:
/// its folder and `package.json`) against its own entry; the lock is read
/// once.
pub(crate) fn check_in_sync(
    lock: &Source,
    manifest: &Source,
    members: &[(std::path::PathBuf, Source)],
) -> Result<(), InputError> {
    let locked: RawLock = read_json(lock, "package-lock.json")?;
    entry_in_sync(&locked, lock, "", manifest)?;
    for (member, manifest) in members {
        entry_in_sync(&locked, lock, &member.to_string_lossy(), manifest)?;
    }
    Ok(())
}

/// Whether the lock's entry `key` (`""` for the service's own package, a
/// member's folder for that member's) declares what `manifest` does.
fn entry_in_sync(
    locked: &RawLock,
    lock: &Source,
    key: &str,
    manifest: &Source,
) -> Result<(), InputError> {
    let declared: Needs = read_json(manifest, "package.json")?;
    let root = locked.packages.get(key).map(|entry| &entry.needs);
    let empty = Needs::default();
    let root = root.unwrap_or(&empty);
    let kinds = [
        ("dependencies", &declared.dependencies, &root.dependencies),
        (
            "devDependencies",
            &declared.dev_dependencies,
            &root.dev_dependencies,
        ),
        (
            "optionalDependencies",
            &declared.optional_dependencies,
            &root.optional_dependencies,
        ),
    ];
    for (kind, wanted, held) in kinds {
        for (name, range) in wanted {
            if held.get(name) != Some(range) {
                let stale = Stale {
                    kind,
                    name,
                    range,
                    held: held.get(name).map(String::as_str),
                };
                return Err(stale.error(lock, manifest, "npm"));
            }
        }
        if let Some(name) = held.keys().find(|name| !wanted.contains_key(*name)) {
            return Err(lock.error_at(
                key_span(lock, name),
                &format!("packages.\"{key}\".{kind}.{name}"),
                &format!(
                    "the lock's entry of this package needs {name}, which {} does not declare; run `npm install` to update the lock",
                    manifest.path.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::source::in_memory as source;

    const LOCK: &str = r#"{
  "name": "svc",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": "svc",
      "dependencies": {
        "express": "4.21.2",
        "local-lib": "file:lib"
      }
    },
    "lib": {
      "name": "local-lib",
      "version": "0.0.1"
    },
    "node_modules/express": {
      "version": "4.21.2",
      "integrity": "sha512-abc",
      "dependencies": {
        "debug": "2.6.9"
      }
    },
    "node_modules/debug": {
      "version": "2.6.9",
      "integrity": "sha512-def"
    },
    "node_modules/express/node_modules/debug": {
      "version": "4.3.4"
    },
    "node_modules/local-lib": {
      "resolved": "lib",
      "link": true
    }
  }
}
"#;

    #[test]
    fn registry_packages_are_pins_with_their_lines_and_links_are_kept() {
        let lock = parse(&source("package-lock.json", LOCK)).unwrap();
        let pins: Vec<String> = lock
            .pins
            .iter()
            .map(|pin| format!("{} {} :{}", pin.package, pin.version, pin.line))
            .collect();
        assert_eq!(
            pins,
            ["express 4.21.2 :17", "debug 2.6.9 :24", "debug 4.3.4 :28"]
        );
        assert_eq!(
            lock.direct
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["express", "local-lib"]
        );
        let express = PackageName::npm("express").unwrap();
        assert!(lock.requires[&express].contains(&PackageName::npm("debug").unwrap()));
        assert_eq!(lock.unchecked, ["debug 4.3.4"]);
        // The `file:` folder is installed from the service's copy; one
        // outside the lock's folder is never written to.
        assert_eq!(lock.members, [std::path::PathBuf::from("lib")]);
        let outside = LOCK.replace("\"lib\": {", "\"../../etc\": {");
        let lock = parse(&source("package-lock.json", &outside)).unwrap();
        assert!(lock.members.is_empty());
    }

    #[test]
    fn a_yarn_workspace_s_members_are_its_folders_and_other_wildcards_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for member in ["packages/api", "packages/tokens", "tools/cli"] {
            fs_err::create_dir_all(dir.path().join(member)).unwrap();
            fs_err::write(dir.path().join(member).join("package.json"), "{}").unwrap();
        }
        fs_err::create_dir_all(dir.path().join("packages/notes")).unwrap();
        let manifest = |workspaces: &str| Source {
            path: dir.path().join("package.json"),
            text: format!("{{\n  \"private\": true,\n  \"workspaces\": {workspaces}\n}}\n"),
        };
        let folders = workspace_folders(&manifest(r#"["packages/*", "./tools/cli"]"#)).unwrap();
        assert_eq!(
            folders,
            ["packages/api", "packages/tokens", "tools/cli"].map(std::path::PathBuf::from)
        );
        let nested = workspace_folders(&manifest(r#"{"packages": ["packages/*"]}"#)).unwrap();
        assert_eq!(nested.len(), 2);
        for refused in [r#"["packages/**"]"#, r#"["../outside/*"]"#] {
            let err = workspace_folders(&manifest(refused)).unwrap_err();
            assert_eq!((err.line, err.key.as_str()), (3, "workspaces"), "{err}");
        }
    }

    #[test]
    fn an_old_lock_or_a_hostile_name_is_refused_with_its_line() {
        let old = parse(&source(
            "package-lock.json",
            "{\n  \"lockfileVersion\": 1,\n  \"dependencies\": {}\n}\n",
        ))
        .unwrap_err();
        assert_eq!(old.line, 2, "{old}");
        assert!(old.to_string().contains("only versions 2 and 3"), "{old}");
        let hostile = LOCK.replace("node_modules/debug\"", "node_modules/../../x\"");
        let err = parse(&source("package-lock.json", &hostile)).unwrap_err();
        assert_eq!(err.line, 24, "{err}");
        assert!(err.to_string().contains("not an npm package name"), "{err}");
    }

    #[test]
    fn a_lock_out_of_date_with_its_manifest_is_refused_with_the_manifest_s_line() {
        let lock = source("package-lock.json", LOCK);
        let manifest = |dependencies: &str| {
            source(
                "package.json",
                &format!(
                    "{{\n  \"name\": \"svc\",\n  \"dependencies\": {{\n{dependencies}\n  }}\n}}\n"
                ),
            )
        };
        let in_sync = manifest("    \"express\": \"4.21.2\",\n    \"local-lib\": \"file:lib\"");
        check_in_sync(&lock, &in_sync, &[]).unwrap();
        let bumped = manifest("    \"express\": \"^5.1.0\",\n    \"local-lib\": \"file:lib\"");
        let err = check_in_sync(&lock, &bumped, &[]).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(
            err.to_string()
                .contains("`express: ^5.1.0` here, the lock has `4.21.2`"),
            "{err}"
        );
        let dropped = manifest("    \"express\": \"4.21.2\"");
        let err = check_in_sync(&lock, &dropped, &[]).unwrap_err();
        assert!(err.to_string().contains("needs local-lib"), "{err}");
    }
}
