//! Renders the result model (`model::report`) for people and machines:
//! the terminal summary, report.json, junit.xml, report.md (the PR comment)
//! and report.html; merges shards' partial results; compares two cells.

pub mod bisect;
pub mod cell_diff;
pub(crate) mod exploration;
pub mod headline;
pub mod html;
pub(crate) mod junit;
pub(crate) mod markdown;
pub mod merge;
pub mod terminal;

use std::path::{Path, PathBuf};

pub(crate) use crate::model::report::{CellReport, Report, ScenarioReport, Verdict};

/// Writes every machine format into `dir`: report.json, junit.xml, report.md, report.html.
///
/// Each file is written whole or not at all.
pub fn write_all(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // JSON escapes control characters itself; the others are read by
    // people, in a terminal or a pull request's comment.
    let shown = |text: String| crate::sys::redact::visible(&text).into_owned();
    let files = [
        ("report.json", serde_json::to_string_pretty(report)?),
        ("junit.xml", shown(junit::render(report)?)),
        ("report.md", shown(markdown::render(report))),
        ("report.html", shown(html::render(report)?)),
    ];
    let mut written = Vec::new();
    for (name, contents) in files {
        let path = dir.join(name);
        crate::sys::state::write_atomic(&path, contents.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::findings::VersionChange;
    use crate::model::report::{RunInfo, SCHEMA_VERSION};

    /// A small result with one regression, one cell failing like the baseline, and a build failure.
    pub(crate) fn sample() -> Report {
        let pass = |name: &str| ScenarioReport::new(name.to_owned(), Verdict::Pass);
        let cell =
            |id: &str, name: &str, baseline: bool, scenarios: Vec<ScenarioReport>| CellReport {
                id: id.to_owned(),
                name: name.to_owned(),
                baseline,
                pins: Vec::new(),
                changes: Vec::new(),
                new_warnings: Vec::new(),
                new_output: Vec::new(),
                environment: None,
                unbuilt_raised: Vec::new(),
                scenarios,
                duration_ms: 0,
                result_reused: false,
            };
        let changed = ScenarioReport {
            summary: Some("step `register`: 201 Created → 500 Internal Server Error".to_owned()),
            diff: Some(
                "--- accepted\n+++ this run\n-< 201 Created\n+< 500 Internal Server Error\n"
                    .to_owned(),
            ),
            log_tail: Some("ValueError: password cannot be longer than 72 bytes".to_owned()),
            ..ScenarioReport::new("long-password".to_owned(), Verdict::Changed)
        };
        let mut bcrypt = cell(
            "bcrypt-5.0.0",
            "bcrypt 5.0.0",
            false,
            vec![pass("login"), changed],
        );
        bcrypt.changes.push(VersionChange {
            package: "bcrypt".to_owned(),
            before: Some("3.2.0".to_owned()),
            after: Some("5.0.0".to_owned()),
            transitive: false,
            forced_by: Vec::new(),
        });
        let built = ScenarioReport {
            summary: Some("no version of bcrypt==99.0.0".to_owned()),
            ..ScenarioReport::new("login".to_owned(), Verdict::BuildFailed)
        };
        let unbuildable = cell(
            "bcrypt-99.0.0",
            "bcrypt 99.0.0",
            false,
            vec![
                built.clone(),
                ScenarioReport {
                    scenario: "long-password".to_owned(),
                    ..built
                },
            ],
        );
        Report {
            schema_version: SCHEMA_VERSION,
            config: "upgrade-check.toml".to_owned(),
            scenarios: vec!["login".to_owned(), "long-password".to_owned()],
            cells: vec![
                cell(
                    "baseline",
                    "baseline",
                    true,
                    vec![pass("login"), pass("long-password")],
                ),
                bcrypt,
                unbuildable,
            ],
            skipped: Vec::new(),
            pending_snapshots: Vec::new(),
            accepted_snapshots: Vec::new(),
            cancelled: None,
            interactions: Vec::new(),
            newest_safe: Vec::new(),
            shard: None,
            nondeterministic: Vec::new(),
            planned_cells: 3,
            duration_ms: 0,
            run: RunInfo {
                started_at: "2026-12-01T09:00:00Z".to_owned(),
                toolchain: "uv 0.9.2 and Python 3.11.7".to_owned(),
                since: Some("origin/main".to_owned()),
                since_commit: Some("1a2b3c4".to_owned()),
                commit: Some("5d6e7f8".to_owned()),
                reproduce: "upgrade-check --since origin/main".to_owned(),
                invoked_as: "cargo xtask upgrade-check".to_owned(),
                service_start: String::new(),
                noise_check: String::new(),
            },
            unexplained_snapshots: Vec::new(),
            exploration: None,
            stopped_after_baseline: None,
        }
    }

    #[test]
    fn markdown_comment() {
        insta::assert_snapshot!(markdown::render(&sample()));
    }

    #[test]
    fn junit_xml() {
        insta::assert_snapshot!(junit::render(&sample()).unwrap());
    }

    #[test]
    fn terminal_summary() {
        insta::assert_snapshot!(terminal::render(&sample()));
    }

    #[test]
    fn a_comment_too_long_is_cut_with_a_note() {
        let mut report = sample();
        let huge = "+< x\n".repeat(5_000);
        report.cells[1].scenarios[1].diff = Some(huge);
        let comment = markdown::render_within(&report, 4_000);
        assert!(comment.len() <= 4_000, "{}", comment.len());
        assert!(
            comment.contains("more sections cut to fit a comment"),
            "{comment}"
        );
        assert!(
            comment.starts_with("## upgrade-check\n\n✗ "),
            "the verdict comes first"
        );
    }

    #[test]
    fn a_run_of_the_baseline_alone_says_so() {
        let mut report = sample();
        report.cells.truncate(1);
        report.cells[0]
            .scenarios
            .retain(|s| s.verdict == Verdict::Pass);
        assert!(report.cells[0].baseline);
        assert_eq!(
            headline::headline(&report).lines().next(),
            Some("✓ the baseline matches the accepted snapshots")
        );
    }

    #[test]
    fn a_scenario_with_no_accepted_snapshot_is_said_once_and_blames_no_upgrade() {
        let mut report = sample();
        report.cells.truncate(2);
        let unaccepted = ScenarioReport {
            summary: Some(format!(
                "{} snapshots/accounts.snap; review the pending one or run with --accept",
                crate::judge::verdict::NO_SNAPSHOT
            )),
            ..ScenarioReport::new("accounts".to_owned(), Verdict::Changed)
        };
        for cell in &mut report.cells {
            cell.scenarios = vec![
                ScenarioReport::new("login".to_owned(), Verdict::Pass),
                unaccepted.clone(),
            ];
        }
        let headline = headline::headline(&report);
        assert_eq!(
            headline,
            "✗ accounts has no accepted snapshot yet: review what the baseline answered (`upgrade-check review`) and accept it, or run with --accept"
        );
        // A real break beside it is still said.
        report.cells[1].scenarios[0] = ScenarioReport {
            summary: Some("step `login`: 200 OK → 500 Internal Server Error".to_owned()),
            ..ScenarioReport::new("login".to_owned(), Verdict::Changed)
        };
        let headline = headline::headline(&report);
        assert!(
            headline.contains("\n✗ bcrypt 5.0.0 breaks login")
                && !headline.contains("does not match"),
            "{headline}"
        );
    }

    #[test]
    fn a_run_stopped_after_a_broken_baseline_says_why_once() {
        let mut report = sample();
        let why = "does not start in `health` — RuntimeError: DATABASE_URL is not set";
        for cell in report.cells.iter_mut().filter(|cell| !cell.baseline) {
            for scenario in &mut cell.scenarios {
                *scenario = ScenarioReport {
                    summary: Some(format!("not run: the baseline {why}")),
                    ..ScenarioReport::new(scenario.scenario.clone(), Verdict::NotTried)
                };
            }
        }
        report.cells[0].scenarios[0].verdict = Verdict::StartupFailed;
        report.stopped_after_baseline = Some(why.to_owned());
        let others = report.cells.len() - 1;
        assert_eq!(
            headline::headline(&report),
            format!(
                "✗ the baseline {why}\n  {others} other cells not run: nothing can be compared with a broken baseline; fix the service first (--keep-going runs them anyway)"
            )
        );
    }

    #[test]
    fn a_cancelled_run_says_nothing_of_cells_that_did_not_run() {
        let mut report = sample();
        report.cells.clear();
        report.planned_cells = 6;
        report.cancelled = Some("SIGINT".to_owned());
        let headline = headline::headline(&report);
        assert_eq!(
            headline,
            "✗ cancelled by SIGINT after 0 of 6 cells: the table shows only what finished; no snapshot was written"
        );
        report.planned_cells = 1;
        assert!(headline::headline(&report).contains("after 0 of 1 cell:"));
    }

    #[test]
    fn a_cell_not_tried_is_said_and_neither_fails_nor_passes_the_run() {
        let mut report = sample();
        report.cells.truncate(1);
        let why = "its resolution holds socket2 0.4.10, not 0.6.5: the resolver could not give this cell the version it is named for";
        let not_tried = ScenarioReport {
            summary: Some(why.to_owned()),
            ..ScenarioReport::new("login".to_owned(), Verdict::NotTried)
        };
        let mut cell = report.cells[0].clone();
        cell.baseline = false;
        cell.name = "socket2 0.6.5".to_owned();
        cell.scenarios = vec![
            not_tried.clone(),
            ScenarioReport {
                scenario: "long-password".to_owned(),
                ..not_tried
            },
        ];
        report.cells.push(cell);
        assert_eq!(
            report.status(),
            crate::model::report::ExitStatus::Pass,
            "never a regression"
        );
        assert!(report.cells[1].failures().next().is_none());
        let headline = headline::headline(&report);
        assert!(headline.starts_with("✓ all 1 cells match"), "{headline}");
        assert!(
            headline.contains(&format!("  – socket2 0.6.5 not tried: {why}")),
            "{headline}"
        );
        assert!(terminal::render(&report).contains("not tried"));
        assert!(markdown::render(&report).contains("➖ not tried"));
        let junit = junit::render(&report).unwrap();
        assert!(
            junit.contains("<skipped message=\"its resolution holds socket2"),
            "{junit}"
        );
    }

    #[test]
    fn nearest_moves_not_held_are_said_in_every_format() {
        let mut report = sample();
        let why = "the nearest versions could not be resolved (greenlet==0.1 does not build); the newest that fit were used";
        report.cells[1].environment = Some(crate::model::report::EnvironmentReport {
            id: "0123456789abcdef".to_owned(),
            resolution_reused: false,
            build_reused: false,
            hash_checked: false,
            built_from_source: Vec::new(),
            raised_requirements: Vec::new(),
            rebuilt: None,
            moves_not_held: Some(why.to_owned()),
        });
        assert!(
            terminal::render(&report)
                .contains(&format!("nearest moves not held in bcrypt 5.0.0: {why}"))
        );
        assert!(markdown::render(&report).contains("Nearest moves not held in bcrypt 5.0.0"));
        assert!(
            junit::render(&report)
                .unwrap()
                .contains("nearest moves not held: the nearest versions")
        );
        assert!(
            serde_json::to_string(&report)
                .unwrap()
                .contains("\"moves_not_held\"")
        );
        assert!(
            html::render(&report)
                .unwrap()
                .contains("nearest moves not held: ")
        );
    }

    #[test]
    fn json_round_trips() {
        let report = sample();
        let text = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}
