//! Recorded traffic into a scenario file: the requests a browser, curl, a
//! frontend or a test collection sent, and what the service answered, as
//! the steps a person would have written.
//!
//! - Steps are named from method and path; JSON bodies become TOML tables,
//!   other text bodies stay text; only request headers that change what the
//!   service does are kept (no Host, Content-Length, User-Agent, cookies…).
//! - A value an earlier response returned and a later request sends (a token
//!   in a header, an id in a path or a body) becomes a `capture` and a
//!   `{{variable}}`.
//! - Credentials become `[secrets]`: password-, token-, secret- and
//!   key-like fields of JSON and form bodies and of the query string, and
//!   the credential of an `Authorization`-like header, when no response
//!   gave them. The scenario's `[secrets]` table is the one place their
//!   values are written; snapshots, reports and logs show `[secret:NAME]`.
//!
//! Whatever cannot be kept is said, never dropped silently.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::input::scenario::{Body, CaptureSource, Scenario};

/// One request and its answer, as a recorder saw them.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    /// Path and query, as sent: `/api/items?page=2`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub status: u16,
    pub response_body: Vec<u8>,
}

/// A scenario file's text, and what the conversion says about it.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub text: String,
    /// Captures and secrets made, and anything left out, one line each.
    pub notes: Vec<String>,
}

/// Request headers a replay sets itself, or that only describe the client.
pub(crate) const DROPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "user-agent",
    "cookie",
    "connection",
    "accept",
    "accept-encoding",
    "accept-language",
    "origin",
    "referer",
    "cache-control",
    "pragma",
    "dnt",
    "te",
    "priority",
    "keep-alive",
    "upgrade-insecure-requests",
    "if-none-match",
    "if-modified-since",
    "postman-token",
];

/// Request fields whose values are credentials.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "private_key",
    "session",
    "credential",
];

/// Headers that carry credentials.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key", "x-auth-token", "api-key"];

/// The shortest answer value looked for inside a longer request text (a
/// token in `Bearer …`).
const MIN_EMBEDDED: usize = 8;

/// A value a response gave that a later request may send back.
struct Returned {
    step: usize,
    pointer: String,
    value: String,
    variable: String,
}

/// Writes the scenario `description` for `recorded`, in order.
pub(crate) fn scenario(description: &str, recorded: &[Recorded]) -> Written {
    let mut notes = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut returned: Vec<Returned> = Vec::new();
    let mut captures: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    let mut secrets = Credentials::default();
    let mut steps = Vec::new();
    for exchange in recorded {
        let index = steps.len();
        let bare_path = exchange.path.split('?').next().unwrap_or_default();
        // A path the service does not serve (its framework's own 404 or 405,
        // not an answer of the service's API) is a stray request.
        if matches!(exchange.status, 404 | 405)
            && json_object_or_array(&exchange.response_body).is_none()
        {
            notes.push(format!(
                "`{} {}` is left out: the service answered {} (a path it does not serve)",
                exchange.method, exchange.path, exchange.status
            ));
            continue;
        }
        let base = format!("{} {bare_path}", exchange.method);
        let seen = names.entry(base.clone()).or_insert(0);
        *seen += 1;
        let name = match *seen {
            1 => base,
            n => format!("{base} ({n})"),
        };
        // What this request sends back from an earlier answer.
        let mut send_back = |text: &str, whole: bool| -> String {
            let mut text = text.to_owned();
            for earlier in &returned {
                // Inside a longer text only a long value is itself: an id
                // such as `1` is found only as a whole path segment or value.
                let found = text == earlier.value
                    || (!whole
                        && earlier.value.len() >= MIN_EMBEDDED
                        && text.contains(&earlier.value));
                if found {
                    let step_captures = captures.entry(earlier.step).or_default();
                    if !step_captures
                        .iter()
                        .any(|(variable, _)| *variable == earlier.variable)
                    {
                        step_captures.push((earlier.variable.clone(), earlier.pointer.clone()));
                        notes.push(format!(
                            "`{}` is captured from step {}'s answer ({}) and sent back",
                            earlier.variable,
                            earlier.step + 1,
                            earlier.pointer
                        ));
                    }
                    text = text.replace(&earlier.value, &format!("{{{{{}}}}}", earlier.variable));
                }
            }
            text
        };
        let (bare, query) = match exchange.path.split_once('?') {
            Some((bare, query)) => (bare, Some(query)),
            None => (exchange.path.as_str(), None),
        };
        let mut path = bare
            .split('/')
            .map(|segment| send_back(segment, true))
            .collect::<Vec<_>>()
            .join("/");
        if let Some(query) = query {
            let query = pairs(query, &mut |_, value| send_back(value, true));
            path = format!("{path}?{}", secrets.in_pairs(&query));
        }
        let mut headers = Vec::new();
        let json_body = exchange.body.as_deref().and_then(json_object_or_array);
        for (header, value) in &exchange.headers {
            let lower = header.to_ascii_lowercase();
            if DROPPED_HEADERS.contains(&lower.as_str())
                || lower.starts_with("sec-")
                || lower.starts_with("x-forwarded-")
                || lower.starts_with(':')
                || (lower == "content-type" && json_body.is_some())
            {
                continue;
            }
            let value = send_back(value, false);
            headers.push((header.clone(), secrets.in_header(header, value)));
        }
        let body = match (&exchange.body, json_body) {
            (None, _) => None,
            (Some(bytes), _) if bytes.is_empty() => None,
            (Some(_), Some(mut json)) => {
                fill_json(&mut json, &mut |_, text| send_back(text, true));
                secrets.in_json(&mut json);
                match toml_inline(&json) {
                    Some(inline) => Some(format!("json = {inline}")),
                    None => {
                        notes.push(format!(
                            "step `{name}`: its JSON body holds null, which TOML cannot; kept as text"
                        ));
                        let text =
                            String::from_utf8_lossy(exchange.body.as_deref().unwrap_or_default());
                        Some(format!("body = {}", toml_string(&text)))
                    }
                }
            }
            (Some(bytes), None) => match std::str::from_utf8(bytes) {
                // A form's values are sent back one by one; its keys are names.
                Ok(text) if is_form(&exchange.headers) || looks_like_form(text) => {
                    let text = pairs(text, &mut |_, value| send_back(value, true));
                    Some(format!("body = {}", toml_string(&secrets.in_pairs(&text))))
                }
                Ok(text) => Some(format!("body = {}", toml_string(&send_back(text, false)))),
                Err(_) => {
                    notes.push(format!(
                        "step `{name}`: its body is binary ({} bytes) and is left out",
                        bytes.len()
                    ));
                    None
                }
            },
        };
        steps.push(StepText {
            name,
            method: exchange.method.clone(),
            path,
            headers,
            body,
            captures: Vec::new(),
            expect_status: None,
        });
        // Only a successful answer gives values to send back: an error's
        // body (FastAPI's 422 `detail[0].loc`) names fields, it holds no ids.
        if (200..300).contains(&exchange.status)
            && let Some(answer) = json_object_or_array(&exchange.response_body)
        {
            let mut found = Vec::new();
            returnable(&answer, String::new(), "", &mut found);
            for (pointer, key, value) in found {
                let variable = variable_name(&key, &returned);
                returned.push(Returned {
                    step: index,
                    pointer,
                    value,
                    variable,
                });
            }
        }
    }
    for (index, step) in steps.iter_mut().enumerate() {
        if let Some(taken) = captures.remove(&index) {
            step.captures = taken
                .into_iter()
                .map(|(variable, pointer)| (variable, CaptureFrom::Json(pointer)))
                .collect();
        }
    }
    notes.extend(secrets.notes());
    let text = render(description, &[], &BTreeMap::new(), &secrets.values, &steps);
    Written { text, notes }
}

/// A body that is `key=value&…` and nothing else, whatever its headers say.
fn looks_like_form(text: &str) -> bool {
    !text.is_empty()
        && text.split('&').all(|pair| {
            pair.split_once('=').is_some_and(|(key, value)| {
                !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.[]%".contains(c))
                    && !value.contains(char::is_whitespace)
            })
        })
}

/// Whether a request's headers say its body is a form.
fn is_form(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type")
            && value
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
    })
}

/// `key=value&…` with each value replaced by `fill(key, value)`.
fn pairs(text: &str, fill: &mut dyn FnMut(&str, &str) -> String) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => format!("{key}={}", fill(key, value)),
            None => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A scenario file's text: its description, `[vars]`, `[secrets]` and steps.
pub(crate) fn render(
    description: &str,
    top: &[String],
    vars: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
    steps: &[StepText],
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "description = {}", toml_string(description));
    for line in top {
        let _ = writeln!(text, "{line}");
    }
    if !vars.is_empty() {
        text.push_str("\n[vars]\n");
        for (name, value) in vars {
            let _ = writeln!(text, "{} = {}", toml_key(name), toml_string(value));
        }
    }
    if !secrets.is_empty() {
        text.push_str("\n# Replaced by [secret:NAME] in every snapshot and log.\n[secrets]\n");
        for (name, value) in secrets {
            let _ = writeln!(text, "{} = {}", toml_key(name), toml_string(value));
        }
    }
    for step in steps {
        text.push_str("\n[[steps]]\n");
        let _ = writeln!(text, "name = {}", toml_string(&step.name));
        let _ = writeln!(text, "method = {}", toml_string(&step.method));
        let _ = writeln!(text, "path = {}", toml_string(&step.path));
        if !step.headers.is_empty() {
            let pairs: Vec<String> = step
                .headers
                .iter()
                .map(|(name, value)| format!("{} = {}", toml_key(name), toml_string(value)))
                .collect();
            let _ = writeln!(text, "headers = {{ {} }}", pairs.join(", "));
        }
        if let Some(body) = &step.body {
            let _ = writeln!(text, "{body}");
        }
        if !step.captures.is_empty() {
            let pairs: Vec<String> = step
                .captures
                .iter()
                .map(|(variable, from)| {
                    let (kind, place) = match from {
                        CaptureFrom::Json(pointer) => ("json", pointer),
                        CaptureFrom::Header(name) => ("header", name),
                    };
                    format!(
                        "{} = {{ {kind} = {} }}",
                        toml_key(variable),
                        toml_string(place)
                    )
                })
                .collect();
            let _ = writeln!(text, "capture = {{ {} }}", pairs.join(", "));
        }
        if let Some(status) = step.expect_status {
            let _ = writeln!(text, "expect = {{ status = {status} }}");
        }
    }
    text
}

/// A loaded scenario written back as a file, as `description` says it is:
/// exploration's variants, promoted as they ran. Its secrets are not
/// written: it takes them from the scenario they were read from
/// (`secrets-from`), which stays the one file that holds them. A JSON body
/// holding a null (TOML has none) is written as text with its content type.
pub(crate) fn render_scenario(scenario: &Scenario, description: &str) -> String {
    let mut top = Vec::new();
    if !scenario.secrets.is_empty() {
        let from = scenario.secrets_from.as_deref().unwrap_or(&scenario.name);
        top.push(format!("secrets-from = {}", toml_string(from)));
    }
    if !scenario.profiles.is_empty() {
        let names: Vec<String> = scenario.profiles.iter().map(|p| toml_string(p)).collect();
        top.push(format!("profiles = [{}]", names.join(", ")));
    }
    if scenario.record_startup {
        top.push("record-startup = true".to_owned());
    }
    if scenario.security {
        top.push("security = true".to_owned());
    }
    let steps: Vec<StepText> = scenario
        .steps
        .iter()
        .map(|step| {
            let mut headers = step.headers.clone();
            let body = match &step.body {
                None => None,
                Some(Body::Text(text)) => Some(format!("body = {}", toml_string(text))),
                Some(Body::Json(json)) => match toml_inline(json) {
                    Some(inline) => Some(format!("json = {inline}")),
                    None => {
                        if !headers
                            .iter()
                            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                        {
                            // As a JSON body is sent.
                            headers
                                .push(("content-type".to_owned(), "application/json".to_owned()));
                        }
                        Some(format!("body = {}", toml_string(&json.to_string())))
                    }
                },
            };
            StepText {
                name: step.name.clone(),
                method: step.method.clone(),
                path: step.path.clone(),
                headers,
                body,
                captures: step
                    .captures
                    .iter()
                    .map(|capture| {
                        let from = match &capture.from {
                            CaptureSource::Json(pointer) => CaptureFrom::Json(pointer.clone()),
                            CaptureSource::Header(name) => CaptureFrom::Header(name.clone()),
                        };
                        (capture.variable.clone(), from)
                    })
                    .collect(),
                expect_status: step.expect_status,
            }
        })
        .collect();
    render(description, &top, &scenario.vars, &BTreeMap::new(), &steps)
}

/// Where a step takes a variable from its answer.
#[derive(Debug, Clone)]
pub(crate) enum CaptureFrom {
    /// A JSON pointer into the body.
    Json(String),
    /// A response header.
    Header(String),
}

/// One step as the scenario file writes it.
#[derive(Debug, Clone)]
pub(crate) struct StepText {
    pub name: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// `json = …` or `body = …`.
    pub body: Option<String>,
    pub captures: Vec<(String, CaptureFrom)>,
    pub expect_status: Option<u16>,
}

/// The credentials a conversion found, by name; the same value keeps its
/// name. Every importer classifies through this one type.
#[derive(Default)]
pub(crate) struct Credentials {
    pub(crate) values: BTreeMap<String, String>,
}

impl Credentials {
    /// A header's value, its credential hidden when the header carries one
    /// that is written out (not a `{{variable}}`).
    pub(crate) fn in_header(&mut self, name: &str, value: String) -> String {
        let lower = name.to_ascii_lowercase();
        let credential = value
            .split_once(' ')
            .map_or(value.as_str(), |(_, rest)| rest);
        if CREDENTIAL_HEADERS.contains(&lower.as_str())
            && !value.contains("{{")
            && !credential.trim().is_empty()
        {
            self.hide_in(&lower.replace('-', "_"), &value)
        } else {
            value
        }
    }

    /// A query string or form body with the values of credential-like keys
    /// (`token=`, `api_key=`, `password=`) hidden.
    pub(crate) fn in_pairs(&mut self, text: &str) -> String {
        pairs(text, &mut |key, value| {
            let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            if !value.is_empty() && !value.contains("{{") && is_secret_field(&key) {
                self.hide(&key, value)
            } else {
                value.to_owned()
            }
        })
    }

    /// A JSON body with the strings of credential-like fields hidden.
    pub(crate) fn in_json(&mut self, json: &mut serde_json::Value) {
        fill_json(json, &mut |key, text| {
            if !text.is_empty() && !text.contains("{{") && is_secret_field(key) {
                self.hide(key, text)
            } else {
                text.to_owned()
            }
        });
    }

    /// What was classified, one line each, saying where the value is kept.
    pub(crate) fn notes(&self) -> Vec<String> {
        self.values
            .keys()
            .map(|name| {
                format!(
                    "`{name}` is a credential: its value is kept in the scenario's [secrets] alone; \
                     snapshots, reports and logs show [secret:{name}]"
                )
            })
            .collect()
    }

    /// `{{name}}` for `value`, a secret named after `field`.
    fn hide(&mut self, field: &str, value: &str) -> String {
        let base = snake(field);
        if let Some((name, _)) = self.values.iter().find(|(_, known)| *known == value) {
            return format!("{{{{{name}}}}}");
        }
        let mut name = base.clone();
        let mut n = 1;
        while self.values.contains_key(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.values.insert(name.clone(), value.to_owned());
        format!("{{{{{name}}}}}")
    }

    /// A header's credential: `Bearer abc` keeps its scheme, hides the rest.
    fn hide_in(&mut self, field: &str, value: &str) -> String {
        match value.split_once(' ') {
            Some((scheme, credential))
                if ["bearer", "basic", "token"].contains(&scheme.to_ascii_lowercase().as_str()) =>
            {
                format!("{scheme} {}", self.hide(field, credential))
            }
            _ => self.hide(field, value),
        }
    }
}

pub(crate) fn is_secret_field(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

/// A body that is a JSON object or array (a bare string or number is text).
fn json_object_or_array(bytes: &[u8]) -> Option<serde_json::Value> {
    match serde_json::from_slice(bytes).ok()? {
        value @ (serde_json::Value::Object(_) | serde_json::Value::Array(_)) => Some(value),
        _ => None,
    }
}

/// Calls `fill(key, text)` on every string of `value`, in place.
fn fill_json(value: &mut serde_json::Value, fill: &mut dyn FnMut(&str, &str) -> String) {
    fn walk(value: &mut serde_json::Value, key: &str, fill: &mut dyn FnMut(&str, &str) -> String) {
        match value {
            serde_json::Value::String(text) => *text = fill(key, text),
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, key, fill);
                }
            }
            serde_json::Value::Object(fields) => {
                for (key, item) in fields.iter_mut() {
                    walk(item, key, fill);
                }
            }
            _ => {}
        }
    }
    walk(value, "", fill);
}

/// Values of an answer worth capturing: strings of 8 characters or more
/// (tokens, uuids), and ids (`id`, `…_id` fields, numbers or strings).
fn returnable(
    value: &serde_json::Value,
    pointer: String,
    key: &str,
    found: &mut Vec<(String, String, String)>,
) {
    let is_id = key == "id" || key.ends_with("_id") || key.ends_with("Id");
    match value {
        serde_json::Value::String(text) if text.len() >= 8 || (is_id && !text.is_empty()) => {
            found.push((pointer, key.to_owned(), text.clone()));
        }
        serde_json::Value::Number(number) if is_id => {
            found.push((pointer, key.to_owned(), number.to_string()));
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                returnable(item, format!("{pointer}/{index}"), key, found);
            }
        }
        serde_json::Value::Object(fields) => {
            for (name, item) in fields {
                let escaped = name.replace('~', "~0").replace('/', "~1");
                returnable(item, format!("{pointer}/{escaped}"), name, found);
            }
        }
        _ => {}
    }
}

/// A variable named after the answer's field, unique among those taken.
fn variable_name(key: &str, taken: &[Returned]) -> String {
    let base = match snake(key) {
        empty if empty.is_empty() => "value".to_owned(),
        name => name,
    };
    let mut name = base.clone();
    let mut n = 1;
    while taken.iter().any(|returned| returned.variable == name) {
        n += 1;
        name = format!("{base}_{n}");
    }
    name
}

/// `accessToken`, `access-token` → `access_token`.
pub(crate) fn snake(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// A TOML basic string: JSON's escapes are TOML's.
pub(crate) fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        toml_string(key)
    }
}

/// A JSON value as a TOML inline value; `None` when it holds a null.
pub(crate) fn toml_inline(value: &serde_json::Value) -> Option<String> {
    Some(match value {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(flag) => flag.to_string(),
        serde_json::Value::Number(number) => number.to_string(),
        serde_json::Value::String(text) => toml_string(text),
        serde_json::Value::Array(items) => {
            let items: Option<Vec<String>> = items.iter().map(toml_inline).collect();
            format!("[{}]", items?.join(", "))
        }
        serde_json::Value::Object(fields) => {
            if fields.is_empty() {
                return Some("{}".to_owned());
            }
            let fields: Option<Vec<String>> = fields
                .iter()
                .map(|(key, item)| Some(format!("{} = {}", toml_key(key), toml_inline(item)?)))
                .collect();
            format!("{{ {} }}", fields?.join(", "))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
        answer: &str,
    ) -> Recorded {
        Recorded {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body: (!body.is_empty()).then(|| body.as_bytes().to_vec()),
            status: 200,
            response_body: answer.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_token_and_an_id_an_answer_gave_are_captured_and_sent_back() {
        let written = scenario(
            "a session",
            &[
                exchange(
                    "POST",
                    "/login",
                    &[
                        ("Content-Type", "application/json"),
                        ("User-Agent", "curl/8"),
                        ("Host", "x"),
                    ],
                    r#"{"user": "carol", "password": "hunter22"}"#,
                    r#"{"token": "eyJhbGciOi.abc.def", "user": {"id": 42}}"#,
                ),
                exchange(
                    "GET",
                    "/users/42?full=1",
                    &[
                        ("Authorization", "Bearer eyJhbGciOi.abc.def"),
                        ("X-Trace", "t1"),
                    ],
                    "",
                    "{}",
                ),
                exchange(
                    "POST",
                    "/login",
                    &[],
                    r#"{"user": "dave", "password": "other-one"}"#,
                    "{}",
                ),
            ],
        );
        let text = &written.text;
        assert!(
            text.contains("password = \"hunter22\"\npassword_2 = \"other-one\""),
            "{text}"
        );
        assert!(
            text.contains("json = { password = \"{{password}}\", user = \"carol\" }")
                && text.contains(
                    "capture = { id = { json = \"/user/id\" }, token = { json = \"/token\" } }"
                )
                && text.contains("path = \"/users/{{id}}?full=1\"")
                && text.contains(
                    "headers = { Authorization = \"Bearer {{token}}\", X-Trace = \"t1\" }"
                )
                && text.contains("name = \"POST /login (2)\""),
            "{text}"
        );
        assert!(
            !text.contains("User-Agent")
                && !text.contains("Host")
                && !text.contains("Content-Type"),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.toml");
        std::fs::write(&path, text).unwrap();
        let loaded = crate::input::scenario::load(&path).unwrap();
        assert_eq!(loaded.steps.len(), 3);
    }

    /// The text of a scenario file without its `[secrets]` table.
    fn outside_secrets(text: &str) -> String {
        let start = text.find("[secrets]").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        format!("{}{}", &text[..start], &text[end..])
    }

    #[test]
    fn credentials_in_a_query_a_form_and_a_header_are_classified_and_listed() {
        let written = scenario(
            "credentials",
            &[
                exchange(
                    "POST",
                    "/token",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    "username=alice&password=s3cr%40t-pw&grant_type=password",
                    "{}",
                ),
                exchange(
                    "GET",
                    "/items?access_token=tok-123456&api_key=key-654321&page=2",
                    &[("Authorization", "Bearer literal-bearer-99")],
                    "",
                    "{}",
                ),
            ],
        );
        let text = &written.text;
        let rest = outside_secrets(text);
        for value in [
            "s3cr%40t-pw",
            "tok-123456",
            "key-654321",
            "literal-bearer-99",
        ] {
            assert!(text.contains(value), "kept under [secrets]: {text}");
            assert!(!rest.contains(value), "{value} outside [secrets]:\n{text}");
        }
        assert!(
            rest.contains("body = \"username=alice&password={{password}}&grant_type=password\"")
                && rest.contains(
                    "path = \"/items?access_token={{access_token}}&api_key={{api_key}}&page=2\""
                )
                && rest.contains("Authorization = \"Bearer {{authorization}}\""),
            "{text}"
        );
        for name in ["password", "access_token", "api_key", "authorization"] {
            assert!(
                written.notes.iter().any(|note| note
                    .starts_with(&format!("`{name}` is a credential"))
                    && note.contains("[secrets] alone")),
                "{name}: {:?}",
                written.notes
            );
        }
    }

    /// curl against a FastAPI service: a form posted without its fields
    /// first (a 422 whose body names `username` and `password`), then with
    /// them and no content type. Nothing is captured from the error, no field
    /// name becomes a variable, and the password is a secret in the body too.
    #[test]
    fn an_error_answer_gives_nothing_to_send_back_and_a_bare_form_is_a_form() {
        let mut refused = exchange(
            "POST",
            "/token",
            &[],
            "",
            r#"{"detail": [{"loc": ["body", "username"], "msg": "field required"}, {"loc": ["body", "password"], "msg": "field required"}]}"#,
        );
        refused.status = 422;
        let written = scenario(
            "a login",
            &[
                refused,
                exchange(
                    "POST",
                    "/token",
                    &[],
                    "username=alice&password=s3cret-pass",
                    r#"{"access_token": "abc.def.ghi", "token_type": "bearer"}"#,
                ),
            ],
        );
        assert!(!written.text.contains("capture"), "{}", written.text);
        assert!(!written.text.contains("{{loc"), "{}", written.text);
        assert!(
            written
                .text
                .contains("body = \"username=alice&password={{password}}\""),
            "{}",
            written.text
        );
    }

    #[test]
    fn a_path_the_service_does_not_serve_is_left_out_and_said() {
        let mut stray = exchange("GET", "/favicon.ico", &[], "", "<h1>Not Found</h1>");
        stray.status = 404;
        let mut missing = exchange("GET", "/users/9", &[], "", r#"{"error": "no such user"}"#);
        missing.status = 404;
        let written = scenario("strays", &[stray, missing]);
        assert!(!written.text.contains("favicon"), "{}", written.text);
        assert!(
            written.text.contains("path = \"/users/9\""),
            "an API's own 404 is kept"
        );
        assert_eq!(
            written.notes,
            ["`GET /favicon.ico` is left out: the service answered 404 (a path it does not serve)"]
        );
    }

    #[test]
    fn a_credential_no_answer_gave_is_a_secret_and_binary_bodies_are_said() {
        let mut upload = exchange(
            "PUT",
            "/blob",
            &[("Authorization", "Basic dXNlcjpwYXNz")],
            "",
            "",
        );
        upload.body = Some(vec![0xff, 0xfe, 0x00]);
        let written = scenario("uploads", &[upload]);
        assert!(
            written.text.contains("authorization = \"dXNlcjpwYXNz\""),
            "{}",
            written.text
        );
        assert!(
            written
                .text
                .contains("Authorization = \"Basic {{authorization}}\""),
            "{}",
            written.text
        );
        assert!(
            written
                .notes
                .iter()
                .any(|note| note.contains("binary (3 bytes) and is left out")),
            "{:?}",
            written.notes
        );
    }
}
