//! Scenario files: an ordered list of HTTP steps run against one fresh service.
//!
//! A scenario is a TOML file in the scenarios folder; its file stem is its
//! name. Loading validates everything a replay relies on (methods, paths,
//! that every `{{variable}}` is defined before use) so that a replay never
//! fails on the file itself. See `scenarios/README.md` for the format.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::input::filter;
use crate::input::source::{InputError, Source};

/// Largest scenario file read; anything bigger is a mistake, not a scenario.
const MAX_FILE_BYTES: u64 = 1 << 20;

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    pub description: String,
    pub vars: BTreeMap<String, String>,
    /// Values that must never be written anywhere; replaced by `[secret:name]`.
    pub secrets: BTreeMap<String, String>,
    /// The scenario whose secrets these are, when the file names one.
    pub secrets_from: Option<String>,
    /// Run once under each of these profiles (in every cell) instead of the cell's own.
    pub profiles: Vec<String>,
    /// 1-based line of `profiles`, for errors about unknown profiles.
    pub profiles_line: usize,
    /// Whether the service starts is part of the result: a refusal to start is
    /// recorded (exit status, first error line) rather than failing the run.
    pub record_startup: bool,
    /// A change here is a security finding, not only a behaviour change.
    pub security: bool,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based line of the step's table in the file, for pointing at it.
    pub line: usize,
    pub name: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
    pub captures: Vec<Capture>,
    pub expect_status: Option<u16>,
}

#[derive(Debug, Clone)]
pub enum Body {
    Json(serde_json::Value),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Capture {
    pub variable: String,
    pub from: CaptureSource,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum CaptureSource {
    /// A JSON pointer into the response body, e.g. `/access_token`.
    Json(String),
    /// A response header, by name.
    Header(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawScenario {
    description: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// The secrets of another scenario of the folder, by name: an explored
    /// scenario sends what the scenario it was explored from sends, and that
    /// file stays the one place its secrets are written.
    secrets_from: Option<Spanned<String>>,
    profiles: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    record_startup: bool,
    #[serde(default)]
    security: bool,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStep {
    name: String,
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    json: Option<serde_json::Value>,
    body: Option<String>,
    #[serde(default)]
    capture: BTreeMap<String, CaptureSource>,
    #[serde(default)]
    expect: RawExpect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawExpect {
    status: Option<u16>,
}

/// Loads every `*.toml` scenario in `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, InputError> {
    const WRITE: &str = "write one, or record one with `upgrade-check record NAME`";
    if !dir.exists() {
        return Err(InputError::in_folder(
            dir,
            format!("no folder of scenarios yet: {WRITE}"),
        ));
    }
    let paths = toml_files(dir)?;
    if paths.is_empty() {
        return Err(InputError::in_folder(
            dir,
            format!("no scenario files (*.toml) in this folder: {WRITE}"),
        ));
    }
    let mut scenarios: Vec<Scenario> = paths
        .iter()
        .map(|path| load(path))
        .collect::<Result<_, _>>()?;
    // What `explore` found and wrote: ordinary scenarios once accepted,
    // taking their secrets from the scenarios they were explored from.
    let explored = dir.join(EXPLORED);
    if explored.is_dir() {
        for path in toml_files(&explored)? {
            let found = load_with(&path, &scenarios)?;
            scenarios.push(found);
        }
    }
    scenarios.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = scenarios
        .windows(2)
        .find(|pair| pair[0].name == pair[1].name)
    {
        return Err(InputError::in_file(
            &pair[1].path,
            format!(
                "another scenario is named `{}` too ({}): a scenario's name is its file's stem",
                pair[1].name,
                pair[0].path.display()
            ),
        ));
    }
    Ok(scenarios)
}

/// The folder inside the scenarios folder that exploration's findings are
/// written to, as scenarios of their own.
pub const EXPLORED: &str = "explored";

/// The `*.toml` files directly in `dir`, sorted.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let mut paths: Vec<PathBuf> = fs_err::read_dir(dir)
        .map_err(|err| InputError::in_file(dir, err.to_string()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Loads and validates one scenario file.
pub fn load(path: &Path) -> Result<Scenario, InputError> {
    load_with(path, &[])
}

/// [`load`], with the scenarios `secrets-from` may name.
fn load_with(path: &Path, others: &[Scenario]) -> Result<Scenario, InputError> {
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .filter(|stem| {
            !stem.is_empty()
                && stem
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .ok_or_else(|| {
            InputError::in_file(
                path,
                "a scenario's file name may hold only letters, digits, `-` and `_`",
            )
        })?
        .to_owned();
    if fs_err::metadata(path).map(|meta| meta.len()).unwrap_or(0) > MAX_FILE_BYTES {
        return Err(InputError::in_file(path, "the file is larger than 1 MiB"));
    }
    let source = Source::read(path)?;
    let raw: RawScenario = source.parse()?;
    if raw.steps.is_empty() && !raw.record_startup {
        return Err(source.error_at(
            None,
            "steps",
            "a scenario needs at least one step (or record-startup = true)",
        ));
    }
    let mut secrets = raw.secrets;
    if let Some(from) = &raw.secrets_from {
        let error = |message: &str| source.error_at(Some(from.span()), "secrets-from", message);
        if !secrets.is_empty() {
            return Err(error("give [secrets] or secrets-from, not both"));
        }
        let Some(other) = others.iter().find(|other| other.name == *from.get_ref()) else {
            return Err(error(&format!(
                "no scenario `{}` in the scenarios folder to take the secrets of",
                from.get_ref()
            )));
        };
        secrets = other.secrets.clone();
    }
    let mut defined: BTreeSet<String> = raw.vars.keys().chain(secrets.keys()).cloned().collect();
    if let Some(twice) = raw.vars.keys().find(|name| secrets.contains_key(*name)) {
        return Err(source.error_at(
            None,
            &format!("vars.{twice}"),
            "defined both as a var and as a secret",
        ));
    }
    let mut steps = Vec::new();
    let mut names = BTreeSet::new();
    for (index, spanned) in raw.steps.into_iter().enumerate() {
        let span = spanned.span();
        let line = source.line_of(span.start);
        let step = spanned.into_inner();
        let key = |field: &str| format!("steps[{index}].{field}");
        let error =
            |field: &str, message: &str| source.error_at(Some(span.clone()), &key(field), message);
        if !names.insert(step.name.clone()) {
            return Err(error(
                "name",
                &format!("another step is already named `{}`", step.name),
            ));
        }
        let method = step.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(error(
                "method",
                &format!("`{}` is not one of {}", step.method, METHODS.join(", ")),
            ));
        }
        if !step.path.starts_with('/') {
            return Err(error("path", "the path must start with `/`"));
        }
        let body = match (step.json, step.body) {
            (Some(_), Some(_)) => return Err(error("json", "give `json` or `body`, not both")),
            (Some(json), None) => Some(Body::Json(json)),
            (None, Some(text)) => Some(Body::Text(text)),
            (None, None) => None,
        };
        let mut texts: Vec<(&str, &str)> = vec![("path", &step.path)];
        texts.extend(
            step.headers
                .values()
                .map(|value| ("headers", value.as_str())),
        );
        let mut body_strings = Vec::new();
        if let Some(body) = &body {
            collect_strings(body, &mut body_strings);
        }
        texts.extend(body_strings.iter().map(|text| ("json", text.as_str())));
        for (field, text) in texts {
            for (variable, filter) in references(text) {
                if let Some(filter) = filter.filter(|name| !filter::FILTERS.contains(name)) {
                    return Err(error(
                        field,
                        &format!(
                            "`{filter}` in `{{{{{variable} | {filter}}}}}` is not a filter; the filters are {}",
                            filter::FILTERS.join(", ")
                        ),
                    ));
                }
                if !defined.contains(variable) {
                    return Err(error(
                        field,
                        &format!(
                            "`{{{{{variable}}}}}` is not a var, a secret, or captured by an earlier step"
                        ),
                    ));
                }
            }
        }
        let captures = step
            .capture
            .into_iter()
            .map(|(variable, from)| Capture { variable, from })
            .collect::<Vec<_>>();
        for capture in &captures {
            if let CaptureSource::Json(pointer) = &capture.from
                && !(pointer.is_empty() || pointer.starts_with('/'))
            {
                return Err(error(
                    &format!("capture.{}", capture.variable),
                    "a JSON pointer is empty or starts with `/`, e.g. \"/access_token\"",
                ));
            }
            defined.insert(capture.variable.clone());
        }
        steps.push(Step {
            line,
            name: step.name,
            method,
            path: step.path,
            headers: step.headers.into_iter().collect(),
            body,
            captures,
            expect_status: step.expect.status,
        });
    }
    Ok(Scenario {
        name,
        path: path.to_owned(),
        description: raw.description,
        vars: raw.vars,
        secrets,
        secrets_from: raw.secrets_from.map(Spanned::into_inner),
        profiles_line: raw
            .profiles
            .as_ref()
            .map_or(1, |profiles| source.line_of(profiles.span().start)),
        profiles: raw.profiles.map(Spanned::into_inner).unwrap_or_default(),

        record_startup: raw.record_startup,
        security: raw.security,
        steps,
    })
}

fn collect_strings(body: &Body, out: &mut Vec<String>) {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(text) => out.push(text.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            serde_json::Value::Object(map) => map.values().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    match body {
        Body::Json(value) => walk(value, out),
        Body::Text(text) => out.push(text.clone()),
    }
}

/// Names of the `{{variable}}` references in `text`.
pub fn variables(text: &str) -> Vec<String> {
    references(text)
        .into_iter()
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Each `{{variable}}` or `{{variable | filter}}` reference in `text`.
fn references(text: &str) -> Vec<(&str, Option<&str>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        found.push(reference(&rest[open + 2..open + close]));
        rest = &rest[open + close + 2..];
    }
    found
}

/// `name` or `name | filter`, trimmed.
fn reference(inside: &str) -> (&str, Option<&str>) {
    match inside.split_once('|') {
        Some((name, filter)) => (name.trim(), Some(filter.trim())),
        None => (inside.trim(), None),
    }
}

/// `text` with every `{{variable}}` replaced by its value, through its
/// filter when it names one.
pub fn interpolate(text: &str, values: &BTreeMap<String, String>) -> String {
    interpolate_signing(text, values, &[])
}

/// [`interpolate`], a filter that changes a token signing it again with
/// whichever of `keys` signs the original (see `filter`).
pub fn interpolate_signing(
    text: &str,
    values: &BTreeMap<String, String>,
    keys: &[String],
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let (name, filter) = reference(&rest[open + 2..open + close]);
        let filled = values.get(name).and_then(|value| match filter {
            Some(filter) => filter::apply(filter, value, keys),
            None => Some(value.clone()),
        });
        match filled {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Scenario, InputError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    const GOOD: &str = r#"
description = "log in and use the token"

[secrets]
password = "hunter2"

[[steps]]
name = "login"
method = "post"
path = "/login"
json = { password = "{{password}}" }
capture = { token = { json = "/token" } }
expect = { status = 200 }

[[steps]]
name = "me"
method = "GET"
path = "/me"
headers = { Authorization = "Bearer {{ token }}" }
"#;

    #[test]
    fn a_good_scenario_loads_with_lines() {
        let scenario = load_text(GOOD).unwrap();
        assert_eq!(scenario.name, "example");
        assert_eq!(scenario.steps.len(), 2);
        assert_eq!(scenario.steps[0].method, "POST");
        assert_eq!(scenario.steps[0].line, 7);
        assert_eq!(scenario.steps[1].line, 15);
        assert_eq!(scenario.steps[0].expect_status, Some(200));
    }

    #[test]
    fn a_variable_used_before_its_capture_is_an_error() {
        let text = GOOD.replace("/me\"", "/me/{{later}}\"");
        let err = load_text(&text).unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (15, "steps[1].path"), "{err}");
        assert!(err.message.contains("{{later}}"), "{err}");
    }

    #[test]
    fn unknown_keys_name_the_step() {
        let text = GOOD.replace(
            "expect = { status = 200 }",
            "expect = { status = 200, body = \"x\" }",
        );
        let err = load_text(&text).unwrap_err();
        assert_eq!(err.line, 13, "{err}");
        assert!(err.key.starts_with("steps[0].expect"), "{err}");
    }

    #[test]
    fn interpolation_replaces_known_names_only() {
        let values = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        assert_eq!(interpolate("x{{a}}y{{ a }}z{{b}}", &values), "x1y1z{{b}}");
    }

    #[test]
    fn an_explored_scenario_takes_the_secrets_of_the_one_it_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("login.toml"), GOOD).unwrap();
        std::fs::create_dir(dir.path().join(EXPLORED)).unwrap();
        let explored = dir
            .path()
            .join(EXPLORED)
            .join("login-1-password-73-bytes.toml");
        let text = "description = \"explored\"\nsecrets-from = \"login\"\n\n\
                    [[steps]]\nname = \"login\"\nmethod = \"POST\"\npath = \"/login\"\n\
                    json = { password = \"{{password}}\", pad = \"a\" }\n";
        std::fs::write(&explored, text).unwrap();
        let loaded = load_dir(dir.path()).unwrap();
        let names: Vec<&str> = loaded.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["login", "login-1-password-73-bytes"]);
        assert_eq!(loaded[1].secrets["password"], "hunter2");
        assert_eq!(loaded[1].secrets_from.as_deref(), Some("login"));

        // Named after nothing in the folder: the file, its line and the key.
        std::fs::write(&explored, text.replace("\"login\"\n\n", "\"logon\"\n\n")).unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("login-1-password-73-bytes.toml:2")
                && err.contains("secrets-from")
                && err.contains("no scenario `logon`"),
            "{err}"
        );
        // Secrets of its own as well: which one holds?
        let both = text.replacen("[[steps]]", "[secrets]\npassword = \"x\"\n\n[[steps]]", 1);
        std::fs::write(&explored, both).unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
        // Two scenarios of one name are one too many.
        std::fs::write(&explored, text).unwrap();
        std::fs::write(dir.path().join(EXPLORED).join("login.toml"), text).unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another scenario is named `login`"), "{err}");
    }

    #[test]
    fn a_filter_is_applied_as_the_value_is_filled_and_an_unknown_one_is_refused() {
        let values = BTreeMap::from([("token".to_owned(), "a.b.c".to_owned())]);
        assert_eq!(
            interpolate("Bearer {{ token | jwt-padded }}", &values),
            "Bearer a.b===.c"
        );
        let err = load_text(&GOOD.replace("{{ token }}", "{{ token | lower }}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("steps[1].headers")
                && err.contains("`lower`")
                && err.contains("jwt-padded"),
            "{err}"
        );
    }
}
