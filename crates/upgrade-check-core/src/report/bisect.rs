//! What `upgrade-check bisect` shows: the probes, the last good and the
//! first bad version, and the evidence of what the first bad one breaks.

use std::fmt::Write as _;

use super::terminal;
use crate::model::event::plural;
use crate::model::findings::{BisectReport, BreakReport, THE_BUILD};
use crate::model::report::CellReport;

/// The answer for people; `first_bad` holds each break's first bad
/// version's cell, as `report.breaks` lists them.
pub fn render(report: &BisectReport, first_bad: &[CellReport]) -> String {
    let mut out = String::new();
    let package = &report.package;
    let _ = writeln!(
        out,
        "bisect {package} {} → {}: {} between ({} on the index), {}, {} built",
        report.from,
        report.to,
        plural(report.versions_between, "version"),
        report.versions_listed,
        plural(report.probes.len() - 2, "probe"),
        plural(report.environments_built, "environment")
    );
    for probe in &report.probes {
        let failing = if probe.failing.is_empty() {
            String::new()
        } else {
            format!(": fails {}", probe.failing.join(", "))
        };
        let _ = writeln!(
            out,
            "  {package} {:<10} {}{failing}",
            probe.version, probe.result
        );
    }
    if report.breaks.len() > 1 {
        let _ = writeln!(
            out,
            "{} separate breaks, each with its own first bad version:",
            report.breaks.len()
        );
    }
    for found in &report.breaks {
        answer(&mut out, package, found);
    }
    if report.breaks.is_empty() {
        let _ = writeln!(out, "last good: {package} {}", report.last_good);
        let _ = writeln!(out, "first bad: not found");
    }
    // A build break is the same in every scenario: its evidence once.
    let build_break = report.scenarios == [THE_BUILD];
    for (found, cell) in report.breaks.iter().zip(first_bad) {
        for scenario in cell
            .failures()
            .filter(|scenario| found.scenarios.contains(&scenario.scenario))
            .chain(cell.failures().take(usize::from(build_break)))
        {
            let _ = writeln!(
                out,
                "\n── {} · {}: {} ──",
                cell.name,
                scenario.scenario,
                scenario.verdict.label()
            );
            // The same evidence a run shows: summary, versions, the diff cut
            // to a screen, and the log tail that explains the break.
            terminal::evidence(&mut out, cell, scenario);
        }
    }
    out
}

/// One break's last good and first bad version, and the versions between
/// them that could not be built.
fn answer(out: &mut String, package: &str, found: &BreakReport) {
    let _ = writeln!(out, "last good: {package} {}", found.last_good);
    let breaks = found.scenarios.join(", ");
    match &found.first_bad {
        Some(version) if found.unknown_between.is_empty() => {
            let _ = writeln!(out, "first bad: {package} {version} (breaks {breaks})");
        }
        Some(version) => {
            let _ = writeln!(
                out,
                "first bad that builds: {package} {version} (breaks {breaks}); before it, {} could not be built, so the break may have come in one of them:",
                plural(found.unknown_between.len(), "version")
            );
            for reason in &found.not_built {
                let _ = writeln!(out, "  {package} {reason}");
            }
        }
        None => {
            let _ = writeln!(out, "first bad: not found");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::findings::ProbeReport;

    #[test]
    fn versions_that_could_not_be_built_before_the_first_bad_are_listed_with_their_error() {
        // jsonwebtoken 9.3.1 → 10.4.0: 10.0–10.2 do not build (a crypto
        // feature is asked for), 10.3.0 builds and panics.
        let probe = |version: &str, result: &str| ProbeReport {
            version: version.to_owned(),
            result: result.to_owned(),
            failing: Vec::new(),
        };
        let unknown: Vec<String> = ["10.0.0", "10.1.0", "10.2.0"].map(str::to_owned).to_vec();
        let not_built: Vec<String> = unknown
            .iter()
            .map(|version| format!("{version}: error: at least one of the features \"rust_crypto\" or \"aws_lc_rs\" must be enabled"))
            .collect();
        let report = BisectReport {
            package: "jsonwebtoken".to_owned(),
            from: "9.3.1".to_owned(),
            to: "10.4.0".to_owned(),
            scenarios: vec!["login".to_owned()],
            versions_between: 4,
            probes: vec![
                probe("9.3.1", "good"),
                probe("10.4.0", "bad"),
                probe("10.2.0", "could not be built"),
                probe("10.3.0", "bad"),
            ],
            last_good: "9.3.1".to_owned(),
            first_bad: Some("10.3.0".to_owned()),
            unknown_between: unknown.clone(),
            not_built: not_built.clone(),
            breaks: vec![BreakReport {
                scenarios: vec!["login".to_owned()],
                failures: Vec::new(),
                last_good: "9.3.1".to_owned(),
                first_bad: Some("10.3.0".to_owned()),
                unknown_between: unknown,
                not_built,
            }],
            environments_built: 3,
            versions_listed: 40,
        };
        let cell: CellReport = serde_json::from_value(serde_json::json!({
            "id": "jsonwebtoken-10.3.0", "name": "jsonwebtoken 10.3.0", "baseline": false,
            "pins": [], "changes": [], "new_warnings": [], "environment": null,
            "scenarios": [], "duration_ms": 0
        }))
        .unwrap();
        let shown = render(&report, &[cell]);
        assert!(
            shown.contains("first bad that builds: jsonwebtoken 10.3.0 (breaks login); before it, 3 versions could not be built")
                && shown.contains("  jsonwebtoken 10.0.0: error: at least one of the features"),
            "{shown}"
        );
        assert!(!shown.contains("or 10.4.0"), "{shown}");
    }
}
