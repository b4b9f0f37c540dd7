//! A major bump raises the requirement first, as Dependabot does: a cell
//! whose version the service's `Cargo.toml` does not allow gets a scratch
//! copy of each manifest that names the crate, its requirement set to
//! exactly the new version (`=9.0.0`: with a caret cargo would settle on the
//! newest of the major instead of the cell's), so that cargo builds the code
//! against it rather than refusing to select it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::package::PackageName;

/// One requirement a cell raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// The manifest, relative to the service's folder.
    pub manifest: PathBuf,
    pub package: String,
    pub from: String,
    pub to: String,
}

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} \"{}\" → \"{}\" in {}",
            self.package,
            self.from,
            self.to,
            self.manifest.display()
        )
    }
}

/// The dependency tables of a manifest, as paths of keys.
fn dependency_tables(manifest: &toml::Table) -> Vec<Vec<String>> {
    let kinds = ["dependencies", "dev-dependencies", "build-dependencies"];
    let mut tables: Vec<Vec<String>> = kinds.iter().map(|kind| vec![(*kind).to_owned()]).collect();
    tables.push(vec!["workspace".to_owned(), "dependencies".to_owned()]);
    if let Some(toml::Value::Table(targets)) = manifest.get("target") {
        for target in targets.keys() {
            for kind in kinds {
                tables.push(vec!["target".to_owned(), target.clone(), kind.to_owned()]);
            }
        }
    }
    tables
}

fn table_at<'t>(manifest: &'t mut toml::Table, path: &[String]) -> Option<&'t mut toml::Table> {
    let mut table = manifest;
    for key in path {
        table = table.get_mut(key)?.as_table_mut()?;
    }
    Some(table)
}

/// A manifest's text with requirements raised.
#[derive(Debug)]
pub(crate) struct Edited {
    pub text: String,
    /// `(from, to)` of each requirement raised.
    pub raised: Vec<(String, String)>,
}

/// `text` with every requirement on `package` that excludes `version` set
/// to exactly `version`; `None` when every requirement allows it already.
pub(crate) fn raise(
    text: &str,
    package: &PackageName,
    version: &semver::Version,
) -> anyhow::Result<Option<Edited>> {
    let mut manifest: toml::Table = text.parse()?;
    let mut raised = Vec::new();
    let to = format!("={version}");
    for path in dependency_tables(&manifest) {
        let Some(table) = table_at(&mut manifest, &path) else {
            continue;
        };
        for (key, entry) in table.iter_mut() {
            let renamed = entry.get("package").and_then(toml::Value::as_str);
            if renamed.unwrap_or(key) != package.as_str() {
                continue;
            }
            let requirement = match entry {
                toml::Value::String(requirement) => requirement,
                toml::Value::Table(detail) => match detail.get_mut("version") {
                    Some(toml::Value::String(requirement)) => requirement,
                    // `workspace = true`, a path or git source: nothing to raise here.
                    _ => continue,
                },
                _ => continue,
            };
            let allows =
                semver::VersionReq::parse(requirement).is_ok_and(|parsed| parsed.matches(version));
            if !allows {
                raised.push((std::mem::replace(requirement, to.clone()), to.clone()));
            }
        }
    }
    if raised.is_empty() {
        return Ok(None);
    }
    Ok(Some(Edited {
        text: toml::to_string(&manifest)?,
        raised,
    }))
}

/// Every `Cargo.toml` under `root`, relative to it, build output left out.
pub(crate) fn manifests(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(root: &Path, folder: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for entry in fs_err::read_dir(folder)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if entry.file_type()?.is_dir() {
                let skipped = name == "target" || name.to_string_lossy().starts_with('.');
                if !skipped {
                    walk(root, &path, found)?;
                }
            } else if name == "Cargo.toml" {
                found.push(path.strip_prefix(root)?.to_owned());
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(root, root, &mut found)?;
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raised(
        text: &str,
        package: &str,
        version: &str,
    ) -> Option<(toml::Table, Vec<(String, String)>)> {
        let edited = raise(
            text,
            &PackageName::crate_name(package).unwrap(),
            &semver::Version::parse(version).unwrap(),
        )
        .unwrap()?;
        Some((edited.text.parse().unwrap(), edited.raised))
    }

    #[test]
    fn a_major_bump_raises_every_requirement_that_excludes_it() {
        let manifest = r#"
[package]
name = "svc"

[dependencies]
jsonwebtoken = { version = "8.3.0", default-features = false }
axum = "0.7.5"

[dev-dependencies]
jwt = { package = "jsonwebtoken", version = "8" }

[target.'cfg(unix)'.dependencies]
jsonwebtoken = "^8.1"
"#;
        let (table, changes) = raised(manifest, "jsonwebtoken", "9.3.1").unwrap();
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[0], ("8.3.0".to_owned(), "=9.3.1".to_owned()));
        assert_eq!(
            table["dependencies"]["jsonwebtoken"]["version"].as_str(),
            Some("=9.3.1")
        );
        assert_eq!(
            table["dependencies"]["jsonwebtoken"]["default-features"].as_bool(),
            Some(false)
        );
        assert_eq!(
            table["dev-dependencies"]["jwt"]["version"].as_str(),
            Some("=9.3.1")
        );
        assert_eq!(
            table["target"]["cfg(unix)"]["dependencies"]["jsonwebtoken"].as_str(),
            Some("=9.3.1")
        );
        assert_eq!(table["dependencies"]["axum"].as_str(), Some("0.7.5"));
    }

    #[test]
    fn a_version_the_requirement_allows_changes_nothing() {
        assert!(raised("[dependencies]\nbcrypt = \"0.15.0\"\n", "bcrypt", "0.15.1").is_none());
        // A workspace member that inherits its requirement is raised at the root.
        let member = "[dependencies]\naxum = { workspace = true }\n";
        assert!(raised(member, "axum", "0.8.0").is_none());
        let root = "[workspace]\nmembers = [\"svc\"]\n\n[workspace.dependencies]\naxum = \"0.7\"\n";
        let (table, _) = raised(root, "axum", "0.8.0").unwrap();
        assert_eq!(
            table["workspace"]["dependencies"]["axum"].as_str(),
            Some("=0.8.0")
        );
    }
}
