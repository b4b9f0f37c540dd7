//! Exploration's variants: each step of a recorded scenario with one thing
//! changed, the steps before it kept as recorded (their captures included),
//! so that a variant reaches the state the scenario reached (register, log
//! in, then use the token) before it sends what no scenario asks for.
//!
//! Pure and deterministic for a seed: the same scenarios, seed and budget
//! give the same variants, in the same order, on every machine.

use serde_json::Value;

use std::collections::BTreeMap;

use crate::input::filter;
use crate::input::openapi::{Bounds, Schema};
use crate::input::scenario::{Body, Scenario, Step};

/// String lengths around the limits libraries enforce (bcrypt's 72 bytes,
/// a `VARCHAR(255)`), empty, one, and a page; most telling first: just past
/// a limit breaks more upgrades than at it.
const LENGTHS: &[usize] = &[73, 256, 0, 4096, 72, 255, 71, 1];

/// The byte boundaries a two-byte character is made to straddle.
const STRADDLED: &[usize] = &[72, 256];

/// Numbers at the edges of the types services parse them into.
const NUMBERS: &[&str] = &["0", "-1", "2147483648", "9007199254740993", "1.5"];

/// One thing changed in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// A JSON string field replaced by `length` bytes; `straddling`: the
    /// last character is two bytes wide and crosses the `length` boundary.
    Length {
        field: String,
        length: usize,
        straddling: bool,
    },
    /// A JSON field's value replaced by another type's.
    Type { field: String, to: &'static str },
    /// A JSON number field at an edge, or the number sent as a string.
    Number { field: String, value: String },
    /// A JSON string field in another Unicode form or with padding.
    Text { field: String, form: &'static str },
    /// A JSON field left out.
    Removed { field: String },
    /// A field the recorded request did not have.
    Added { field: String },
    /// A field sent twice, the second time empty: parsers keep the first
    /// or the last.
    Repeated { field: String },
    /// A query parameter repeated, empty or left out.
    Query {
        parameter: String,
        change: &'static str,
    },
    /// A value just past what the service's OpenAPI document says the
    /// field accepts (a length, a bound, a format, an enum).
    Schema { field: String, rule: String },
    /// The `Authorization` header changed.
    Auth { change: &'static str },
    /// The body sent with another content type, or (`""`) with none:
    /// frameworks differ on which they parse as JSON, and change it.
    ContentType { to: &'static str },
}

impl Mutation {
    /// How a person reads it, e.g. `password: 72 bytes`.
    pub fn describe(&self) -> String {
        match self {
            Mutation::Length {
                field,
                length,
                straddling: false,
            } => format!("{field}: {length} bytes"),
            Mutation::Length { field, length, .. } => {
                format!("{field}: a two-byte character across byte {length}")
            }
            Mutation::Type { field, to } => format!("{field}: {to} instead"),
            Mutation::Number { field, value } => format!("{field}: {value}"),
            Mutation::Text { field, form } => format!("{field}: {form}"),
            Mutation::Removed { field } => format!("{field} left out"),
            Mutation::Added { field } => format!("an unexpected field {field}"),
            Mutation::Repeated { field } => format!("{field} sent twice, the second empty"),
            Mutation::Query { parameter, change } => {
                format!("query parameter {parameter} {change}")
            }
            Mutation::Schema { field, rule } => format!("{field}: {rule}"),
            Mutation::Auth { change } => format!("Authorization: {change}"),
            Mutation::ContentType { to: "" } => "sent without a Content-Type".to_owned(),
            Mutation::ContentType { to } => format!("sent as {to}"),
        }
    }

    /// The JSON field or query parameter changed, or `""` for the request
    /// as a whole.
    pub fn field(&self) -> &str {
        match self {
            Mutation::Length { field, .. }
            | Mutation::Type { field, .. }
            | Mutation::Number { field, .. }
            | Mutation::Text { field, .. }
            | Mutation::Removed { field }
            | Mutation::Added { field }
            | Mutation::Repeated { field }
            | Mutation::Schema { field, .. } => field,
            Mutation::Query { parameter, .. } => parameter,
            Mutation::Auth { .. } | Mutation::ContentType { .. } => "",
        }
    }

    /// The kind of change, the same for every length of one field.
    pub fn kind(&self) -> &'static str {
        match self {
            Mutation::Length { .. } => "length",
            Mutation::Type { .. } => "type",
            Mutation::Number { .. } => "number",
            Mutation::Text { .. } => "text",
            Mutation::Removed { .. } => "removed",
            Mutation::Added { .. } => "added",
            Mutation::Repeated { .. } => "repeated",
            Mutation::Query { .. } => "query",
            Mutation::Schema { .. } => "schema",
            Mutation::Auth { .. } => "auth",
            Mutation::ContentType { .. } => "content-type",
        }
    }

    /// Which mutations a small budget keeps first: lengths and missing
    /// fields break the most upgrades; the rest follow.
    fn rank(&self) -> u8 {
        match self {
            Mutation::Length { .. } | Mutation::Auth { .. } | Mutation::Schema { .. } => 0,
            Mutation::Removed { .. }
            | Mutation::Type { .. }
            | Mutation::Number { .. }
            | Mutation::Query { .. } => 1,
            Mutation::Text { .. }
            | Mutation::Added { .. }
            | Mutation::Repeated { .. }
            | Mutation::ContentType { .. } => 2,
        }
    }
}

/// A scenario cut after its changed step, which is its last.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The recorded scenario it comes from.
    pub from: String,
    /// The changed step's index in `scenario`: its last.
    pub step: usize,
    pub mutation: Mutation,
    pub scenario: Scenario,
    /// The changed step as it was recorded (expecting and capturing
    /// nothing, as the changed one does).
    recorded: Step,
    /// Its place among the changes of its kind to the same field (most
    /// telling first): a budget goes round the fields before it goes deep.
    level: usize,
}

impl Variant {
    /// Requests it sends: the steps before the changed one, and that one.
    pub fn requests(&self) -> usize {
        self.step + 1
    }

    /// The same steps, the last one as recorded: a difference it shows too
    /// is the recorded scenario's, not the variant's.
    pub fn as_recorded(&self) -> Variant {
        let mut control = self.clone();
        if let Some(last) = control.scenario.steps.last_mut() {
            *last = self.recorded.clone();
        }
        control
    }

    /// The same change with the earlier step `index` left out: `None` when
    /// it is the changed step or after it, or a later step sends a value
    /// it captures.
    pub fn without_step(&self, index: usize) -> Option<Variant> {
        if index >= self.step {
            return None;
        }
        let steps = &self.scenario.steps;
        let captured: Vec<&str> = steps[index]
            .captures
            .iter()
            .map(|capture| capture.variable.as_str())
            .collect();
        let needed = steps[index + 1..].iter().any(|step| {
            sent_texts(step)
                .iter()
                .flat_map(|text| crate::input::scenario::variables(text))
                .any(|variable| captured.contains(&variable.as_str()))
        });
        if needed {
            return None;
        }
        let mut smaller = self.clone();
        smaller.scenario.steps.remove(index);
        smaller.step -= 1;
        Some(smaller)
    }

    /// A scenario name for it, from the recorded scenario, the step and
    /// the change: `register-1-password-73-bytes`.
    pub fn name(&self) -> String {
        let mut slug = String::new();
        for c in self.mutation.describe().chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        format!(
            "{}-{}-{}",
            self.from,
            self.step + 1,
            slug.trim_end_matches('-')
        )
    }

    /// What it sends, its variables filled: two variants that send the
    /// same requests are one (every scenario that starts by registering
    /// the same user has the same first step).
    fn sends(&self) -> Vec<String> {
        let scenario = &self.scenario;
        let values: std::collections::BTreeMap<String, String> = scenario
            .vars
            .iter()
            .chain(&scenario.secrets)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let fill = |text: &str| crate::input::scenario::interpolate(text, &values);
        let mut sent = vec![scenario.profiles.join(",")];
        for step in &scenario.steps {
            let body = match &step.body {
                Some(Body::Json(json)) => format!("json {}", fill(&json.to_string())),
                Some(Body::Text(text)) => format!("text {}", fill(text)),
                None => String::new(),
            };
            let headers: Vec<String> = step
                .headers
                .iter()
                .map(|(name, value)| format!("{}: {}", name.to_ascii_lowercase(), fill(value)))
                .collect();
            sent.push(format!(
                "{} {}\n{}\n{body}",
                step.method,
                fill(&step.path),
                headers.join("\n")
            ));
        }
        sent
    }
}

/// The variants of `scenarios`' steps named in `steps` (every step when it
/// names none), at most `budget` requests in all: every candidate when they fit, else round the fields and steps, the most
/// telling change of each first, `seed` ordering those equally telling; in
/// the order they were found either way.
pub fn variants(
    scenarios: &[Scenario],
    schema: &Schema,
    seed: u64,
    budget: usize,
    steps: &[String],
) -> Vec<Variant> {
    let mut seen = std::collections::BTreeSet::new();
    let candidates: Vec<Variant> = scenarios
        .iter()
        .flat_map(|scenario| of_scenario(scenario, schema))
        .filter(|candidate| {
            steps.is_empty() || steps.contains(&candidate.scenario.steps[candidate.step].name)
        })
        .filter(|candidate| seen.insert(candidate.sends()))
        .collect();
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    fastrand::Rng::with_seed(seed).shuffle(&mut order);
    order.sort_by_key(|index| {
        let candidate = &candidates[*index];
        (candidate.level, candidate.mutation.rank())
    });
    let mut spent = 0;
    let mut kept = vec![false; candidates.len()];
    for index in order {
        let requests = candidates[index].requests();
        if spent + requests <= budget {
            spent += requests;
            kept[index] = true;
        }
    }
    candidates
        .into_iter()
        .zip(kept)
        .filter_map(|(candidate, kept)| kept.then_some(candidate))
        .collect()
}

/// Every text a step sends that may name a variable: path, header values,
/// body.
fn sent_texts(step: &Step) -> Vec<String> {
    let mut texts = vec![step.path.clone()];
    texts.extend(step.headers.iter().map(|(_, value)| value.clone()));
    match &step.body {
        Some(Body::Json(json)) => texts.push(json.to_string()),
        Some(Body::Text(text)) => texts.push(text.clone()),
        None => {}
    }
    texts
}

/// Every candidate of one scenario, step by step.
fn of_scenario(scenario: &Scenario, schema: &Schema) -> Vec<Variant> {
    let mut found = Vec::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        let mut seen: Vec<(String, u8, &str)> = Vec::new();
        let bounded = schema.fields(&step.method, &step.path);
        let changes = of_step(step, bounded);
        for (mutation, changed) in &changes {
            // Each bound the service documents is a rule of its own: a small
            // budget tries every one of them before it goes deeper.
            let rule = match mutation {
                Mutation::Schema { rule, .. } => rule.as_str(),
                _ => "",
            };
            let group = (mutation.field().to_owned(), mutation.rank(), rule);
            let level = seen.iter().filter(|known| **known == group).count();
            seen.push(group);
            let mut variant = scenario.clone();
            variant.steps.truncate(index);
            // What the changed step answers is the finding: nothing is
            // expected of it, and nothing after it needs its captures.
            let mut changed = changed.clone();
            changed.captures.clear();
            changed.expect_status = None;
            variant.steps.push(changed);
            let mut recorded = step.clone();
            recorded.captures.clear();
            recorded.expect_status = None;
            found.push(Variant {
                from: scenario.name.clone(),
                step: index,
                mutation: mutation.clone(),
                scenario: variant,
                recorded,
                level,
            });
        }
    }
    found
}

/// Each one-thing change of `step`, with the step it makes.
fn of_step(step: &Step, bounded: Option<&BTreeMap<String, Bounds>>) -> Vec<(Mutation, Step)> {
    let mut found = Vec::new();
    if let Some(Body::Json(body)) = &step.body {
        for (pointer, value) in fields(body, "") {
            let mut changes = of_value(&pointer, value);
            // What the service's own document says the field accepts: the
            // values just past it first.
            if let Some(bounds) = bounded.and_then(|fields| fields.get(&pointer)) {
                changes.splice(0..0, past_bounds(&pointer, bounds));
            }
            for (mutation, replacement) in changes {
                let mut changed_body = body.clone();
                match replacement {
                    Some(new) => *changed_body.pointer_mut(&pointer).expect("a found field") = new,
                    None => remove(&mut changed_body, &pointer),
                }
                found.push((mutation, with_body(step, Body::Json(changed_body))));
            }
        }
        if let Value::Object(object) = body {
            let mut added = object.clone();
            added.insert("unexpected".to_owned(), Value::from("x"));
            let mutation = Mutation::Added {
                field: "/unexpected".to_owned(),
            };
            found.push((mutation, with_body(step, Body::Json(Value::Object(added)))));
            // JSON's values hold a key once: a repeated one is written as text.
            if let Some((name, _)) = object.iter().next() {
                let text = body.to_string();
                let repeated = format!(
                    "{},{}:\"\"}}",
                    &text[..text.len() - 1],
                    Value::from(name.as_str())
                );
                let mut changed = with_body(step, Body::Text(repeated));
                set_header(&mut changed, "Content-Type", Some("application/json"));
                let field = format!("/{}", escape(name));
                found.push((Mutation::Repeated { field }, changed));
            }
        }
        for to in ["text/plain", ""] {
            let mut sent = with_body(step, Body::Text(body.to_string()));
            set_header(
                &mut sent,
                "Content-Type",
                Some(to).filter(|to| !to.is_empty()),
            );
            found.push((Mutation::ContentType { to }, sent));
        }
    }
    found.extend(of_query(step));
    if let Some(value) = header(step, "Authorization") {
        // `Bearer TOKEN`, or a bare token (an API key).
        let (scheme, token) = match value.split_once(' ') {
            Some((scheme, token)) => (format!("{scheme} "), token),
            None => (String::new(), value),
        };
        let changes: [(&'static str, Option<String>); 4] = [
            ("missing", None),
            ("another scheme", Some(format!("Basic {token}"))),
            ("malformed", Some(format!("{scheme}{token}x"))),
            ("an empty token", Some(scheme.clone())),
        ];
        let mut changes = changes.to_vec();
        // A token the service issued earlier in the scenario, in the forms
        // its library may take or refuse, made from it as the step is sent;
        // first: a missing or malformed token is what scenarios already try.
        if let Some(variable) = token
            .strip_prefix("{{")
            .and_then(|rest| rest.strip_suffix("}}"))
            && !variable.contains('|')
        {
            let variable = variable.trim();
            let filtered = |filter: &str| Some(format!("{scheme}{{{{{variable} | {filter}}}}}"));
            changes.insert(0, ("a padded payload", filtered(filter::JWT_PADDED)));
            changes.insert(1, ("expired", filtered(filter::JWT_EXPIRED)));
            changes.insert(2, ("alg: none", filtered(filter::JWT_ALG_NONE)));
        }
        for (change, new) in changes {
            let mut changed = step.clone();
            set_header(&mut changed, "Authorization", new.as_deref());
            found.push((Mutation::Auth { change }, changed));
        }
    }
    found
}

/// The values just past what a field's OpenAPI schema accepts, and at its
/// longest.
fn past_bounds(pointer: &str, bounds: &Bounds) -> Vec<(Mutation, Option<Value>)> {
    let mut found = Vec::new();
    let mut push = |rule: String, value: Value| {
        let mutation = Mutation::Schema {
            field: pointer.to_owned(),
            rule,
        };
        found.push((mutation, Some(value)));
    };
    if let Some(longest) = bounds.max_length {
        push(
            format!("{} bytes, over its maxLength {longest}", longest + 1),
            Value::from("a".repeat(longest + 1)),
        );
        push(
            format!("{longest} bytes, its maxLength"),
            Value::from("a".repeat(longest)),
        );
    }
    if let Some(shortest) = bounds.min_length {
        push(
            format!("{} bytes, under its minLength {shortest}", shortest - 1),
            Value::from("a".repeat(shortest - 1)),
        );
    }
    let number = |value: f64| match value.fract() == 0.0 && value.abs() < 9e15 {
        true => Value::from(value as i64),
        false => serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
    };
    if let Some(maximum) = bounds.maximum {
        push(format!("over its maximum {maximum}"), number(maximum + 1.0));
    }
    if let Some(minimum) = bounds.minimum {
        push(
            format!("under its minimum {minimum}"),
            number(minimum - 1.0),
        );
    }
    if let Some(format) = &bounds.format {
        push(
            format!("not a valid {format}"),
            Value::from(format!("not-a-valid-{format}")),
        );
    }
    if !bounds.one_of.is_empty() {
        push(
            "none of its enum's values".to_owned(),
            Value::from("none-of-them"),
        );
    }
    found
}

/// Each query parameter of the step's path repeated with an empty value,
/// empty, and left out.
fn of_query(step: &Step) -> Vec<(Mutation, Step)> {
    let Some((path, query)) = step.path.split_once('?') else {
        return Vec::new();
    };
    let pairs: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty()).collect();
    let mut found = Vec::new();
    for (index, pair) in pairs.iter().enumerate() {
        let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
        let changes: [(&'static str, Vec<String>); 3] = [
            ("repeated, the second empty", {
                let mut changed: Vec<String> = pairs.iter().map(|p| (*p).to_owned()).collect();
                changed.insert(index + 1, format!("{name}="));
                changed
            }),
            ("empty", {
                let mut changed: Vec<String> = pairs.iter().map(|p| (*p).to_owned()).collect();
                changed[index] = format!("{name}=");
                changed
            }),
            ("left out", {
                let mut changed: Vec<String> = pairs.iter().map(|p| (*p).to_owned()).collect();
                changed.remove(index);
                changed
            }),
        ];
        for (change, pairs) in changes {
            let query = pairs.join("&");
            let changed = Step {
                path: match query.is_empty() {
                    true => path.to_owned(),
                    false => format!("{path}?{query}"),
                },
                ..step.clone()
            };
            let mutation = Mutation::Query {
                parameter: name.to_owned(),
                change,
            };
            found.push((mutation, changed));
        }
    }
    found
}

/// The changes of one JSON value: `None` removes the field.
fn of_value(pointer: &str, value: &Value) -> Vec<(Mutation, Option<Value>)> {
    let field = || pointer.to_owned();
    let mut found = Vec::new();
    match value {
        Value::String(text) => {
            for &length in LENGTHS {
                let mutation = Mutation::Length {
                    field: field(),
                    length,
                    straddling: false,
                };
                found.push((mutation, Some(Value::from("a".repeat(length)))));
            }
            for &length in STRADDLED {
                let mutation = Mutation::Length {
                    field: field(),
                    length,
                    straddling: true,
                };
                let text = format!("{}é", "a".repeat(length - 1));
                found.push((mutation, Some(Value::from(text))));
            }
            // A value that is one `{{variable}}` changes case as it is sent.
            let upper = match text
                .strip_prefix("{{")
                .and_then(|rest| rest.strip_suffix("}}"))
            {
                Some(variable) if !variable.contains('|') => {
                    format!("{{{{{} | {}}}}}", variable.trim(), filter::UPPER)
                }
                _ => text.to_uppercase(),
            };
            let forms: [(&'static str, String); 6] = [
                ("composed é", format!("{text}\u{e9}")),
                ("decomposed é", format!("{text}e\u{301}")),
                ("padded with spaces", format!(" {text} ")),
                ("in upper case", upper),
                // Outside the Basic Multilingual Plane: four bytes in UTF-8,
                // two code units in UTF-16.
                ("with an emoji", format!("{text}\u{1f600}")),
                // A character that takes no width: equal to the eye only.
                ("with a zero-width space", format!("{text}\u{200b}")),
            ];
            for (form, new) in forms {
                found.push((
                    Mutation::Text {
                        field: field(),
                        form,
                    },
                    Some(Value::from(new)),
                ));
            }
        }
        Value::Number(_) => {
            for &number in NUMBERS {
                let parsed: Value = serde_json::from_str(number).expect("a JSON number");
                let mutation = Mutation::Number {
                    field: field(),
                    value: number.to_owned(),
                };
                found.push((mutation, Some(parsed)));
            }
            let mutation = Mutation::Number {
                field: field(),
                value: format!("\"{value}\""),
            };
            found.push((mutation, Some(Value::from(value.to_string()))));
        }
        _ => {}
    }
    let types: [(&'static str, Value); 4] = [
        ("null", Value::Null),
        ("true", Value::Bool(true)),
        ("an array", Value::Array(Vec::new())),
        ("an object", Value::Object(serde_json::Map::new())),
    ];
    for (to, new) in types {
        if kind(value) != kind(&new) {
            found.push((Mutation::Type { field: field(), to }, Some(new)));
        }
    }
    found.push((Mutation::Removed { field: field() }, None));
    found
}

/// Every field under `value` (objects' members and arrays' items, nested),
/// as JSON pointers, parents before children.
fn fields<'v>(value: &'v Value, at: &str) -> Vec<(String, &'v Value)> {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(object) => object
            .iter()
            .map(|(name, child)| (format!("{at}/{}", escape(name)), child))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, child)| (format!("{at}/{index}"), child))
            .collect(),
        _ => Vec::new(),
    };
    let mut found = Vec::new();
    for (pointer, child) in children {
        found.push((pointer.clone(), child));
        found.extend(fields(child, &pointer));
    }
    found
}

/// A member name as a JSON pointer token (RFC 6901).
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn kind(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Takes the field at `pointer` out of its parent.
fn remove(body: &mut Value, pointer: &str) {
    let (parent, last) = pointer
        .rsplit_once('/')
        .expect("a field's pointer has a '/'");
    let last = last.replace("~1", "/").replace("~0", "~");
    match body.pointer_mut(parent) {
        Some(Value::Object(object)) => {
            object.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(index) = last.parse::<usize>() {
                items.remove(index);
            }
        }
        _ => {}
    }
}

fn with_body(step: &Step, body: Body) -> Step {
    Step {
        body: Some(body),
        ..step.clone()
    }
}

fn header<'s>(step: &'s Step, name: &str) -> Option<&'s str> {
    step.headers
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Sets header `name` to `value`, or removes it (`None`).
fn set_header(step: &mut Step, name: &str, value: Option<&str>) {
    step.headers
        .retain(|(known, _)| !known.eq_ignore_ascii_case(name));
    if let Some(value) = value {
        step.headers.push((name.to_owned(), value.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::scenario::load_dir;

    /// The bundled service's recorded scenarios, as a team's would be.
    fn recorded() -> Vec<Scenario> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        load_dir(&dir).unwrap()
    }

    /// Every variant of one bundled scenario, the budget unbounded.
    fn every_variant_of(name: &str) -> Vec<Variant> {
        let scenarios = recorded();
        let scenario = scenarios.iter().find(|s| s.name == name).unwrap();
        variants(
            std::slice::from_ref(scenario),
            &Schema::default(),
            0,
            usize::MAX,
            &[],
        )
    }

    fn step_names(variant: &Variant) -> Vec<&str> {
        let steps = variant.scenario.steps.iter();
        steps.map(|step| step.name.as_str()).collect()
    }

    fn body_of(variant: &Variant) -> &Value {
        match &variant.scenario.steps.last().unwrap().body {
            Some(Body::Json(body)) => body,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_variant_keeps_the_steps_before_its_change_and_ends_with_it() {
        let all = every_variant_of("login");
        let bad_token = all
            .iter()
            .find(|v| v.step == 4 && v.mutation == Mutation::Auth { change: "missing" })
            .unwrap();
        assert_eq!(
            step_names(bad_token),
            [
                "register",
                "good password",
                "wrong password",
                "unknown user",
                "me with the token"
            ]
        );
        // The token is still captured by the step that logs in.
        assert_eq!(bad_token.scenario.steps[1].captures.len(), 1);
        assert!(header(bad_token.scenario.steps.last().unwrap(), "Authorization").is_none());
        assert_eq!(bad_token.requests(), 5);
    }

    #[test]
    fn a_json_body_is_also_sent_as_text_and_without_a_content_type() {
        let all = every_variant_of("register");
        for (to, described, sent_type) in [
            ("text/plain", "sent as text/plain", Some("text/plain")),
            ("", "sent without a Content-Type", None),
        ] {
            let variant = all
                .iter()
                .find(|v| v.mutation == Mutation::ContentType { to })
                .unwrap();
            assert_eq!(variant.mutation.describe(), described);
            let last = variant.scenario.steps.last().unwrap();
            assert_eq!(header(last, "Content-Type"), sent_type);
            let Some(Body::Text(text)) = &last.body else {
                panic!("{:?}", last.body);
            };
            // The recorded JSON, as text: only what says what it is changed.
            let sent: Value = serde_json::from_str(text).unwrap();
            assert_eq!(sent["username"], "{{username}}");
        }
    }

    #[test]
    fn a_password_is_tried_at_bcrypt_s_limit_and_across_it() {
        let all = every_variant_of("register");
        for length in [71, 72, 73] {
            let variant = all
                .iter()
                .find(|v| {
                    v.mutation
                        == Mutation::Length {
                            field: "/password".to_owned(),
                            length,
                            straddling: false,
                        }
                })
                .unwrap();
            assert_eq!(body_of(variant)["password"].as_str().unwrap().len(), length);
            // Everything else as recorded.
            assert_eq!(body_of(variant)["username"], "{{username}}");
        }
        let across = all
            .iter()
            .find(|v| v.mutation.describe() == "/password: a two-byte character across byte 72")
            .unwrap();
        let password = body_of(across)["password"].as_str().unwrap().as_bytes();
        assert_eq!((password.len(), password[71]), (73, 0xc3));
    }

    #[test]
    fn the_budget_counts_requests_and_the_seed_decides_alike_everywhere() {
        let scenarios = recorded();
        let all = variants(&scenarios, &Schema::default(), 7, usize::MAX, &[]);
        let total: usize = all.iter().map(Variant::requests).sum();
        let some = variants(&scenarios, &Schema::default(), 7, 200, &[]);
        let spent: usize = some.iter().map(Variant::requests).sum();
        assert!(spent <= 200 && spent > 150, "{spent} of {total}");
        assert!(some.len() < all.len());
        let again = variants(&scenarios, &Schema::default(), 7, 200, &[]);
        let described = |list: &[Variant]| -> Vec<String> {
            list.iter()
                .map(|v| format!("{} {} {}", v.from, v.step, v.mutation.describe()))
                .collect()
        };
        assert_eq!(described(&some), described(&again));
        assert_ne!(
            described(&some),
            described(&variants(&scenarios, &Schema::default(), 8, 200, &[]))
        );
        // Lengths come before the rarer kinds: whatever the seed, a budget
        // of 200 requests tries a password past bcrypt's 72 bytes.
        for seed in 0..20 {
            let kept = described(&variants(&scenarios, &Schema::default(), seed, 200, &[]));
            assert!(
                kept.iter()
                    .any(|v| v.starts_with("register 0 /password: 73 bytes")),
                "seed {seed}: {kept:?}"
            );
        }
    }

    #[test]
    fn named_steps_alone_are_varied_and_have_the_whole_budget() {
        let scenarios = recorded();
        let named = |steps: &[&str], budget| -> Vec<String> {
            let steps: Vec<String> = steps.iter().map(|step| (*step).to_owned()).collect();
            variants(&scenarios, &Schema::default(), 0, budget, &steps)
                .iter()
                .map(|v| v.scenario.steps[v.step].name.clone())
                .collect()
        };
        let whole = named(&[], usize::MAX);
        let login = named(&["good password"], usize::MAX);
        assert!(!login.is_empty() && login.iter().all(|step| step == "good password"));
        assert_eq!(
            login.len(),
            whole.iter().filter(|step| *step == "good password").count(),
            "every variant of the step, as without the filter"
        );
        // A budget that leaves most of the whole out keeps more of the step.
        let whole_in_budget = named(&[], 60);
        let login_in_budget = named(&["good password"], 60);
        assert!(
            login_in_budget.len()
                > whole_in_budget
                    .iter()
                    .filter(|s| *s == "good password")
                    .count(),
            "{login_in_budget:?} against {whole_in_budget:?}"
        );
        assert!(named(&["no such step"], usize::MAX).is_empty());
    }

    #[test]
    fn removing_types_and_numbers_reach_nested_fields() {
        let step = Step {
            line: 1,
            name: "order".to_owned(),
            method: "POST".to_owned(),
            path: "/orders".to_owned(),
            headers: Vec::new(),
            body: Some(Body::Json(
                serde_json::json!({"item": {"id/x": 3, "tags": ["a"]}, "paid": false}),
            )),
            captures: Vec::new(),
            expect_status: None,
        };
        let changes: Vec<(String, Value)> = of_step(&step, None)
            .into_iter()
            .map(|(mutation, changed)| match changed.body {
                Some(Body::Json(body)) => (mutation.describe(), body),
                Some(Body::Text(_)) => (mutation.describe(), Value::Null),
                None => unreachable!(),
            })
            .collect();
        let find = |described: &str| {
            changes
                .iter()
                .find(|(text, _)| text == described)
                .map(|(_, body)| body.clone())
                .unwrap_or_else(|| panic!("{described}: {changes:?}"))
        };
        assert_eq!(
            find("/item/id~1x: 2147483648")["item"]["id/x"],
            2147483648_i64
        );
        assert_eq!(find("/item/id~1x: \"3\"")["item"]["id/x"], "3");
        assert!(
            find("/item/tags/0 left out")["item"]["tags"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert_eq!(find("/paid: null instead")["paid"], Value::Null);
        assert!(find("/item left out").get("item").is_none());
        assert_eq!(find("an unexpected field /unexpected")["unexpected"], "x");
        // A value is never swapped for its own type.
        assert!(
            !changes
                .iter()
                .any(|(text, _)| text == "/paid: true instead")
        );
    }

    #[test]
    fn every_variant_written_as_a_file_sends_what_it_sent() {
        let dir = tempfile::tempdir().unwrap();
        let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        for entry in std::fs::read_dir(&bundled).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let all = variants(&recorded(), &Schema::default(), 0, usize::MAX, &[]);
        let explored = dir.path().join(crate::input::scenario::EXPLORED);
        std::fs::create_dir(&explored).unwrap();
        for (index, variant) in all.iter().enumerate() {
            let text = crate::input::traffic::render_scenario(&variant.scenario, "a variant");
            std::fs::write(explored.join(format!("v{index}.toml")), text).unwrap();
        }
        let loaded = load_dir(dir.path()).unwrap();
        let mut nulls = 0;
        for (index, variant) in all.iter().enumerate() {
            let name = format!("v{index}");
            let again = loaded.iter().find(|s| s.name == name).unwrap();
            let written = Variant {
                scenario: again.clone(),
                ..variant.clone()
            };
            let holds_null = matches!(
                &variant.scenario.steps.last().unwrap().body,
                Some(Body::Json(json)) if json.to_string().contains("null")
            );
            if holds_null {
                // TOML has no null: the body is written as JSON text.
                nulls += 1;
                let last = again.steps.last().unwrap();
                let Some(Body::Text(text)) = &last.body else {
                    panic!("{:?}", last.body)
                };
                let Some(Body::Json(sent)) = &variant.scenario.steps.last().unwrap().body else {
                    unreachable!()
                };
                assert_eq!(&serde_json::from_str::<Value>(text).unwrap(), sent);
                assert_eq!(header(last, "content-type"), Some("application/json"));
            } else {
                assert_eq!(written.sends(), variant.sends(), "{}", variant.name());
            }
            let (before, after) = (&variant.scenario.steps, &again.steps);
            assert_eq!(before.len(), after.len());
            for (before, after) in before.iter().zip(after) {
                assert_eq!(before.expect_status, after.expect_status);
                assert_eq!(before.captures.len(), after.captures.len());
            }
        }
        assert!(nulls > 0, "a null swap is among the variants");
    }

    #[test]
    fn a_changed_step_expects_and_captures_nothing_and_equal_variants_are_one() {
        let all = every_variant_of("login");
        let good_password = all.iter().find(|v| v.step == 1).unwrap();
        let changed = good_password.scenario.steps.last().unwrap();
        assert!(changed.captures.is_empty() && changed.expect_status.is_none());
        // The step before it keeps its expectation.
        assert_eq!(good_password.scenario.steps[0].expect_status, Some(201));
        // The same scenario twice sends the same variants: each once.
        let scenarios = recorded();
        let login = scenarios.iter().find(|s| s.name == "login").unwrap();
        let twice = variants(
            &[login.clone(), login.clone()],
            &Schema::default(),
            0,
            usize::MAX,
            &[],
        );
        assert_eq!(twice.len(), all.len());
        // Named by scenario, step number and change.
        assert!(all.iter().any(|v| v.name() == "login-2-password-73-bytes"));
        assert!(
            all.iter()
                .any(|v| v.name() == "login-5-authorization-another-scheme")
        );
    }

    #[test]
    fn query_parameters_a_repeated_field_and_case_are_varied() {
        let step = Step {
            line: 1,
            name: "search".to_owned(),
            method: "POST".to_owned(),
            path: "/users?page=2&q={{name}}".to_owned(),
            headers: Vec::new(),
            body: Some(Body::Json(
                serde_json::json!({"role": "admin", "name": "{{name}}"}),
            )),
            captures: Vec::new(),
            expect_status: None,
        };
        let changes: Vec<(String, Step)> = of_step(&step, None)
            .into_iter()
            .map(|(mutation, changed)| (mutation.describe(), changed))
            .collect();
        let find = |described: &str| {
            changes
                .iter()
                .find(|(text, _)| text == described)
                .map(|(_, step)| step.clone())
                .unwrap_or_else(|| panic!("{described}"))
        };
        let path = |described: &str| find(described).path;
        assert_eq!(
            path("query parameter page repeated, the second empty"),
            "/users?page=2&page=&q={{name}}"
        );
        assert_eq!(path("query parameter q empty"), "/users?page=2&q=");
        assert_eq!(path("query parameter page left out"), "/users?q={{name}}");
        // The first field twice, as JSON text: a parser keeps one of them.
        let repeated = find("/name sent twice, the second empty");
        let Some(Body::Text(text)) = &repeated.body else {
            panic!()
        };
        assert_eq!(text, r#"{"name":"{{name}}","role":"admin","name":""}"#);
        assert_eq!(header(&repeated, "content-type"), Some("application/json"));
        // A literal in upper case; a variable through the filter as it is sent.
        let upper = |described: &str| match find(described).body {
            Some(Body::Json(body)) => body,
            other => panic!("{other:?}"),
        };
        assert_eq!(upper("/role: in upper case")["role"], "ADMIN");
        // Unicode beyond two bytes, and a character that takes no width.
        let emoji = upper("/role: with an emoji");
        assert_eq!(emoji["role"].as_str().unwrap().len(), "admin".len() + 4);
        assert_eq!(
            upper("/role: with a zero-width space")["role"],
            "admin\u{200b}"
        );
        assert_eq!(upper("/name: in upper case")["name"], "{{name | upper}}");
    }

    #[test]
    fn an_earlier_step_is_left_out_unless_a_later_one_sends_what_it_captures() {
        let all = every_variant_of("login");
        let padded = all
            .iter()
            .find(|v| {
                v.step == 4
                    && v.mutation
                        == Mutation::Auth {
                            change: "a padded payload",
                        }
            })
            .unwrap();
        // `good password` captures the token `me with the token` sends.
        assert!(padded.without_step(1).is_none());
        assert!(padded.without_step(4).is_none());
        let smaller = padded.without_step(2).unwrap();
        assert_eq!(
            step_names(&smaller),
            [
                "register",
                "good password",
                "unknown user",
                "me with the token"
            ]
        );
        assert_eq!((smaller.step, smaller.requests()), (3, 4));
        assert_eq!(smaller.mutation, padded.mutation);
    }
}
