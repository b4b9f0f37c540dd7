//! The result model every report format is rendered from.
//!
//! `Report` → cells → scenarios, each with a verdict and the evidence for it
//! (diff, step failure, log tail). Renderers read this and nothing else.

pub mod headline;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod terminal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::VersionChange;

/// Bumped whenever a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// The config file the run read.
    pub config: String,
    /// Scenario names, in column order.
    pub scenarios: Vec<String>,
    /// Baseline first.
    pub cells: Vec<CellReport>,
    /// Candidates that add no cell, with why (e.g. equal to the baseline pin).
    pub skipped: Vec<String>,
    /// `.snap.new` files written for review by this run.
    pub pending_snapshots: Vec<String>,
    /// Snapshots rewritten by `--accept`.
    pub accepted_snapshots: Vec<String>,
    /// The signal that stopped the run; `cells` then holds only the cells that finished.
    pub cancelled: Option<String>,
    /// Pins that break scenarios only together, isolated from multi-pin cells.
    #[serde(default)]
    pub interactions: Vec<crate::interaction::Interaction>,
    /// Per package tried alone: the newest version that passes, bisected
    /// when the newest tried fails.
    #[serde(default)]
    pub newest_safe: Vec<crate::bisect::NewestSafe>,
    /// Set on one shard's partial result: which shard, and the whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// What differed between the baseline's two runs of a scenario.
    #[serde(default)]
    pub nondeterministic: Vec<crate::noise::Noise>,
    /// Cells in the plan, finished or not.
    pub planned_cells: usize,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellReport {
    pub id: String,
    /// `baseline`, or the pins that differ from it.
    pub name: String,
    pub baseline: bool,
    /// `package==version` for each pin forced on the baseline.
    pub pins: Vec<String>,
    /// Every package whose version differs from the baseline's resolved set.
    pub changes: Vec<VersionChange>,
    /// Warning and error lines this cell's service prints that the baseline's does not;
    /// an early signal, not a failure.
    pub new_warnings: Vec<String>,
    pub environment: Option<EnvironmentReport>,
    pub scenarios: Vec<ScenarioReport>,
    pub duration_ms: u64,
    /// Taken from a recorded run whose inputs were all the same; not run again.
    #[serde(default)]
    pub result_reused: bool,
}

/// One scenario run's time: starting the service until it answered healthy
/// (or, in a startup scenario, until it refused to start), then replaying
/// the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// The config's setup commands, before the service started.
    #[serde(default)]
    pub setup_ms: u64,
    pub startup_ms: u64,
    pub replay_ms: u64,
    pub requests: usize,
}

/// Which part of a plan a partial result holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// 1-based, as `--shard K/N` says it.
    pub index: usize,
    pub count: usize,
    /// Every cell id of the whole plan, in plan order.
    pub plan: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentReport {
    /// Content hash of interpreter and resolved set; cells that share it share the environment.
    pub id: String,
    /// The resolution came from the cache: uv's resolver did not run.
    pub resolution_reused: bool,
    /// The environment existed already: nothing was downloaded or installed.
    pub build_reused: bool,
    /// Every download was checked against the digests the requirements declare.
    #[serde(default)]
    pub hash_checked: bool,
    /// `name version` of each package built from a source distribution: its
    /// build code ran on the machine (refuse with `--no-build`).
    #[serde(default)]
    pub built_from_source: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Changed,
    StartupFailed,
    BuildFailed,
    /// The harness itself failed; nothing is known about the service.
    Error,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Changed => "changed",
            Verdict::StartupFailed => "startup-failed",
            Verdict::BuildFailed => "build-failed",
            Verdict::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub verdict: Verdict,
    /// One line saying why, for anything but a pass.
    pub summary: Option<String>,
    /// Unified diff, accepted snapshot (`-`) against this run (`+`).
    pub diff: Option<String>,
    /// Last lines of the service's output (or the build tool's), secrets redacted.
    pub log_tail: Option<String>,
    /// The service process this scenario ran against, if one started.
    pub service_pid: Option<u32>,
    /// The loopback port it was given.
    pub service_port: Option<u16>,
    /// A security finding: a scenario marked `security` now starts or answers
    /// 2xx where the accepted snapshot has the service refuse.
    pub security: bool,

    /// Lines of the service's output that look like warnings or errors, normalised.
    pub warnings: Vec<String>,
    /// Not passing, exactly as the baseline does not: this cell is not to blame.
    pub same_as_baseline: bool,
    /// Processes the service started that escaped its process group and
    /// outlived it (the harness killed them).
    pub leaks: Vec<String>,
    /// Where the time went, when the service was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// The baseline's own trouble in this scenario (a step that answers 5xx,
    /// a traceback or panic in its log): a reference no upgrade should be
    /// judged against unawares, and that `--accept` takes only when told to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unhealthy: Vec<String>,
    /// Passed by matching an alternative accepted for this cell's versions
    /// (`accept --cell`), not the baseline's snapshot: which one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
}

/// Writes every machine format into `dir`: report.json, junit.xml, report.md, report.html.
///
/// Each file is written whole or not at all.
pub fn write_all(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let files = [
        ("report.json", serde_json::to_string_pretty(report)?),
        ("junit.xml", junit::render(report)?),
        ("report.md", markdown::render(report)),
        ("report.html", html::render(report)?),
    ];
    let mut written = Vec::new();
    for (name, contents) in files {
        let path = dir.join(name);
        crate::state::write_atomic(&path, contents.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

impl ScenarioReport {
    /// A scenario with only its verdict; whoever judges it adds the evidence.
    pub fn new(scenario: String, verdict: Verdict) -> ScenarioReport {
        ScenarioReport {
            scenario,
            verdict,
            summary: None,
            diff: None,
            log_tail: None,
            service_pid: None,
            service_port: None,
            security: false,
            warnings: Vec::new(),
            same_as_baseline: false,
            leaks: Vec::new(),
            timing: None,
            unhealthy: Vec::new(),
            alternative: None,
        }
    }
}

impl Report {
    /// Each package built from source, with the cells whose environment built it.
    pub fn built_from_source(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut built: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for cell in &self.cells {
            for package in cell
                .environment
                .iter()
                .flat_map(|env| &env.built_from_source)
            {
                built.entry(package).or_default().push(&cell.name);
            }
        }
        built
    }

    /// 0 all pass, 1 a regression, 2 the harness failed somewhere.
    /// Some cell prints warnings the baseline does not: a soft finding.
    pub fn has_new_warnings(&self) -> bool {
        self.cells.iter().any(|cell| !cell.new_warnings.is_empty())
    }

    pub fn exit_code(&self) -> i32 {
        let verdicts = || {
            self.cells
                .iter()
                .flat_map(|cell| cell.scenarios.iter().map(|s| s.verdict))
        };
        if verdicts().any(|verdict| verdict == Verdict::Error) {
            2
        } else if verdicts().any(|verdict| verdict != Verdict::Pass) {
            1
        } else {
            0
        }
    }

    pub fn baseline(&self) -> Option<&CellReport> {
        self.cells.iter().find(|cell| cell.baseline)
    }
}

impl CellReport {
    pub fn failures(&self) -> impl Iterator<Item = &ScenarioReport> {
        self.scenarios
            .iter()
            .filter(|scenario| scenario.verdict != Verdict::Pass)
    }

    /// The names of the scenarios this cell does not pass.
    pub fn failing(&self) -> std::collections::BTreeSet<String> {
        self.failures()
            .map(|scenario| scenario.scenario.clone())
            .collect()
    }

    /// Failures this cell adds to the baseline's: the ones to blame it for.
    pub fn regressions(&self) -> impl Iterator<Item = &ScenarioReport> {
        self.failures()
            .filter(|scenario| !scenario.same_as_baseline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small result with one regression, one cell failing like the baseline, and a build failure.
    fn sample() -> Report {
        let pass = |name: &str| ScenarioReport::new(name.to_owned(), Verdict::Pass);
        let cell =
            |id: &str, name: &str, baseline: bool, scenarios: Vec<ScenarioReport>| CellReport {
                id: id.to_owned(),
                name: name.to_owned(),
                baseline,
                pins: Vec::new(),
                changes: Vec::new(),
                new_warnings: Vec::new(),
                environment: None,
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
    fn json_round_trips() {
        let report = sample();
        let text = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}
