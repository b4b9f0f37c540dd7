//! Resolved sets: what uv's resolver (or cargo's lock) answers, and the
//! install list made from it.
//!
//! Only parses and prints; it never decides what to install.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::input::baseline::DeclaredHashes;
use crate::model::findings::VersionChange;
use crate::model::package::{PackageName, Version};

/// Every package installed in a cell's environment, transitive ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSet {
    pub packages: BTreeMap<PackageName, Resolved>,
    /// Packages installed from where the service's lock takes them (a path,
    /// a git repository, a URL), as `name @ url`: kept as they are, never
    /// compared by version and never pinned by a cell.
    pub direct: BTreeMap<PackageName, String>,
    /// What a lock-built set (cargo's, npm's) is built from besides the
    /// service's own files.
    pub locked: Option<LockInputs>,
}

/// A lock-built set's lock, and the manifests its build lays over the service's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInputs {
    /// The lock (`Cargo.lock`, `package-lock.json`) that holds the set; the
    /// build uses it as it is.
    pub lock: String,
    /// Manifests (`Cargo.toml`, `package.json`) that replace the working
    /// tree's (a pull request's base ones, for its baseline, or ones with a
    /// requirement raised), by path relative to the service's folder.
    pub manifests: Vec<(PathBuf, String)>,
    /// The requirements raised so that a cell's major bump could be selected.
    pub raised: Vec<crate::env::cargo::manifest::Raised>,
}

impl LockInputs {
    /// The laid-over manifests as one text: part of every key they change.
    pub fn manifests_text(&self) -> String {
        self.manifests
            .iter()
            .map(|(path, manifest)| format!("# {} laid over:\n{manifest}\n", path.display()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The newest version in the set.
    pub version: Version,
    /// Other versions of the same package, oldest first: a cargo build can
    /// link a crate at several semver-incompatible versions.
    pub others: Vec<Version>,
    /// What asked for the package: other packages, or `-r file` for the input.
    pub via: Vec<String>,
    /// `algorithm:hex` digests the install must match; empty when not hash-checked.
    pub hashes: Vec<String>,
}

impl Resolved {
    /// The version, or every version oldest first: `1.0.109, 2.0.50`.
    fn describe(&self) -> String {
        self.others
            .iter()
            .chain(std::iter::once(&self.version))
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn via_entries(text: &str) -> Vec<String> {
    text.split(',')
        .map(|entry| entry.trim().to_owned())
        .filter(|entry| !entry.is_empty())
        .collect()
}

impl ResolvedSet {
    /// Parses `uv pip compile` output: `name==version` lines, each with its
    /// `--hash` options and `# via` annotations (on the line or below it).
    pub fn parse(text: &str) -> anyhow::Result<ResolvedSet> {
        let mut packages: BTreeMap<PackageName, Resolved> = BTreeMap::new();
        let mut direct = BTreeMap::new();
        let mut last: Option<PackageName> = None;
        let mut via_below = false;
        for line in text.replace("\\\n", " ").lines() {
            let line = line.trim();
            if let Some(comment) = line.strip_prefix('#') {
                let comment = comment.trim();
                let entries = match comment.strip_prefix("via") {
                    Some(entries) => {
                        via_below = true;
                        entries
                    }
                    None if via_below => comment,
                    None => "",
                };
                if let Some(resolved) = last.as_ref().and_then(|name| packages.get_mut(name)) {
                    resolved.via.extend(via_entries(entries));
                }
                continue;
            }
            via_below = false;
            if line.is_empty() || line.starts_with('-') {
                continue;
            }
            let (requirement, via) = match line.split_once('#') {
                Some((requirement, comment)) => (requirement.trim(), comment.trim()),
                None => (line, ""),
            };
            let (requirement, options) = match requirement.find(" --") {
                Some(index) => (&requirement[..index], &requirement[index..]),
                None => (requirement, ""),
            };
            if let Some((name, url)) = requirement.split_once(" @ ") {
                let name = PackageName::python(name.trim()).map_err(anyhow::Error::msg)?;
                direct.insert(name.clone(), format!("{name} @ {}", url.trim()));
                last = None;
                continue;
            }
            let (name, version) = requirement
                .split_once("==")
                .ok_or_else(|| anyhow::anyhow!("unexpected line in resolver output: `{line}`"))?;
            let name = PackageName::python(name.trim()).map_err(anyhow::Error::msg)?;
            let hashes = options
                .split_whitespace()
                .filter_map(|option| option.strip_prefix("--hash="))
                .map(str::to_owned)
                .collect();
            packages.insert(
                name.clone(),
                Resolved {
                    version: Version::python(version.trim()).map_err(anyhow::Error::msg)?,
                    others: Vec::new(),
                    via: via_entries(via.strip_prefix("via").unwrap_or("")),
                    hashes,
                },
            );
            last = Some(name);
        }
        Ok(ResolvedSet {
            packages,
            direct,
            locked: None,
        })
    }

    /// The registry packages of a cargo lock (`pins`, parsed from `inputs.lock`).
    pub fn from_lock(
        pins: &[crate::input::declared::DeclaredPin],
        inputs: LockInputs,
    ) -> ResolvedSet {
        let mut versions: BTreeMap<PackageName, Vec<Version>> = BTreeMap::new();
        for pin in pins {
            versions
                .entry(pin.package.clone())
                .or_default()
                .push(pin.version.clone());
        }
        let packages = versions
            .into_iter()
            .map(|(name, mut others)| {
                // npm installs one version at several places in the tree.
                others.sort();
                others.dedup();
                let version = others.pop().expect("every entry has a version");
                let resolved = Resolved {
                    version,
                    others,
                    via: Vec::new(),
                    hashes: Vec::new(),
                };
                (name, resolved)
            })
            .collect();
        ResolvedSet {
            packages,
            direct: BTreeMap::new(),
            locked: Some(inputs),
        }
    }

    /// Why the set is not what a cell of `pins` is named for: the first pin
    /// whose version it does not hold, and what it holds instead.
    pub fn not_holding(&self, pins: &[crate::model::cell::Pin]) -> Option<String> {
        pins.iter().find_map(|pin| {
            let held = self.packages.get(&pin.package);
            let holds = held.is_some_and(|resolved| {
                resolved.version == pin.version || resolved.others.contains(&pin.version)
            });
            (!holds).then(|| {
                let instead = match held {
                    Some(resolved) => {
                        let mut versions: Vec<String> = resolved
                            .others
                            .iter()
                            .chain([&resolved.version])
                            .map(ToString::to_string)
                            .collect();
                        versions.sort();
                        format!("holds {} {}", pin.package, versions.join(" and "))
                    }
                    None => format!("holds no {}", pin.package),
                };
                format!(
                    "its resolution {instead}, not {}: the resolver could not give this cell the version it is named for",
                    pin.version
                )
            })
        })
    }

    /// Replaces the index's digests with the ones a file declares for the
    /// same pin, so that a hash-checked install verifies against the file.
    pub fn use_declared_hashes(&mut self, declared: &DeclaredHashes) {
        for (name, resolved) in &mut self.packages {
            if let Some(hashes) = declared.get(name, &resolved.version) {
                resolved.hashes = hashes.to_vec();
            }
        }
    }

    /// Every package from the index carries digests: install with hash
    /// checking (a lock's path, git and URL packages have none to check).
    pub fn is_hash_checked(&self) -> bool {
        !self.packages.is_empty()
            && self
                .packages
                .values()
                .all(|resolved| !resolved.hashes.is_empty())
    }

    /// Required by another package of the set (even if also listed directly).
    ///
    /// Such packages move freely in cells: they follow what needs them.
    pub fn is_transitive(&self, package: &PackageName) -> bool {
        self.packages
            .get(package)
            .is_some_and(|resolved| resolved.via.iter().any(|via| !via.starts_with('-')))
    }

    /// `name==version` lines in name order, with their digests when hash
    /// checked: the install list and the cache key. A cargo set adds the
    /// manifests its build lays over the service's.
    pub fn to_requirements(&self) -> String {
        let mut text = String::new();
        for (name, resolved) in &self.packages {
            for other in &resolved.others {
                let _ = writeln!(text, "{name}=={other}");
            }
            let _ = write!(text, "{name}=={}", resolved.version);
            for hash in &resolved.hashes {
                let _ = write!(text, " \\\n    --hash={hash}");
            }
            text.push('\n');
        }
        for requirement in self.direct.values() {
            let _ = writeln!(text, "{requirement}");
        }
        if let Some(inputs) = &self.locked {
            text.push_str(&inputs.manifests_text());
        }
        text
    }

    /// `name==version` lines without digests: what a resolution prefers.
    pub fn to_preferences(&self) -> String {
        self.packages
            .iter()
            .map(|(name, resolved)| format!("{name}=={}\n", resolved.version))
            .collect()
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
                let before = baseline.packages.get(name).map(Resolved::describe);
                let after = self.packages.get(name).map(Resolved::describe);
                (before != after).then(|| VersionChange {
                    package: name.to_string(),
                    before,
                    after,
                    transitive: !pinned.contains(name),
                    forced_by: Vec::new(),
                })
            })
            .collect()
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
        PackageName::python(text).unwrap()
    }

    #[test]
    fn a_set_says_which_pin_it_does_not_hold() {
        let set = ResolvedSet::parse(COMPILED).unwrap();
        let pin = |package: &str, version: &str| crate::model::cell::Pin {
            package: name(package),
            version: Version::parse(crate::model::package::Ecosystem::Python, version).unwrap(),
        };
        assert_eq!(set.not_holding(&[pin("bcrypt", "3.2.0")]), None);
        let why = set
            .not_holding(&[pin("flask", "2.2.5"), pin("bcrypt", "5.0.0")])
            .unwrap();
        assert!(
            why.starts_with("its resolution holds bcrypt 3.2.0, not 5.0.0"),
            "{why}"
        );
        let why = set.not_holding(&[pin("passlib", "1.7.4")]).unwrap();
        assert!(
            why.starts_with("its resolution holds no passlib, not 1.7.4"),
            "{why}"
        );
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
                "blinker 1.9.0 added (transitive)",
                "flask 2.2.5 → 3.0.3",
                "werkzeug 2.2.3 → 3.1.3 (transitive)"
            ]
        );
    }

    #[test]
    fn hashed_output_keeps_digests_and_annotations_below() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let text = format!(
            "bcrypt==3.2.0 \\\n    --hash={a} \\\n    --hash={b}\n    # via -r requirements.in\ncffi==1.17.1 \\\n    --hash={a}\n    # via\n    #   bcrypt\n    #   other\n"
        );
        let mut set = ResolvedSet::parse(&text).unwrap();
        assert_eq!(set.packages[&name("bcrypt")].hashes, [a.clone(), b.clone()]);
        assert_eq!(set.packages[&name("cffi")].via, ["bcrypt", "other"]);
        assert!(set.is_transitive(&name("cffi")));
        assert!(!set.is_transitive(&name("bcrypt")));
        assert!(set.is_hash_checked());
        assert_eq!(
            ResolvedSet::parse(&set.to_requirements()).unwrap().packages[&name("bcrypt")].hashes,
            [a.clone(), b]
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("requirements.txt");
        std::fs::write(&file, format!("bcrypt==3.2.0 --hash={a}\n")).unwrap();
        let mut declared = DeclaredHashes::default();
        declared.add(&crate::input::baseline::BaselineFile::load(&file).unwrap());
        set.use_declared_hashes(&declared);
        assert_eq!(set.packages[&name("bcrypt")].hashes, [a]);
    }

    #[test]
    fn a_direct_reference_is_kept_apart_from_the_versions_and_installed_as_it_is() {
        let text = "greeting @ file:///repo/libs/greeting  # via -r requirements.in\n\
                    six==1.16.0               # via greeting\n";
        let set = ResolvedSet::parse(text).unwrap();
        assert_eq!(
            set.direct[&name("greeting")],
            "greeting @ file:///repo/libs/greeting"
        );
        assert!(!set.packages.contains_key(&name("greeting")));
        assert!(set.is_transitive(&name("six")));
        assert_eq!(
            set.to_requirements(),
            "six==1.16.0\ngreeting @ file:///repo/libs/greeting\n"
        );
    }
}
