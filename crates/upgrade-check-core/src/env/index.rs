//! The versions a package has on the package index, as the user's own tools
//! see it, for matrix ranges and bisection.
//!
//! The listing comes from pip's `index versions`, run with the service's
//! interpreter: pip reads the user's configuration (index URL, extra
//! indexes, find-links; uv's `UV_DEFAULT_INDEX`/`UV_INDEX_URL`,
//! `UV_EXTRA_INDEX_URL` and `UV_FIND_LINKS` are passed on to it), speaks the
//! standard Simple API, leaves out yanked releases and those whose
//! `Requires-Python` excludes the interpreter, and lists pre-releases only
//! when asked. Answers are cached with a time to live; `--offline` uses the
//! cache whatever its age and says which entries are stale.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::env::Python;
use crate::model::package::{PackageName, Version};
use crate::{sys::process, sys::state};

/// How long an index answer is trusted before it is asked again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);

/// Asks the index, or the cache of its answers.
#[derive(Debug, Clone)]
pub struct Index {
    pub python: Python,
    /// `<cache>/index`.
    pub cache: PathBuf,
    pub ttl: Duration,
    pub offline: bool,
    pub timeout: Duration,
}

/// A package's installable versions, oldest first.
#[derive(Debug, Clone)]
pub struct Listing {
    pub versions: Vec<Version>,
    /// From the cache, older than the time to live (only with `--offline`).
    pub stale: bool,
    pub from_cache: bool,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    fetched_unix: u64,
    python: String,
    versions: Vec<String>,
}

impl Index {
    /// [`Index::versions`] off the async runtime: pip and the cache block.
    pub async fn list(&self, package: &PackageName, pre: bool) -> anyhow::Result<Listing> {
        let (index, package) = (self.clone(), package.clone());
        tokio::task::spawn_blocking(move || index.versions(&package, pre)).await?
    }

    pub fn versions(&self, package: &PackageName, pre: bool) -> anyhow::Result<Listing> {
        let path = self.cache_path(package, pre);
        let cached = read_cached(&path, &self.python.version);
        if let Some((cached, age)) = &cached
            && (self.offline || *age < self.ttl)
        {
            return Ok(Listing {
                versions: parse_versions(&cached.versions)?,
                stale: *age >= self.ttl,
                from_cache: true,
            });
        }
        if self.offline {
            bail!(
                "--offline: no cached index answer for {package}; run once without --offline to fetch its versions"
            );
        }
        let versions = self.ask_pip(package, pre)?;
        let cached = Cached {
            fetched_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
            python: self.python.version.clone(),
            versions: versions.iter().map(ToString::to_string).collect(),
        };
        state::write_atomic(&path, &serde_json::to_vec_pretty(&cached)?)?;
        Ok(Listing {
            versions,
            stale: false,
            from_cache: false,
        })
    }

    fn cache_path(&self, package: &PackageName, pre: bool) -> PathBuf {
        let suffix = if pre { "-pre" } else { "" };
        self.cache.join(format!("{package}{suffix}.json"))
    }

    fn ask_pip(&self, package: &PackageName, pre: bool) -> anyhow::Result<Vec<Version>> {
        let mut args: Vec<String> = ["-m", "pip", "index", "versions", "--no-color"]
            .map(str::to_owned)
            .to_vec();
        if pre {
            args.push("--pre".to_owned());
        }
        args.extend(uv_index_options());
        args.push(package.to_string());
        let command = duct::cmd(&self.python.path, &args)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PYTHONWARNINGS", "ignore");
        let output = process::run_captured(command, self.timeout)
            .with_context(|| format!("cannot run {} -m pip", self.python.path.display()))?
            .with_context(|| {
                format!(
                    "the package index did not answer for {package} within {}",
                    humantime::format_duration(self.timeout)
                )
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let reason = stderr
                .lines()
                .filter(|line| !line.starts_with("WARNING: pip index is currently"))
                .collect::<Vec<_>>()
                .join("\n");
            bail!(
                "the package index has no versions of {package}: {}",
                reason.trim()
            );
        }
        let listed = stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix("Available versions:"))
            .with_context(|| format!("unexpected answer from pip for {package}: {stdout}"))?;
        let mut versions = parse_versions(
            &listed
                .split(',')
                .map(|version| version.trim().to_owned())
                .filter(|version| !version.is_empty())
                .collect::<Vec<_>>(),
        )?;
        versions.sort();
        Ok(versions)
    }
}

/// uv's index settings as pip options, so both tools ask the same index.
fn uv_index_options() -> Vec<String> {
    let mut options = Vec::new();
    let default = std::env::var("UV_DEFAULT_INDEX").or_else(|_| std::env::var("UV_INDEX_URL"));
    if let Ok(url) = default {
        options.extend(["--index-url".to_owned(), url]);
    }
    for (variable, option) in [
        ("UV_EXTRA_INDEX_URL", "--extra-index-url"),
        ("UV_FIND_LINKS", "--find-links"),
    ] {
        if let Ok(values) = std::env::var(variable) {
            for value in values.split_whitespace() {
                options.extend([option.to_owned(), value.to_owned()]);
            }
        }
    }
    options
}

fn read_cached(path: &Path, python: &str) -> Option<(Cached, Duration)> {
    let cached: Cached = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if cached.python != python {
        return None;
    }
    let fetched = UNIX_EPOCH + Duration::from_secs(cached.fetched_unix);
    let age = SystemTime::now()
        .duration_since(fetched)
        .unwrap_or_default();
    Some((cached, age))
}

fn parse_versions(texts: &[String]) -> anyhow::Result<Vec<Version>> {
    let mut versions = texts
        .iter()
        .map(|text| {
            Version::python(text)
                .map_err(|err| anyhow::anyhow!("the index listed `{text}`, not a version: {err}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    versions.sort();
    Ok(versions)
}
