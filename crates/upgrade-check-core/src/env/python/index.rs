//! A Python package's releases from the Simple API: the JSON form (PEP 691,
//! with PEP 592's yanked flag and `requires-python`) where the index speaks
//! it, the HTML form (PEP 503) where it does not, and the files of any
//! find-links folder or page.

use std::path::Path;
use std::sync::LazyLock;

use anyhow::{Context, bail};
use regex::Regex;
use serde::Deserialize;

use futures_util::future::BoxFuture;

use super::index_config::IndexUrls;
use crate::env::Python;
use crate::env::index::{Registry, Release, send, shown_url};
use crate::model::package::{Ecosystem, PackageName};

/// A Python package index: the interpreter decides `Requires-Python`, and
/// pip is asked for its default index when nothing names one.
#[derive(Debug)]
pub(crate) struct PackageIndex {
    python: Python,
    /// The service's folder, where uv looks for `uv.toml`/`pyproject.toml`.
    project: std::path::PathBuf,
    /// The index addresses, found once when first needed.
    urls: tokio::sync::OnceCell<IndexUrls>,
}

impl PackageIndex {
    pub(crate) fn new(python: Python, project: std::path::PathBuf) -> PackageIndex {
        PackageIndex {
            python,
            project,
            urls: tokio::sync::OnceCell::new(),
        }
    }
}

impl Registry for PackageIndex {
    fn ecosystem(&self) -> Ecosystem {
        Ecosystem::Python
    }

    fn cache_folder(&self) -> &'static str {
        "python"
    }

    fn releases<'a>(
        &'a self,
        client: &'a reqwest::Client,
        package: &'a PackageName,
    ) -> BoxFuture<'a, anyhow::Result<(String, Vec<Release>)>> {
        Box::pin(async move {
            let urls = self
                .urls
                .get_or_try_init(|| IndexUrls::find(&self.python, &self.project))
                .await?;
            releases(client, urls, package).await
        })
    }

    fn unmet(&self, requires: &str) -> Option<String> {
        use std::str::FromStr;
        let specifiers = pep508_rs::pep440_rs::VersionSpecifiers::from_str(requires).ok()?;
        let interpreter = pep508_rs::pep440_rs::Version::from_str(&self.python.version).ok()?;
        (!specifiers.contains(&interpreter)).then(|| format!("needs Python {requires}"))
    }
}

const JSON: &str = "application/vnd.pypi.simple.v1+json";

/// `(index shown, releases)` of `package`: from the first index that has it
/// (extra indexes before the default, as uv asks them), with the files of
/// every find-links location added.
async fn releases(
    client: &reqwest::Client,
    urls: &IndexUrls,
    package: &PackageName,
) -> anyhow::Result<(String, Vec<Release>)> {
    let mut found = None;
    for index in urls.extra.iter().chain(std::iter::once(&urls.default)) {
        let page = format!("{}/{package}/", index.trim_end_matches('/'));
        if let Some(files) = project_page(client, &page).await? {
            found = Some((shown_url(index), files));
            break;
        }
    }
    let mut sources = Vec::new();
    let mut files = Vec::new();
    if let Some((shown, listed)) = found {
        sources.push(shown);
        files.extend(listed);
    }
    for location in &urls.find_links {
        let linked = linked_files(client, location, package).await?;
        if !linked.is_empty() {
            sources.push(shown_url(location));
            files.extend(linked);
        }
    }
    if sources.is_empty() {
        let asked: Vec<String> = urls
            .extra
            .iter()
            .chain(std::iter::once(&urls.default))
            .chain(&urls.find_links)
            .map(|url| shown_url(url))
            .collect();
        bail!(
            "the package index has no project named {package} (asked {})",
            asked.join(", ")
        );
    }
    Ok((sources.join(" + "), releases_of(package, &files)))
}

/// One distribution file as an index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct File {
    filename: String,
    yanked: bool,
    requires_python: Option<String>,
}

#[derive(Deserialize)]
struct ProjectPage {
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
    /// `false`, `true`, or the reason as a string (PEP 592).
    #[serde(default)]
    yanked: serde_json::Value,
}

/// The files of one project page; `None` when the index does not have it.
async fn project_page(client: &reqwest::Client, page: &str) -> anyhow::Result<Option<Vec<File>>> {
    let shown = shown_url(page);
    let response = send(client.get(page).header(
        reqwest::header::ACCEPT,
        format!("{JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"),
    ))
    .await
    .with_context(|| format!("the package index did not answer at {shown}"))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        bail!(
            "the package index answered {} at {shown}",
            response.status()
        );
    }
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the package index's answer at {shown}"))?;
    let files = if is_json {
        parse_json(&body).with_context(|| format!("{shown} answered JSON that is not PEP 691"))?
    } else {
        parse_html(&body)
    };
    Ok(Some(files))
}

fn parse_json(body: &str) -> anyhow::Result<Vec<File>> {
    let page: ProjectPage = serde_json::from_str(body)?;
    Ok(page
        .files
        .into_iter()
        .map(|file| File {
            filename: file.filename,
            yanked: match file.yanked {
                serde_json::Value::Bool(yanked) => yanked,
                serde_json::Value::String(_) => true,
                _ => false,
            },
            requires_python: file.requires_python,
        })
        .collect())
}

/// The anchors of a PEP 503 page: the text is the file name,
/// `data-requires-python` and `data-yanked` its attributes.
fn parse_html(body: &str) -> Vec<File> {
    static ANCHOR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?is)<a\s([^>]*)>([^<]*)</a>").expect("valid"));
    static REQUIRES: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"(?i)data-requires-python\s*=\s*"([^"]*)""#).expect("valid"));
    static YANKED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\bdata-yanked\b").expect("valid"));
    ANCHOR
        .captures_iter(body)
        .map(|anchor| {
            let attributes = &anchor[1];
            File {
                filename: unescape(anchor[2].trim()),
                yanked: YANKED.is_match(attributes),
                requires_python: REQUIRES
                    .captures(attributes)
                    .map(|requires| unescape(&requires[1]))
                    .filter(|requires| !requires.is_empty()),
            }
        })
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A find-links location's files of `package`: a folder's file names, or a
/// page's anchors.
async fn linked_files(
    client: &reqwest::Client,
    location: &str,
    package: &PackageName,
) -> anyhow::Result<Vec<File>> {
    let files = if location.starts_with("http://") || location.starts_with("https://") {
        let shown = shown_url(location);
        let response = send(client.get(location))
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("the find-links page {shown} did not answer"))?;
        parse_html(&response.text().await?)
    } else {
        let folder = location.strip_prefix("file://").unwrap_or(location);
        folder_files(Path::new(folder))
    };
    Ok(files
        .into_iter()
        .filter(|file| split_filename(&file.filename).is_some_and(|(name, _)| name == *package))
        .collect())
}

fn folder_files(folder: &Path) -> Vec<File> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .map(|filename| File {
            filename,
            yanked: false,
            requires_python: None,
        })
        .collect()
}

/// A distribution file's project name (normalised) and version text; `None`
/// for what is not a wheel or a source archive.
fn split_filename(filename: &str) -> Option<(PackageName, String)> {
    let (name, version) = if let Some(stem) = filename.strip_suffix(".whl") {
        let mut parts = stem.split('-');
        (parts.next()?, parts.next()?)
    } else {
        let stem = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar"]
            .iter()
            .find_map(|suffix| filename.strip_suffix(suffix))?;
        stem.rsplit_once('-')?
    };
    Some((PackageName::python(name).ok()?, version.to_owned()))
}

/// Each distinct (version, yanked, `Requires-Python`) once, in the order
/// listed: a version is installable when any of its files is.
fn releases_of(package: &PackageName, files: &[File]) -> Vec<Release> {
    let mut releases: Vec<Release> = Vec::new();
    for file in files {
        let Some((name, version)) = split_filename(&file.filename) else {
            continue;
        };
        if name != *package {
            continue;
        }
        let release = Release {
            version,
            yanked: file.yanked,
            requires: file.requires_python.clone(),
        };
        if !releases.contains(&release) {
            releases.push(release);
        }
    }
    releases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str) -> PackageName {
        PackageName::python(name).unwrap()
    }

    /// An index on loopback that gives each connection the next of
    /// `answers` (status line and body), then closes it: the URL of its
    /// page, and how many requests it had.
    async fn index_answering(
        answers: Vec<(&'static str, &'static str)>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let page = format!("http://{}/simple/bcrypt/", listener.local_addr().unwrap());
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {JSON}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        (page, asked)
    }

    const PAGE: &str = r#"{"meta": {"api-version": "1.1"}, "name": "bcrypt", "files": [{"filename": "bcrypt-4.0.1.tar.gz", "yanked": false, "hashes": {}, "url": "x"}]}"#;

    #[tokio::test]
    async fn an_index_briefly_unavailable_is_asked_again() {
        let (page, asked) =
            index_answering(vec![("503 Service Unavailable", ""), ("200 OK", PAGE)]).await;
        let client = crate::env::index::client(std::time::Duration::from_secs(10)).unwrap();
        let files = project_page(&client, &page).await.unwrap().unwrap();
        assert_eq!(files[0].filename, "bcrypt-4.0.1.tar.gz");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2);

        // Down for good: three tries, then the answer is said.
        let (page, asked) = index_answering(vec![("503 Service Unavailable", ""); 3]).await;
        let err = project_page(&client, &page).await.unwrap_err().to_string();
        assert!(err.contains("answered 503 Service Unavailable"), "{err}");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 3);

        // A project the index does not have is no failure to retry.
        let (page, asked) = index_answering(vec![("404 Not Found", ""); 3]).await;
        assert!(project_page(&client, &page).await.unwrap().is_none());
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn pep_691_files_become_releases_with_yanked_and_requires_python() {
        let body = r#"{"meta": {"api-version": "1.1"}, "name": "bcrypt", "versions": ["4.0.1", "4.1.0"],
            "files": [
              {"filename": "bcrypt-4.0.1.tar.gz", "requires-python": ">=3.6", "yanked": false, "hashes": {}, "url": "x"},
              {"filename": "bcrypt-4.0.1-cp36-abi3-manylinux_2_28_x86_64.whl", "requires-python": ">=3.6", "yanked": false, "hashes": {}, "url": "x"},
              {"filename": "bcrypt-4.1.0.tar.gz", "requires-python": ">=3.7", "yanked": "broken wheels", "hashes": {}, "url": "x"},
              {"filename": "bcrypt-4.1.0-py3-none-any.whl", "yanked": true, "hashes": {}, "url": "x"}
            ]}"#;
        let releases = releases_of(&package("bcrypt"), &parse_json(body).unwrap());
        let shown: Vec<(String, bool, Option<String>)> = releases
            .into_iter()
            .map(|release| (release.version, release.yanked, release.requires))
            .collect();
        assert_eq!(
            shown,
            [
                ("4.0.1".to_owned(), false, Some(">=3.6".to_owned())),
                ("4.1.0".to_owned(), true, Some(">=3.7".to_owned())),
                ("4.1.0".to_owned(), true, None),
            ]
        );
    }

    #[test]
    fn pep_503_anchors_are_read_with_their_attributes() {
        let body = r#"<!DOCTYPE html><html><body>
            <a href="../../files/Flask_SQLAlchemy-3.0.0-py3-none-any.whl#sha256=ab" data-requires-python="&gt;=3.7">Flask_SQLAlchemy-3.0.0-py3-none-any.whl</a><br/>
            <a href="../../files/Flask-SQLAlchemy-2.5.1.tar.gz" data-requires-python="&gt;=2.7, !=3.0.*" data-yanked="">Flask-SQLAlchemy-2.5.1.tar.gz</a>
            <a href="x">Flask-SQLAlchemy-0.9.win32.exe</a>
            </body></html>"#;
        let releases = releases_of(&package("flask-sqlalchemy"), &parse_html(body));
        assert_eq!(
            releases,
            [
                Release {
                    version: "3.0.0".to_owned(),
                    yanked: false,
                    requires: Some(">=3.7".to_owned()),
                },
                Release {
                    version: "2.5.1".to_owned(),
                    yanked: true,
                    requires: Some(">=2.7, !=3.0.*".to_owned()),
                },
            ]
        );
    }

    #[test]
    fn a_folder_of_files_lists_only_the_package_asked_for() {
        let folder = tempfile::tempdir().unwrap();
        for name in [
            "PyJWT-2.8.0-py3-none-any.whl",
            "pyjwt-2.9.0.tar.gz",
            "pyjwt_extras-1.0-py3-none-any.whl",
            "README.txt",
        ] {
            std::fs::write(folder.path().join(name), "").unwrap();
        }
        let mut versions: Vec<String> =
            releases_of(&package("PyJWT"), &folder_files(folder.path()))
                .into_iter()
                .map(|release| release.version)
                .collect();
        versions.sort();
        assert_eq!(versions, ["2.8.0", "2.9.0"]);
    }
}
