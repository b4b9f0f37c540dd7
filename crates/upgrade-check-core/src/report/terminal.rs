//! The terminal summary: a verdict line, the matrix as a table, then each failure's evidence.

use std::fmt::Write as _;

use super::headline::{headline, whole_cell_failure};
use super::{CellReport, Report, ScenarioReport, Verdict};

/// Lines of a diff or log shown per failure before cutting.
const MAX_DIFF_LINES: usize = 60;
const MAX_LOG_LINES: usize = 12;

pub fn render(report: &Report) -> String {
    if let Some(exploration) = report.exploration.as_ref().filter(|e| !e.after_check) {
        return super::exploration::terminal(report, exploration);
    }
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(report));
    out.push('\n');
    table(report, &mut out);
    for cell in &report.cells {
        if let Some(common) = whole_cell_failure(cell) {
            out.push('\n');
            let _ = writeln!(
                out,
                "── {} · every scenario: {} ──",
                cell.name,
                common.verdict.label()
            );
            evidence(&mut out, cell, common);
            continue;
        }
        for accepted in cell.accepted() {
            out.push('\n');
            let _ = writeln!(
                out,
                "── {} · {}: accepted in this change ──",
                cell.name, accepted.scenario
            );
            evidence(&mut out, cell, accepted);
        }
        for failure in cell.regressions() {
            out.push('\n');
            let security = if failure.security { " [security]" } else { "" };
            let _ = writeln!(
                out,
                "── {} · {}: {}{security} ──",
                cell.name,
                failure.scenario,
                failure.verdict.label()
            );
            evidence(&mut out, cell, failure);
        }
        let alike: Vec<&str> = cell
            .failures()
            .filter(|s| s.same_as_baseline)
            .map(|s| s.scenario.as_str())
            .collect();
        if !alike.is_empty() {
            out.push('\n');
            let _ = writeln!(
                out,
                "── {} · {}: fails exactly as the baseline does ──",
                cell.name,
                alike.join(", ")
            );
        }
        for scenario in cell.scenarios.iter().filter(|s| !s.leaks.is_empty()) {
            out.push('\n');
            let _ = writeln!(
                out,
                "── {} · {}: processes leaked by the service ──",
                cell.name, scenario.scenario
            );
            indented(&mut out, &scenario.leaks.join("\n"), MAX_LOG_LINES);
        }
        if !cell.new_warnings.is_empty() {
            out.push('\n');
            let _ = writeln!(
                out,
                "── {} · new output the baseline does not print (a warning, not a failure) ──",
                cell.name
            );
            indented(&mut out, &cell.new_warnings.join("\n"), MAX_LOG_LINES);
        }
    }
    if let Some(exploration) = &report.exploration {
        out.push('\n');
        super::exploration::section(&mut out, exploration);
    }
    out.push('\n');
    footer(report, &mut out);
    out
}

/// A failure's summary, version changes, diff (cut to a screen) and log tail.
pub fn evidence(out: &mut String, cell: &CellReport, failure: &ScenarioReport) {
    if let Some(summary) = &failure.summary {
        let _ = writeln!(out, "{summary}");
    }
    if !cell.changes.is_empty() {
        let changes: Vec<String> = cell.changes.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "versions: {}", changes.join("; "));
    }
    if let Some(diff) = &failure.diff {
        let _ = writeln!(out, "diff (accepted → this run):");
        indented(out, diff, MAX_DIFF_LINES);
    }
    if let Some(log) = failure
        .log_tail
        .as_deref()
        .filter(|log| !log.trim().is_empty())
    {
        let label = if failure.verdict == Verdict::BuildFailed {
            "build output:"
        } else {
            "log tail:"
        };
        let _ = writeln!(out, "{label}");
        let lines: Vec<&str> = log.lines().collect();
        indented(
            out,
            &lines[lines.len().saturating_sub(MAX_LOG_LINES)..].join("\n"),
            MAX_LOG_LINES,
        );
    }
}

fn table(report: &Report, out: &mut String) {
    let name_width = report
        .cells
        .iter()
        .map(|cell| cell.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mark = |cell: &CellReport, scenario: &str| {
        cell.scenarios
            .iter()
            .find(|s| s.scenario == scenario)
            .map_or("-", |s| match s.verdict {
                Verdict::Pass => "pass",
                Verdict::Accepted => "accepted",
                Verdict::Changed => "CHANGED",
                Verdict::StartupFailed => "STARTUP-FAILED",
                Verdict::BuildFailed => "BUILD-FAILED",
                Verdict::Error => "ERROR",
                Verdict::NotTried => "not tried",
            })
    };
    let widths: Vec<usize> = report
        .scenarios
        .iter()
        .map(|name| {
            let widest_mark = report
                .cells
                .iter()
                .map(|cell| mark(cell, name).len())
                .max()
                .unwrap_or(0);
            name.chars().count().max(widest_mark)
        })
        .collect();
    let mut line = format!("{:name_width$}", "cell");
    for (name, width) in report.scenarios.iter().zip(&widths) {
        let _ = write!(line, "  {name:width$}");
    }
    let _ = writeln!(out, "{}", line.trim_end());
    for cell in &report.cells {
        let mut line = format!("{:name_width$}", cell.name);
        for (name, width) in report.scenarios.iter().zip(&widths) {
            let _ = write!(line, "  {:width$}", mark(cell, name));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn footer(report: &Report, out: &mut String) {
    for skipped in &report.skipped {
        let _ = writeln!(out, "skipped: {skipped}");
    }
    let envs: Vec<_> = report
        .cells
        .iter()
        .filter_map(|cell| cell.environment.as_ref())
        .collect();
    let resolved_reused = envs.iter().filter(|env| env.resolution_reused).count();
    let built_reused = envs.iter().filter(|env| env.build_reused).count();
    let _ = writeln!(
        out,
        "environments: {built_reused} of {} reused, {} built; resolutions: {resolved_reused} of {} reused from cache",
        envs.len(),
        envs.len() - built_reused,
        envs.len()
    );
    let reused = report
        .cells
        .iter()
        .filter(|cell| cell.result_reused)
        .count();
    if reused > 0 {
        let _ = writeln!(
            out,
            "results: {reused} of {} cells reused from a recorded run with the same inputs (--no-cache runs them again)",
            report.cells.len()
        );
    }
    for (package, cells) in report.built_from_source() {
        let _ = writeln!(
            out,
            "built from source (its build code ran; --no-build refuses it): {package} in {}",
            cells.join(", ")
        );
    }
    for (requirement, cells) in report.raised_requirements() {
        let _ = writeln!(
            out,
            "requirement raised to allow the version (in a scratch copy): {requirement}, for {}",
            cells.join(", ")
        );
    }
    for (cell, why) in report.moves_not_held() {
        let _ = writeln!(out, "nearest moves not held in {cell}: {why}");
    }
    for cell in report
        .cells
        .iter()
        .filter(|cell| !cell.new_output.is_empty())
    {
        let more = match cell.new_output.len() - 1 {
            0 => String::new(),
            more => format!(" (and {more} more in report.json)"),
        };
        let _ = writeln!(
            out,
            "new output in {}, not judged: {}{more}",
            cell.name, cell.new_output[0]
        );
    }
    for noise in report
        .nondeterministic
        .iter()
        .filter(|noise| !noise.fields.is_empty())
    {
        let _ = writeln!(
            out,
            "nondeterministic in {} — to make it deterministic, add to the config:\n{}",
            noise.scenario,
            noise.suggestion.trim_end()
        );
    }
    let program = report.run.program();
    for path in &report.pending_snapshots {
        let _ = writeln!(
            out,
            "pending snapshot: {path} (review with `{program} review`, or accept it with `{program} accept`)"
        );
    }
    for path in &report.accepted_snapshots {
        let _ = writeln!(out, "accepted snapshot: {path}");
    }
    let _ = writeln!(
        out,
        "finished in {:.1}s",
        report.duration_ms as f64 / 1000.0
    );
}

fn indented(out: &mut String, text: &str, max_lines: usize) {
    let lines: Vec<&str> = text.lines().collect();
    for line in lines.iter().take(max_lines) {
        let _ = writeln!(out, "    {line}");
    }
    if lines.len() > max_lines {
        let _ = writeln!(
            out,
            "    … {} more lines in report.json",
            lines.len() - max_lines
        );
    }
}
