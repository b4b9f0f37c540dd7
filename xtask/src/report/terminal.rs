//! The terminal summary: a verdict line, the matrix as a table, then each failure's evidence.

use std::fmt::Write as _;

use super::{CellReport, Report, ScenarioReport, Verdict};

/// Lines of a diff or log shown per failure before cutting.
const MAX_DIFF_LINES: usize = 60;
const MAX_LOG_LINES: usize = 12;

pub fn render(report: &Report) -> String {
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
    out.push('\n');
    footer(report, &mut out);
    out
}

/// The one failure that stands for all of a cell's scenarios, when they fail alike.
///
/// That is a cell that cannot be built, or one that does not start: its
/// scenarios failed to start, and those that record their startup now
/// record a refusal.
fn whole_cell_failure(cell: &CellReport) -> Option<&ScenarioReport> {
    let first = cell.scenarios.first()?;
    let alike = |s: &ScenarioReport| s.verdict == first.verdict && s.summary == first.summary;
    if matches!(first.verdict, Verdict::BuildFailed | Verdict::Error)
        && cell.scenarios.iter().all(alike)
    {
        return Some(first);
    }
    let startup = cell
        .scenarios
        .iter()
        .find(|s| s.verdict == Verdict::StartupFailed)?;
    let refused = |s: &ScenarioReport| {
        s.verdict == Verdict::StartupFailed
            || (s.verdict == Verdict::Changed
                && s.summary.as_deref().is_some_and(|summary| {
                    summary.ends_with("→ refused") || summary.starts_with("still refused to start")
                }))
    };
    cell.scenarios.iter().all(refused).then_some(startup)
}

fn evidence(out: &mut String, cell: &CellReport, failure: &ScenarioReport) {
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

/// One sentence a reviewer can act on.
pub fn headline(report: &Report) -> String {
    let baseline_failing: Vec<String> = report
        .baseline()
        .into_iter()
        .flat_map(|cell| cell.failures())
        .map(|s| match (s.security, &s.summary) {
            (true, Some(summary)) => format!("SECURITY {}: {summary}", s.scenario),
            _ => s.scenario.clone(),
        })
        .collect();

    let broken: Vec<String> = report
        .cells
        .iter()
        .filter(|cell| !cell.baseline)
        .filter_map(|cell| {
            let failing: Vec<&ScenarioReport> = cell.regressions().collect();
            if failing.is_empty() {
                return None;
            }
            let security = if failing.iter().any(|s| s.security) {
                "SECURITY: "
            } else {
                ""
            };
            let names: Vec<&str> = failing.iter().map(|s| s.scenario.as_str()).collect();
            Some(
                match whole_cell_failure(cell).map(|failure| failure.verdict) {
                    Some(Verdict::BuildFailed) => {
                        format!("{} cannot be built{}", cell.name, reason(cell))
                    }
                    Some(Verdict::StartupFailed) => {
                        format!("{} does not start{}", cell.name, startup_reason(cell))
                    }
                    _ => format!(
                        "{security}{} breaks {}{}",
                        cell.name,
                        names.join(", "),
                        reason(cell)
                    ),
                },
            )
        })
        .collect();
    let mut lines = Vec::new();
    if let Some(signal) = &report.cancelled {
        lines.push(format!(
            "✗ cancelled by {signal} after {} of {} cells: the table shows only what finished; no snapshot was written",
            report.cells.len(),
            report.planned_cells
        ));
    }
    if !baseline_failing.is_empty() {
        lines.push(format!(
            "✗ the baseline itself does not match its accepted snapshots ({}): fix the service or accept its behaviour before blaming an upgrade",
            baseline_failing.join(", ")
        ));
    }
    if broken.len() == 1 {
        lines.push(format!("✗ {}", broken[0]));
    } else if !broken.is_empty() {
        lines.push(format!("✗ {} cells regress:", broken.len()));
        lines.extend(broken.iter().map(|line| format!("  - {line}")));
    } else if !baseline_failing.is_empty() {
        lines.push(
            "  no cell fails in any other way than the baseline: no upgrade is to blame".to_owned(),
        );
    } else {
        lines.push(format!(
            "✓ all {} cells match the accepted snapshots",
            report.cells.len()
        ));
    }
    lines.join("\n")
}

/// `: ImportError: …`: the last error line the service printed before it exited.
fn startup_reason(cell: &CellReport) -> String {
    let Some(failure) = whole_cell_failure(cell) else {
        return String::new();
    };
    let log = failure.log_tail.as_deref().unwrap_or("");
    let error = log
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.contains("Error") || line.contains("error"));
    match error.or(failure.summary.as_deref()) {
        Some(line) if line.chars().count() <= 160 => format!(": {line}"),
        _ => String::new(),
    }
}

/// `: 500 Internal Server Error` when every failure of the cell says the same.
fn reason(cell: &CellReport) -> String {
    let summaries: Vec<&str> = cell
        .regressions()
        .filter_map(|s| s.summary.as_deref())
        .collect();
    match summaries.first() {
        Some(first) if summaries.iter().all(|s| s == first) && first.len() <= 80 => {
            format!(": {first}")
        }
        _ => String::new(),
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
                Verdict::Changed => "CHANGED",
                Verdict::StartupFailed => "STARTUP-FAILED",
                Verdict::BuildFailed => "BUILD-FAILED",
                Verdict::Error => "ERROR",
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
    for path in &report.pending_snapshots {
        let _ = writeln!(
            out,
            "pending snapshot: {path} (review with `cargo insta review`, or accept the baseline with --accept)"
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
