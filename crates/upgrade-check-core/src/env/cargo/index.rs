//! A crate's releases from the registry index cargo uses: tame-index finds
//! the index (cargo's default registry, or its replacement in cargo's configuration, read
//! from the service's folder upwards), builds the sparse request and reads
//! the answer; the harness's client carries it.

use std::path::Path;

use anyhow::{Context, bail};
use tame_index::index::{FileLock, IndexLocation, IndexUrl, SparseIndex};
use tame_index::{IndexKrate, KrateName};

use futures_util::future::BoxFuture;

use crate::env::index::{Registry, Release, send, shown_url};
use crate::model::package::{Ecosystem, PackageName};

/// The cargo registry: the toolchain decides `rust-version`; cargo's
/// configuration is read from the service's folder upwards.
#[derive(Debug)]
pub(crate) struct RegistryIndex {
    pub rust: semver::Version,
    pub project: std::path::PathBuf,
}

impl Registry for RegistryIndex {
    fn ecosystem(&self) -> Ecosystem {
        Ecosystem::Cargo
    }

    fn cache_folder(&self) -> &'static str {
        "crates"
    }

    fn releases<'a>(
        &'a self,
        client: &'a reqwest::Client,
        package: &'a PackageName,
    ) -> BoxFuture<'a, anyhow::Result<(String, Vec<Release>)>> {
        Box::pin(releases(client, &self.project, &self.rust, package))
    }

    fn kept_by_the_tool(
        &self,
        package: &PackageName,
    ) -> anyhow::Result<Option<(String, Vec<Release>)>> {
        cached_by_cargo(&self.project, &self.rust, package)
    }

    fn unmet(&self, requires: &str) -> Option<String> {
        let needed = rust_version(requires)?;
        (needed > self.rust).then(|| format!("needs Rust {requires}"))
    }
}

/// `(index shown, releases)` of `package`, asked of the registry.
async fn releases(
    client: &reqwest::Client,
    project: &Path,
    rust: &semver::Version,
    package: &PackageName,
) -> anyhow::Result<(String, Vec<Release>)> {
    let index = sparse_index(project, rust)?;
    let name = krate_name(package)?;
    // Unlocked: nothing is written to cargo's own cache, which cargo guards.
    let lock = FileLock::unlocked();
    let request = index.make_remote_request(name, None, &lock)?;
    let mut builder = client.get(&request.uri);
    for (header, value) in request.headers {
        builder = builder.header(header, value);
    }
    let shown = shown_url(index.url());
    let response = send(builder)
        .await
        .with_context(|| format!("the registry index {shown} did not answer for {package}"))?;
    let status = response.status();
    let revision = response
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response
        .bytes()
        .await
        .with_context(|| format!("reading {shown}'s answer for {package}"))?;
    let answer = tame_index::index::sparse::Response {
        status_code: status,
        revision: revision
            .as_deref()
            .map(tame_index::index::sparse::HttpRevision::Etag),
        body: &body,
    };
    let entry = index
        .parse_remote_response(name, answer, false, &lock)
        .with_context(|| format!("the registry index {shown} answered {status} for {package}"))?;
    let Some(entry) = entry else {
        bail!("the registry index {shown} has no crate named {package}");
    };
    Ok((shown, to_releases(&entry.deserialize()?)))
}

/// What cargo itself cached of `package`'s index entry, for `--offline`.
fn cached_by_cargo(
    project: &Path,
    rust: &semver::Version,
    package: &PackageName,
) -> anyhow::Result<Option<(String, Vec<Release>)>> {
    let index = sparse_index(project, rust)?;
    let lock = FileLock::unlocked();
    let Ok(Some(entry)) = index.cached_krate(krate_name(package)?, &lock) else {
        return Ok(None);
    };
    let shown = format!("{} (cargo's cache)", shown_url(index.url()));
    Ok(Some((shown, to_releases(&entry.deserialize()?))))
}

/// A `rust-version` (`1.70`, `1.70.1`) as a version to compare.
fn rust_version(text: &str) -> Option<semver::Version> {
    let mut parts = text.trim().split('.').map(str::parse::<u64>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some(semver::Version::new(major, minor, patch))
}

fn sparse_index(project: &Path, rust: &semver::Version) -> anyhow::Result<SparseIndex> {
    let root = tame_index::PathBuf::from_path_buf(project.to_owned())
        .map_err(|path| anyhow::anyhow!("{} is not a UTF-8 path", path.display()))?;
    let cargo = rust.to_string();
    let url = IndexUrl::crates_io(Some(root), None, Some(&cargo))
        .context("reading cargo's registry configuration")?;
    if !url.is_sparse() {
        bail!(
            "cargo's registry here is a git index ({}); versions are read from sparse indexes only: set `registries.crates-io.protocol = \"sparse\"`",
            shown_url(url.as_str())
        );
    }
    let mut location = IndexLocation::new(url);
    location.cargo_version = Some(rust.clone());
    Ok(SparseIndex::new(location)?)
}

fn krate_name(package: &PackageName) -> anyhow::Result<KrateName<'_>> {
    KrateName::cargo(package.as_str())
        .map_err(|err| anyhow::anyhow!("`{package}` is not a crate name: {err}"))
}

fn to_releases(krate: &IndexKrate) -> Vec<Release> {
    krate
        .versions
        .iter()
        .map(|version| Release {
            version: version.version.to_string(),
            yanked: version.yanked,
            requires: version.rust_version.as_deref().map(str::to_owned),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_versions_fill_missing_parts() {
        assert_eq!(rust_version("1.70"), Some(semver::Version::new(1, 70, 0)));
        assert_eq!(rust_version("1.70.1"), Some(semver::Version::new(1, 70, 1)));
        assert_eq!(rust_version("1"), Some(semver::Version::new(1, 0, 0)));
        assert_eq!(rust_version("nightly"), None);
    }
}
