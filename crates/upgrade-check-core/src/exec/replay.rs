//! Runs a scenario's steps against a live service and records each exchange.
//!
//! Replay fills `{{variables}}`, sends the request, records what came back,
//! takes captures for later steps and checks the step's expectations. An
//! unmet expectation stops the scenario there: later steps depend on it.
//! Nothing here normalises or judges; that is for `normalize` and `snapshot`.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;

use crate::input::scenario::{Body, CaptureSource, Scenario, Step};

/// One request and what it got.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub step: String,
    pub request: Request,
    /// The response, or why there was none (connection refused, timeout).
    pub response: Result<Response, String>,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// At most [`MAX_BODY_BYTES`] of the body.
    pub body: Vec<u8>,
    /// How much of the body was not kept.
    pub truncated_bytes: usize,
}

/// A response body is kept up to this size; a snapshot is for reading, not for archives.
pub const MAX_BODY_BYTES: usize = 1 << 20;

impl Response {
    /// `201 Created`: the status with its standard reason phrase.
    pub fn status_line(&self) -> String {
        let reason = StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("");
        format!("{} {reason}", self.status).trim_end().to_owned()
    }
}

/// The exchanges of one scenario run, and the step that stopped it, if any.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub exchanges: Vec<Exchange>,
    pub failure: Option<StepFailure>,
}

/// A step whose expectation was not met; points into the scenario file.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub step: String,
    pub line: usize,
    pub message: String,
}

/// The HTTP client every replay shares: no proxy, no redirects followed,
/// and a new connection for every step. A service may close a connection
/// after an answer without saying so (uvicorn after a 500): a pooled
/// connection would carry the next step into that close, and that step,
/// not the one that failed, would be reported as unanswered. On loopback a
/// connection costs a fraction of a millisecond. Built once per process
/// (copies share it): building one reads the system's certificates.
pub fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            crate::sys::http::client_builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(0)
                .build()
                .expect("the HTTP client configuration is valid")
        })
        .clone()
}

/// Replays `scenario` against the service at `base_url`
/// (`http://127.0.0.1:PORT`); a token a step changes (`{{token | jwt-expired}}`)
/// is signed again with whichever of `keys` the service signs with.
pub async fn replay(
    client: &reqwest::Client,
    base_url: &str,
    scenario: &Scenario,
    timeout: Duration,
    keys: &[String],
) -> Replayed {
    let mut values: BTreeMap<String, String> = scenario
        .vars
        .iter()
        .chain(&scenario.secrets)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut exchanges = Vec::new();
    for step in &scenario.steps {
        let request = request(step, &values, keys);
        let response = send(client, base_url, &request, timeout).await;
        // An unanswered step stops the scenario only where a later step
        // needs it (an expectation, a capture): as the scenario format says.
        let failure = match &response {
            Err(error) if !step.captures.is_empty() || step.expect_status.is_some() => {
                Some(format!("no response: {error}"))
            }
            Err(_) => None,
            Ok(response) => check(step, response, &mut values),
        };
        exchanges.push(Exchange {
            step: step.name.clone(),
            request,
            response,
        });
        if let Some(message) = failure {
            return Replayed {
                exchanges,
                failure: Some(StepFailure {
                    step: step.name.clone(),
                    line: step.line,
                    message,
                }),
            };
        }
    }
    Replayed {
        exchanges,
        failure: None,
    }
}

fn request(step: &Step, values: &BTreeMap<String, String>, keys: &[String]) -> Request {
    let fill = |text: &str| crate::input::scenario::interpolate_signing(text, values, keys);
    let mut headers: Vec<(String, String)> = step
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), fill(value)))
        .collect();
    let body = step.body.as_ref().map(|body| match body {
        Body::Json(value) => {
            if !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("content-type".to_owned(), "application/json".to_owned()));
            }
            serde_json::to_string(&fill_json(value, &fill)).unwrap_or_default()
        }
        Body::Text(text) => fill(text),
    });
    Request {
        method: step.method.clone(),
        path: fill(&step.path),
        headers,
        body,
    }
}

fn fill_json(value: &serde_json::Value, fill: &dyn Fn(&str) -> String) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(fill(text)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| fill_json(item, fill)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), fill_json(item, fill)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn send(
    client: &reqwest::Client,
    base_url: &str,
    request: &Request,
    timeout: Duration,
) -> Result<Response, String> {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|err| err.to_string())?;
    let mut builder = client
        .request(method, format!("{base_url}{}", request.path))
        .timeout(timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let response = builder.send().await.map_err(|err| describe(err, timeout))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Read at most MAX_BODY_BYTES; count the rest so the report can say so.
    let mut response = response;
    let mut body = Vec::new();
    let mut truncated_bytes = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| describe(err, timeout))?
    {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..room.min(chunk.len())]);
        truncated_bytes += chunk.len().saturating_sub(room);
    }
    Ok(Response {
        status,
        headers,
        body,
        truncated_bytes,
    })
}

fn describe(err: reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        format!("timed out after {}", humantime::format_duration(timeout))
    } else if err.is_connect() {
        "connection failed (is the service still running?)".to_owned()
    } else {
        // The URL is the request's, shown beside the error already; it may
        // carry a secret filled into the path.
        let err = reqwest::Error::without_url(err);
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        message
    }
}

/// Checks expectations and takes captures; the failure message, if any.
fn check(
    step: &Step,
    response: &Response,
    values: &mut BTreeMap<String, String>,
) -> Option<String> {
    if let Some(expected) = step.expect_status
        && expected != response.status
    {
        return Some(format!(
            "expected status {expected}, got {}",
            response.status_line()
        ));
    }
    for capture in &step.captures {
        let value = match &capture.from {
            CaptureSource::Json(pointer) => {
                serde_json::from_slice::<serde_json::Value>(&response.body)
                    .ok()
                    .and_then(|body| body.pointer(pointer).cloned())
                    .map(|value| match value {
                        serde_json::Value::String(text) => text,
                        other => other.to_string(),
                    })
            }
            CaptureSource::Header(name) => response
                .headers
                .iter()
                .find(|(header, _)| header.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone()),
        };
        match value {
            Some(value) => {
                values.insert(capture.variable.clone(), value);
            }
            None => {
                let from = match &capture.from {
                    CaptureSource::Json(pointer) => format!("JSON pointer `{pointer}` of the body"),
                    CaptureSource::Header(name) => format!("header `{name}`"),
                };
                return Some(format!(
                    "capture `{}` found nothing at {from}",
                    capture.variable
                ));
            }
        }
    }
    None
}
