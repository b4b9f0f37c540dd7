//! A package's releases from the npm registry npm itself uses (`npm config
//! get registry`, which reads the project's and the user's `.npmrc`), from
//! its abbreviated packument: every version, its `deprecated` notice and
//! its `engines.node`, judged against the Node in use.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::Node;
use crate::env::index::{Registry, Release, send, shown_url};
use crate::model::npm_range::node_range_accepts;
use crate::model::package::{Ecosystem, PackageName};
use crate::sys::process;

/// The registry npm uses for the service, and the Node that judges `engines`.
#[derive(Debug)]
pub(crate) struct NpmRegistry {
    /// The registry's address, ending in `/`.
    pub url: String,
    pub node: semver::Version,
}

impl NpmRegistry {
    /// Asks npm, in the service's folder, which registry it uses.
    pub(crate) fn for_project(node: &Node, project: &Path) -> anyhow::Result<NpmRegistry> {
        let output = process::run_checked(
            duct::cmd(node.npm.as_os_str(), ["config", "get", "registry"]).dir(project),
            Duration::from_secs(30),
            "npm config get registry",
        )?;
        let mut url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !url.starts_with("https://") && !url.starts_with("http://") {
            bail!("npm names no registry address (`npm config get registry` said `{url}`)");
        }
        if !url.ends_with('/') {
            url.push('/');
        }
        Ok(NpmRegistry {
            url,
            node: node.node_version.clone(),
        })
    }
}

/// The abbreviated packument (`application/vnd.npm.install-v1+json`).
#[derive(Deserialize)]
struct Packument {
    #[serde(default)]
    versions: std::collections::BTreeMap<String, Manifest>,
}

#[derive(Deserialize)]
struct Manifest {
    deprecated: Option<serde_json::Value>,
    engines: Option<serde_json::Value>,
}

impl Registry for NpmRegistry {
    fn ecosystem(&self) -> Ecosystem {
        Ecosystem::Node
    }

    fn cache_folder(&self) -> &'static str {
        "npm"
    }

    fn withdrawn(&self) -> &'static str {
        "deprecated"
    }

    fn releases<'a>(
        &'a self,
        client: &'a reqwest::Client,
        package: &'a PackageName,
    ) -> BoxFuture<'a, anyhow::Result<(String, Vec<Release>)>> {
        Box::pin(async move {
            // A scoped name's `/` is sent escaped, as npm sends it.
            let path = package.as_str().replace('/', "%2f");
            let shown = shown_url(&self.url);
            let request = client.get(format!("{}{path}", self.url)).header(
                reqwest::header::ACCEPT,
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8",
            );
            let response = send(request).await.with_context(|| {
                format!("the npm registry {shown} did not answer for {package}")
            })?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                bail!("the npm registry {shown} has no package named {package}");
            }
            if !status.is_success() {
                bail!("the npm registry {shown} answered {status} for {package}");
            }
            let packument: Packument = response
                .json()
                .await
                .with_context(|| format!("reading {shown}'s answer for {package}"))?;
            Ok((shown, to_releases(packument)))
        })
    }

    fn unmet(&self, requires: &str) -> Option<String> {
        let accepts = node_range_accepts(requires, &self.node)?;
        (!accepts).then(|| format!("needs Node {requires}"))
    }
}

fn to_releases(packument: Packument) -> Vec<Release> {
    packument
        .versions
        .into_iter()
        .map(|(version, manifest)| Release {
            version,
            // npm writes `deprecated: false` for an undeprecated version at times.
            yanked: manifest
                .deprecated
                .is_some_and(|notice| notice.as_str().is_some_and(|text| !text.is_empty())),
            requires: manifest
                .engines
                .as_ref()
                .and_then(|engines| engines.get("node"))
                .and_then(|node| node.as_str())
                .map(str::to_owned),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deprecated_version_is_withdrawn_and_its_engines_kept() {
        let packument: Packument = serde_json::from_str(
            r#"{"versions": {
                "1.0.0": {"deprecated": "use 2", "engines": {"node": ">=8"}},
                "1.0.1": {"deprecated": false},
                "2.0.0": {}
            }}"#,
        )
        .unwrap();
        let releases = to_releases(packument);
        let shown: Vec<(&str, bool, Option<&str>)> = releases
            .iter()
            .map(|release| {
                (
                    release.version.as_str(),
                    release.yanked,
                    release.requires.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("1.0.0", true, Some(">=8")),
                ("1.0.1", false, None),
                ("2.0.0", false, None)
            ]
        );
    }
}
