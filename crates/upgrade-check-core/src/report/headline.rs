//! The verdict in one sentence: which cell broke what, or that all is well.
//!
//! Every renderer opens with it; it is computed here, once, from the result model.

use super::{CellReport, Report, ScenarioReport, Verdict};
use crate::model::event::plural;
use crate::model::findings::{Exploration, Finding};

/// Failed only for want of an accepted snapshot.
fn is_unaccepted(scenario: &ScenarioReport) -> bool {
    scenario
        .summary
        .as_deref()
        .is_some_and(|summary| summary.starts_with(crate::judge::verdict::NO_SNAPSHOT))
}

/// One sentence a reviewer can act on.
pub fn headline(report: &Report) -> String {
    match &report.exploration {
        Some(exploration) if !exploration.after_check => return exploration_headline(exploration),
        // Explored after the check: what it found is said under the check's verdict.
        Some(exploration) if !exploration.findings.is_empty() => {
            let check = Report {
                exploration: None,
                ..report.clone()
            };
            return format!(
                "{}\n{}",
                headline(&check),
                exploration_headline(exploration)
            );
        }
        _ => {}
    }
    // Scenarios with no accepted snapshot yet: nothing to compare with, in
    // any cell, until they are reviewed.
    let mut unaccepted: Vec<&str> = Vec::new();
    for scenario in report.cells.iter().flat_map(|cell| cell.failures()) {
        if is_unaccepted(scenario) && !unaccepted.contains(&scenario.scenario.as_str()) {
            unaccepted.push(&scenario.scenario);
        }
    }
    let baseline_failing: Vec<String> = report
        .baseline()
        .into_iter()
        .flat_map(|cell| cell.failures())
        .filter(|s| !is_unaccepted(s))
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
            let failing: Vec<&ScenarioReport> =
                cell.regressions().filter(|s| !is_unaccepted(s)).collect();
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
                        format!("{} cannot be built{}", cell.name, build_reason(cell))
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
    // Pull-request mode: what this change accepts, per cell.
    let accepted: Vec<String> = report
        .cells
        .iter()
        .filter_map(|cell| {
            let names: Vec<&str> = cell.accepted().map(|s| s.scenario.as_str()).collect();
            (!names.is_empty()).then(|| {
                format!(
                    "{} changes {}, accepted in this change",
                    cell.name,
                    names.join(", ")
                )
            })
        })
        .collect();
    let mut lines = Vec::new();
    for unexplained in &report.unexplained_snapshots {
        lines.push(format!("✗ {unexplained}"));
    }
    if let Some(signal) = &report.cancelled {
        lines.push(format!(
            "✗ cancelled by {signal} after {} of {}: the table shows only what finished; no snapshot was written",
            report.cells.len(),
            plural(report.planned_cells, "cell")
        ));
    }
    if !unaccepted.is_empty() {
        lines.push(format!(
            "✗ {} {} no accepted snapshot yet: review what the baseline answered (`upgrade-check review`) and accept it, or run with --accept",
            unaccepted.join(", "),
            if unaccepted.len() == 1 { "has" } else { "have" },
        ));
    }
    if let Some(why) = &report.stopped_after_baseline {
        let not_run = report.cells.iter().filter(|cell| !cell.baseline).count();
        lines.push(format!("✗ the baseline {why}"));
        lines.push(format!(
            "  {} not run: nothing can be compared with a broken baseline; fix the service first (--keep-going runs them anyway)",
            plural(not_run, "other cell")
        ));
    } else if !baseline_failing.is_empty() {
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
    } else if report.stopped_after_baseline.is_some() {
        // Nothing ran to blame or clear.
    } else if !baseline_failing.is_empty() {
        lines.push(
            "  no cell fails in any other way than the baseline: no upgrade is to blame".to_owned(),
        );
    } else if report.cancelled.is_some()
        || !report.unexplained_snapshots.is_empty()
        || !unaccepted.is_empty()
    {
        // What finished passed, but nothing can be said of what did not run.
    } else if let [only] = accepted.as_slice() {
        lines.push(format!("✓ {only}"));
    } else if !accepted.is_empty() {
        lines.push(format!(
            "✓ {} cells change what the service answers, accepted in this change:",
            accepted.len()
        ));
        lines.extend(accepted.iter().map(|line| format!("  - {line}")));
    } else if let [only] = report.cells.as_slice()
        && only.baseline
    {
        lines.push("✓ the baseline matches the accepted snapshots".to_owned());
    } else {
        let tried = report
            .cells
            .iter()
            .filter(|cell| cell.not_tried().is_none())
            .count();
        lines.push(format!("✓ all {tried} cells match the accepted snapshots"));
    }
    // Accepted changes beside failures: the first lines said the failures.
    if !broken.is_empty() || !baseline_failing.is_empty() || !unaccepted.is_empty() {
        lines.extend(accepted.iter().map(|line| format!("  ✓ {line}")));
    }
    // A cell that could not be made as named is neither a pass nor a break
    // (after a broken baseline, every one is, for the reason said above).
    for cell in report
        .cells
        .iter()
        .filter(|_| report.stopped_after_baseline.is_none())
    {
        if let Some(why) = cell.not_tried() {
            lines.push(format!("  – {} not tried: {why}", cell.name));
        }
    }
    // A baseline that answers 5xx or logs a traceback passes its snapshots
    // only because they were accepted that way: say so wherever it is read.
    for cell in report.cells.iter().filter(|cell| cell.baseline) {
        for scenario in cell.scenarios.iter().filter(|s| !s.unhealthy.is_empty()) {
            lines.push(format!(
                "  ⚠ the baseline is unhealthy in {}: {}",
                scenario.scenario,
                scenario.unhealthy.join("; ")
            ));
        }
    }
    // A pass through an alternative is a pass the reviewer should know of.
    for cell in &report.cells {
        for scenario in &cell.scenarios {
            if let Some(alternative) = &scenario.alternative {
                lines.push(format!(
                    "  ↳ {} · {}: matches the alternative accepted for {alternative}",
                    cell.name, scenario.scenario
                ));
            }
        }
    }
    // Cells that break are named above; their new output is the breakage.
    let warning: Vec<&str> = report
        .cells
        .iter()
        .filter(|cell| !cell.new_warnings.is_empty() && cell.regressions().next().is_none())
        .map(|cell| cell.name.as_str())
        .collect();
    if !warning.is_empty() {
        lines.push(format!(
            "  ⚠ new warnings (not a failure unless --deny-warnings): {}",
            warning.join(", ")
        ));
    }
    for safe in &report.newest_safe {
        match &safe.first_bad {
            Some(first_bad) if !safe.unknown_between.is_empty() => lines.push(format!(
                "  ↳ {}: newest safe version {}; first bad that builds {first_bad} (breaks {}; bisected with {} cells); could not be built before it: {}",
                safe.package,
                safe.newest_safe,
                safe.breaks.join(", "),
                safe.cells_run,
                safe.unknown_between.join(", ")
            )),
            Some(first_bad) => lines.push(format!(
                "  ↳ {}: newest safe version {}; first bad {first_bad} (breaks {}; bisected with {} cells)",
                safe.package,
                safe.newest_safe,
                safe.breaks.join(", "),
                safe.cells_run
            )),
            None if safe.newest_safe != safe.newest_tried => lines.push(format!(
                "  ↳ {}: newest safe version {}; the break lies in {} or {} (could not be built)",
                safe.package,
                safe.newest_safe,
                safe.unknown_between.join(", "),
                safe.newest_tried
            )),
            None => {}
        }
    }
    for noise in &report.nondeterministic {
        if !noise.fields.is_empty() {
            lines.push(format!(
                "  ⚠ {} differs between two baseline runs in {}: masked, never a regression (a redaction would make it deterministic)",
                noise.scenario,
                noise.fields.join(", ")
            ));
        }
        if noise.is_flaky() {
            lines.push(format!(
                "  ⚠ {} is flaky: two baseline runs differ beyond any field ({})",
                noise.scenario,
                noise.unexplained.first().map_or("", String::as_str)
            ));
        }
    }
    for interaction in &report.interactions {
        match interaction.pins.as_slice() {
            [alone] => lines.push(format!(
                "  ↳ isolated: {alone} alone breaks {} (found in `{}` with {} extra cells)",
                interaction.scenarios.join(", "),
                interaction.found_in,
                interaction.cells_run
            )),
            pins => lines.push(format!(
                "  ⚠ interaction: {} break {} together, and no fewer of them do (isolated from `{}` with {} extra cells)",
                pins.join(" + "),
                interaction.scenarios.join(", "),
                interaction.found_in,
                interaction.cells_run
            )),
        }
        for alone in &interaction.differently {
            lines.push(format!("    not the cause alone: {alone}"));
        }
    }
    lines.join("\n")
}

/// An exploration's sentence: what differs from the baseline, and where.
pub(crate) fn exploration_headline(exploration: &Exploration) -> String {
    let tried = format!(
        "{} of the recorded steps, {} requests per cell, seed {}",
        plural(exploration.variants, "variant"),
        exploration.requests,
        exploration.seed
    );
    let Some(worst) = exploration.findings.first() else {
        return format!("exploration: no variant answers otherwise than on the baseline ({tried})");
    };
    let mut cells: Vec<&str> = Vec::new();
    for cell in exploration.findings.iter().flat_map(|f| &f.cells) {
        if !cells.contains(&cell.as_str()) {
            cells.push(cell);
        }
    }
    format!(
        "exploration: {} from the baseline in {} — worst: {} ({tried})",
        plural(exploration.findings.len(), "difference"),
        cells.join(", "),
        finding_summary(worst)
    )
}

/// `crash at register's `new user` when /password: 73 bytes (201 Created → 500 …)`.
pub(crate) fn finding_summary(finding: &Finding) -> String {
    format!(
        "{} at {}'s `{}` when {} ({} → {})",
        finding.kind.label(),
        finding.from,
        finding.step,
        finding.mutation,
        finding.baseline,
        finding.answer
    )
}

/// The one failure that stands for all of a cell's scenarios, when they fail alike.
///
/// That is a cell that cannot be built, or one that does not start: its
/// scenarios failed to start, and those that record their startup now
/// record a refusal.
pub fn whole_cell_failure(cell: &CellReport) -> Option<&ScenarioReport> {
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
        // A panic says more than the step that got no answer.
        Some(first) => match first.split_once("the service panicked: ") {
            Some((_, panic)) => format!(": the service panicked: {}", shortened(panic, 80)),
            None => String::new(),
        },
        None => String::new(),
    }
}

/// Why a cell cannot be built: its short summary, or the compiler's first
/// error (with where it is) out of a long one.
fn build_reason(cell: &CellReport) -> String {
    let short = reason(cell);
    if !short.is_empty() {
        return short;
    }
    cell.regressions()
        .find_map(|s| s.summary.as_deref())
        .and_then(|summary| summary.split_once(": error"))
        .map(|(_, error)| format!(": {}", shortened(&format!("error{error}"), 120)))
        .unwrap_or_default()
}

/// `text` cut to at most `width` characters, at a word, with `…`.
fn shortened(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let cut: String = text.chars().take(width).collect();
    let at_word = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{at_word}…")
}
