//! Makes exchanges comparable across runs: volatile values become named placeholders.
//!
//! Built in: secrets → `[secret:name]`, JWTs → `[jwt]`, UUIDs → `[uuid:N]`,
//! timestamps → `[timestamp:FORMAT]` (the format kept, the value masked),
//! JSON `id`/`*_id` values → `[id:N]`, or `[id:N:string]` for a string (the
//! same value gets the same N throughout a scenario). Then the config's own
//! redactions. Response headers not on the keep list are dropped. This module
//! only rewrites values; it never decides whether anything passed.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::exec::replay::Exchange;
use crate::input::config::Redaction;
use crate::sys::redact::{self, Secrets};

/// A JWT, its segments with or without the `=` padding JWTs leave out.
static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"eyJ[A-Za-z0-9_-]*=*\.[A-Za-z0-9_-]+=*\.[A-Za-z0-9_-]*=*").expect("valid regex")
});
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
        .expect("valid regex")
});
static ISO_TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    // ISO 8601, and Python logging's `2026-11-29 05:12:56,900`.
    Regex::new(r"\b\d{4}-\d{2}-\d{2}([T ])\d{2}:\d{2}:\d{2}(?:([.,])(\d+))?(Z|[+-]\d{2}(:?)\d{2})?")
        .expect("valid regex")
});
/// Common Log Format, as access logs write it: `29/Nov/2026 05:12:56` (or `…:05:12:56`).
static LOG_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b\d{2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}[: ]\d{2}:\d{2}:\d{2}",
    )
    .expect("valid regex")
});
static HTTP_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT")
        .expect("valid regex")
});

/// One exchange as it is written into a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalisedExchange {
    pub step: String,
    pub request_line: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    /// `503 Service Unavailable`, or what went wrong instead of an answer.
    pub status_line: String,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
}

/// Normalises the exchanges of one scenario run; numbering is per scenario.
pub struct Normaliser<'a> {
    /// Secrets (in every form) and the run's private paths.
    literals: Secrets,
    redactions: &'a [Redaction],
    keep_headers: &'a [String],
    ids: BTreeMap<String, usize>,
    uuids: BTreeMap<String, usize>,
}

impl<'a> Normaliser<'a> {
    /// `secrets`, and every secret the run registered, become `[secret:name]`;
    /// `paths` (the run's private folders, its base URL) `[name]`.
    pub fn new(
        secrets: &BTreeMap<String, String>,
        paths: &[(&str, String)],
        redactions: &'a [Redaction],
        keep_headers: &'a [String],
    ) -> Self {
        let mut literals = Secrets::new(
            secrets
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        literals.extend(&redact::registered());
        let literals =
            literals.with_literals(paths.iter().map(|(name, value)| (*name, value.as_str())));
        Normaliser {
            literals,
            redactions,
            keep_headers,
            ids: BTreeMap::new(),
            uuids: BTreeMap::new(),
        }
    }

    pub fn exchange(&mut self, exchange: &Exchange) -> NormalisedExchange {
        let request = &exchange.request;
        let request_line = format!("{} {}", request.method, self.text(&request.path));
        let request_headers = request
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), self.text(value)))
            .collect();
        let request_body = request
            .body
            .as_deref()
            .map(|body| self.body(body.as_bytes()));
        let (status_line, response_headers, response_body) = match &exchange.response {
            Ok(response) => {
                let mut headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .filter(|(name, _)| self.keep_headers.contains(name))
                    .map(|(name, value)| (name.clone(), self.text(value)))
                    .collect();
                // Kept headers as a set, by name: an upgrade that only
                // reorders middleware (helmet before cors) changes nothing.
                // A repeated header keeps its own order, which can matter.
                headers.sort_by(|a, b| a.0.cmp(&b.0));
                let body = (!response.body.is_empty()).then(|| {
                    let body = self.body(&response.body);
                    match response.truncated_bytes {
                        0 => body,
                        more => format!("{body}\n[truncated: {more} more bytes not kept]"),
                    }
                });

                (response.status_line(), headers, body)
            }
            Err(error) => (
                format!("no response: {}", self.text(error)),
                Vec::new(),
                None,
            ),
        };
        NormalisedExchange {
            step: exchange.step.clone(),
            request_line,
            request_headers,
            request_body,
            status_line,
            response_headers,
            response_body,
        }
    }

    /// A body: pretty JSON with sorted keys when it parses as JSON, text otherwise.
    /// Bytes that are not UTF-8 are summarised by size and hash, so a change still shows.
    fn body(&mut self, bytes: &[u8]) -> String {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => {
                let value = self.json(None, value);
                serde_json::to_string_pretty(&value).unwrap_or_default()
            }
            Err(_) => match std::str::from_utf8(bytes) {
                Ok(text) => self.text(text),
                // Text cut short inside a character (a truncated body): keep what is whole.
                Err(err) if err.error_len().is_none() => {
                    self.text(&String::from_utf8_lossy(&bytes[..err.valid_up_to()]))
                }
                Err(_) => {
                    use sha2::Digest;
                    let digest = hex::encode(sha2::Sha256::digest(bytes));
                    format!(
                        "[binary body: {} bytes, sha256 {}]",
                        bytes.len(),
                        &digest[..16]
                    )
                }
            },
        }
    }

    pub fn json(&mut self, key: Option<&str>, value: Value) -> Value {
        if let Some(key) = key {
            for redaction in self.redactions {
                if let Redaction::JsonKey {
                    key: redacted,
                    placeholder,
                } = redaction
                    && redacted == key
                {
                    return Value::String(format!("[{placeholder}]"));
                }
            }
            let is_id = key == "id" || key.ends_with("_id");
            if is_id && (value.is_number() || value.is_string()) {
                let (raw, kind) = match &value {
                    Value::String(text) => (text.clone(), ":string"),
                    other => (other.to_string(), ""),
                };
                let next = self.ids.len() + 1;
                let number = *self.ids.entry(raw).or_insert(next);
                // The same id as a number or as a string is another answer.
                return Value::String(format!("[id:{number}{kind}]"));
            }
        }
        match value {
            Value::String(text) => Value::String(self.text(&text)),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|item| self.json(None, item))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(key, item)| {
                        let item = self.json(Some(&key), item);
                        (self.literals(&key), item)
                    })
                    .collect(),
            ),
            // A number can be a secret (a PIN) too: then it becomes its placeholder.
            Value::Number(number) => {
                let text = number.to_string();
                match self.literals(&text) {
                    redacted if redacted != text => Value::String(redacted),
                    _ => Value::Number(number),
                }
            }
            other => other,
        }
    }

    /// Only secrets and private paths replaced: for log tails, which should stay readable.
    pub fn literals(&self, text: &str) -> String {
        self.literals.redact(text).into_owned()
    }

    /// Free text: secrets first, then the built-in patterns, then the config's.
    pub fn text(&mut self, text: &str) -> String {
        let mut text = self.literals(text);
        // A padded token stays told apart: libraries disagree about it.
        text = JWT
            .replace_all(&text, |found: &regex::Captures<'_>| {
                match found[0].contains('=') {
                    true => "[jwt:padded]",
                    false => "[jwt]",
                }
            })
            .into_owned();
        let uuids = &mut self.uuids;
        text = UUID
            .replace_all(&text, |captures: &regex::Captures<'_>| {
                let next = uuids.len() + 1;
                let number = *uuids
                    .entry(captures[0].to_ascii_lowercase())
                    .or_insert(next);
                format!("[uuid:{number}]")
            })
            .into_owned();
        text = ISO_TIMESTAMP
            .replace_all(&text, |found: &regex::Captures<'_>| {
                format!("[timestamp:{}]", iso_shape(found))
            })
            .into_owned();
        text = HTTP_DATE
            .replace_all(&text, "[timestamp:http-date]")
            .into_owned();
        text = LOG_DATE
            .replace_all(&text, "[timestamp:dd/Mon/YYYY hh:mm:ss]")
            .into_owned();
        for redaction in self.redactions {
            if let Redaction::Pattern {
                pattern,
                placeholder,
            } = redaction
            {
                text = pattern
                    .replace_all(&text, format!("[{placeholder}]").as_str())
                    .into_owned();
            }
        }
        text
    }
}

/// The format of an ISO 8601 timestamp without its value, so that a change of
/// format (an offset that goes missing, milliseconds instead of
/// microseconds) is a difference while the time itself stays masked:
/// `2026-11-29T01:13:29.695329+00:00` → `YYYY-MM-DDThh:mm:ss.ffffff±hh:mm`.
fn iso_shape(found: &regex::Captures<'_>) -> String {
    let fraction = match (found.get(2), found.get(3)) {
        (Some(mark), Some(digits)) => format!("{}{}", mark.as_str(), "f".repeat(digits.len())),
        _ => String::new(),
    };
    let zone = match found.get(4).map(|zone| zone.as_str()) {
        None => "",
        Some("Z") => "Z",
        Some(_) if found.get(5).is_some_and(|colon| !colon.is_empty()) => "±hh:mm",
        Some(_) => "±hhmm",
    };
    format!("YYYY-MM-DD{}hh:mm:ss{fraction}{zone}", &found[1])
}

/// What varies between two starts of the same service in one log line: IP
/// addresses and ports, pids, object addresses, temp paths. Applied to warning
/// lines before a cell's are compared with the baseline's, so that
/// `ResourceWarning: unclosed <socket … laddr=('127.0.0.1', 33707)>` is the
/// same warning in every cell.
pub fn log_line(line: &str) -> String {
    static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
        [
            (r"0x[0-9a-fA-F]{4,}", "0x[address]"),
            (
                r#"(?:/tmp|/var/tmp|/private/var/folders)/[^\s'",)>\]]+"#,
                "[temp]",
            ),
            (r"\b\d{1,3}(?:\.\d{1,3}){3}\b", "[ip]"),
            (
                r"(\[ip\]|localhost|\[::1?\]|::1?)(:|', |\]:)\d{1,5}\b",
                "${1}${2}[port]",
            ),
            (r"(?i)\b(port)([ =:]+)\d{2,5}\b", "${1}${2}[port]"),
            (r"(?i)\b(pid)([ =:]+)\d+\b", "${1}${2}[pid]"),
            (r"\[\d{2,7}\]", "[[pid]]"),
        ]
        .into_iter()
        .map(|(pattern, with)| (Regex::new(pattern).expect("valid regex"), with))
        .collect()
    });
    let mut line = line.to_owned();
    for (pattern, with) in RULES.iter() {
        line = pattern.replace_all(&line, *with).into_owned();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normaliser<'a>(redactions: &'a [Redaction], keep: &'a [String]) -> Normaliser<'a> {
        let secrets = BTreeMap::from([("password".to_owned(), "hunter2".to_owned())]);
        Normaliser::new(&secrets, &[], redactions, keep)
    }

    #[test]
    fn kept_headers_are_a_set_but_a_repeated_one_keeps_its_order() {
        let keep = [
            "set-cookie".to_owned(),
            "x-frame-options".to_owned(),
            "vary".to_owned(),
        ];
        let answer = |headers: &[(&str, &str)]| Exchange {
            step: "page".to_owned(),
            request: crate::exec::replay::Request {
                method: "GET".to_owned(),
                path: "/".to_owned(),
                headers: Vec::new(),
                body: None,
            },
            response: Ok(crate::exec::replay::Response {
                status: 200,
                headers: headers
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect(),
                body: Vec::new(),
                truncated_bytes: 0,
            }),
        };
        // helmet before cors, then cors before helmet: the same answer.
        let helmet_first = answer(&[
            ("x-frame-options", "DENY"),
            ("vary", "Origin"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]);
        let cors_first = answer(&[
            ("vary", "Origin"),
            ("set-cookie", "a=1"),
            ("x-frame-options", "DENY"),
            ("set-cookie", "b=2"),
        ]);
        let mut n = normaliser(&[], &keep);
        let one = n.exchange(&helmet_first).response_headers;
        let other = n.exchange(&cors_first).response_headers;
        assert_eq!(one, other);
        // Two cookies set in the other order are another answer.
        let swapped = answer(&[
            ("set-cookie", "b=2"),
            ("set-cookie", "a=1"),
            ("vary", "Origin"),
            ("x-frame-options", "DENY"),
        ]);
        assert_ne!(n.exchange(&swapped).response_headers, one);
    }

    #[test]
    fn builtin_placeholders() {
        let mut n = normaliser(&[], &[]);
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let out = n.text(&format!(
            "Bearer {token} at 2026-11-29T01:13:29.695329+00:00, Sun, 29 Nov 2026 01:13:29 GMT, pw hunter2"
        ));
        assert_eq!(
            out,
            "Bearer [jwt] at [timestamp:YYYY-MM-DDThh:mm:ss.ffffff±hh:mm], [timestamp:http-date], pw [secret:password]"
        );
        assert_eq!(
            n.text("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0=.c2lnbmF0dXJl"),
            "Bearer [jwt:padded]"
        );
        // Log lines: Python logging's milliseconds, an access log's date.
        assert_eq!(
            n.text("[2026-11-29 05:12:56,900] ERROR in app; 127.0.0.1 - - [29/Nov/2026 05:12:56] \"GET /\""),
            "[[timestamp:YYYY-MM-DD hh:mm:ss,fff]] ERROR in app; 127.0.0.1 - - [[timestamp:dd/Mon/YYYY hh:mm:ss]] \"GET /\""
        );
    }

    #[test]
    fn a_timestamp_keeps_its_format_and_loses_its_value() {
        let mut n = normaliser(&[], &[]);
        let with_offset = n.text("2026-11-29T01:13:29.695329+00:00");
        let naive = n.text("2026-11-30T07:00:01.000001");
        assert_eq!(with_offset, "[timestamp:YYYY-MM-DDThh:mm:ss.ffffff±hh:mm]");
        assert_eq!(naive, "[timestamp:YYYY-MM-DDThh:mm:ss.ffffff]");
        assert_ne!(
            with_offset, naive,
            "an offset that goes missing is a change"
        );
        assert_eq!(
            n.text("2025-01-02T03:04:05Z"),
            n.text("2026-11-29T23:59:59Z"),
            "values are masked"
        );
    }

    #[test]
    fn an_id_that_turns_from_a_number_into_a_string_is_a_change() {
        let mut n = normaliser(&[], &[]);
        assert_eq!(n.json(None, json!({"id": 7})), json!({"id": "[id:1]"}));
        let mut n = normaliser(&[], &[]);
        assert_eq!(
            n.json(None, json!({"id": "7"})),
            json!({"id": "[id:1:string]"})
        );
    }

    #[test]
    fn ids_are_numbered_by_first_appearance_and_stay_stable() {
        let mut n = normaliser(&[], &[]);
        let first = n.json(None, json!({"id": 41, "user": {"id": 42, "owner_id": 41}}));
        assert_eq!(
            first,
            json!({"id": "[id:1]", "user": {"id": "[id:2]", "owner_id": "[id:1]"}})
        );
        assert_eq!(n.json(None, json!({"id": 42})), json!({"id": "[id:2]"}));
    }

    #[test]
    fn uuids_are_numbered() {
        let mut n = normaliser(&[], &[]);
        let a = "123e4567-e89b-12d3-a456-426614174000";
        let b = "00000000-0000-4000-8000-000000000000";
        assert_eq!(
            n.text(&format!("{a} {b} {a}")),
            "[uuid:1] [uuid:2] [uuid:1]"
        );
    }

    #[test]
    fn config_redactions_apply_after_builtins() {
        let redactions = vec![
            Redaction::JsonKey {
                key: "session".to_owned(),
                placeholder: "session".to_owned(),
            },
            Redaction::Pattern {
                pattern: Regex::new(r"req-[0-9a-f]+").unwrap(),
                placeholder: "request-id".to_owned(),
            },
        ];
        let mut n = normaliser(&redactions, &[]);
        let out = n.json(None, json!({"session": {"deep": 1}, "trace": "req-00ff"}));
        assert_eq!(
            out,
            json!({"session": "[session]", "trace": "[request-id]"})
        );
    }

    #[test]
    fn secrets_inside_longer_secrets_do_not_leak() {
        let secrets = BTreeMap::from([
            ("short".to_owned(), "abc".to_owned()),
            ("long".to_owned(), "abcdef".to_owned()),
        ]);
        assert_eq!(
            Normaliser::new(&secrets, &[], &[], &[]).literals("abcdef abc"),
            "[secret:long] [secret:short]"
        );
    }

    #[test]
    fn private_paths_become_names() {
        let secrets = BTreeMap::new();
        let paths = [("service_dir", "/tmp/run-1/cell/service".to_owned())];
        let mut n = Normaliser::new(&secrets, &paths, &[], &[]);
        assert_eq!(
            n.text("File \"/tmp/run-1/cell/service/app/config.py\", line 3"),
            "File \"[service_dir]/app/config.py\", line 3"
        );
    }

    #[test]
    fn log_lines_lose_what_varies_between_starts() {
        assert_eq!(
            log_line(
                "ResourceWarning: unclosed <socket.socket fd=5, laddr=('127.0.0.1', 33707), raddr=('127.0.0.1', 45112)> at 0x7f3a2c1b9e40"
            ),
            "ResourceWarning: unclosed <socket.socket fd=5, laddr=('[ip]', [port]), raddr=('[ip]', [port])> at 0x[address]"
        );
        assert_eq!(
            log_line("[2941] WARNING worker pid 2941 on port 8123 wrote /tmp/.tmpAbC12/x.db"),
            "[[pid]] WARNING worker pid [pid] on port [port] wrote [temp]"
        );
        assert_eq!(
            log_line("listening on localhost:5000 and [::1]:5001"),
            "listening on localhost:[port] and [::1]:[port]"
        );
    }

    proptest::proptest! {
        /// Random JSON with a secret planted anywhere (a key, a string, a
        /// number, inside longer text) never keeps the secret once normalised.
        #[test]
        fn normalised_json_never_keeps_a_secret(
            value in arbitrary_json(),
            path in proptest::collection::vec(0usize..8, 0..4),
            how in 0usize..4,
        ) {
            let secret = "739184265";
            let secrets = std::collections::BTreeMap::from([("pin".to_owned(), secret.to_owned())]);
            let planted = plant(value, &path, how, secret);
            let mut normaliser = Normaliser::new(&secrets, &[], &[], &[]);
            let normalised = normaliser.json(None, planted);
            let text = serde_json::to_string_pretty(&normalised).unwrap();
            proptest::prop_assert!(!text.contains(secret), "{}", text);
        }
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[a-z0-9 ]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// Puts `secret` somewhere in `value`, following `path` down as far as it goes.
    fn plant(
        value: serde_json::Value,
        path: &[usize],
        how: usize,
        secret: &str,
    ) -> serde_json::Value {
        use serde_json::Value;
        let planted = || match how {
            0 => Value::String(secret.to_owned()),
            1 => Value::Number(secret.parse::<u64>().unwrap().into()),
            2 => Value::String(format!("token {secret} inside")),
            _ => serde_json::json!({ secret: "as a key" }),
        };
        match (value, path.split_first()) {
            (Value::Array(mut items), Some((index, rest))) if !items.is_empty() => {
                let index = index % items.len();
                let item = items[index].take();
                items[index] = plant(item, rest, how, secret);
                Value::Array(items)
            }
            (Value::Object(mut map), Some((index, rest))) if !map.is_empty() => {
                let key = map.keys().nth(index % map.len()).cloned().unwrap();
                let item = map[&key].take();
                map.insert(key, plant(item, rest, how, secret));
                Value::Object(map)
            }
            (Value::Object(mut map), _) if how == 3 => {
                map.insert(secret.to_owned(), Value::String("as a key".to_owned()));
                Value::Object(map)
            }
            (Value::Object(mut map), _) => {
                map.insert("planted".to_owned(), planted());
                Value::Object(map)
            }
            (Value::Array(mut items), _) => {
                items.push(planted());
                Value::Array(items)
            }
            _ => planted(),
        }
    }
}
