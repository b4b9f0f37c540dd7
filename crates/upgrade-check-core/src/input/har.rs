//! HAR 1.2 files (a browser's "Save all as HAR", mitmproxy's HAR dump) as
//! recorded traffic: the service's requests in order. Requests to other
//! origins and static assets are left out, each named.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use super::source::{InputError, Source};
use super::traffic::Recorded;

/// Paths of files a page loads besides the service's answers.
const STATIC_EXTENSIONS: &[&str] = &[
    "js", "mjs", "css", "map", "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif", "woff",
    "woff2", "ttf", "otf", "eot",
];

/// The service's exchanges, and what was left out.
#[derive(Debug, Clone)]
pub(crate) struct FromHar {
    pub recorded: Vec<Recorded>,
    /// `GET https://cdn.example/app.js: another origin`, one per request.
    pub left_out: Vec<String>,
    /// The origin kept: `http://127.0.0.1:8000`.
    pub origin: String,
}

#[derive(Deserialize)]
struct Har {
    log: Log,
}

#[derive(Deserialize)]
struct Log {
    #[serde(default)]
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    request: Request,
    response: Response,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<Header>,
    post_data: Option<PostData>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct PostData {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    status: u16,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Content {
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
}

/// Reads the HAR file at `path`, keeping the requests to `origin` (by
/// default, the origin most of its non-static requests went to).
pub(crate) fn read(path: &Path, origin: Option<&str>) -> Result<FromHar, InputError> {
    let source = Source::read(path)?;
    let har: Har = serde_json::from_str(&source.text).map_err(|err| InputError {
        path: path.to_owned(),
        line: err.line(),
        column: err.column(),
        key: String::new(),
        message: format!("not a HAR file: {err}"),
    })?;
    let mut entries = Vec::new();
    for (index, entry) in har.log.entries.into_iter().enumerate() {
        let url = url::Url::parse(&entry.request.url).map_err(|err| InputError {
            key: format!("log.entries[{index}].request.url"),
            ..InputError::in_file(path, format!("`{}` is not a URL: {err}", entry.request.url))
        })?;
        entries.push((url, entry));
    }
    let is_static = |url: &url::Url, entry: &Entry| {
        let extension = url
            .path()
            .rsplit('/')
            .next()
            .and_then(|file| file.rsplit_once('.'))
            .map(|(_, extension)| extension.to_ascii_lowercase());
        let mime = entry
            .response
            .content
            .as_ref()
            .and_then(|content| content.mime_type.clone())
            .unwrap_or_default();
        extension.is_some_and(|extension| STATIC_EXTENSIONS.contains(&extension.as_str()))
            || ["image/", "font/", "text/css", "javascript"]
                .iter()
                .any(|kind| mime.contains(kind))
    };
    let origin = match origin {
        Some(origin) => origin.trim_end_matches('/').to_owned(),
        None => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for (url, entry) in &entries {
                if !is_static(url, entry) {
                    *counts
                        .entry(url.origin().ascii_serialization())
                        .or_default() += 1;
                }
            }
            match counts.into_iter().max_by_key(|(_, count)| *count) {
                Some((origin, _)) => origin,
                None => {
                    return Err(InputError::in_file(
                        path,
                        "no request to a service in it (every entry is a static file, or there are none)",
                    ));
                }
            }
        }
    };
    let mut recorded = Vec::new();
    let mut left_out = Vec::new();
    for (url, entry) in entries {
        let said = format!("{} {}", entry.request.method, entry.request.url);
        if url.origin().ascii_serialization() != origin {
            left_out.push(format!("{said}: another origin than {origin}"));
            continue;
        }
        if is_static(&url, &entry) {
            left_out.push(format!("{said}: a static file"));
            continue;
        }
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let content = entry.response.content.unwrap_or(Content {
            mime_type: None,
            text: None,
            encoding: None,
        });
        let response_body = match (content.text, content.encoding.as_deref()) {
            (Some(text), Some("base64")) => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .unwrap_or_default(),
            (Some(text), _) => text.into_bytes(),
            (None, _) => Vec::new(),
        };
        recorded.push(Recorded {
            method: entry.request.method.to_ascii_uppercase(),
            path: path_and_query,
            headers: pairs(entry.request.headers),
            body: entry
                .request
                .post_data
                .and_then(|data| data.text)
                .map(String::into_bytes),
            status: entry.response.status,
            response_body,
        });
    }
    Ok(FromHar {
        recorded,
        left_out,
        origin,
    })
}

fn pairs(headers: Vec<Header>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|header| (header.name, header.value))
        .collect()
}
