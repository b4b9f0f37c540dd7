//! What a service's log and answers say beyond the snapshot: why it did
//! not start, a Rust panic, a traceback, a framework's own 404, the
//! warnings and output lines that are new in a cell.

use crate::exec::replay;
use crate::input::scenario::Scenario;
use crate::judge::normalize::Normaliser;

/// The line that says why a service refused to start: the first that
/// mentions an error, else the last line it printed.
pub(super) fn first_error_line(log: &str) -> String {
    // The harness's own notes (`[upgrade-check: …]`) are not the service's words.
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("[upgrade-check:"))
        .collect();
    lines
        .iter()
        .find(|line| line.to_ascii_lowercase().contains("error"))
        .or(lines.last())
        .map_or_else(|| "(no output)".to_owned(), |line| (*line).to_owned())
}

/// What makes a baseline's run of a scenario a doubtful reference: steps
/// that answer 5xx, steps that ask a path the service does not serve (its
/// framework's own 404 or 405, which no step expects), steps of which none
/// got an answer (a service that died after its health check), and the
/// error of a traceback (Python) or a panic (Rust) in its log.
pub(super) fn unhealthy(
    exchanges: &[replay::Exchange],
    scenario: &Scenario,
    log: &str,
    normaliser: &Normaliser<'_>,
) -> Vec<String> {
    let unanswered = exchanges
        .iter()
        .map(|exchange| exchange.response.as_ref().err().map(|why| (exchange, why)))
        .collect::<Option<Vec<_>>>()
        .and_then(|all| all.first().copied());
    let mut found: Vec<String> = unanswered
        .map(|(first, why)| {
            format!(
                "no step got an answer (step `{}`: {})",
                first.step,
                normaliser.literals(why)
            )
        })
        .into_iter()
        .collect();
    found.extend(exchanges.iter().filter_map(|exchange| {
        let response = exchange.response.as_ref().ok()?;
        let expected = scenario
            .steps
            .iter()
            .find(|step| step.name == exchange.step)
            .and_then(|step| step.expect_status);
        if not_served(response) && expected != Some(response.status) {
            return Some(format!(
                "step `{}` answered {}: a path the service does not serve ({} {})",
                exchange.step,
                response.status_line(),
                exchange.request.method,
                exchange.request.path
            ));
        }
        (response.status >= 500).then(|| {
            format!(
                "step `{}` answered {}",
                exchange.step,
                response.status_line()
            )
        })
    }));
    let lines: Vec<&str> = log.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        if line.starts_with("Traceback (most recent call last)") {
            // The exception is the first line after the indented frames.
            let error = lines[index + 1..]
                .iter()
                .find(|line| !line.starts_with(char::is_whitespace))
                .unwrap_or(line);
            found.push(format!(
                "the service logged a traceback: {}",
                normaliser.literals(error.trim())
            ));
        } else if line.contains("panicked at") {
            found.push(format!(
                "the service panicked: {}",
                normaliser.literals(line.trim())
            ));
        }
    }
    found.dedup();
    found
}

/// Why a service would not start, from its log: the exception a Python
/// traceback ends with, a Rust panic's message and place, or the first line
/// that says `error`.
pub(crate) fn startup_error(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let traceback = lines
        .iter()
        .rposition(|line| line.starts_with("Traceback (most recent call last)"));
    if let Some(at) = traceback {
        // The exception is the first line after the indented frames.
        return lines[at + 1..]
            .iter()
            .find(|line| !line.starts_with(char::is_whitespace) && !line.trim().is_empty())
            .map(|line| line.trim().to_owned());
    }
    if let Some(panic) = rust_panic(log) {
        return Some(format!("panicked: {panic}"));
    }
    let said = first_error_line(log);
    (said != "(no output)" && said.to_ascii_lowercase().contains("error")).then_some(said)
}

/// A framework's own answer to a path it has no route for: 404 or 405 with
/// a body that is no API's JSON (an HTML page, plain text, nothing), or
/// FastAPI's and Starlette's `{"detail": "Not Found"}`.
pub(super) fn not_served(response: &replay::Response) -> bool {
    if !matches!(response.status, 404 | 405) {
        return false;
    }
    match serde_json::from_slice::<serde_json::Value>(&response.body) {
        Ok(serde_json::Value::Object(fields)) => {
            fields.len() == 1
                && matches!(
                    fields.get("detail").and_then(|detail| detail.as_str()),
                    Some("Not Found" | "Method Not Allowed")
                )
        }
        Ok(serde_json::Value::Array(_)) => false,
        _ => true,
    }
}

/// The first Rust panic in a service's log: its message and where it was
/// raised (`thread '…' (id) panicked at FILE:LINE:COL:` with the message on the
/// next line, or on the same line before Rust 1.73).
pub(super) fn rust_panic(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.starts_with("thread '") && line.contains(" panicked at "))?;
    let (_, rest) = lines[at].split_once(" panicked at ")?;
    let (location, message) = match rest.strip_suffix(':') {
        Some(location) => {
            let message = lines[at + 1..]
                .iter()
                .map(|line| line.trim())
                .find(|line| !line.is_empty())
                .unwrap_or("");
            (location, message.to_owned())
        }
        // `'message', src/main.rs:3:5`
        None => match rest.rsplit_once("', ") {
            Some((message, location)) => (location, message.trim_start_matches('\'').to_owned()),
            None => ("", rest.to_owned()),
        },
    };
    let place = match location {
        "" => String::new(),
        location => format!(" ({})", crate::env::cargo::place_of(location)),
    };
    Some(format!("{message}{place}"))
}

/// Words that make an output line a warning (see [`warnings`]).
pub(super) const WARNING_MARKERS: &[&str] =
    &["warn", "error", "traceback", "exception", "(trapped)"];

/// The service's output lines that are no warning, each once, normalised and
/// with every number masked, so that times, ports and counts do not make a
/// line new; the harness's own notes left out, and so are the indented lines
/// that carry on a warning (a traceback's frames, the source line a Python
/// warning quotes).
pub(super) fn output_lines(log: &str, normaliser: &mut Normaliser<'_>) -> Vec<String> {
    const MAX: usize = 30;
    let mut found: Vec<String> = Vec::new();
    let mut in_warning = false;
    for raw in log.lines() {
        let line = raw.trim();
        let lower = line.to_ascii_lowercase();
        // Two spaces or a tab: a frame or a quoted line, not a ` * ` banner.
        let carries_on = in_warning && (raw.starts_with("  ") || raw.starts_with('\t'));
        in_warning = carries_on || WARNING_MARKERS.iter().any(|marker| lower.contains(marker));
        if line.is_empty() || line.starts_with("[upgrade-check:") || in_warning {
            continue;
        }
        // A terminal escape's payload (a title, a link) is no output to keep.
        let line = crate::sys::redact::terminal_safe(line);
        let line: String = crate::judge::normalize::log_line(&normaliser.text(line.trim()))
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        if !found.contains(&line) && found.len() < MAX {
            found.push(line);
        }
    }
    found
}

/// Lines of the service's output that look like warnings or errors, normalised.
pub(super) fn warnings(log: &str, normaliser: &mut Normaliser<'_>) -> Vec<String> {
    const MAX: usize = 20;
    let mut found: Vec<String> = Vec::new();
    // The warning being read: `* ` lines right after it are its own
    // (pydantic: "Valid config keys have changed in V2:" then
    // "* 'orm_mode' has been renamed to 'from_attributes'").
    let mut reading: Option<String> = None;
    let done = |warning: Option<String>, found: &mut Vec<String>| {
        if let Some(warning) = warning
            && !found.contains(&warning)
            && found.len() < MAX
        {
            found.push(warning);
        }
    };
    for line in log.lines() {
        let mut normal = || crate::judge::normalize::log_line(&normaliser.text(line.trim()));
        if line.starts_with("* ")
            && let Some(warning) = reading.as_mut()
        {
            warning.push('\n');
            warning.push_str(&normal());
            continue;
        }
        let lower = line.to_ascii_lowercase();
        let next = WARNING_MARKERS
            .iter()
            .any(|marker| lower.contains(marker))
            .then(normal);
        done(std::mem::replace(&mut reading, next), &mut found);
    }
    done(reading, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_rust_panic_is_read_with_its_message_and_place() {
        let log = "auth-service: listening on 127.0.0.1:4000

thread 'tokio-rt-worker' (29044) panicked at /root/.cargo/registry/src/index.mirror-1949cf8c6b5b557f/jsonwebtoken-10.4.0/src/crypto/mod.rs:124:40:

Could not automatically determine the process-level CryptoProvider from jsonwebtoken crate features.
Call CryptoProvider::install_default() before this point
stack backtrace:";
        assert_eq!(
            rust_panic(log).as_deref(),
            Some(
                "Could not automatically determine the process-level CryptoProvider from jsonwebtoken crate features. (in the dependency jsonwebtoken-10.4.0: src/crypto/mod.rs:124:40)"
            )
        );
        let old_format = "thread 'main' panicked at 'index out of bounds', src/main.rs:3:5";
        assert_eq!(
            rust_panic(old_format).as_deref(),
            Some("index out of bounds (in the service's code: src/main.rs:3:5)")
        );
        assert_eq!(rust_panic("Traceback (most recent call last):"), None);
    }

    #[test]
    fn a_framework_s_own_not_found_is_told_from_an_api_s() {
        let answer = |status: u16, body: &str| replay::Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            truncated_bytes: 0,
        };
        assert!(not_served(&answer(
            404,
            "<!doctype html><title>404 Not Found</title>"
        )));
        assert!(not_served(&answer(404, r#"{"detail":"Not Found"}"#)));
        assert!(not_served(&answer(405, "")));
        assert!(!not_served(&answer(404, r#"{"error":"no such user"}"#)));
        assert!(!not_served(&answer(404, "[]")));
        assert!(!not_served(&answer(200, "<html></html>")));
    }

    #[test]
    fn a_warning_keeps_the_bullet_lines_that_follow_it() {
        let log = "/srv/venv/pydantic/_internal/_config.py:321: UserWarning: Valid config keys have changed in V2:
* 'orm_mode' has been renamed to 'from_attributes'
  warnings.warn(message, UserWarning)
 * Running on http://127.0.0.1:8000
DeprecationWarning: the other one
";
        let secrets = BTreeMap::new();
        let mut normaliser = Normaliser::new(&secrets, &[], &[], &[]);
        let found = warnings(log, &mut normaliser);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].ends_with(
                "UserWarning: Valid config keys have changed in V2:\n* 'orm_mode' has been renamed to 'from_attributes'"
            ),
            "{found:?}"
        );
        assert_eq!(found[1], "warnings.warn(message, UserWarning)");
        assert_eq!(found[2], "DeprecationWarning: the other one");
    }

    #[test]
    fn output_lines_are_what_the_service_says_besides_its_warnings() {
        let log = "[upgrade-check: started cold: no preloader]
 * Serving Flask app 'app'
WARNING: This is a development server.
   Use a production WSGI server instead.
 * Running on http://127.0.0.1:40123
Traceback (most recent call last):
  File \"/srv/app.py\", line 3, in <module>
    boom()
ValueError: boom
127.0.0.1 - - [06/Dec/2026 14:00:00] \"GET /health HTTP/1.1\" 200 -
127.0.0.1 - - [06/Dec/2026 14:00:01] \"GET /health HTTP/1.1\" 200 -
";
        let secrets = BTreeMap::new();
        let mut normaliser = Normaliser::new(&secrets, &[], &[], &[]);
        let lines = output_lines(log, &mut normaliser);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "* Serving Flask app 'app'");
        assert!(
            lines[1].starts_with("* Running on http://[ip]:"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("\"GET /health HTTP/#.#\" ### -"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_start_up_crash_is_said_by_the_line_of_its_log_that_explains_it() {
        let traceback = "Traceback (most recent call last):
  File \"/srv/app/__main__.py\", line 3, in <module>
    from flask.json import JSONEncoder
ImportError: cannot import name 'JSONEncoder' from 'flask.json'
";
        assert_eq!(
            startup_error(traceback).as_deref(),
            Some("ImportError: cannot import name 'JSONEncoder' from 'flask.json'")
        );
        let panic = "thread 'main' (1) panicked at src/main.rs:40:10:\nmissing JWT_SECRET_KEY\n";
        assert_eq!(
            startup_error(panic).as_deref(),
            Some("panicked: missing JWT_SECRET_KEY (in the service's code: src/main.rs:40:10)")
        );
        let said = "starting\nPathError: '/api/<path:rest>' is not a valid route\n";
        assert_eq!(
            startup_error(said).as_deref(),
            Some("PathError: '/api/<path:rest>' is not a valid route")
        );
        assert_eq!(startup_error("listening\nbye\n"), None);
        assert_eq!(startup_error(""), None);
    }
}
