//! What `upgrade-check bisect` shows: the probes, the last good and the
//! first bad version, and the evidence of what the first bad one breaks.

use std::fmt::Write as _;

use super::terminal;
use crate::model::event::plural;
use crate::model::findings::{BisectReport, THE_BUILD};
use crate::model::report::CellReport;

/// The answer for people; `first_bad` is the first bad version's cell.
pub fn render(report: &BisectReport, first_bad: &CellReport) -> String {
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
    let _ = writeln!(out, "last good: {package} {}", report.last_good);
    match &report.first_bad {
        Some(version) => {
            let _ = writeln!(
                out,
                "first bad: {package} {version} (breaks {})",
                report.scenarios.join(", ")
            );
        }
        None => {
            let _ = writeln!(
                out,
                "first bad: one of {} (could not be built) or {}",
                report.unknown_between.join(", "),
                report.to
            );
        }
    }
    // A build break is the same in every scenario: its evidence once.
    let build_break = report.scenarios == [THE_BUILD];
    for scenario in first_bad
        .failures()
        .filter(|scenario| report.scenarios.contains(&scenario.scenario))
        .chain(first_bad.failures().take(usize::from(build_break)))
    {
        let _ = writeln!(
            out,
            "\n── {} · {}: {} ──",
            first_bad.name,
            scenario.scenario,
            scenario.verdict.label()
        );
        // The same evidence a run shows: summary, versions, the diff cut
        // to a screen, and the log tail that explains the break.
        terminal::evidence(&mut out, first_bad, scenario);
    }
    out
}
