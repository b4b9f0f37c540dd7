//! What a run tells while it works, as typed values: the library never
//! prints; whoever drives it (the live terminal display, plain CI lines, a
//! JSON-lines event log) consumes these.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum RunEvent {
    /// The config file the run reads.
    ConfigLoaded { path: PathBuf },
    /// What a run that died left behind, removed before this one starts.
    LeftoversRemoved {
        processes: usize,
        folders: usize,
        half_written: usize,
    },
    /// `--overlay`: the service runs from a copy with these files on top.
    OverlayLaid { overlay: PathBuf, service: PathBuf },
    /// Entries of the service's folder its copies leave out that a person
    /// may expect in them (symlinks out of it or to nothing), with why.
    SourceLeftOut { entries: Vec<String> },
    /// The tools that build the environments (`using uv 0.9 and Python 3.11 (…)`).
    Toolchain { description: String },
    /// What a tool being set up says (uv bootstrapping itself).
    ToolSetup { message: String },
    /// Pull-request mode, cargo: a manifest the change edits; the baseline builds with the old one.
    ManifestChanged { since: String, path: PathBuf },
    /// The matrix's listed versions were checked against the index.
    VersionsChecked { count: usize },
    /// A PostgreSQL cluster of the run's own is starting.
    StartingPostgres,
    /// The PostgreSQL server the run uses.
    Postgres { description: String },
    /// Pull-request mode: the pins the change moves.
    PinsChanged { since: String, changes: Vec<String> },
    /// A matrix range filled from the index.
    RangeExpanded {
        package: String,
        specifiers: String,
        pick: String,
        picked: Vec<String>,
        listed: usize,
        source: String,
    },
    /// Versions inside a range that cannot be installed here: yanked, or
    /// needing another Python or a newer Rust.
    RangeLeftOut {
        package: String,
        specifiers: String,
        skipped: Vec<String>,
    },
    /// A strategy other than one-at-a-time chose the cells.
    StrategyChose {
        strategy: String,
        cells: usize,
        packages: usize,
        full_product: usize,
    },
    /// The plan's size.
    Planned { cells: usize, scenarios: usize },
    /// `explore`: the variants chosen, run as scenarios of their own.
    Exploring {
        variants: usize,
        requests: usize,
        from: usize,
        budget: usize,
        seed: u64,
    },
    /// `explore`: the service's OpenAPI document, where it serves one, and
    /// how many operations' bodies it tells the fields of.
    OpenApiRead {
        from: Option<String>,
        operations: usize,
    },
    /// `explore`: the service did not start on its baseline to be asked
    /// for an OpenAPI document, and why (the first line of it).
    OpenApiUnasked { why: String },
    /// `explore`: variants of shared service starts run alone, those a
    /// cell answered otherwise or whose shared state was disturbed.
    RunningAlone { variants: usize },
    /// `explore`: the findings run again, each with one earlier step left
    /// out, to write the smallest variant that still shows it.
    Minimising { findings: usize, variants: usize },
    /// `explore`: what was found, and where each explored scenario went.
    Explored {
        findings: usize,
        written: Vec<String>,
    },
    /// `--shard K/N`: the part of the plan this run takes.
    ShardTaken {
        index: usize,
        count: usize,
        cells: usize,
        of: usize,
    },
    /// A plan of `cells` starts running; the count of finished cells starts again.
    PlanStarted { cells: usize },
    /// The baseline's pins are being resolved.
    ResolvingBaseline,
    /// The baseline ran: whether it matches its accepted snapshots.
    BaselineJudged {
        accepting: bool,
        failing: Vec<String>,
        /// Of those, the scenarios that have no accepted snapshot yet (new ones).
        unaccepted: Vec<String>,
    },
    /// The baseline is broken and the run stops: the other cells are not run.
    StoppedAfterBaseline { why: String, not_run: usize },
    /// A step of one cell at work.
    CellStep { cell: String, step: CellStep },
    /// A cell finished.
    CellFinished { cell: String, outcome: CellFinish },
    /// A cell's result could not be recorded for reuse; the run goes on.
    NotRecorded { cell: String, error: String },
    /// The port given to a service was taken by another process first.
    PortTaken {
        cell: String,
        scenario: String,
        port: u16,
    },
    /// A service answered healthy.
    ServiceStarted {
        cell: String,
        scenario: String,
        pid: u32,
        port: u16,
    },
    /// A multi-pin cell fails what no single pin of it is known to.
    Isolating {
        cell: String,
        scenarios: Vec<String>,
    },
    /// Isolating found one pin that alone explains the failure.
    OnePinExplains { pins: Vec<String> },
    /// `bisect`: the versions between the two ends.
    BisectStarted {
        package: String,
        from: String,
        to: String,
        between: Vec<String>,
        stale: bool,
    },
    /// A bisection probe's answer.
    Probed {
        package: String,
        version: String,
        result: String,
    },
    /// A package's newest safe version cannot be bisected: its versions are not listed.
    NoBisection { package: String, error: String },
    /// The newest version tried of a package fails: bisecting for the newest safe.
    BisectingNewest {
        package: String,
        newest: String,
        fails: Vec<String>,
        versions: usize,
        since: String,
    },
    /// A signal arrived: the first stops every process, a second quits at once.
    Signal { name: String, again: bool },
}

/// What a cell is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum CellStep {
    Resolving,
    /// The environment is there: built now, or reused.
    EnvironmentReady {
        id: String,
        reused: bool,
        /// Why a cached environment was built again.
        #[serde(skip_serializing_if = "Option::is_none")]
        rebuilt: Option<String>,
    },
    BuildFailed,
    /// A scenario run's service is starting.
    StartingService {
        scenario: String,
    },
    /// One scenario run judged.
    Judged {
        scenario: String,
        verdict: String,
    },
    /// The baseline's two replays of a scenario differ.
    Noisy {
        scenario: String,
        fields: Vec<String>,
        flaky: bool,
    },
    /// A forked start answered otherwise than a cold one: services start
    /// cold from now on.
    PreloadingOff {
        reason: String,
    },
    /// The baseline is replayed once: its recorded run of the same inputs
    /// already checked it for noise and forked starts against cold ones.
    NoiseFromRecord {
        /// Scenario runs that recorded run found noisy (masked again).
        noisy: usize,
    },
}

/// How a cell ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum CellFinish {
    /// Judged: how many scenarios do not pass.
    Judged { not_passing: usize, reused: bool },
    /// Not judged: the cell ended with this verdict (`build-failed`, …).
    Failed { verdict: String },
    /// The harness itself failed in this cell.
    HarnessFailed,
}

/// Where a run's events go; cheap to clone, callable from any thread.
pub type Events = Arc<dyn Fn(&RunEvent) + Send + Sync>;

/// Events nobody listens to.
pub fn ignore() -> Events {
    Arc::new(|_: &RunEvent| {})
}

/// `1 cell`, `2 cells`: a count with its noun.
pub fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

impl fmt::Display for RunEvent {
    /// The line a person reads for this event.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunEvent::ConfigLoaded { path } => write!(f, "using config {}", path.display()),
            RunEvent::LeftoversRemoved {
                processes,
                folders,
                half_written,
            } => write!(
                f,
                "removed what a dead run left behind: {processes} processes, {folders} folders, {half_written} half-written files"
            ),
            RunEvent::OverlayLaid { overlay, service } => write!(
                f,
                "service: {} laid over {}",
                overlay.display(),
                service.display()
            ),
            RunEvent::SourceLeftOut { entries } => write!(
                f,
                "left out of the service's copies: {}",
                entries.join("; ")
            ),
            RunEvent::Toolchain { description } => write!(f, "using {description}"),
            RunEvent::ToolSetup { message } => write!(f, "{message}"),
            RunEvent::ManifestChanged { since, path } => write!(
                f,
                "since {since}: {} changed; the baseline is built with the old one",
                path.display()
            ),
            RunEvent::VersionsChecked { count } => write!(
                f,
                "checked that the index has the matrix's {}",
                plural(*count, "listed version")
            ),
            RunEvent::StartingPostgres => write!(f, "starting a throwaway PostgreSQL cluster"),
            RunEvent::Postgres { description } => write!(f, "PostgreSQL: {description}"),
            RunEvent::PinsChanged { since, changes } => write!(
                f,
                "since {since}: {} changed: {}",
                plural(changes.len(), "pin"),
                if changes.is_empty() {
                    "none".to_owned()
                } else {
                    changes.join(", ")
                }
            ),
            RunEvent::RangeExpanded {
                package,
                specifiers,
                pick,
                picked,
                listed,
                source,
            } => write!(
                f,
                "{package} {specifiers} ({pick}): {} of {listed} versions, {source}: {}",
                picked.len(),
                picked.join(", ")
            ),
            RunEvent::RangeLeftOut {
                package,
                specifiers,
                skipped,
            } => write!(f, "{package} {specifiers}: left out {}", skipped.join(", ")),
            RunEvent::StrategyChose {
                strategy,
                cells,
                packages,
                full_product,
            } => write!(
                f,
                "{strategy} strategy: {cells} cells for {packages} packages (the full product is {full_product})"
            ),
            RunEvent::Planned { cells, scenarios } => write!(
                f,
                "{} × {}",
                plural(*cells, "cell"),
                plural(*scenarios, "scenario")
            ),
            RunEvent::Exploring {
                variants,
                requests,
                from,
                budget,
                seed,
            } => write!(
                f,
                "exploring: {} of {} ({requests} requests per cell of a budget of {budget}, seed {seed})",
                plural(*variants, "variant"),
                plural(*from, "scenario")
            ),
            RunEvent::OpenApiRead {
                from: Some(path),
                operations,
            } => write!(
                f,
                "OpenAPI document at {path}: {} with fields it bounds",
                plural(*operations, "operation")
            ),
            RunEvent::OpenApiRead { from: None, .. } => {
                write!(
                    f,
                    "no OpenAPI document served: variants from the scenarios alone"
                )
            }
            RunEvent::OpenApiUnasked { why } => write!(
                f,
                "not asked for an OpenAPI document, the service did not start on its own \
                 ({why}): variants from the scenarios alone"
            ),
            RunEvent::RunningAlone { variants } => write!(
                f,
                "running {} of shared service starts alone",
                plural(*variants, "variant")
            ),
            RunEvent::Minimising { findings, variants } => write!(
                f,
                "making {} smaller: {} with an earlier step left out",
                plural(*findings, "finding"),
                plural(*variants, "variant")
            ),
            RunEvent::Explored { findings, written } => {
                write!(f, "exploration found {}", plural(*findings, "difference"))?;
                if !written.is_empty() {
                    write!(f, "; pending review: {}", written.join(", "))?;
                }
                Ok(())
            }
            RunEvent::ShardTaken {
                index,
                count,
                cells,
                of,
            } => write!(
                f,
                "shard {index}/{count}: {cells} of the plan's {of} cells, with the baseline"
            ),
            RunEvent::PlanStarted { cells } => write!(f, "running {}", plural(*cells, "cell")),
            RunEvent::ResolvingBaseline => write!(f, "resolving the baseline"),
            RunEvent::StoppedAfterBaseline { why, not_run } => write!(
                f,
                "stopping: the baseline {why}; {} not run (--keep-going runs them anyway)",
                plural(*not_run, "other cell")
            ),
            RunEvent::BaselineJudged {
                accepting: true, ..
            } => {
                write!(f, "the baseline ran; accepting its results")
            }
            RunEvent::BaselineJudged { failing, .. } if failing.is_empty() => {
                write!(f, "the baseline matches its accepted snapshots")
            }
            RunEvent::BaselineJudged {
                failing,
                unaccepted,
                ..
            } => {
                let differ: Vec<&String> = failing
                    .iter()
                    .filter(|scenario| !unaccepted.contains(scenario))
                    .collect();
                if !differ.is_empty() {
                    let differ: Vec<&str> = differ.iter().map(|s| s.as_str()).collect();
                    write!(
                        f,
                        "the baseline does NOT match its accepted snapshots: {}",
                        differ.join(", ")
                    )?;
                }
                if !unaccepted.is_empty() {
                    let joint = if differ.is_empty() {
                        "the baseline has"
                    } else {
                        ";"
                    };
                    write!(
                        f,
                        "{joint} no accepted snapshot yet for {}: review the pending one, or run with --accept",
                        unaccepted.join(", ")
                    )?;
                }
                Ok(())
            }
            RunEvent::CellStep { cell, step } => write!(f, "{cell}: {step}"),
            RunEvent::CellFinished { cell, outcome } => write!(f, "{cell}: {outcome}"),
            RunEvent::NotRecorded { cell, error } => {
                write!(f, "could not record {cell}'s result: {error}")
            }
            RunEvent::PortTaken {
                cell,
                scenario,
                port,
            } => write!(
                f,
                "{cell}: {scenario}: port {port} is held by another process; trying another"
            ),
            RunEvent::ServiceStarted {
                cell,
                scenario,
                pid,
                port,
            } => write!(f, "{cell}: {scenario}: service pid {pid} on port {port}"),
            RunEvent::Isolating { cell, scenarios } => write!(
                f,
                "{cell} fails {} and no single pin of it is known to: isolating",
                scenarios.join(", ")
            ),
            RunEvent::OnePinExplains { pins } => write!(f, "{} alone explains it", pins.join(", ")),
            RunEvent::BisectStarted {
                package,
                from,
                to,
                between,
                stale,
            } => write!(
                f,
                "bisect {package} {from} → {to}: {} versions between on the index{}: {}",
                between.len(),
                if *stale { " (cached, STALE)" } else { "" },
                between.join(", ")
            ),
            RunEvent::Probed {
                package,
                version,
                result,
            } => write!(f, "{package} {version}: {result}"),
            RunEvent::NoBisection { package, error } => {
                write!(f, "no bisection of {package}: {error}")
            }
            RunEvent::BisectingNewest {
                package,
                newest,
                fails,
                versions,
                since,
            } => write!(
                f,
                "{package} {newest} fails {}; bisecting the {versions} versions since {since}",
                fails.join(", ")
            ),
            RunEvent::Signal { name, again: false } => write!(
                f,
                "upgrade-check: {name}: stopping every process it started; again to quit at once"
            ),
            RunEvent::Signal { name, again: true } => {
                write!(f, "upgrade-check: {name} again: quitting now")
            }
        }
    }
}

impl fmt::Display for CellStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CellStep::Resolving => write!(f, "resolving"),
            CellStep::EnvironmentReady {
                id,
                reused,
                rebuilt: Some(why),
            } if !reused => write!(f, "environment built again ({id}): {why}"),
            CellStep::EnvironmentReady { id, reused, .. } => write!(
                f,
                "environment {} ({id})",
                if *reused { "reused" } else { "built" }
            ),
            CellStep::BuildFailed => write!(f, "build failed"),
            CellStep::StartingService { scenario } => {
                write!(f, "{scenario}: starting the service")
            }
            CellStep::Judged { scenario, verdict } => write!(f, "{scenario}: {verdict}"),
            CellStep::PreloadingOff { reason } => {
                write!(f, "services start cold from now on: {reason}")
            }
            CellStep::NoiseFromRecord { noisy } => write!(
                f,
                "replayed once: its recorded run of the same inputs checked it for noise \
                 ({}; --recheck-noise replays it twice again)",
                match noisy {
                    0 => "nothing noisy".to_owned(),
                    _ => format!("{} noisy, masked again", plural(*noisy, "scenario run")),
                }
            ),
            CellStep::Noisy {
                scenario,
                fields,
                flaky,
            } => write!(
                f,
                "{scenario}: two baseline runs differ{}{}",
                if fields.is_empty() {
                    String::new()
                } else {
                    format!(" in {} (masked from now on)", fields.join(", "))
                },
                if *flaky {
                    "; the scenario is flaky"
                } else {
                    ""
                }
            ),
        }
    }
}

impl fmt::Display for CellFinish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CellFinish::Judged {
                not_passing,
                reused,
            } => {
                match not_passing {
                    0 => write!(f, "all pass")?,
                    count => write!(f, "{count} not passing")?,
                }
                if *reused {
                    write!(f, " (result reused: nothing changed since it was recorded)")?;
                }
                Ok(())
            }
            CellFinish::Failed { verdict } => write!(f, "{verdict}"),
            CellFinish::HarnessFailed => write!(f, "the harness failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_the_lines_people_see() {
        let event = RunEvent::CellFinished {
            cell: "bcrypt 5.0.0".to_owned(),
            outcome: CellFinish::Judged {
                not_passing: 1,
                reused: false,
            },
        };
        assert_eq!(event.to_string(), "bcrypt 5.0.0: 1 not passing");
        let event = RunEvent::PinsChanged {
            since: "HEAD~1".to_owned(),
            changes: Vec::new(),
        };
        assert_eq!(event.to_string(), "since HEAD~1: 0 pins changed: none");
    }

    #[test]
    fn events_serialise_with_their_kind() {
        let event = RunEvent::ServiceStarted {
            cell: "baseline".to_owned(),
            scenario: "login".to_owned(),
            pid: 42,
            port: 8000,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "service-started");
        assert_eq!(json["pid"], 42);
        let step = RunEvent::CellStep {
            cell: "baseline".to_owned(),
            step: CellStep::Resolving,
        };
        assert_eq!(
            serde_json::to_value(&step).unwrap()["step"]["step"],
            "resolving"
        );
    }
}
