//! Runs a plan: prepare every cell's environment, run the baseline, then the other cells.
//!
//! Each scenario runs against a fresh service, started from its own copy of
//! the source, on a fresh database. Environments are built up to `jobs` at
//! once; then services run up to `jobs` at once, whichever cell's scenario
//! run is next, so that a cell with many scenarios does not leave the other
//! slots idle. This module produces the result model and the rendered
//! scenario contents; it writes no snapshot and prints no report.
//!
//! `cells.rs` drives the plan's cells, `scenario.rs` one scenario run,
//! `start.rs` the service's start and replay within it, `noise_check.rs`
//! the baseline's double replay, `databases.rs` each run's fresh database,
//! `evidence.rs` what logs and answers say beyond the snapshot.

mod cells;
mod databases;
pub(crate) mod evidence;
mod failure;
mod noise_check;
pub(crate) mod preloading;
mod prepare;
pub(crate) mod results;
mod scenario;
mod start;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::env::Builder;
use crate::exec::db_ahead::DatabasesAhead;
use crate::input::config::Config;
use crate::input::scenario::Scenario;
use crate::judge::snapshot::{self};
use crate::model::cell::Cell;
use crate::model::event::{CellFinish, CellStep, Events, RunEvent};
use crate::model::findings::Noise;
use crate::model::report::CellReport;
use crate::sys::state::StateDirs;

pub(crate) use cells::{finished, run_plan};
pub(crate) use databases::settle_databases;

/// Everything a run needs, shared by all cells.
pub(crate) struct RunContext {
    pub settings: RunSettings,
    pub state: RunState,
    pub services: RunServices,
}

/// What a run was asked to do and with what: fixed before the first cell.
pub(crate) struct RunSettings {
    pub config: Config,
    pub scenarios: Vec<Scenario>,
    pub dirs: StateDirs,
    pub jobs: usize,
    /// Pull-request mode: the base's accepted snapshots, read from git at
    /// the ref; the baseline is judged against them, every other cell
    /// against the working tree's.
    pub base_snapshots: Option<PathBuf>,
    /// Pull-request mode: the scenario runs whose snapshot the branch edits,
    /// read once; only these can be `accepted`.
    pub changed_snapshots: std::collections::BTreeSet<String>,
    /// When the run started, for the report's duration.
    pub started: Instant,
    /// A random secret the service gets as `{secret}`; redacted like scenario secrets.
    pub run_secret: String,
    /// Private folder for service copies and databases, removed at the end.
    pub scratch: PathBuf,
    /// The service's source, read once: every scenario run copies it.
    pub source: crate::sys::source_tree::SourceTree,
    /// Running to accept the baseline's results: a mismatch is expected, not news.
    pub accepting: bool,
    /// Replay the baseline's scenarios twice to find what is nondeterministic.
    pub check_noise: bool,
    /// The digests of the run's shared inputs; `None` records no result.
    pub digests: Option<results::RunDigests>,
    /// Take a cell's recorded result when its inputs are unchanged.
    pub reuse_results: bool,
    /// Take the baseline's noise check from its recorded run when its
    /// inputs are unchanged, even when its cells are replayed.
    pub reuse_noise: bool,
    /// Run every cell even when the baseline is broken (see `cells::broken`).
    pub keep_going: bool,
    /// Exploration: the baseline's answers are the reference. The snapshots
    /// folder (the run's own) holds none; each answer is written there as
    /// accepted once the baseline is judged, before any other cell is.
    pub baseline_is_reference: bool,
    /// The one scenario run whose baseline replays compare a cold start
    /// with a forked one (an exploration's first variant: its others fork
    /// from the start); `None`: every one where preloading is checked.
    pub cold_check_only: Option<String>,
}

/// What the run learns as cells run, shared by them.
pub(crate) struct RunState {
    /// Cells finished so far, by plan index: what a cancelled run still reports.
    pub finished: std::sync::Mutex<Vec<(usize, CellOutcome)>>,
    /// Why the run stopped after the baseline, when it did.
    pub stopped_after_baseline: std::sync::Mutex<Option<String>>,
    /// What the baseline's two runs found, by scenario run key.
    pub noise: std::sync::Mutex<BTreeMap<String, Noise>>,
    /// The baseline was replayed once, its noise taken from its recorded run.
    pub noise_from_record: std::sync::atomic::AtomicBool,
    /// PostgreSQL template databases the setup commands ran into, by
    /// environment and profile: made once, copied by every run.
    pub templates: std::sync::Mutex<BTreeMap<String, Arc<TemplateOnce>>>,
    /// Whether services start forked from a preloader, and each cell's.
    pub preloading: preloading::Preloading,
}

/// What a run works with: the environments' builder, the service slots,
/// the HTTP client, the databases made ahead, and where events go.
pub(crate) struct RunServices {
    pub builder: Builder,
    /// One permit per service that may run at once (`jobs` of them).
    pub service_slots: Semaphore,
    /// Where the run tells what it does.
    pub events: Events,
    pub client: reqwest::Client,
    /// The PostgreSQL server's databases, made ahead of the runs and
    /// dropped behind them, when any run's profile needs one.
    pub databases: Option<Arc<DatabasesAhead>>,
}

/// A template database, made by the first run that needs it.
pub(crate) type TemplateOnce = tokio::sync::OnceCell<Result<String, String>>;

impl RunContext {
    /// Where `cell`'s accepted snapshot of scenario run `key` is: the base's
    /// for the baseline in pull-request mode (unless the base has none: a
    /// scenario the change adds), else the working tree's.
    pub(crate) fn accepted_snapshot(&self, cell: &Cell, key: &str) -> PathBuf {
        let working = snapshot::accepted_path(&self.settings.config.replay.snapshots, key);
        match &self.settings.base_snapshots {
            Some(base) if cell.is_baseline() => {
                let base = snapshot::accepted_path(base, key);
                if base.is_file() { base } else { working }
            }
            _ => working,
        }
    }

    pub(crate) fn emit(&self, event: RunEvent) {
        (self.services.events)(&event);
    }

    fn step(&self, cell: &str, step: CellStep) {
        self.emit(RunEvent::CellStep {
            cell: cell.to_owned(),
            step,
        });
    }

    fn finished_cell(&self, cell: &str, outcome: CellFinish) {
        self.emit(RunEvent::CellFinished {
            cell: cell.to_owned(),
            outcome,
        });
    }

    /// Services start cold from now on, and the run says why.
    fn turn_off_preloading(&self, cell: &Cell, reason: String) {
        if self.state.preloading.turn_off(reason.clone()) {
            self.step(&cell.name, CellStep::PreloadingOff { reason });
        }
    }

    /// Fields masked in every comparison of the scenario run `key`.
    pub(crate) fn noisy_fields(&self, key: &str) -> std::collections::BTreeSet<String> {
        self.state
            .noise
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map(|noise| noise.fields.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One scenario under one profile: a column of the report.
#[derive(Debug, Clone)]
pub struct ScenarioRun<'a> {
    pub scenario: &'a Scenario,
    pub profile: String,
    /// `name`, or `name@profile` for scenarios that pick their own profiles.
    pub key: String,
}

/// The scenario runs of a cell: each scenario under the cell's profile, or
/// under each profile the scenario names.
pub fn scenario_runs<'a>(scenarios: &'a [Scenario], cell_profile: &str) -> Vec<ScenarioRun<'a>> {
    let mut runs = Vec::new();
    for scenario in scenarios {
        if scenario.profiles.is_empty() {
            runs.push(ScenarioRun {
                scenario,
                profile: cell_profile.to_owned(),
                key: scenario.name.clone(),
            });
        }
        for profile in &scenario.profiles {
            runs.push(ScenarioRun {
                scenario,
                profile: profile.clone(),
                key: format!("{}@{profile}", scenario.name),
            });
        }
    }
    runs
}

/// One cell's result, plus the rendered contents of each scenario it replayed.
#[derive(Clone)]
pub(crate) struct CellOutcome {
    pub report: CellReport,
    pub contents: BTreeMap<String, String>,
}

/// Whole milliseconds, as timings are reported.
fn ms(duration: Duration) -> u64 {
    duration.as_millis() as u64
}
