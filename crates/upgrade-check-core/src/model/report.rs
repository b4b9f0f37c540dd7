//! The result model every report format is rendered from.
//!
//! `Report` → cells → scenarios, each with a verdict and the evidence for it
//! (diff, step failure, log tail). Renderers read this and nothing else; it
//! depends on nothing above the model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::findings::{Exploration, Interaction, NewestSafe, Noise, VersionChange};

/// How a check ends, as its exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: every cell matches.
    Pass,
    /// 1: a regression (or, in bisect, a first bad version found).
    Regression,
    /// 2: the harness could not do its job: bad input, a missing tool, its own failure.
    HarnessFailed,
    /// 130: a signal stopped it.
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Pass => 0,
            ExitStatus::Regression => 1,
            ExitStatus::HarnessFailed => 2,
            ExitStatus::Interrupted => 130,
        }
    }
}

/// Bumped whenever a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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
    pub interactions: Vec<Interaction>,
    /// Per package tried alone: the newest version that passes, bisected
    /// when the newest tried fails.
    #[serde(default)]
    pub newest_safe: Vec<NewestSafe>,
    /// Set on one shard's partial result: which shard, and the whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// What differed between the baseline's two runs of a scenario.
    #[serde(default)]
    pub nondeterministic: Vec<Noise>,
    /// Why the run stopped once the baseline was judged (it cannot be
    /// built, does not start, or fails every scenario unhealthy): nothing
    /// can be compared with it, so every other cell is not tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_after_baseline: Option<String>,
    /// Cells in the plan, finished or not.
    pub planned_cells: usize,
    pub duration_ms: u64,
    /// What was compared, with what, and how to run it again.
    #[serde(default)]
    pub run: RunInfo,
    /// Pull-request mode: snapshots the change edits that no cell answers
    /// as; each says which and why. Any fails the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexplained_snapshots: Vec<String>,
    /// `explore`: the variants tried and what they found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exploration: Option<Exploration>,
}

/// The facts about a check a reviewer needs to trust it and to run it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunInfo {
    /// When the check started, UTC (RFC 3339).
    pub started_at: String,
    /// What resolved and built the environments (`uv 0.9.2 and Python 3.11.7`, or cargo's version).
    pub toolchain: String,
    /// Pull-request mode: the ref whose baseline file is the baseline, and its commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_commit: Option<String>,
    /// The commit the service's working tree is at, when it is in a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// A command that runs the same check in a checkout of the repository.
    pub reproduce: String,
    /// How the tool was run: `upgrade-check`, or `cargo xtask upgrade-check`
    /// in a repository that builds it; hints name commands the same way.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub invoked_as: String,
    /// How the services started: forked from a preloaded interpreter, or
    /// cold (and why).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_start: String,
    /// How the baseline was checked for noise: replayed twice, or taken
    /// from its recorded run of the same inputs; empty when not checked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub noise_check: String,
}

impl RunInfo {
    /// The command that runs the tool, for hints.
    pub fn program(&self) -> &str {
        if self.invoked_as.is_empty() {
            "upgrade-check"
        } else {
            &self.invoked_as
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Output lines of no warning kind the baseline never prints (a changed
    /// startup banner, a config line naming another database): shown, never
    /// judged, since only answers decide a verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_output: Vec<String>,
    pub environment: Option<EnvironmentReport>,
    /// Requirements raised to allow the version before the build failed (a cell
    /// that built says them in its environment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unbuilt_raised: Vec<String>,
    pub scenarios: Vec<ScenarioReport>,
    pub duration_ms: u64,
    /// Taken from a recorded run whose inputs were all the same; not run again.
    #[serde(default)]
    pub result_reused: bool,
}

/// One scenario run's time: starting the service until it answered healthy
/// (or, in a startup scenario, until it refused to start), then replaying
/// the requests.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Timing {
    /// The config's setup commands, before the service started.
    #[serde(default)]
    pub setup_ms: u64,
    /// Taking the run's fresh PostgreSQL database (made ahead, or made then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_ms: Option<u64>,
    /// That database was made ahead of the run, not when it asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub database_made_ahead: bool,
    pub startup_ms: u64,
    pub replay_ms: u64,
    pub requests: usize,
    /// The service was forked from a preloaded interpreter, not started cold.
    #[serde(default)]
    pub preloaded: bool,
    /// The harness's own work around the service in this run.
    #[serde(default)]
    pub harness: HarnessWork,
}

/// What a scenario run spent outside the service's start-up and requests,
/// phase by phase: where a run's time goes beyond the floor.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct HarnessWork {
    /// Copying the service's source for the run, and removing the copy after.
    pub copy_ms: u64,
    /// Waiting for the cell's preloader to import its libraries (its first forked runs).
    pub preloader_ms: u64,
    /// Stopping the service (SIGTERM, its exit) and looking for processes it left.
    pub stop_ms: u64,
    /// Reading the log, normalising the answers and comparing them with the snapshot.
    pub judge_ms: u64,
    /// The baseline's other replays of this scenario, which check it for
    /// noise and forked starts against cold ones: their whole time.
    pub check_ms: u64,
    /// All the run held its service slot for, the service's own time included.
    pub slot_ms: u64,
}

/// Which part of a plan a partial result holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShardInfo {
    /// 1-based, as `--shard K/N` says it.
    pub index: usize,
    pub count: usize,
    /// Every cell id of the whole plan, in plan order.
    pub plan: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Cargo: `name "old" → "new" in Cargo.toml` for each requirement raised
    /// so that a major bump could be built, as Dependabot raises it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raised_requirements: Vec<String>,
    /// Why the cached environment was built again: what had changed in it
    /// since it was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt: Option<String>,
    /// Python: why the nearest versions of the packages a pin released could
    /// not be held, when the newest that fit were used instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moves_not_held: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    /// Pull-request mode: answers as the snapshot this change edits says,
    /// where the base's snapshot says otherwise: a change the pull request
    /// accepts, passing, shown for review.
    Accepted,
    Changed,
    StartupFailed,
    BuildFailed,
    /// The harness itself failed; nothing is known about the service.
    Error,
    /// The cell could not be made as it is named: its resolved set does not
    /// hold the version it is named for (the resolver kept another). Never a
    /// regression and never a pass; the summary says why.
    NotTried,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Accepted => "accepted",
            Verdict::Changed => "changed",
            Verdict::StartupFailed => "startup-failed",
            Verdict::BuildFailed => "build-failed",
            Verdict::Error => "error",
            Verdict::NotTried => "not-tried",
        }
    }

    /// A failure to blame on the cell: neither a pass nor a cell that was
    /// never tried.
    pub fn fails(self) -> bool {
        !self.passes() && self != Verdict::NotTried
    }

    /// Pass, or a change the pull request accepts: nothing to fail on.
    pub fn passes(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Accepted)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The service's other output lines, each once, with numbers masked
    /// (times, ports, counts): what the service says besides its answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
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

impl ScenarioReport {
    /// How a scenario fails, said so that one break seen at two versions is
    /// said the same way: its verdict, the step of the first difference and
    /// what it became (a status, no response, the body, a header), without the
    /// versions, line numbers and values that differ between releases.
    pub fn how_it_fails(&self) -> String {
        let summary = self.summary.as_deref().unwrap_or_default();
        let (step, rest) = match summary
            .strip_prefix("step `")
            .and_then(|rest| rest.split_once('`'))
        {
            Some((step, rest)) => (step, rest),
            None => ("", summary),
        };
        let status_after = rest
            .split_once(" → ")
            .map(|(_, after)| after.trim_start())
            .filter(|after| {
                after.len() >= 3 && after.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            })
            .map(|after| &after[..3]);
        let how = if rest.contains("no response") {
            "no response".to_owned()
        } else if let Some(status) = status_after {
            format!("→ {status}")
        } else if rest.contains("body differs") {
            "body".to_owned()
        } else {
            rest.chars()
                .filter(|c| !c.is_ascii_digit())
                .take_while(|&c| c != '(')
                .collect()
        };
        let at = if step.is_empty() {
            String::new()
        } else {
            format!(" at `{step}`")
        };
        format!(
            "{}{at}: {}",
            self.verdict.label(),
            how.trim_start_matches(": ").trim_end()
        )
    }

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
            output: Vec::new(),
            same_as_baseline: false,
            leaks: Vec::new(),
            timing: None,
            unhealthy: Vec::new(),
            alternative: None,
        }
    }

    /// Counts `other`, one of the baseline's check replays of this
    /// scenario, in this run's harness work.
    pub fn add_check(&mut self, other: &ScenarioReport) {
        if let (Some(timing), Some(other)) = (self.timing.as_mut(), other.timing) {
            timing.harness.check_ms += other.harness.slot_ms;
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

    /// Each requirement raised to allow a version, with the cells that raised it.
    pub fn raised_requirements(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut raised: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for cell in &self.cells {
            for requirement in cell
                .environment
                .iter()
                .flat_map(|env| &env.raised_requirements)
                .chain(&cell.unbuilt_raised)
            {
                raised.entry(requirement).or_default().push(&cell.name);
            }
        }
        raised
    }

    /// Cells whose released packages moved to the newest versions that fit,
    /// not the nearest, with why.
    pub fn moves_not_held(&self) -> Vec<(&str, &str)> {
        self.cells
            .iter()
            .filter_map(|cell| {
                let why = cell.environment.as_ref()?.moves_not_held.as_deref()?;
                Some((cell.name.as_str(), why))
            })
            .collect()
    }

    /// Some cell prints warnings the baseline does not: a soft finding.
    pub fn has_new_warnings(&self) -> bool {
        self.cells.iter().any(|cell| !cell.new_warnings.is_empty())
    }

    /// What the verdicts add up to: the harness's own error first, then any
    /// regression.
    pub fn status(&self) -> ExitStatus {
        let verdicts = || {
            self.cells
                .iter()
                .flat_map(|cell| cell.scenarios.iter().map(|s| s.verdict))
        };
        if verdicts().any(|verdict| verdict == Verdict::Error) {
            ExitStatus::HarnessFailed
        } else if verdicts().any(Verdict::fails) || !self.unexplained_snapshots.is_empty() {
            ExitStatus::Regression
        } else {
            ExitStatus::Pass
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
            .filter(|scenario| scenario.verdict.fails())
    }

    /// Why the cell was not tried, when it was not (every scenario says so).
    pub fn not_tried(&self) -> Option<&str> {
        let first = self.scenarios.first()?;
        (first.verdict == Verdict::NotTried).then(|| first.summary.as_deref().unwrap_or(""))
    }

    /// Changes this cell shows that the pull request accepts.
    pub fn accepted(&self) -> impl Iterator<Item = &ScenarioReport> {
        self.scenarios
            .iter()
            .filter(|scenario| scenario.verdict == Verdict::Accepted)
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

/// report.json's JSON Schema, as the model makes it (doc comments become
/// descriptions): published as `docs/report.schema.json` for the tools that
/// read the report, and kept equal to the model by a test.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).expect("a schema is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_schema_is_the_one_the_model_makes() {
        let published =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.schema.json");
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&published).unwrap()).unwrap();
        assert!(
            written == schema(),
            "docs/report.schema.json is not what the model makes: run `cargo xtask schema`"
        );
        // The verdicts a reader switches on are all in it.
        let verdicts = schema()["$defs"]["Verdict"].to_string();
        for verdict in [
            "pass",
            "changed",
            "startup-failed",
            "build-failed",
            "not-tried",
        ] {
            assert!(verdicts.contains(verdict), "{verdict}: {verdicts}");
        }
    }

    fn failing(verdict: Verdict, summary: &str) -> ScenarioReport {
        let mut scenario = ScenarioReport::new("login".to_owned(), verdict);
        scenario.summary = Some(summary.to_owned());
        scenario
    }

    #[test]
    fn one_break_at_two_versions_fails_the_same_way_and_two_breaks_do_not() {
        let panic = |version: &str| {
            failing(
                Verdict::Changed,
                &format!(
                    "step `good password` (scenarios/login.toml:17): no response: connection closed; the service panicked: no CryptoProvider (in the dependency jsonwebtoken-{version}: src/crypto/mod.rs:124:40)"
                ),
            )
        };
        assert_eq!(
            panic("10.3.0").how_it_fails(),
            panic("10.4.0").how_it_fails()
        );
        assert_eq!(
            panic("10.3.0").how_it_fails(),
            "changed at `good password`: no response"
        );
        let refused = failing(
            Verdict::Changed,
            "step `me with the token`: 200 OK → 401 Unauthorized",
        );
        assert_eq!(
            refused.how_it_fails(),
            "changed at `me with the token`: → 401"
        );
        let crashed = failing(
            Verdict::Changed,
            "step `me with the token`: 200 OK → 500 Internal Server Error",
        );
        assert_ne!(refused.how_it_fails(), crashed.how_it_fails());
        let body = failing(
            Verdict::Changed,
            "step `me with the token`: the body differs (`\"a\"` → `\"b\"`)",
        );
        assert_eq!(body.how_it_fails(), "changed at `me with the token`: body");
        let unbuilt = failing(
            Verdict::BuildFailed,
            "cargo build with jsonwebtoken \"8.3.0\" → \"=10.0.0\" in Cargo.toml: error: at least one feature (in the dependency jsonwebtoken-10.0.0: src/lib.rs:12:1)",
        );
        assert_eq!(
            unbuilt.how_it_fails(),
            failing(
                Verdict::BuildFailed,
                &unbuilt.summary.clone().unwrap().replace("10.0.0", "10.2.0")
            )
            .how_it_fails()
        );
    }
}
