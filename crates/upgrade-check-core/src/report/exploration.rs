//! An exploration's report: its headline and each finding as a person
//! reads it (the changed request, the baseline's answer against the cell's,
//! the diff, where it was written, the command that checks it again), for
//! the terminal and the pull-request comment alike.

use std::fmt::Write as _;

use super::Report;
use super::headline::{
    exploration_headline as headline, finding_summary as summary, whole_cell_failure,
};
use crate::model::event::plural;
use crate::model::findings::{Exploration, Finding};

/// A request line longer than this is cut, saying how long it was.
const MAX_REQUEST_LINE: usize = 120;

/// The changed request, each line cut to a screen's width.
pub(crate) fn request(finding: &Finding) -> String {
    finding
        .request
        .lines()
        .map(|line| match line.char_indices().nth(MAX_REQUEST_LINE) {
            Some((at, _)) => format!("{}… ({} bytes)", &line[..at], line.len()),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each cell in a line: how many findings it shows, or why it could not
/// be compared at all.
pub(crate) fn cells(report: &Report, exploration: &Exploration) -> Vec<String> {
    report
        .cells
        .iter()
        .map(|cell| {
            if cell.baseline {
                return format!("{}: the reference", cell.name);
            }
            if let Some(failure) = whole_cell_failure(cell) {
                return format!(
                    "{}: {} — {}",
                    cell.name,
                    failure.verdict.label(),
                    failure.summary.as_deref().unwrap_or("no reason given")
                );
            }
            let known = exploration
                .known
                .iter()
                .any(|known| known.starts_with(&format!("{}: ", cell.name)));
            match exploration
                .findings
                .iter()
                .filter(|finding| finding.cells.contains(&cell.name))
                .count()
            {
                0 if known => format!(
                    "{}: differs only where its recorded steps do (the check reports that)",
                    cell.name
                ),
                0 => format!("{}: answers every variant as the baseline does", cell.name),
                found => format!("{}: {}", cell.name, plural(found, "difference")),
            }
        })
        .collect()
}

/// The terminal's form of an exploration alone: the headline, each
/// finding's evidence, the cells.
pub(crate) fn terminal(report: &Report, exploration: &Exploration) -> String {
    let mut out = String::new();
    section(&mut out, exploration);
    out.push('\n');
    for line in cells(report, exploration) {
        let _ = writeln!(out, "{line}");
    }
    for unstable in &exploration.unstable {
        let _ = writeln!(out, "left out, the baseline unsteady: {unstable}");
    }
    for known in &exploration.known {
        let _ = writeln!(out, "left out, the recorded step differs too: {known}");
    }
    let _ = writeln!(
        out,
        "finished in {:.1}s",
        report.duration_ms as f64 / 1000.0
    );
    out
}

/// The exploration's headline and each finding's evidence: all an
/// exploration after a check adds to the check's own report.
pub(crate) fn section(out: &mut String, exploration: &Exploration) {
    let _ = writeln!(out, "{}", headline(exploration));
    for finding in &exploration.findings {
        out.push('\n');
        let _ = writeln!(
            out,
            "── {} · {}: {} ──",
            finding.cells.join(", "),
            finding.scenario,
            finding.kind.label()
        );
        let _ = writeln!(out, "{}", summary(finding));
        let _ = writeln!(out, "request:");
        indent(out, &request(finding));
        let _ = writeln!(out, "diff (the baseline → {}):", finding.cells[0]);
        indent(out, &finding.diff);
        if !finding.same_as.is_empty() {
            let _ = writeln!(
                out,
                "the same difference, also in: {}",
                finding.same_as.join(", ")
            );
        }
        let _ = writeln!(out, "written: {}", finding.written);
        let _ = writeln!(out, "check it: {}", finding.reproduce);
    }
}

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::findings::FindingKind;

    fn finding() -> Finding {
        Finding {
            kind: FindingKind::Crash,
            scenario: "register-1-password-73-bytes".to_owned(),
            from: "register".to_owned(),
            step: "new user".to_owned(),
            mutation: "/password: 73 bytes".to_owned(),
            request: format!(
                "POST /api/auth/register\n\n{{\"password\":\"{}\"}}",
                "a".repeat(300)
            ),
            baseline: "201 Created".to_owned(),
            answer: "500 Internal Server Error".to_owned(),
            cells: vec!["bcrypt 5.0.0".to_owned()],
            diff: "-< 201 Created\n+< 500 Internal Server Error\n".to_owned(),
            same_as: vec!["register-1-password-256-bytes".to_owned()],
            written: "scenarios/explored/register-1-password-73-bytes.toml (pending review)"
                .to_owned(),
            reproduce: "upgrade-check accept register-1-password-73-bytes".to_owned(),
        }
    }

    #[test]
    fn the_headline_names_the_cells_and_the_worst_finding() {
        let exploration = Exploration {
            after_check: false,
            known: Vec::new(),
            seed: 3,
            budget: 200,
            variants: 40,
            requests: 180,
            unstable: Vec::new(),
            findings: vec![finding()],
        };
        assert_eq!(
            headline(&exploration),
            "exploration: 1 difference from the baseline in bcrypt 5.0.0 — worst: crash at \
             register's `new user` when /password: 73 bytes (201 Created → 500 Internal Server \
             Error) (40 variants of the recorded steps, 180 requests per cell, seed 3)"
        );
        let none = Exploration {
            findings: Vec::new(),
            ..exploration
        };
        assert!(headline(&none).starts_with("exploration: no variant answers otherwise"));
    }

    #[test]
    fn a_long_request_line_is_cut_saying_how_long_it_was() {
        let finding = finding();
        let sent = finding.request.lines().last().unwrap().len();
        let shown = request(&finding);
        let body = shown.lines().last().unwrap();
        let tail = format!("… ({sent} bytes)");
        assert!(body.ends_with(&tail), "{body}");
        assert_eq!(
            body.chars().count(),
            MAX_REQUEST_LINE + tail.chars().count()
        );
        assert_eq!(shown.lines().next(), Some("POST /api/auth/register"));
    }
}
