//! Accepted snapshots: render a scenario's exchanges, compare, write pending or accepted files.
//!
//! Files are insta `.snap` files (YAML header, then the contents), read back
//! with insta itself; pending results go to `.snap.new` beside the accepted
//! file so that `cargo insta review` can accept them. Every write is atomic.
//! Only [`accept`] touches an accepted file, and the caller decides when.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use insta::TextSnapshotKind;
use insta::internals::TextSnapshotContents;

use crate::noise;
use crate::normalize::NormalisedExchange;
use crate::replay::StepFailure;
use crate::state::write_atomic;

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
    out
}

/// How a run compares with the accepted snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    Matches,
    /// A unified diff, accepted (`-`) against this run (`+`), and the first
    /// step whose status changed, e.g. "step `register`: 201 Created → 500 Internal Server Error".
    Differs {
        diff: String,
        status_change: Option<String>,
    },
    /// No accepted snapshot exists yet.
    Missing,
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

/// Compares `contents` with the accepted snapshot at `path`, with the values
/// of `noisy` fields masked on both sides.
pub fn compare(
    path: &Path,
    contents: &str,
    noisy: &std::collections::BTreeSet<String>,
) -> anyhow::Result<Comparison> {
    if !path.exists() {
        return Ok(Comparison::Missing);
    }
    let accepted = insta::Snapshot::from_file(path)
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| format!("cannot read snapshot {}", path.display()))?;
    let accepted = accepted
        .as_text()
        .with_context(|| format!("{} is not a text snapshot", path.display()))?;
    let current = TextSnapshotContents::new(noise::mask(contents, noisy), TextSnapshotKind::File);
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
    let status_change = statuses(&old)
        .into_iter()
        .zip(statuses(&new))
        .find(|(before, after)| before != after)
        .map(|((step, before), (_, after))| format!("step `{step}`: {before} → {after}"));
    Ok(Comparison::Differs {
        diff,
        status_change,
    })
}

/// (step, status line) of each exchange in a rendered scenario.
fn statuses(rendered: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut step = String::new();
    for line in rendered.lines() {
        if let Some(header) = line.strip_prefix("# ") {
            step = header
                .split_once(". ")
                .map_or(header, |(_, name)| name)
                .to_owned();
        } else if let Some(status) = line.strip_prefix("< ")
            && status.len() >= 3
            && status.as_bytes()[..3].iter().all(u8::is_ascii_digit)
        {
            found.push((step.clone(), status.to_owned()));
        } else if let Some(status) = line.strip_prefix("< no response: ") {
            found.push((step.clone(), format!("no response: {status}")));
        }
    }
    found
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

/// insta's file format: a YAML header between `---` lines, then the contents.
fn serialise(header: &Header<'_>, contents: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars, escapes included.
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    format!(
        "---\nsource: {}\ndescription: {}\nexpression: {}\n---\n{}\n",
        quote(&header.source),
        quote(header.description),
        quote(header.scenario),
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
    fn a_difference_comes_with_a_diff_and_a_pending_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = accepted_path(dir.path(), "login");
        accept(&path, &header(), "# 1. login\n< 200 OK\n").unwrap();
        let changed = "# 1. login\n< 500 Internal Server Error\n";
        let Comparison::Differs {
            diff,
            status_change,
        } = compare(&path, changed, &Default::default()).unwrap()
        else {
            panic!("expected a difference");
        };
        assert_eq!(
            status_change.as_deref(),
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
}
