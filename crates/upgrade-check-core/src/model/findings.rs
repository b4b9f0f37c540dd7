//! What a run finds besides verdicts: version moves, noise between the
//! baseline's replays, interactions and newest safe versions. Plain values,
//! so that the report's schema needs nothing above the model.

use serde::{Deserialize, Serialize};

/// A package whose version in a cell differs from the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VersionChange {
    pub package: String,
    /// `None`: not installed at baseline.
    pub before: Option<String>,
    /// `None`: not installed in the cell.
    pub after: Option<String>,
    /// Moved because something else was pinned, not pinned itself.
    pub transitive: bool,
    /// For a transitive move: the requirements that the baseline's version
    /// does not meet (`flask 2.3.3 requires werkzeug>=2.3.7`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced_by: Vec<String>,
}

impl std::fmt::Display for VersionChange {
    /// `bcrypt 3.2.0 → 5.0.0`, `cffi 1.17.1 removed`, `blinker 1.9.0 added`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (Some(before), Some(after)) => write!(f, "{} {before} → {after}", self.package)?,
            (Some(before), None) => write!(f, "{} {before} removed", self.package)?,
            (None, Some(after)) => write!(f, "{} {after} added", self.package)?,
            (None, None) => write!(f, "{}", self.package)?,
        }
        match (self.transitive, self.forced_by.as_slice()) {
            (false, _) => {}
            (true, []) => write!(f, " (transitive)")?,
            (true, forced_by) => write!(f, " (transitive: {})", forced_by.join(", "))?,
        }
        Ok(())
    }
}

/// How one scenario's two baseline runs differed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Noise {
    pub scenario: String,
    /// JSON keys whose values differ between the two runs; masked.
    pub fields: Vec<String>,
    /// Differing lines no field explains: the scenario is flaky.
    pub unexplained: Vec<String>,
    /// Config lines that would make the fields deterministic.
    pub suggestion: String,
}

impl Noise {
    pub fn is_flaky(&self) -> bool {
        !self.unexplained.is_empty()
    }
}

/// What isolating a multi-pin cell's failure found: pins that break
/// scenarios together though fewer of them do not, or (one pin) the pin that
/// alone explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interaction {
    /// `package version` of each pin in the smallest failing set; one pin
    /// when that pin alone explains the cell's failure.
    pub pins: Vec<String>,
    /// Scenarios they fail together.
    pub scenarios: Vec<String>,
    /// The plan's cell where the failure was seen.
    pub found_in: String,
    /// Extra cells run to isolate it.
    pub cells_run: usize,
    /// Pins of the cell that alone fail the same scenarios another way
    /// (`marshmallow 3.26.2 alone: articles changed at ``: exited during startup`):
    /// not the cause of what the cell shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differently: Vec<String>,
}

/// How far a package can move: the newest version known to pass, and the
/// first that breaks when bisection found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewestSafe {
    pub package: String,
    /// The newest version the plan tried.
    pub newest_tried: String,
    /// The newest version known to pass every scenario the baseline passes
    /// (the baseline's own when no newer one does): never one that builds
    /// and breaks a scenario.
    pub newest_safe: String,
    /// The first version that builds and fails it; `None` when the newest
    /// tried passes. Versions before it that could not be built are listed
    /// in `unknown_between`.
    pub first_bad: Option<String>,
    /// What the first bad version breaks.
    pub breaks: Vec<String>,
    /// Versions between the newest safe and the first bad that could not be built.
    pub unknown_between: Vec<String>,
    /// Extra cells the bisection ran.
    pub cells_run: usize,
}

/// How a build break is named where a bisection names the scenarios it sought.
pub const THE_BUILD: &str = "the build";

/// What `bisect.json` holds: one bisection's probes and answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BisectReport {
    pub package: String,
    pub from: String,
    pub to: String,
    /// Scenarios the bad end fails and the start passes: what was searched for.
    pub scenarios: Vec<String>,
    pub versions_between: usize,
    pub probes: Vec<ProbeReport>,
    /// The earliest break's last good version.
    pub last_good: String,
    /// The first version that builds and breaks what was sought: the
    /// earliest break's.
    pub first_bad: Option<String>,
    /// Versions that could not be built, between the last good and the first
    /// bad: the break may have come in one of them too.
    pub unknown_between: Vec<String>,
    /// Why each of those could not be built: its first error line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_built: Vec<String>,
    /// Every separate break the bad end shows, oldest first, each with its
    /// own first bad version: a version that breaks one scenario is not
    /// credited with what a later one breaks.
    pub breaks: Vec<BreakReport>,
    pub environments_built: usize,
    /// Versions the index lists in all.
    #[serde(skip)]
    pub versions_listed: usize,
}

/// One break a bisection found: the failures it brings, and the first
/// version that shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreakReport {
    /// The scenarios it fails.
    pub scenarios: Vec<String>,
    /// How each fails at the first bad version: `scenario: summary`.
    pub failures: Vec<String>,
    pub last_good: String,
    pub first_bad: Option<String>,
    /// Versions between the last good and the first bad that could not be built.
    pub unknown_between: Vec<String>,
    /// Why each of those could not be built: its first error line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_built: Vec<String>,
}

/// One version a bisection tried: `good`, `bad` or `could not be built`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    pub version: String,
    pub result: String,
    pub failing: Vec<String>,
}

/// What `explore` tried and found: variants of the recorded steps, each
/// answered by the baseline twice and by every cell once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Exploration {
    /// Explored after a check (`[explore] in-every-run`): the report's
    /// cells are the check's, the exploration a section of it.
    #[serde(default)]
    pub after_check: bool,
    /// The seed that chose and ordered the variants: the same seed, scenarios
    /// and budget try the same variants again.
    pub seed: u64,
    /// Requests per cell the variants were chosen within.
    pub budget: usize,
    /// Variants tried, and the requests they sent per cell.
    pub variants: usize,
    pub requests: usize,
    /// Variants left out of the findings because the baseline's two answers
    /// to them differed beyond masked fields, or it could not answer them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unstable: Vec<String>,
    /// Differences left out because the recorded step, unchanged, shows
    /// them on the same cell: the check's to report, not exploration's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<String>,
    /// What differs from the baseline, worst first, one per step, field,
    /// kind of change and difference.
    pub findings: Vec<Finding>,
}

/// A variant the baseline answers steadily one way and a cell another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// How bad the difference is; findings are ordered by it.
    pub kind: FindingKind,
    /// The explored scenario's name (its file stem).
    pub scenario: String,
    /// The recorded scenario and step it comes from.
    pub from: String,
    pub step: String,
    /// The one thing changed, as a person reads it (`/password: 73 bytes`).
    pub mutation: String,
    /// The changed request, as sent (its variables filled, secrets masked).
    pub request: String,
    /// The changed step's answer on the baseline and on the cells.
    pub baseline: String,
    pub answer: String,
    /// The cells that answer so, in plan order.
    pub cells: Vec<String>,
    /// The diff, the baseline's answer (`-`) against the first cell's (`+`).
    pub diff: String,
    /// Other variants showing the same difference on the same field and
    /// endpoint, left out: the one with the fewest requests is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub same_as: Vec<String>,
    /// Where the explored scenario was written (pending review), or why not.
    pub written: String,
    /// The command that runs the explored scenario on the first cell.
    pub reproduce: String,
}

/// How a cell's answer to a variant differs from the baseline's, worst first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A 5xx, no answer, or the service died, where the baseline answered.
    Crash,
    /// Another status class (2xx → 4xx, 4xx → 2xx).
    Status,
    /// The same status class, a body of another shape (fields or types).
    Shape,
    /// The same shape, other values.
    Value,
}

impl FindingKind {
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::Crash => "crash",
            FindingKind::Status => "status",
            FindingKind::Shape => "body shape",
            FindingKind::Value => "value",
        }
    }
}
