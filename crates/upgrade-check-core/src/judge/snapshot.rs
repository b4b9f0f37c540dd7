//! Accepted snapshots: render a scenario's exchanges, compare, write pending or accepted files.
//!
//! Files are insta `.snap` files (YAML header, then the contents), read back
//! with insta itself; pending results go to `.snap.new` beside the accepted
//! file, where `review` and `accept` (and cargo-insta, in a cargo package)
//! find them. Every write is atomic.
//! Only [`accept`] touches an accepted file, and the caller decides when.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use insta::TextSnapshotKind;
use insta::internals::TextSnapshotContents;

use crate::exec::replay::StepFailure;
use crate::judge::noise;
use crate::judge::normalize::NormalisedExchange;
use crate::model::cell::Pin;
use crate::model::package::{Ecosystem, PackageName, Version};
use crate::sys::state::write_atomic;

/// The text a scenario run is judged by.
pub fn render(exchanges: &[NormalisedExchange], failure: Option<&StepFailure>) -> String {
    let mut out = String::new();
    for (index, exchange) in exchanges.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "# {}. {}", index + 1, exchange.step);
        let _ = writeln!(out, "> {}", exchange.request_line);
        for (name, value) in &exchange.request_headers {
            let _ = writeln!(out, "> {name}: {value}");
        }
        if let Some(body) = &exchange.request_body {
            out.push_str(">\n");
            for line in body.lines() {
                let _ = writeln!(out, "> {line}");
            }
        }
        let _ = writeln!(out, "< {}", exchange.status_line);
        for (name, value) in &exchange.response_headers {
            let _ = writeln!(out, "< {name}: {value}");
        }
        if let Some(body) = &exchange.response_body {
            out.push_str("<\n");
            for line in body.lines() {
                let _ = writeln!(out, "< {line}");
            }
        }
    }
    if let Some(failure) = failure {
        let _ = write!(
            out,
            "\nstopped at step `{}`: {}\n",
            failure.step, failure.message
        );
    }
    // A service's control bytes (terminal escapes) are shown, never sent on.
    crate::sys::redact::visible(&out).into_owned()
}

/// How a run compares with the accepted snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    Matches,
    /// A unified diff, accepted (`-`) against this run (`+`), and what changed
    /// step by step.
    Differs {
        diff: String,
        changes: Changes,
    },
    /// No accepted snapshot exists yet.
    Missing,
}

/// What differs between two renderings, read from their structure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Steps whose status changed, in order: (step, before, after).
    pub statuses: Vec<(String, String, String)>,
    /// `refused → started` when a recorded startup outcome changed.
    pub startup: Option<(String, String)>,
    /// The first exchange that differs in any way, said in a line:
    /// "step `a script`: content-type application/javascript → text/javascript".
    pub first_difference: Option<String>,
}

impl Changes {
    /// "step `register`: 201 Created → 500 Internal Server Error", for the first one.
    pub fn first_status_change(&self) -> Option<String> {
        self.statuses
            .first()
            .map(|(step, before, after)| format!("step `{step}`: {before} → {after}"))
    }

    /// A refusal became an answer: the service now starts where it refused,
    /// or some step answers 2xx where it did not. What a security scenario guards.
    pub fn now_serves(&self) -> bool {
        let started = matches!(&self.startup, Some((before, after)) if before == "refused" && after == "started");
        started || self.first_now_served().is_some()
    }

    /// "step `me with a forged token`: 401 Unauthorized → 200 OK": the first
    /// step that answers 2xx where it refused, the one a security headline names.
    pub fn first_now_served(&self) -> Option<String> {
        self.statuses
            .iter()
            .find(|(_, before, after)| !before.starts_with('2') && after.starts_with('2'))
            .map(|(step, before, after)| format!("step `{step}`: {before} → {after}"))
    }
}

/// The accepted file of a scenario, inside the snapshots folder.
pub fn accepted_path(snapshots: &Path, scenario: &str) -> PathBuf {
    snapshots.join(format!("{scenario}.snap"))
}

/// `foo.snap` → `foo.snap.new`, where cargo-insta looks for pending snapshots.
pub fn pending_path(accepted: &Path) -> PathBuf {
    let mut name = accepted.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// Refuses accepted snapshots that are not regular files inside `snapshots`
/// (a symlink could post any file's text into a report).
pub fn check_files(snapshots: &Path) -> anyhow::Result<()> {
    let Ok(entries) = fs_err::read_dir(snapshots) else {
        return Ok(());
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "snap") {
            check_file(&path)?;
        }
    }
    Ok(())
}

fn check_file(path: &Path) -> anyhow::Result<()> {
    let meta = fs_err::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        anyhow::bail!(
            "{}: an accepted snapshot must be a regular file in the snapshots folder, not a \
             symlink or anything else; replace it with the file itself",
            path.display()
        );
    }
    Ok(())
}

/// What the accepted snapshot at `path` holds, without its header; `None`
/// when there is none.
pub fn contents(path: &Path) -> anyhow::Result<Option<String>> {
    Ok(read_text(path)?.map(|text| text.to_string()))
}

/// The text of the accepted snapshot at `path`, if there is one; a file
/// that is not a regular text snapshot is an error.
fn read_text(path: &Path) -> anyhow::Result<Option<TextSnapshotContents>> {
    if fs_err::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    check_file(path)?;
    let snapshot = insta::Snapshot::from_file(path)
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| format!("cannot read snapshot {}", path.display()))?;
    let text = snapshot
        .as_text()
        .with_context(|| format!("{} is not a text snapshot", path.display()))?;
    Ok(Some(text.clone()))
}

/// Compares `contents` with the accepted snapshot at `path`, with the values
/// of `noisy` fields masked on both sides.
pub fn compare(
    path: &Path,
    contents: &str,
    noisy: &std::collections::BTreeSet<String>,
) -> anyhow::Result<Comparison> {
    let Some(accepted) = read_text(path)? else {
        return Ok(Comparison::Missing);
    };
    // A snapshot of format 1 (before placeholders kept their shape) says
    // `[timestamp]`: it is read in its own form, this run's shaped
    // timestamps said the old way, so upgrading the harness fails nothing.
    let contents = match accepted.to_string().contains(OLD_TIMESTAMP) {
        true => in_format_1(contents),
        false => contents.to_owned(),
    };
    let current = TextSnapshotContents::new(noise::mask(&contents, noisy), TextSnapshotKind::File);
    let accepted = if noisy.is_empty() {
        accepted.clone()
    } else {
        TextSnapshotContents::new(
            noise::mask(&accepted.to_string(), noisy),
            TextSnapshotKind::File,
        )
    };
    if accepted.matches_latest(&current) {
        return Ok(Comparison::Matches);
    }
    let (old, new) = (format!("{accepted}\n"), format!("{current}\n"));
    let diff = similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("accepted", "this run")
        .to_string();
    let (before, after) = (Parsed::from(old.as_str()), Parsed::from(new.as_str()));
    let statuses = before
        .exchanges
        .iter()
        .zip(&after.exchanges)
        .filter(|(old, new)| old.status != new.status)
        .map(|(old, new)| (old.step.clone(), old.status.clone(), new.status.clone()))
        .collect();
    let first_difference = first_difference(&before.exchanges, &after.exchanges);
    let startup = match (before.startup, after.startup) {
        (Some(old), Some(new)) if old != new => Some((old, new)),
        _ => None,
    };
    Ok(Comparison::Differs {
        diff,
        changes: Changes {
            statuses,
            startup,
            first_difference,
        },
    })
}

/// The first exchange that differs, and how: its status, a response header,
/// its body (with the first line that differs), or the request it sent.
fn first_difference(before: &[ParsedExchange], after: &[ParsedExchange]) -> Option<String> {
    let shorten = |line: &str| {
        let line = line.trim();
        match line.char_indices().nth(60) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_owned(),
        }
    };
    for (old, new) in before.iter().zip(after) {
        let step = &new.step;
        if old.status != new.status {
            return Some(format!("step `{step}`: {} → {}", old.status, new.status));
        }
        if old.headers != new.headers {
            let header = |headers: &[String], name: &str| {
                headers
                    .iter()
                    .find(|line| line.split_once(": ").is_some_and(|(n, _)| n == name))
                    .map(|line| line.split_once(": ").map_or("", |(_, v)| v).to_owned())
            };
            let names: Vec<&str> = old
                .headers
                .iter()
                .chain(&new.headers)
                .filter_map(|line| line.split_once(": ").map(|(name, _)| name))
                .collect();
            for name in names {
                match (header(&old.headers, name), header(&new.headers, name)) {
                    (Some(a), Some(b)) if a != b => {
                        return Some(format!("step `{step}`: {name} {a} → {b}"));
                    }
                    (None, Some(b)) => {
                        return Some(format!("step `{step}`: new header {name}: {b}"));
                    }
                    (Some(_), None) => {
                        return Some(format!("step `{step}`: header {name} removed"));
                    }
                    _ => {}
                }
            }
        }
        if old.body != new.body {
            let (a, b) = old
                .body
                .iter()
                .map(Some)
                .chain(std::iter::repeat(None))
                .zip(new.body.iter().map(Some).chain(std::iter::repeat(None)))
                .take(old.body.len().max(new.body.len()))
                .find(|(a, b)| a != b)
                .unwrap_or((None, None));
            let side = |line: Option<&String>| {
                line.map_or("(nothing)".to_owned(), |l| format!("`{}`", shorten(l)))
            };
            return Some(format!(
                "step `{step}`: the body differs ({} → {})",
                side(a),
                side(b)
            ));
        }
        if old.request != new.request {
            return Some(format!("step `{step}`: the request differs"));
        }
    }
    match before.len().cmp(&after.len()) {
        std::cmp::Ordering::Greater => Some(format!(
            "step `{}` no longer runs",
            before[after.len()].step
        )),
        std::cmp::Ordering::Less => Some(format!("step `{}` is new", after[before.len()].step)),
        std::cmp::Ordering::Equal => None,
    }
}

/// A rendered scenario read back into its parts, the inverse of [`render`]
/// for what comparisons need: which line is a status is decided by where it
/// stands (the first `<` line after a request), never by how it looks, so a
/// body line like `< 100 items` is body.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    startup: Option<String>,
    exchanges: Vec<ParsedExchange>,
}

#[derive(Debug, PartialEq, Eq)]
struct ParsedExchange {
    step: String,
    /// The request line, headers and body, as rendered.
    request: Vec<String>,
    status: String,
    /// `name: value` lines.
    headers: Vec<String>,
    body: Vec<String>,
}

impl From<&str> for Parsed {
    fn from(rendered: &str) -> Parsed {
        /// Where the reader is inside one exchange.
        #[derive(PartialEq)]
        enum At {
            Outside,
            Request,
            RequestBody,
            ResponseHeaders,
            ResponseBody,
        }
        let mut parsed = Parsed::default();
        let mut at = At::Outside;
        let mut step = String::new();
        let mut request = Vec::new();
        for line in rendered.lines() {
            let request_line = line == ">" || line.starts_with("> ");
            let response = line == "<" || line.starts_with("< ");
            match at {
                At::Outside | At::ResponseBody | At::ResponseHeaders
                    if !response && line.starts_with("# ") =>
                {
                    let header = &line[2..];
                    step = header
                        .split_once(". ")
                        .map_or(header, |(_, name)| name)
                        .to_owned();
                    request.clear();
                    at = At::Request;
                }
                At::Outside if parsed.exchanges.is_empty() && line.starts_with("startup: ") => {
                    parsed.startup = Some(line["startup: ".len()..].to_owned());
                }
                At::Request if request_line => {
                    if line == ">" {
                        at = At::RequestBody;
                    }
                    request.push(line.to_owned());
                }
                At::RequestBody if request_line => request.push(line.to_owned()),
                At::Request | At::RequestBody if response => {
                    parsed.exchanges.push(ParsedExchange {
                        step: step.clone(),
                        request: std::mem::take(&mut request),
                        status: line.get(2..).unwrap_or_default().to_owned(),
                        headers: Vec::new(),
                        body: Vec::new(),
                    });
                    at = At::ResponseHeaders;
                }
                At::ResponseHeaders if response => {
                    if line == "<" {
                        at = At::ResponseBody;
                    } else if let Some(exchange) = parsed.exchanges.last_mut() {
                        exchange.headers.push(line[2..].to_owned());
                    }
                }
                At::ResponseBody if response => {
                    if let Some(exchange) = parsed.exchanges.last_mut() {
                        exchange
                            .body
                            .push(line.get(2..).unwrap_or_default().to_owned());
                    }
                }
                _ => at = At::Outside,
            }
        }
        parsed
    }
}

/// Where an alternative accepted snapshot of `scenario` lives: accepted for
/// one cell (`mime_guess 2.0.5`), it holds for that package's versions from
/// `pin.version` up to the next incompatible one.
pub fn alternative_path(snapshots: &Path, scenario: &str, pin: &Pin) -> PathBuf {
    snapshots
        .join("alternatives")
        .join(scenario)
        .join(format!("{}-{}.snap", pin.package, pin.version))
}

/// An alternative accepted snapshot: the file, and the pin it was accepted for.
#[derive(Debug, Clone)]
pub struct Alternative {
    pub path: PathBuf,
    pub from: Pin,
}

impl Alternative {
    /// Whether it holds for a cell where the package is at `version`: the
    /// same version or newer, and semver-compatible (same major; below 1.0
    /// the same minor), so a new major is judged afresh.
    pub fn covers(&self, version: &Version) -> bool {
        *version >= self.from.version && version.is_compatible_with(&self.from.version)
    }

    /// `mime_guess >=2.0.5, <3`, for reports.
    pub fn range(&self) -> String {
        let release = self.from.version.release();
        let until = match release.as_slice() {
            [0, minor, ..] => format!("0.{}", minor + 1),
            [major, ..] => (major + 1).to_string(),
            [] => String::new(),
        };
        format!("{} >={}, <{until}", self.from.package, self.from.version)
    }
}

/// The alternatives accepted for `scenario`; file names that do not parse as
/// `PACKAGE-VERSION.snap` for the ecosystem are an error naming the file.
pub fn alternatives(
    snapshots: &Path,
    scenario: &str,
    ecosystem: Ecosystem,
) -> anyhow::Result<Vec<Alternative>> {
    let dir = snapshots.join("alternatives").join(scenario);
    let Ok(entries) = fs_err::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(stem) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".snap"))
        else {
            continue;
        };
        check_file(&path)?;
        let pin = stem.rsplit_once('-').and_then(|(package, version)| {
            Some(Pin {
                package: PackageName::parse(ecosystem, package).ok()?,
                version: Version::parse(ecosystem, version).ok()?,
            })
        });
        let Some(from) = pin else {
            anyhow::bail!(
                "{}: an alternative snapshot is named PACKAGE-VERSION.snap",
                path.display()
            );
        };
        found.push(Alternative { path, from });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// A pending snapshot a run left for review, and what it would replace.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The scenario run it belongs to (`login`, `staging@staging`).
    pub scenario: String,
    pub path: PathBuf,
    pub accepted: PathBuf,
}

impl Pending {
    /// What the header says the result is ("result of cell `bcrypt 5.0.0`; …").
    pub fn description(&self) -> String {
        insta::Snapshot::from_file(&self.path)
            .ok()
            .and_then(|snapshot| snapshot.metadata().description().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The accepted snapshot (`-`) against the pending one (`+`).
    pub fn diff(&self) -> String {
        let read = |path: &Path| {
            insta::Snapshot::from_file(path)
                .ok()
                .and_then(|snapshot| snapshot.as_text().map(|text| format!("{text}\n")))
                .unwrap_or_default()
        };
        let (accepted, pending) = (read(&self.accepted), read(&self.path));
        similar::TextDiff::from_lines(&accepted, &pending)
            .unified_diff()
            .context_radius(3)
            .header("accepted", "pending")
            .to_string()
    }

    /// Makes the pending result the accepted one (a rename: whole or not at all).
    pub fn accept(&self) -> anyhow::Result<()> {
        check_file(&self.path)?;
        fs_err::rename(&self.path, &self.accepted)?;
        Ok(())
    }

    /// Drops the pending result; the accepted one stays.
    pub fn reject(&self) -> anyhow::Result<()> {
        fs_err::remove_file(&self.path)?;
        Ok(())
    }
}

/// The pending snapshots in `snapshots`, by scenario name.
pub fn pending(snapshots: &Path) -> anyhow::Result<Vec<Pending>> {
    let mut found = Vec::new();
    let Ok(entries) = fs_err::read_dir(snapshots) else {
        return Ok(found);
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(scenario) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".snap.new"))
        else {
            continue;
        };
        found.push(Pending {
            scenario: scenario.to_owned(),
            accepted: accepted_path(snapshots, scenario),
            path,
        });
    }
    found.sort_by(|a, b| a.scenario.cmp(&b.scenario));
    Ok(found)
}

/// What the YAML header of a snapshot says.
pub struct Header<'a> {
    /// The scenario file, relative to the config's folder.
    pub source: String,
    pub scenario: &'a str,
    pub description: &'a str,
}

/// Writes a pending `.snap.new` for review beside the accepted file.
pub fn write_pending(
    accepted: &Path,
    header: &Header<'_>,
    contents: &str,
) -> anyhow::Result<PathBuf> {
    let path = pending_path(accepted);
    write_atomic(&path, serialise(header, contents).as_bytes())?;
    Ok(path)
}

/// Replaces the accepted snapshot and drops any pending one.
pub fn accept(accepted: &Path, header: &Header<'_>, contents: &str) -> anyhow::Result<()> {
    write_atomic(accepted, serialise(header, contents).as_bytes())?;
    remove_pending(accepted)
}

/// Removes a stale pending snapshot, if there is one.
pub fn remove_pending(accepted: &Path) -> anyhow::Result<()> {
    match fs_err::remove_file(pending_path(accepted)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
        _ => Ok(()),
    }
}

/// The format snapshots are written in, said in their header's `info`
/// (which insta keeps): 2 since placeholders keep the shape of what they
/// mask (`[timestamp:YYYY-MM-DD…]`, `[id:1]`).
pub const FORMAT: &str = "upgrade-check snapshot format 2";

/// How format 1 masked every timestamp, whatever its shape.
const OLD_TIMESTAMP: &str = "[timestamp]";

/// `contents` as format 1 said it: each shaped timestamp a bare `[timestamp]`.
fn in_format_1(contents: &str) -> String {
    static SHAPED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\[timestamp:[^\]\n]*\]").expect("valid regex")
    });
    SHAPED.replace_all(contents, OLD_TIMESTAMP).into_owned()
}

/// insta's file format: a YAML header between `---` lines, then the contents.
fn serialise(header: &Header<'_>, contents: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars, escapes included.
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    format!(
        "---\nsource: {}\ndescription: {}\nexpression: {}\ninfo: {}\n---\n{}\n",
        quote(&header.source),
        quote(header.description),
        quote(header.scenario),
        quote(FORMAT),
        contents.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header<'static> {
        Header {
            source: "scenarios/login.toml".to_owned(),
            scenario: "login",
            description: "log in: \"quoted\" and\nmultiline",
        }
    }

    #[test]
    fn written_snapshots_read_back_through_insta() {
        let dir = tempfile::tempdir().unwrap();
        let path = accepted_path(dir.path(), "login");
        let contents = "# 1. login\n> POST /login\n< 200 OK\n";
        accept(&path, &header(), contents).unwrap();
        let snapshot = insta::Snapshot::from_file(&path).unwrap();
        assert_eq!(snapshot.metadata().source(), Some("scenarios/login.toml"));
        assert_eq!(
            snapshot.metadata().description(),
            Some(header().description)
        );
        assert_eq!(snapshot.metadata().expression(), Some("login"));
        assert_eq!(
            compare(&path, contents, &Default::default()).unwrap(),
            Comparison::Matches
        );
    }

    #[test]
    fn a_snapshot_of_format_1_is_read_in_its_own_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = accepted_path(dir.path(), "login");
        // As format 1 wrote it: no format in the header, bare timestamps.
        std::fs::write(
            &path,
            "---\nsource: \"scenarios/login.toml\"\nexpression: \"login\"\n---\n# 1. login\n< 200 OK\n<\n< {\"at\": \"[timestamp]\"}\n",
        )
        .unwrap();
        let now = "# 1. login\n< 200 OK\n<\n< {\"at\": \"[timestamp:YYYY-MM-DDThh:mm:ssZ]\"}\n";
        assert_eq!(
            compare(&path, now, &Default::default()).unwrap(),
            Comparison::Matches
        );
        // A real change still shows, without the shape noise.
        let changed = now.replace("200 OK", "500 Internal Server Error");
        let Comparison::Differs { diff, .. } =
            compare(&path, &changed, &Default::default()).unwrap()
        else {
            panic!("a status change is a difference");
        };
        assert!(!diff.contains("YYYY"), "{diff}");
        // What this harness writes says its format, and its shapes count.
        accept(&path, &header(), now).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            written.contains(&format!("info: \"{FORMAT}\"")),
            "{written}"
        );
        let other_shape = now.replace("ssZ", "ss.fffZ");
        assert!(matches!(
            compare(&path, &other_shape, &Default::default()).unwrap(),
            Comparison::Differs { .. }
        ));
    }

    #[test]
    fn a_difference_comes_with_a_diff_and_a_pending_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = accepted_path(dir.path(), "login");
        accept(&path, &header(), "# 1. login\n< 200 OK\n").unwrap();
        let changed = "# 1. login\n< 500 Internal Server Error\n";
        let Comparison::Differs { diff, changes } =
            compare(&path, changed, &Default::default()).unwrap()
        else {
            panic!("expected a difference");
        };
        assert_eq!(
            changes.first_status_change().as_deref(),
            Some("step `login`: 200 OK → 500 Internal Server Error")
        );
        assert!(
            diff.contains("-< 200 OK") && diff.contains("+< 500 Internal Server Error"),
            "{diff}"
        );
        let pending = write_pending(&path, &header(), "< 500 Internal Server Error\n").unwrap();
        assert!(pending.to_string_lossy().ends_with("login.snap.new"));
        let accepted = std::fs::read_to_string(&path).unwrap();
        assert!(
            accepted.contains("200 OK"),
            "the accepted file is untouched"
        );
        accept(&path, &header(), "< 500 Internal Server Error\n").unwrap();
        assert!(!pending.exists());
    }

    #[test]
    fn a_missing_snapshot_is_reported_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            compare(&dir.path().join("x.snap"), "text", &Default::default()).unwrap(),
            Comparison::Missing
        );
    }

    #[test]
    fn a_body_line_that_looks_like_a_status_is_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = accepted_path(dir.path(), "items");
        let render = |count: &str, status: &str| {
            format!(
                "# 1. list\n> GET /items\n< 200 OK\n<\n< {count} items\n\n# 2. admin\n> GET /admin\n< {status}\n"
            )
        };
        accept(&path, &header(), &render("100", "403 Forbidden")).unwrap();
        let Comparison::Differs { changes, .. } =
            compare(&path, &render("101", "200 OK"), &Default::default()).unwrap()
        else {
            panic!("expected a difference");
        };
        assert_eq!(
            changes.statuses,
            [(
                "admin".to_owned(),
                "403 Forbidden".to_owned(),
                "200 OK".to_owned()
            )]
        );
        assert!(changes.now_serves(), "a refusal on a later step became 2xx");
    }

    #[test]
    fn a_symlinked_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "---\nexpression: x\n---\nprivate text\n").unwrap();
        let snapshots = dir.path().join("snapshots");
        std::fs::create_dir(&snapshots).unwrap();
        std::os::unix::fs::symlink(&outside, snapshots.join("x.snap")).unwrap();
        let err = check_files(&snapshots).unwrap_err().to_string();
        assert!(
            err.contains("x.snap") && err.contains("regular file"),
            "{err}"
        );
        let err = compare(&snapshots.join("x.snap"), "text", &Default::default()).unwrap_err();
        assert!(!format!("{err:#}").contains("private text"));
    }

    proptest::proptest! {
        /// Reading a rendering back finds every step and status, whatever the
        /// headers and bodies hold.
        #[test]
        fn parsing_a_rendering_finds_its_statuses(
            exchanges in proptest::collection::vec(
                (
                    "[a-z ]{1,10}",
                    "[1-5][0-9]{2}( [A-Za-z]{2,8})?",
                    proptest::collection::vec("[ -~]{0,12}", 0..3),
                    proptest::option::of("([0-9]{3} [ -~]{0,8}\n|# [ -~]{0,6}\n|[<>#] ?[ -~]{0,6}\n|\n){0,4}"),
                ),
                0..5,
            )
        ) {
            let exchanges: Vec<NormalisedExchange> = exchanges
                .into_iter()
                .map(|(step, status, headers, body)| NormalisedExchange {
                    step,
                    request_line: "GET /".to_owned(),
                    request_headers: Vec::new(),
                    request_body: body.clone(),
                    status_line: status,
                    response_headers: headers.into_iter().map(|value| ("x".to_owned(), value)).collect(),
                    response_body: body,
                })
                .collect();
            let parsed = Parsed::from(render(&exchanges, None).as_str());
            let expected: Vec<(String, String)> = exchanges
                .iter()
                .map(|exchange| (exchange.step.clone(), exchange.status_line.clone()))
                .collect();
            let found: Vec<(String, String)> = parsed
                .exchanges
                .into_iter()
                .map(|exchange| (exchange.step, exchange.status))
                .collect();
            proptest::prop_assert_eq!(found, expected);
        }
    }

    #[test]
    fn the_first_difference_is_named_when_no_status_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = accepted_path(dir.path(), "files");
        let render = |kind: &str, body: &str| {
            format!(
                "# 1. a page\n> GET /\n< 200 OK\n< content-type: text/html\n\n# 2. a script\n> GET /app.js\n< 200 OK\n< content-type: {kind}\n<\n< {body}\n"
            )
        };
        accept(&path, &header(), &render("application/javascript", "x")).unwrap();
        let differs = |rendered: &str| match compare(&path, rendered, &Default::default()).unwrap()
        {
            Comparison::Differs { changes, .. } => changes.first_difference,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            differs(&render("text/javascript", "x")).as_deref(),
            Some("step `a script`: content-type application/javascript → text/javascript")
        );
        assert_eq!(
            differs(&render("application/javascript", "y")).as_deref(),
            Some("step `a script`: the body differs (`x` → `y`)")
        );
    }
}
