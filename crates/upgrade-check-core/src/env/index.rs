//! The versions a package has on its registry, as the user's own tools see
//! it, for matrix ranges and bisection.
//!
//! Each ecosystem's folder says how its registry is asked ([`Registry`]):
//! Python's package index through the Simple API (`python/index.rs`), the
//! registry index cargo uses (`cargo/index.rs`), the npm registry's
//! packuments (`node/registry.rs`), each found through the same
//! configuration the user's tools read. Every
//! release is cached with what it needs (its yanked flag, `Requires-Python`
//! or `rust-version`) and judged when read, so one cached answer serves any
//! interpreter or toolchain. Answers are trusted for a time to live;
//! `--offline` uses the cache whatever its age and says which are stale.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::model::package::{Ecosystem, PackageName, Version};
use crate::model::setting::{Setting, SettingError};
use crate::sys::state;

/// How long an index answer is trusted before it is asked again.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);

/// One ecosystem's registry: where its packages' releases are listed, and
/// what judges whether this interpreter or toolchain can use one.
pub(crate) trait Registry: std::fmt::Debug + Send + Sync {
    /// Whose versions it lists, to parse them by their own rules.
    fn ecosystem(&self) -> Ecosystem;

    /// The folder of the cache its answers are kept in.
    fn cache_folder(&self) -> &'static str;

    /// `(registry shown, releases)` of `package`, asked of the registry.
    fn releases<'a>(
        &'a self,
        client: &'a reqwest::Client,
        package: &'a PackageName,
    ) -> BoxFuture<'a, anyhow::Result<(String, Vec<Release>)>>;

    /// What the ecosystem's own tool keeps of the registry, for `--offline`
    /// when the harness has no answer cached (its age unknown, so stale).
    fn kept_by_the_tool(
        &self,
        _package: &PackageName,
    ) -> anyhow::Result<Option<(String, Vec<Release>)>> {
        Ok(None)
    }

    /// What the registry calls a release it withdrew from new installs.
    fn withdrawn(&self) -> &'static str {
        "yanked"
    }

    /// Why this interpreter or toolchain cannot use a release that needs
    /// `requires`; `None` when it can, or when `requires` cannot be read
    /// (pip and cargo ignore what they cannot parse too).
    fn unmet(&self, requires: &str) -> Option<String>;
}

/// Asks the registry, or the cache of its answers.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    pub registry: Arc<dyn Registry>,
    /// `<cache>/index`.
    pub cache: PathBuf,
    pub ttl: Duration,
    pub offline: bool,
    /// For each request to the registry.
    pub timeout: Duration,
}

/// A package's installable versions, oldest first, and the ones left out.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub versions: Vec<Version>,
    /// Releases that cannot be installed here, oldest first: yanked, or
    /// needing another Python or a newer Rust.
    pub skipped: Vec<Skipped>,
    /// From the cache, older than the time to live (only with `--offline`).
    pub stale: bool,
    pub from_cache: bool,
    /// The registry that answered, without credentials.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub version: Version,
    /// `yanked`, `needs Python >=3.12`, `needs Rust 1.96`.
    pub reason: String,
}

/// One release as the registry describes it, before it is judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Release {
    pub version: String,
    pub yanked: bool,
    /// `Requires-Python` of a Python release, `rust-version` of a crate.
    pub requires: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    fetched_unix: u64,
    source: String,
    releases: Vec<Release>,
}

impl Index {
    pub(crate) fn new(
        registry: Arc<dyn Registry>,
        cache: PathBuf,
        offline: bool,
        timeout: Duration,
    ) -> Index {
        Index {
            registry,
            cache,
            ttl: DEFAULT_TTL,
            offline,
            timeout,
        }
    }

    pub(crate) fn ecosystem(&self) -> Ecosystem {
        self.registry.ecosystem()
    }

    /// The versions of `package` this interpreter or toolchain can install
    /// (pre-releases only when `pre`), from the cache while it is fresh.
    pub(crate) async fn list(&self, package: &PackageName, pre: bool) -> anyhow::Result<Listing> {
        let path = self.cache_path(package);
        let cached = read_cached(&path);
        let (cached, stale, from_cache) = match cached {
            Some((cached, age)) if self.offline || age < self.ttl => {
                let stale = age >= self.ttl;
                (cached, stale, true)
            }
            _ if self.offline => match self.offline_fallback(package)? {
                Some(cached) => (cached, true, true),
                None => {
                    return Err(SettingError::new(
                        Setting::Offline,
                        format!(
                            "offline, and no cached index answer for {package}: run once online to fetch its versions"
                        ),
                    )
                    .into());
                }
            },
            _ => {
                let (source, releases) = self.fetch(package).await?;
                let cached = Cached {
                    fetched_unix: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs(),
                    source,
                    releases,
                };
                state::write_atomic(&path, &serde_json::to_vec_pretty(&cached)?)?;
                (cached, false, false)
            }
        };
        let (versions, skipped) = self.judge(&cached.releases, pre);
        Ok(Listing {
            versions,
            skipped,
            stale,
            from_cache,
            source: cached.source,
        })
    }

    async fn fetch(&self, package: &PackageName) -> anyhow::Result<(String, Vec<Release>)> {
        self.registry
            .releases(&client(self.timeout)?, package)
            .await
    }

    /// Without the harness's own cache: what the ecosystem's tool keeps.
    fn offline_fallback(&self, package: &PackageName) -> anyhow::Result<Option<Cached>> {
        Ok(self
            .registry
            .kept_by_the_tool(package)?
            .map(|(source, releases)| Cached {
                fetched_unix: 0,
                source,
                releases,
            }))
    }

    /// Splits releases into the installable versions and the skipped ones,
    /// each oldest first.
    fn judge(&self, releases: &[Release], pre: bool) -> (Vec<Version>, Vec<Skipped>) {
        let mut versions = Vec::new();
        let mut skipped = Vec::new();
        for release in releases {
            // Versions no tool can order (old PyPI oddities) are not candidates.
            let Ok(version) = Version::parse(self.ecosystem(), &release.version) else {
                continue;
            };
            if version.is_prerelease() && !pre {
                continue;
            }
            let reason = if release.yanked {
                Some(self.registry.withdrawn().to_owned())
            } else {
                release
                    .requires
                    .as_deref()
                    .and_then(|requires| self.registry.unmet(requires))
            };
            match reason {
                Some(reason) => skipped.push(Skipped { version, reason }),
                None => versions.push(version),
            }
        }
        versions.sort();
        versions.dedup();
        // A version with one installable file is installable.
        skipped.retain(|skip| !versions.contains(&skip.version));
        skipped.sort_by(|a, b| a.version.cmp(&b.version));
        skipped.dedup_by(|a, b| a.version == b.version);
        (versions, skipped)
    }

    fn cache_path(&self, package: &PackageName) -> PathBuf {
        self.cache
            .join(self.registry.cache_folder())
            .join(format!("{package}.json"))
    }
}

/// The client for registries: TLS with the system's certificates (as pip,
/// uv with native TLS and cargo trust them), a timeout on every request.
pub(crate) fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(crate::sys::http::client_builder()
        .user_agent(concat!("upgrade-check/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(30))
        .build()?)
}

/// Tries at one request: a registry briefly down (a proxy's 503, a reset
/// connection) is asked again rather than failing the run.
const ATTEMPTS: u32 = 3;

/// The pause before the second try; doubled before each next one.
const FIRST_PAUSE: Duration = Duration::from_millis(400);

/// Sends `request`, trying again after a pause when the failure is one a
/// registry recovers from: no connection, a timeout, or 429, 500, 502, 503
/// or 504 (a `Retry-After` of up to ten seconds is honoured). The last
/// answer or error is returned as it is.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    use reqwest::StatusCode;
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        let Some(this) = request.try_clone().filter(|_| attempt < ATTEMPTS) else {
            return request.send().await;
        };
        let wait = match this.send().await {
            Ok(response)
                if matches!(
                    response.status(),
                    StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::INTERNAL_SERVER_ERROR
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                ) =>
            {
                response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
                    .map_or(pause, |seconds| Duration::from_secs(seconds.min(10)))
            }
            Err(err) if err.is_connect() || err.is_timeout() => pause,
            other => return other,
        };
        tokio::time::sleep(wait).await;
        pause *= 2;
        attempt += 1;
    }
}

/// A URL as it may be shown: any password or token in it left out.
pub(crate) fn shown_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => text.to_owned(),
    }
}

fn read_cached(path: &std::path::Path) -> Option<(Cached, Duration)> {
    let cached: Cached = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let fetched = UNIX_EPOCH + Duration::from_secs(cached.fetched_unix);
    let age = SystemTime::now()
        .duration_since(fetched)
        .unwrap_or_default();
    Some((cached, age))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, yanked: bool, requires: Option<&str>) -> Release {
        Release {
            version: version.to_owned(),
            yanked,
            requires: requires.map(str::to_owned),
        }
    }

    fn index(registry: impl Registry + 'static) -> Index {
        Index::new(
            Arc::new(registry),
            PathBuf::from("/nonexistent"),
            true,
            Duration::from_secs(1),
        )
    }

    #[test]
    fn python_releases_are_judged_by_yanked_and_requires_python() {
        let index = index(crate::env::python::PackageIndex::new(
            crate::env::Python {
                path: PathBuf::from("python3"),
                version: "3.11.7".to_owned(),
            },
            PathBuf::from("."),
        ));
        let (versions, skipped) = index.judge(
            &[
                release("4.1.0", true, None),
                release("4.0.1", false, Some(">=3.7")),
                release("5.0.0rc1", false, None),
                release("6.0.0", false, Some(">=3.12")),
                release("0.1dev-r12", false, None),
                release("4.2.0", false, Some("not a specifier")),
            ],
            false,
        );
        let shown: Vec<String> = versions.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["4.0.1", "4.2.0"]);
        let skipped: Vec<String> = skipped
            .iter()
            .map(|skip| format!("{} {}", skip.version, skip.reason))
            .collect();
        assert_eq!(skipped, ["4.1.0 yanked", "6.0.0 needs Python >=3.12"]);
        let (with_pre, _) = index.judge(&[release("5.0.0rc1", false, None)], true);
        assert_eq!(with_pre.len(), 1);
    }

    #[test]
    fn crates_are_judged_by_yanked_and_rust_version() {
        let index = index(crate::env::cargo::RegistryIndex {
            rust: semver::Version::new(1, 85, 0),
            project: PathBuf::from("."),
        });
        let (versions, skipped) = index.judge(
            &[
                release("0.8.1", false, Some("1.75")),
                release("0.8.2", true, Some("1.75")),
                release("0.9.0", false, Some("1.86")),
                release("1.0.0-alpha.1", false, None),
            ],
            false,
        );
        let shown: Vec<String> = versions.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0.8.1"]);
        let skipped: Vec<String> = skipped
            .iter()
            .map(|skip| format!("{} {}", skip.version, skip.reason))
            .collect();
        assert_eq!(skipped, ["0.8.2 yanked", "0.9.0 needs Rust 1.86"]);
    }

    #[test]
    fn credentials_are_never_shown() {
        assert_eq!(
            shown_url("https://user:s3cret@example.test/simple/"),
            "https://example.test/simple/"
        );
        assert_eq!(shown_url("/opt/wheels"), "/opt/wheels");
    }
}
