//! Postman collections (format v2.1, and v2.0 which it extends) into
//! scenario files: one per top-level folder, or one for the collection's
//! own requests. `{{variables}}` stay variables, with the collection's (and
//! an environment file's) values as `[vars]`, or `[secrets]` where the name
//! or the variable's type says so. The capture pattern of test scripts
//! (`pm.environment.set("token", jsonData.access_token)` after
//! `var jsonData = pm.response.json()`, or `pm.response.json().…` inline,
//! and `pm.response.headers.get("…")`) becomes a `capture`; every script
//! line it cannot translate is listed by item name, never dropped silently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::source::{InputError, Source};
use super::traffic::{self, CaptureFrom, StepText};

/// One scenario the collection becomes.
#[derive(Debug, Clone)]
pub(crate) struct FromCollection {
    /// The scenario's name: the folder's (or the collection's), as a file stem.
    pub name: String,
    pub text: String,
    /// What was not translated, each naming its item.
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
struct Collection {
    info: Info,
    #[serde(default)]
    item: Vec<Item>,
    #[serde(default)]
    variable: Vec<Variable>,
}

#[derive(Deserialize)]
struct Info {
    name: String,
    #[serde(default)]
    schema: String,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    name: String,
    #[serde(default)]
    item: Option<Vec<Item>>,
    #[serde(default)]
    request: Option<RequestSpec>,
    #[serde(default)]
    event: Vec<Event>,
}

/// A request is an object, or a bare URL for a GET.
#[derive(Deserialize)]
#[serde(untagged)]
enum RequestSpec {
    Url(String),
    Full(Request),
}

#[derive(Deserialize)]
struct Request {
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    header: Vec<Header>,
    #[serde(default)]
    body: Option<Body>,
    url: Url,
}

fn get() -> String {
    "GET".to_owned()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Url {
    Raw(String),
    Parts { raw: String },
}

#[derive(Deserialize)]
struct Header {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    disabled: bool,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    raw: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    listen: String,
    #[serde(default)]
    script: Option<Script>,
}

#[derive(Deserialize)]
struct Script {
    #[serde(default)]
    exec: Exec,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Exec {
    Lines(Vec<String>),
    Text(String),
    #[default]
    None,
}

#[derive(Deserialize)]
struct Variable {
    key: String,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct Environment {
    #[serde(default)]
    values: Vec<Variable>,
}

/// Reads the collection at `path` (and the environment file `environment`,
/// whose values win) into scenarios.
pub(crate) fn read(
    path: &Path,
    environment: Option<&Path>,
) -> Result<Vec<FromCollection>, InputError> {
    let collection: Collection = parse_json(path, "a Postman collection")?;
    if !collection.info.schema.contains("collection/v2") {
        return Err(InputError::in_file(
            path,
            format!(
                "`info.schema` is `{}`: only collections in format v2.1 (or v2.0) are read; export the collection as v2.1",
                collection.info.schema
            ),
        ));
    }
    let mut values: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let mut declare = |variables: Vec<Variable>| {
        for variable in variables.into_iter().filter(|v| v.enabled != Some(false)) {
            let value = match variable.value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            let secret = variable.kind.as_deref() == Some("secret")
                || traffic::is_secret_field(&variable.key);
            values.insert(variable.key, (value, secret));
        }
    };
    declare(collection.variable);
    if let Some(environment) = environment {
        let environment: Environment = parse_json(environment, "a Postman environment")?;
        declare(environment.values);
    }
    // Folders at the top each become a scenario; requests outside any, one more.
    let mut groups: Vec<(String, Vec<&Item>)> = Vec::new();
    let mut loose = Vec::new();
    for item in &collection.item {
        match &item.item {
            Some(children) => {
                let mut requests = Vec::new();
                flatten(children, &mut requests);
                groups.push((item.name.clone(), requests));
            }
            None => loose.push(item),
        }
    }
    if !loose.is_empty() {
        groups.insert(0, (collection.info.name.clone(), loose));
    }
    let made: Vec<Made> = groups
        .into_iter()
        .filter(|(_, requests)| !requests.is_empty())
        .map(|(name, requests)| scenario(&collection.info.name, &name, &requests, &values))
        .collect();
    // Each scenario runs on a fresh service and database: a variable another
    // folder sets is empty here, and the import says where it comes from.
    let setters: Vec<(String, BTreeMap<String, String>)> = made
        .iter()
        .map(|made| (made.group.clone(), made.captured.clone()))
        .collect();
    Ok(made
        .into_iter()
        .map(|mut made| {
            for name in &made.unset {
                let elsewhere = setters
                    .iter()
                    .filter(|(group, _)| *group != made.group)
                    .find_map(|(group, captured)| Some((group, captured.get(name)?)));
                if let Some((group, step)) = elsewhere {
                    made.scenario.notes.push(format!(
                        "`{{{{{name}}}}}` is set by folder `{group}` (step `{step}`), not in `{}`: each scenario starts on a fresh service, so it is empty here; copy the steps that set it to the top of this scenario",
                        made.group
                    ));
                }
            }
            made.scenario
        })
        .collect())
}

/// One folder's scenario, with what it captures (variable → step) and the
/// variables it uses that nothing gives a value.
struct Made {
    group: String,
    scenario: FromCollection,
    captured: BTreeMap<String, String>,
    unset: Vec<String>,
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, InputError> {
    let source = Source::read(path)?;
    serde_json::from_str(&source.text).map_err(|err| InputError {
        path: path.to_owned(),
        line: err.line(),
        column: err.column(),
        key: String::new(),
        message: format!("not {what}: {err}"),
    })
}

fn flatten<'a>(items: &'a [Item], into: &mut Vec<&'a Item>) {
    for item in items {
        match &item.item {
            Some(children) => flatten(children, into),
            None => into.push(item),
        }
    }
}

/// `{{name}}` in text.
static VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}").expect("valid regex"));

fn scenario(
    collection: &str,
    group: &str,
    items: &[&Item],
    values: &BTreeMap<String, (String, bool)>,
) -> Made {
    let mut notes = Vec::new();
    let mut steps = Vec::new();
    let mut captured: BTreeMap<String, String> = BTreeMap::new();
    let mut unset = Vec::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    // Credentials written out in the requests themselves.
    let mut literal = traffic::Credentials::default();
    for item in items {
        let said = |what: &str| format!("item `{}`: {what}", item.name);
        let request = match &item.request {
            Some(RequestSpec::Full(request)) => request,
            Some(RequestSpec::Url(url)) => {
                steps.push(step(item, "GET", url, Vec::new(), None, values));
                continue;
            }
            None => {
                notes.push(said("has no request; left out"));
                continue;
            }
        };
        let raw = match &request.url {
            Url::Raw(raw) | Url::Parts { raw } => raw.clone(),
        };
        let headers: Vec<(String, String)> = request
            .header
            .iter()
            .filter(|header| !header.disabled)
            .filter(|header| {
                let lower = header.key.to_ascii_lowercase();
                !traffic::DROPPED_HEADERS.contains(&lower.as_str())
            })
            .map(|header| {
                let value = literal.in_header(&header.key, header.value.clone());
                (header.key.clone(), value)
            })
            .collect();
        let body = match &request.body {
            None => None,
            Some(body) if body.mode == "raw" => body.raw.as_deref().and_then(|raw| {
                let json = serde_json::from_str::<serde_json::Value>(raw)
                    .ok()
                    .filter(|value| value.is_object() || value.is_array())
                    .and_then(|mut value| {
                        literal.in_json(&mut value);
                        traffic::toml_inline(&value)
                    });
                match (raw.trim().is_empty(), json) {
                    (true, _) => None,
                    (false, Some(json)) => Some(format!("json = {json}")),
                    (false, None) => Some(format!("body = {}", traffic::toml_string(raw))),
                }
            }),
            Some(body) => {
                notes.push(said(&format!(
                    "its `{}` body is not translated (raw bodies are); left out",
                    body.mode
                )));
                None
            }
        };
        // JSON bodies name their content type themselves.
        let headers = if body
            .as_deref()
            .is_some_and(|body| body.starts_with("json = "))
        {
            headers
                .into_iter()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
                .collect()
        } else {
            headers
        };
        let mut made = step(item, &request.method, &raw, headers, body, values);
        if let Some((path, query)) = made.path.split_once('?') {
            made.path = format!("{path}?{}", literal.in_pairs(query));
        }
        for event in &item.event {
            let lines = match event.script.as_ref().map(|script| &script.exec) {
                Some(Exec::Lines(lines)) => lines.clone(),
                Some(Exec::Text(text)) => text.lines().map(str::to_owned).collect(),
                _ => Vec::new(),
            };
            if event.listen == "test" {
                let (captures, untranslated) = captures_in(&lines);
                for (variable, _) in &captures {
                    captured
                        .entry(variable.clone())
                        .or_insert_with(|| item.name.clone());
                }
                made.captures.extend(captures);
                // A capture lost is said line by line; assertions, once.
                let (lost, checks): (Vec<&String>, Vec<&String>) = untranslated
                    .iter()
                    .partition(|line| line.contains("is not captured)"));
                for line in lost {
                    notes.push(said(&format!("test-script line not translated: {line}")));
                }
                if let Some(first) = checks.first() {
                    notes.push(said(&format!(
                        "{} test-script line(s) not translated (the snapshot checks the answer instead), first: {first}",
                        checks.len()
                    )));
                }
            } else if lines.iter().any(|line| !line.trim().is_empty()) {
                notes.push(said(&format!(
                    "its `{}` script is not translated ({} lines)",
                    event.listen,
                    lines.len()
                )));
            }
        }
        for text in std::iter::once(made.path.as_str())
            .chain(made.headers.iter().map(|(_, value)| value.as_str()))
            .chain(made.body.as_deref())
        {
            for found in VARIABLE.captures_iter(text) {
                used.insert(found[1].to_owned());
            }
        }
        steps.push(made);
    }
    let mut vars = BTreeMap::new();
    notes.extend(literal.notes());
    let mut secrets = literal.values;
    for name in used.iter().filter(|name| !captured.contains_key(*name)) {
        if secrets.contains_key(name) {
            continue;
        }
        match values.get(name) {
            Some((value, true)) => {
                secrets.insert(name.clone(), value.clone());
            }
            Some((value, false)) => {
                vars.insert(name.clone(), value.clone());
            }
            None => {
                notes.push(format!(
                    "`{{{{{name}}}}}` has no value in the collection or the environment: it is empty under [vars]; give it one"
                ));
                vars.insert(name.clone(), String::new());
                unset.push(name.clone());
            }
        }
    }
    let text = traffic::render(
        &format!("imported from the Postman collection `{collection}`, `{group}`"),
        &[],
        &vars,
        &secrets,
        &steps,
    );
    let name = traffic::snake(group).replace('_', "-");
    Made {
        group: group.to_owned(),
        scenario: FromCollection { name, text, notes },
        captured,
        unset,
    }
}

/// A step for `item`: the path is the URL less its base (`{{baseUrl}}`, or
/// a scheme and host), keeping the path the base variable's value carries.
fn step(
    item: &Item,
    method: &str,
    url: &str,
    headers: Vec<(String, String)>,
    body: Option<String>,
    values: &BTreeMap<String, (String, bool)>,
) -> StepText {
    let path = strip_base(url, |name| {
        values.get(name).map(|(value, _)| value.as_str())
    });
    StepText {
        name: if item.name.is_empty() {
            format!("{method} {path}")
        } else {
            item.name.clone()
        },
        method: method.to_ascii_uppercase(),
        path,
        headers,
        body,
        captures: Vec::new(),
        expect_status: None,
    }
}

/// `{{baseUrl}}/api/x`, `http://localhost:5000/api/x` → `/api/x`; and
/// `{{APIURL}}/users` → `/api/users` when `value_of` says `APIURL` is
/// `http://localhost:3000/api`: the service is asked where the base points.
fn strip_base<'a>(url: &str, value_of: impl Fn(&str) -> Option<&'a str>) -> String {
    let after_host = |url: &'a str| -> &'a str {
        match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
            None => url.find('/').map_or("", |at| &url[at..]),
        }
    };
    let (base, rest) = if let Some(rest) = url.strip_prefix("{{") {
        match rest.split_once("}}") {
            Some((name, rest)) => {
                let base = value_of(name.trim()).map_or("", |value| {
                    after_host(value).split(['?', '#']).next().unwrap_or("")
                });
                (base.trim_end_matches('/'), rest)
            }
            None => ("", url),
        }
    } else if let Some((_, rest)) = url.split_once("://") {
        ("", rest.find('/').map_or("", |at| &rest[at..]))
    } else {
        ("", url.find('/').map_or("", |at| &url[at..]))
    };
    match rest.starts_with('/') {
        true => format!("{base}{rest}"),
        false => format!("{base}/{rest}"),
    }
}

/// The captures a test script sets, and the lines it does not translate.
fn captures_in(lines: &[String]) -> (Vec<(String, CaptureFrom)>, Vec<String>) {
    static BODY_NAME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:(?:var|let|const)\s+)?(\w+)\s*=\s*(?:pm\.response\.json\(\)|JSON\.parse\(\s*responseBody\s*\))\s*;?$")
            .expect("valid regex")
    });
    // `var user = responseJSON.user || {};`: a name for a part of the body.
    static ALIAS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:(?:var|let|const)\s+)?(\w+)\s*=\s*([\w.\[\]'\x22]+?)\s*(?:\|\|\s*(?:\{\s*\}|\[\s*\]|null|''|\x22\x22))?\s*;?$")
            .expect("valid regex")
    });
    // A `.set(` the lines above could not read: said by name, never only counted.
    static ANY_SET: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?:\.set|setEnvironmentVariable|setGlobalVariable)\(\s*["']([\w.-]+)["']"#)
            .expect("valid regex")
    });
    static SET: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^(?:pm\.(?:environment|collectionVariables|globals|variables)\.set|postman\.setEnvironmentVariable)\(\s*["']([\w.-]+)["']\s*,\s*(.+?)\s*\)\s*;?$"#)
            .expect("valid regex")
    });
    static HEADER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^pm\.response\.headers\.get\(\s*["']([\w-]+)["']\s*\)$"#)
            .expect("valid regex")
    });
    // Names for the body or a part of it, with the pointer they stand for.
    let mut body_names: Vec<(String, String)> = Vec::new();
    let mut captures = Vec::new();
    let mut untranslated = Vec::new();
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") || matches!(line, "{" | "}" | "});" | "})") {
            continue;
        }
        if let Some(found) = BODY_NAME.captures(line) {
            body_names.push((found[1].to_owned(), String::new()));
            continue;
        }
        if let Some(found) = ALIAS.captures(line)
            && let Some(pointer) = pointer_in_body(&found[2], &body_names)
        {
            body_names.push((found[1].to_owned(), pointer));
            continue;
        }
        // A set inside a one-line block: `if (ok) { pm.globals.set(…); }`.
        let line = line
            .trim_start_matches(|c: char| c == '}' || c.is_whitespace())
            .trim_end_matches(|c: char| c == '}' || c.is_whitespace());
        let Some(found) = SET.captures(line) else {
            if let Some(set) = ANY_SET.captures(line) {
                untranslated.push(format!("`{line}` (so `{}` is not captured)", &set[1]));
            } else {
                untranslated.push(format!("`{line}`"));
            }
            continue;
        };
        let (variable, expression) = (found[1].to_owned(), found[2].trim());
        if let Some(header) = HEADER.captures(expression) {
            captures.push((variable, CaptureFrom::Header(header[1].to_owned())));
            continue;
        }
        match pointer_in_body(expression, &body_names) {
            Some(pointer) if !pointer.is_empty() => {
                captures.push((variable, CaptureFrom::Json(pointer)));
            }
            _ => untranslated.push(format!("`{line}` (so `{variable}` is not captured)")),
        }
    }
    (captures, untranslated)
}

/// The JSON pointer `expression` reads from the response body
/// (`pm.response.json().user.token`, or through a name given to the body or
/// a part of it), if it reads one.
fn pointer_in_body(expression: &str, body_names: &[(String, String)]) -> Option<String> {
    if let Some(path) = expression.strip_prefix("pm.response.json()") {
        return pointer_of(path).or_else(|| path.is_empty().then(String::new));
    }
    body_names.iter().rev().find_map(|(name, prefix)| {
        let path = expression.strip_prefix(name.as_str())?;
        if path.is_empty() {
            return Some(prefix.clone());
        }
        // `user` must not match `username`: what follows is an accessor.
        if !path.starts_with(['.', '[']) {
            return None;
        }
        Some(format!("{prefix}{}", pointer_of(path)?))
    })
}

/// `.user.token`, `["access_token"]`, `.items[0].id` → a JSON pointer.
fn pointer_of(path: &str) -> Option<String> {
    static PART: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^(?:\.(\w+)|\[\s*["']([^"']+)["']\s*\]|\[(\d+)\])"#).expect("valid regex")
    });
    let mut rest = path.trim();
    let mut pointer = String::new();
    while !rest.is_empty() {
        let found = PART.captures(rest)?;
        let part = found
            .get(1)
            .or_else(|| found.get(2))
            .or_else(|| found.get(3))?
            .as_str();
        pointer.push('/');
        pointer.push_str(&part.replace('~', "~0").replace('/', "~1"));
        rest = &rest[found[0].len()..];
    }
    (!pointer.is_empty()).then_some(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_written_out_in_a_collection_become_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.postman_collection.json");
        let collection = serde_json::json!({
            "info": {"name": "api", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
            "item": [{
                "name": "Auth",
                "item": [{
                    "name": "Login",
                    "request": {
                        "method": "POST",
                        "header": [
                            {"key": "Content-Type", "value": "application/json"},
                            {"key": "Authorization", "value": "Bearer literal.jwt.value"}
                        ],
                        "body": {"mode": "raw", "raw": "{\"user\": {\"email\": \"a@b.c\", \"password\": \"pw-literal-1\"}}"},
                        "url": {"raw": "{{APIURL}}/users/login?api_key=key-literal-2"}
                    }
                }]
            }]
        });
        std::fs::write(&path, collection.to_string()).unwrap();
        let made = read(&path, None).unwrap();
        let text = &made[0].text;
        let start = text.find("[secrets]").expect("a [secrets] table");
        let end = start + text[start..].find("\n\n").unwrap();
        let rest = format!("{}{}", &text[..start], &text[end..]);
        for value in ["literal.jwt.value", "pw-literal-1", "key-literal-2"] {
            assert!(text[start..end].contains(value), "{text}");
            assert!(!rest.contains(value), "{value} outside [secrets]:\n{text}");
        }
        for name in ["authorization", "password", "api_key"] {
            assert!(
                made[0]
                    .notes
                    .iter()
                    .any(|note| note.starts_with(&format!("`{name}` is a credential"))),
                "{name}: {:?}",
                made[0].notes
            );
        }
    }

    /// The captures of a test script's `lines`, each as `name from`, and the
    /// lines not translated.
    fn captured(lines: &[&str]) -> (Vec<String>, Vec<String>) {
        let lines: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
        let (captures, untranslated) = captures_in(&lines);
        let rendered = captures
            .iter()
            .map(|(name, from)| format!("{name} {from:?}"))
            .collect();
        (rendered, untranslated)
    }

    #[test]
    fn script_captures_become_captures_and_the_rest_is_listed() {
        let (rendered, untranslated) = captured(&[
            "var jsonData = pm.response.json();",
            "pm.environment.set(\"token\", jsonData.access_token);",
            "pm.collectionVariables.set('user_id', pm.response.json().user[\"id\"]);",
            "pm.environment.set(\"request\", pm.response.headers.get(\"X-Request-Id\"));",
            "pm.test(\"status is 200\", function () {",
            "    pm.response.to.have.status(200);",
            "});",
        ]);
        assert_eq!(
            rendered,
            [
                "token Json(\"/access_token\")",
                "user_id Json(\"/user/id\")",
                "request Header(\"X-Request-Id\")"
            ]
        );
        assert_eq!(untranslated.len(), 2, "{untranslated:?}");
        let none = |_: &str| None;
        assert_eq!(strip_base("{{baseUrl}}/api/auth/me", none), "/api/auth/me");
        assert_eq!(strip_base("http://localhost:5000/a?b=1", none), "/a?b=1");
    }

    #[test]
    fn a_base_variable_keeps_the_path_its_value_carries() {
        let api = |name: &str| (name == "APIURL").then_some("http://localhost:3000/api/");
        assert_eq!(
            strip_base("{{APIURL}}/users/login", api),
            "/api/users/login"
        );
        assert_eq!(strip_base("{{ APIURL }}/tags?x=1", api), "/api/tags?x=1");
        let bare = |_: &str| Some("http://localhost:3000");
        assert_eq!(strip_base("{{APIURL}}/users", bare), "/users");
    }

    #[test]
    fn an_alias_of_a_part_of_the_body_and_the_globals_are_captured() {
        // As the RealWorld (Conduit) collection writes its test scripts.
        let (rendered, untranslated) = captured(&[
            "var responseJSON = JSON.parse(responseBody);",
            "tests['Response contains \"user\" property'] = responseJSON.hasOwnProperty('user');",
            "var user = responseJSON.user || {};",
            "if(tests['User has \"token\" property']){",
            "    pm.globals.set('token', user.token);",
            "}",
            "var username = user.username;",
            "pm.environment.set('slug', responseJSON.article.slug);",
            "pm.globals.set('when', new Date().toISOString());",
        ]);
        assert_eq!(
            rendered,
            [
                "token Json(\"/user/token\")",
                "slug Json(\"/article/slug\")"
            ]
        );
        assert!(
            untranslated
                .iter()
                .any(|line| line.contains("new Date()")
                    && line.contains("so `when` is not captured")),
            "{untranslated:?}"
        );
    }
}
