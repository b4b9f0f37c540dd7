//! Runs a plan: prepare every cell's environment, run the baseline, then the other cells.
//!
//! Each scenario runs against a fresh service, started from its own copy of
//! the source, on a fresh database. Environments are built up to `jobs` at
//! once; then services run up to `jobs` at once, whichever cell's scenario
//! run is next, so that a cell with many scenarios does not leave the other
//! slots idle. This module produces the result model and the rendered
//! scenario contents; it writes no snapshot and prints no report.

pub mod preloading;
pub mod results;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::env::{BuildError, Builder, Environment, ResolvedSet};
use crate::exec::db::Database;
use crate::exec::db_ahead::{DatabaseLease, DatabasesAhead};
use crate::exec::replay;
use crate::exec::service::{self, Launch, Placeholders};
use crate::input::config::{Config, DatabaseKind};
use crate::input::scenario::Scenario;
use crate::judge::noise;
use crate::judge::normalize::Normaliser;
use crate::judge::snapshot::{self, Comparison};
use crate::judge::verdict::{self, RunFacts};
use crate::model::cell::{Cell, Plan};
use crate::model::event::{CellFinish, CellStep, Events, RunEvent};
use crate::model::findings::Noise;
use crate::model::report::{CellReport, EnvironmentReport, ScenarioReport, Verdict};
use crate::sys::failpoint::failpoint;
use crate::sys::log;
use crate::sys::state::StateDirs;

/// Ports tried for one service start before giving up.
const PORT_ATTEMPTS: usize = 3;

/// The note a service's log gets when its start found the port taken and
/// starts again on another.
const PORT_RETRY: &str = "[upgrade-check: the port was taken; starting again on another]";

/// The last lines of a service's log read for warnings and output lines.
const SAID_LINES: usize = 2000;

/// Log lines kept in a report for each failure.
const LOG_TAIL_LINES: usize = 30;

/// Everything a run needs, shared by all cells.
pub struct RunContext {
    pub config: Config,
    pub scenarios: Vec<Scenario>,
    pub builder: Builder,
    pub dirs: StateDirs,
    pub jobs: usize,
    /// One permit per service that may run at once (`jobs` of them).
    pub service_slots: Semaphore,
    /// Pull-request mode: the base's accepted snapshots, read from git at
    /// the ref; the baseline is judged against them, every other cell
    /// against the working tree's.
    pub base_snapshots: Option<PathBuf>,
    /// Pull-request mode: the scenario runs whose snapshot the branch edits,
    /// read once; only these can be `accepted`.
    pub changed_snapshots: std::collections::BTreeSet<String>,
    /// Where the run tells what it does.
    pub events: Events,
    /// When the run started, for the report's duration.
    pub started: Instant,
    pub client: reqwest::Client,
    /// A random secret the service gets as `{secret}`; redacted like scenario secrets.
    pub run_secret: String,
    /// Private folder for service copies and databases, removed at the end.
    pub scratch: PathBuf,
    /// The PostgreSQL server's databases, made ahead of the runs and
    /// dropped behind them, when any run's profile needs one.
    pub databases: Option<Arc<DatabasesAhead>>,
    /// Cells finished so far, by plan index: what a cancelled run still reports.
    pub finished: std::sync::Mutex<Vec<(usize, CellOutcome)>>,
    /// Running to accept the baseline's results: a mismatch is expected, not news.
    pub accepting: bool,
    /// Replay the baseline's scenarios twice to find what is nondeterministic.
    pub check_noise: bool,
    /// What the baseline's two runs found, by scenario run key.
    pub noise: std::sync::Mutex<BTreeMap<String, Noise>>,
    /// The digest of the run's shared inputs; `None` records no result.
    pub results_digest: Option<String>,
    /// Take a cell's recorded result when its inputs are unchanged.
    pub reuse_results: bool,
    /// PostgreSQL template databases the setup commands ran into, by
    /// environment and profile: made once, copied by every run.
    pub templates: std::sync::Mutex<BTreeMap<String, Arc<TemplateOnce>>>,
    /// Whether services start forked from a preloader, and each cell's.
    pub preloading: preloading::Preloading,
}

/// A template database, made by the first run that needs it.
pub type TemplateOnce = tokio::sync::OnceCell<Result<String, String>>;

impl RunContext {
    /// Where `cell`'s accepted snapshot of scenario run `key` is: the base's
    /// for the baseline in pull-request mode (unless the base has none: a
    /// scenario the change adds), else the working tree's.
    pub fn accepted_snapshot(&self, cell: &Cell, key: &str) -> PathBuf {
        let working = snapshot::accepted_path(&self.config.replay.snapshots, key);
        match &self.base_snapshots {
            Some(base) if cell.is_baseline() => {
                let base = snapshot::accepted_path(base, key);
                if base.is_file() { base } else { working }
            }
            _ => working,
        }
    }

    pub fn emit(&self, event: RunEvent) {
        (self.events)(&event);
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

    /// Fields masked in every comparison of the scenario run `key`.
    fn noisy_fields(&self, key: &str) -> std::collections::BTreeSet<String> {
        self.noise
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map(|noise| noise.fields.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Which replay of a scenario in one cell: the baseline's second one finds
/// noise; a third, cold, tells noise from what preloading changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    First,
    Again,
    Third,
}

/// One scenario run's own copy of the service: its folder, its key
/// (`.again` for the baseline's second replay), and how it starts.
struct RunCopy<'a> {
    dir: &'a Path,
    key: &'a str,
    start: Start,
}

/// How a scenario run starts its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A new interpreter (or program).
    Cold,
    /// Forked from the cell's preloader, where the service can be.
    Preloaded,
}

impl Start {
    /// As the run starts services now.
    fn current(ctx: &RunContext) -> Start {
        if ctx.preloading.forks() {
            Start::Preloaded
        } else {
            Start::Cold
        }
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
pub struct CellOutcome {
    pub report: CellReport,
    pub contents: BTreeMap<String, String>,
}

/// A cell ready to run, or the reason it cannot.
enum Prepared {
    Ready {
        environment: Environment,
        /// The resolved set, whether it came from the cache, and how near.
        resolution: Box<crate::env::Resolution>,
    },
    Failed {
        verdict: Verdict,
        reason: String,
        /// Requirements raised before the build failed: the footer names them too.
        raised: Vec<String>,
    },
}

/// Runs every cell of `plan`, baseline first, and returns them in plan order.
pub async fn run_plan(ctx: Arc<RunContext>, plan: &Plan) -> Vec<CellOutcome> {
    ctx.emit(RunEvent::PlanStarted {
        cells: plan.cells.len(),
    });
    ctx.emit(RunEvent::ResolvingBaseline);
    let builder = ctx.builder.clone();
    let baseline = match tokio::task::spawn_blocking(move || builder.resolve_baseline()).await {
        Ok(Ok(resolution)) => resolution.set,
        Ok(Err(BuildError::Refused(why))) => {
            let reason = format!("the baseline cannot be resolved:\n{why}");
            return plan
                .cells
                .iter()
                .map(|cell| failed_cell(&ctx, cell, Verdict::BuildFailed, &reason))
                .collect();
        }
        // Nothing is known about the cells: the harness could not check them.
        Ok(Err(err)) => {
            let reason = format!("resolving the baseline failed: {err:#}");
            return plan
                .cells
                .iter()
                .map(|cell| failed_cell(&ctx, cell, Verdict::Error, &reason))
                .collect();
        }
        Err(err) => {
            let reason = format!("resolving the baseline failed: {err}");
            return plan
                .cells
                .iter()
                .map(|cell| failed_cell(&ctx, cell, Verdict::Error, &reason))
                .collect();
        }
    };
    let baseline = Arc::new(baseline);

    // Environments first, all cells at once (bounded), so the baseline's
    // verdict is not held up by the slowest install.
    let permits = Arc::new(Semaphore::new(ctx.jobs));
    let mut preparing = JoinSet::new();
    for (index, cell) in plan.cells.iter().cloned().enumerate() {
        let (ctx, baseline, permits) = (ctx.clone(), baseline.clone(), permits.clone());
        preparing.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (index, prepare(&ctx, &cell, &baseline).await)
        });
    }
    let mut prepared: Vec<Option<Prepared>> = plan.cells.iter().map(|_| None).collect();
    while let Some(joined) = preparing.join_next().await {
        if let Ok((index, outcome)) = joined {
            prepared[index] = Some(outcome);
        }
    }
    // A task that panicked left its slot empty: that cell is the harness's failure.
    let prepared: Vec<_> = prepared
        .into_iter()
        .map(|prepared| {
            prepared.unwrap_or(Prepared::Failed {
                verdict: Verdict::Error,
                reason: "the harness panicked while preparing this cell".to_owned(),
                raised: Vec::new(),
            })
        })
        .collect();
    ctx.preloading.line_up(
        plan.cells
            .iter()
            .zip(&prepared)
            .filter_map(|(cell, prepared)| match prepared {
                Prepared::Ready { environment, .. } => Some((cell.id.clone(), environment.clone())),
                Prepared::Failed { .. } => None,
            })
            .collect(),
    );

    let mut cells = plan.cells.iter().cloned().zip(prepared).enumerate();
    // The baseline is judged before anything else.
    if let Some((index, (cell, prepared))) = cells.next() {
        let is_baseline = cell.is_baseline();
        let outcome = guarded(&ctx, cell, prepared, &baseline).await;
        let failing: Vec<_> = outcome
            .report
            .failures()
            .map(|s| s.scenario.clone())
            .collect();
        // A new scenario fails only for want of a snapshot: said apart.
        let unaccepted: Vec<_> = outcome
            .report
            .failures()
            .filter(|s| {
                s.summary
                    .as_deref()
                    .is_some_and(|summary| summary.starts_with(verdict::NO_SNAPSHOT))
            })
            .map(|s| s.scenario.clone())
            .collect();
        if !is_baseline {
            // A plan of probes (bisection) judges each cell on its own.
        } else {
            ctx.emit(RunEvent::BaselineJudged {
                accepting: ctx.accepting,
                failing,
                unaccepted,
            });
        }
        record(&ctx, index, outcome);
    }
    // Every cell at once: their scenario runs queue for the service slots,
    // first come first served, so cells still finish roughly in plan order.
    let mut running = JoinSet::new();
    for (index, (cell, prepared)) in cells {
        let (ctx, baseline) = (ctx.clone(), baseline.clone());
        running.spawn(async move { (index, guarded(&ctx, cell, prepared, &baseline).await) });
    }
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((index, outcome)) => record(&ctx, index, outcome),
            Err(err) => unreachable!("guarded cells do not panic: {err}"),
        }
    }
    finished(&ctx)
}

/// Runs a cell on its own task so that a panic in it fails that cell only.
async fn guarded(
    ctx: &Arc<RunContext>,
    cell: Cell,
    prepared: Prepared,
    baseline: &Arc<ResolvedSet>,
) -> CellOutcome {
    let task = tokio::spawn(run_cell(
        ctx.clone(),
        cell.clone(),
        prepared,
        baseline.clone(),
    ));
    // A cancelled run drops this future: the cell must stop with it rather
    // than go on starting services in the background.
    let _stop_with_caller = AbortOnDrop(task.abort_handle());
    let finished = task.await;
    // However the cell ended, its preloader (perhaps started ahead) stops.
    ctx.preloading.finish_cell(&cell.id).await;
    match finished {
        Ok(outcome) => outcome,
        Err(err) => {
            let message = match err.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned()),
                Err(err) => err.to_string(),
            };
            ctx.finished_cell(&cell.name, CellFinish::HarnessFailed);
            failed_cell(
                ctx,
                &cell,
                Verdict::Error,
                &format!("the harness panicked in this cell: {message}"),
            )
        }
    }
}

/// Aborts a spawned task when its owner is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps a finished cell where both the end of the run and a cancellation
/// find it; not one that finished after a signal killed its services.
fn record(ctx: &RunContext, index: usize, outcome: CellOutcome) {
    if crate::sys::interrupt::signalled().is_some() {
        return;
    }
    ctx.finished
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((index, outcome));
}

/// The cells finished so far, in plan order (all of them once the run is over).
pub fn finished(ctx: &RunContext) -> Vec<CellOutcome> {
    let mut finished = std::mem::take(&mut *ctx.finished.lock().unwrap_or_else(|e| e.into_inner()));
    finished.sort_by_key(|(index, _)| *index);
    finished.into_iter().map(|(_, outcome)| outcome).collect()
}

/// Resolves and installs one cell's environment.
async fn prepare(ctx: &Arc<RunContext>, cell: &Cell, baseline: &Arc<ResolvedSet>) -> Prepared {
    ctx.step(&cell.name, CellStep::Resolving);
    let builder = ctx.builder.clone();
    let (pins, baseline, from_file) = (cell.pins.clone(), baseline.clone(), cell.from_file.clone());
    let mut raised = Vec::new();
    let resolved = tokio::task::spawn_blocking(move || {
        let resolution = match from_file {
            Some(path) => builder.resolve_file(&path),
            None => builder.resolve_cell(&baseline, &pins),
        }
        .map_err(|err| (err, Vec::new()))?;
        if let Some(why) = resolution.set.not_holding(&pins) {
            return Err((BuildError::NotHeld(why), Vec::new()));
        }
        let mut resolution = resolution;
        let environment = match resolution.built.take() {
            Some(built) => Ok(built),
            None => builder.materialise(&resolution.set),
        }
        .map_err(|err| {
            let raised = resolution
                .set
                .cargo
                .iter()
                .flat_map(|inputs| &inputs.raised);
            (err, raised.map(ToString::to_string).collect())
        })?;
        Ok((environment, resolution))
    })
    .await
    .map(|built| {
        built.map_err(|(err, said): (BuildError, Vec<String>)| {
            raised = said;
            err
        })
    });
    match resolved {
        Ok(Ok((environment, resolution))) => {
            ctx.step(
                &cell.name,
                CellStep::EnvironmentReady {
                    id: environment.id.clone(),
                    reused: environment.reused,
                    rebuilt: environment.rebuilt.clone(),
                },
            );
            Prepared::Ready {
                environment,
                resolution: Box::new(resolution),
            }
        }
        Ok(Err(BuildError::Refused(why))) => {
            ctx.step(&cell.name, CellStep::BuildFailed);
            Prepared::Failed {
                verdict: Verdict::BuildFailed,
                reason: why,
                raised,
            }
        }
        Ok(Err(BuildError::NotHeld(why))) => Prepared::Failed {
            verdict: Verdict::NotTried,
            reason: why,
            raised,
        },
        Ok(Err(err)) => Prepared::Failed {
            verdict: Verdict::Error,
            reason: format!("{err:#}"),
            raised,
        },
        Err(err) => Prepared::Failed {
            verdict: Verdict::Error,
            reason: err.to_string(),
            raised,
        },
    }
}

async fn run_cell(
    ctx: Arc<RunContext>,
    cell: Cell,
    prepared: Prepared,
    baseline: Arc<ResolvedSet>,
) -> CellOutcome {
    if failpoint("panic-in-cell").as_deref() == Some(cell.id.as_str()) {
        panic!("failpoint panic-in-cell={}", cell.id);
    }
    let started = Instant::now();
    let (environment, set, resolution_reused, moves_not_held) = match prepared {
        Prepared::Ready {
            environment,
            resolution,
        } => (
            environment,
            resolution.set,
            resolution.reused,
            resolution.moves_not_held,
        ),
        Prepared::Failed {
            verdict,
            reason,
            raised,
        } => {
            ctx.finished_cell(
                &cell.name,
                CellFinish::Failed {
                    verdict: verdict.label().to_owned(),
                },
            );
            let mut failed = failed_cell(&ctx, &cell, verdict, &reason);
            failed.report.unbuilt_raised = raised;
            return failed;
        }
    };
    let pinned: Vec<_> = cell.pins.iter().map(|pin| pin.package.clone()).collect();
    let mut changes = set.changes_from(&baseline, &pinned);
    if let Some(python) = &environment.python {
        crate::env::moves::explain(python, &set, &baseline, &mut changes);
        // A pin forced over what a kept package declares is no cell of that
        // version: what its service answers would blame the wrong thing.
        if cell.from_file.is_none()
            && let Some(broken) = crate::env::moves::broken_requirement(python, &set, &cell.pins)
        {
            ctx.finished_cell(
                &cell.name,
                CellFinish::Failed {
                    verdict: Verdict::NotTried.label().to_owned(),
                },
            );
            return failed_cell(
                &ctx,
                &cell,
                Verdict::NotTried,
                &format!("not installable alone ({broken})"),
            );
        }
    }
    let mut report = CellReport {
        changes,
        environment: Some(EnvironmentReport {
            id: environment.id.clone(),
            resolution_reused,
            build_reused: environment.reused,
            hash_checked: environment.hash_checked,
            built_from_source: environment.built_from_source.clone(),
            raised_requirements: environment.raised_requirements.clone(),
            rebuilt: environment.rebuilt.clone(),
            moves_not_held,
        }),
        ..blank_report(&cell)
    };
    let result_key = ctx
        .results_digest
        .as_deref()
        .map(|digest| results::key(digest, &cell, &set));
    if let Some(key) = &result_key
        && ctx.reuse_results
        && let Some(recorded) = results::load(&ctx.dirs, key)
    {
        return reuse(&ctx, &cell, recorded, report);
    }
    let mut contents = BTreeMap::new();
    if let Some(missing) = cell
        .pins
        .iter()
        .find(|pin| !set.packages.contains_key(&pin.package))
    {
        let reason = format!(
            "{} is not in the resolved set: nothing the service installs requires it",
            missing.package
        );
        return failed_cell(&ctx, &cell, Verdict::BuildFailed, &reason);
    }
    let runs = scenario_runs(&ctx.scenarios, &cell.profile);
    let replays = runs.iter().map(|run| async {
        let outcome = if cell.is_baseline() && ctx.check_noise {
            run_baseline_twice(&ctx, &cell, &environment, &set, run).await
        } else {
            let start = Start::current(&ctx);
            run_scenario(&ctx, &cell, &environment, &set, run, Attempt::First, start).await
        };
        ctx.step(
            &cell.name,
            CellStep::Judged {
                scenario: run.key.clone(),
                verdict: outcome.0.verdict.label().to_owned(),
            },
        );
        outcome
    });
    let replayed = join_all(replays).await;
    // A signal killed the services: what they answered since is not this
    // cell's result, to report or to record for reuse.
    if crate::sys::interrupt::signalled().is_some() {
        return failed_cell(&ctx, &cell, Verdict::Error, "interrupted");
    }
    if cell.is_baseline() && ctx.check_noise && ctx.preloading.checked() {
        ctx.preloading.verify();
    }
    for (run, (scenario_report, rendered)) in runs.iter().zip(replayed) {
        if let Some(rendered) = rendered {
            contents.insert(run.key.clone(), rendered);
        }
        report.scenarios.push(scenario_report);
    }
    report.duration_ms = ms(started.elapsed());
    ctx.finished_cell(&cell.name, judged(&report, false));
    let outcome = CellOutcome { report, contents };
    // The harness's own failures are not results: they run again next time.
    let judged = outcome
        .report
        .scenarios
        .iter()
        .all(|scenario| scenario.verdict != Verdict::Error);
    if let Some(key) = result_key
        && judged
    {
        let noise = if cell.is_baseline() {
            ctx.noise
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let recorded = results::Recorded {
            report: outcome.report.clone(),
            contents: outcome.contents.clone(),
            noise,
            preloading_off: cell
                .is_baseline()
                .then(|| ctx.preloading.found_off())
                .flatten(),
        };
        if let Err(err) = results::store(&ctx.dirs, &key, &recorded) {
            ctx.emit(RunEvent::NotRecorded {
                cell: cell.name.clone(),
                error: format!("{err:#}"),
            });
        }
    }
    outcome
}

/// How a finished cell did, in a few words.
fn judged(report: &CellReport, reused: bool) -> CellFinish {
    CellFinish::Judged {
        not_passing: report.failures().count(),
        reused,
    }
}

/// A recorded result in place of running the cell. What depends on this
/// run (its environment, the versions that differ from its baseline) is
/// taken from `fresh`; a reused baseline restores its noise for the others.
fn reuse(
    ctx: &RunContext,
    cell: &Cell,
    recorded: results::Recorded,
    fresh: CellReport,
) -> CellOutcome {
    if cell.is_baseline() {
        let mut noise = ctx.noise.lock().unwrap_or_else(|e| e.into_inner());
        for found in recorded.noise {
            noise.insert(found.scenario.clone(), found);
        }
        match recorded.preloading_off {
            Some(reason) => {
                ctx.preloading.turn_off(reason);
            }
            None if ctx.check_noise => ctx.preloading.verify(),
            None => {}
        }
    }
    let report = CellReport {
        environment: fresh.environment,
        changes: fresh.changes,
        result_reused: true,
        ..recorded.report
    };
    ctx.finished_cell(&cell.name, judged(&report, true));
    CellOutcome {
        report,
        contents: recorded.contents,
    }
}

/// The baseline's scenario, replayed twice at once on two fresh services:
/// fields that differ are noise, masked from then on; the first replay is
/// judged with them masked. Where preloading is checked, the first starts
/// cold and the second forked; when they differ, a third (cold) tells
/// noise, which two cold starts show too, from preloading's doing, which
/// turns preloading off for the rest of the run.
async fn run_baseline_twice(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    set: &ResolvedSet,
    run: &ScenarioRun<'_>,
) -> (ScenarioReport, Option<String>) {
    let checking = ctx.preloading.checked();
    let (first_start, second_start) = match checking {
        true => (Start::Cold, Start::Preloaded),
        false => (Start::current(ctx), Start::current(ctx)),
    };
    let ((mut report, first), (again, second)) = tokio::join!(
        run_scenario(
            ctx,
            cell,
            environment,
            set,
            run,
            Attempt::First,
            first_start
        ),
        run_scenario(
            ctx,
            cell,
            environment,
            set,
            run,
            Attempt::Again,
            second_start
        ),
    );
    report.add_check(&again);
    let (Some(first), Some(second)) = (&first, &second) else {
        if checking && first.is_some() != second.is_some() {
            turn_off_preloading(
                ctx,
                cell,
                format!(
                    "scenario run `{}` started cold and forked from a preloader did not both finish",
                    run.key
                ),
            );
        }
        return (report, first);
    };
    let mut noise = noise::compare_runs(&run.key, first, second);
    if checking && let Some(forked) = noise.take() {
        let (cold_again, third) = run_scenario(
            ctx,
            cell,
            environment,
            set,
            run,
            Attempt::Third,
            Start::Cold,
        )
        .await;
        report.add_check(&cold_again);
        let cold = third.and_then(|third| noise::compare_runs(&run.key, first, &third));
        match cold {
            Some(cold)
                if cold.fields == forked.fields
                    && cold.unexplained.is_empty() == forked.unexplained.is_empty() =>
            {
                noise = Some(forked);
            }
            cold => {
                turn_off_preloading(
                    ctx,
                    cell,
                    format!(
                        "scenario run `{}` answered differently started cold and forked from a preloader ({})",
                        run.key,
                        describe_difference(&forked)
                    ),
                );
                noise = cold;
            }
        }
    }
    let Some(noise) = noise else {
        return (report, Some(first.clone()));
    };
    ctx.step(
        &cell.name,
        CellStep::Noisy {
            scenario: run.key.clone(),
            fields: noise.fields.clone(),
            flaky: noise.is_flaky(),
        },
    );
    let fields = noise.fields.iter().cloned().collect();
    ctx.noise
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(run.key.clone(), noise);
    if report.verdict == Verdict::Changed {
        let accepted = ctx.accepted_snapshot(cell, &run.key);
        match snapshot::compare(&accepted, first, &fields) {
            Ok(Comparison::Matches) => {
                report.verdict = Verdict::Pass;
                report.summary = None;
                report.diff = None;
                report.log_tail = None;
            }
            Ok(Comparison::Differs { diff, .. }) => report.diff = Some(diff),
            _ => {}
        }
    }
    (report, Some(first.clone()))
}

/// Services start cold from now on, and the run says why.
fn turn_off_preloading(ctx: &RunContext, cell: &Cell, reason: String) {
    if ctx.preloading.turn_off(reason.clone()) {
        ctx.step(&cell.name, CellStep::PreloadingOff { reason });
    }
}

/// What differed between a cold and a forked replay, in a few words.
fn describe_difference(found: &Noise) -> String {
    match (found.fields.as_slice(), found.unexplained.first()) {
        ([], Some(line)) => format!("`{}`", line.trim()),
        ([], None) => "their replays differ".to_owned(),
        (fields, _) => format!("field {}", fields.join(", ")),
    }
}

/// One scenario against a fresh service, from a fresh copy of its source,
/// on a fresh database, once a service slot is free.
async fn run_scenario(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    set: &ResolvedSet,
    run: &ScenarioRun<'_>,
    attempt: Attempt,
    start: Start,
) -> (ScenarioReport, Option<String>) {
    // A second replay beside the first needs its own copy, database and log.
    let key = match attempt {
        Attempt::First => run.key.clone(),
        Attempt::Again => format!("{}.again", run.key),
        Attempt::Third => format!("{}.cold", run.key),
    };
    let _slot = ctx.service_slots.acquire().await;
    let held = Instant::now();
    ctx.step(
        &cell.name,
        CellStep::StartingService {
            scenario: key.clone(),
        },
    );
    // Each run its own copy: a service that writes beside its code (a
    // default database file, an upload folder) leaves nothing for the next.
    let service_dir = ctx.scratch.join(&cell.id).join(format!("{key}.service"));
    let copying = Instant::now();
    let copied = crate::sys::state::unless_quitting(|| {
        crate::sys::state::copy_tree(&ctx.config.service.root, &service_dir)
    });
    let copied_in = copying.elapsed();
    if let Err(err) = copied {
        let mut report = ScenarioReport::new(run.key.clone(), Verdict::Error);
        report.summary = Some(format!("cannot copy the service: {err:#}"));
        return (report, None);
    }
    let copy = RunCopy {
        dir: &service_dir,
        key: &key,
        start,
    };
    let (mut report, rendered) = replay_in(ctx, cell, environment, set, run, copy).await;
    let removing = Instant::now();
    let _ = fs_err::remove_dir_all(&service_dir);
    if let Some(timing) = report.timing.as_mut() {
        timing.harness.copy_ms = ms(copied_in + removing.elapsed());
        timing.harness.slot_ms = ms(held.elapsed());
    }
    (report, rendered)
}

/// Whole milliseconds, as timings are reported.
fn ms(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

/// [`run_scenario`] once the service's copy is in place.
async fn replay_in(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    set: &ResolvedSet,
    run: &ScenarioRun<'_>,
    copy: RunCopy<'_>,
) -> (ScenarioReport, Option<String>) {
    let RunCopy {
        dir: service_dir,
        key,
        start,
    } = copy;
    let scenario = run.scenario;
    let mut report = ScenarioReport::new(run.key.clone(), Verdict::Error);
    let config = &ctx.config;
    let Some(profile) = config.profile(&run.profile) else {
        report.summary = Some(format!("no profile `{}`", run.profile));
        return (report, None);
    };
    let mut secrets = scenario.secrets.clone();
    secrets.insert("run".to_owned(), ctx.run_secret.clone());
    let template = if profile.database == DatabaseKind::Postgres && !config.service.setup.is_empty()
    {
        match template_database(ctx, cell, environment, service_dir, profile).await {
            Ok(made) => Some(made),
            Err((reason, log)) => {
                report.verdict = Verdict::StartupFailed;
                report.summary = Some(reason);
                report.log_tail = Some(log::tail(&log::read_log(&log), LOG_TAIL_LINES));
                return (report, None);
            }
        }
    } else {
        None
    };
    let from_template = template.as_ref().map(|(name, _)| name.as_str());
    let taking = Instant::now();
    let fresh = match fresh_database(ctx, profile.database, &cell.id, key, from_template).await {
        Ok(fresh) => fresh,
        Err(err) => {
            report.summary = Some(format!("cannot make a fresh database: {err:#}"));
            return (report, None);
        }
    };
    let (database, database_ms, database_made_ahead) = match &fresh {
        FreshDatabase::Sqlite(database) => (database, None, false),
        FreshDatabase::Postgres(lease) => (
            &lease.database,
            Some(ms(taking.elapsed())),
            lease.made_ahead,
        ),
    };
    if let Database::Postgres { password, .. } = database {
        secrets.insert("db_password".to_owned(), password.clone());
    }
    let log = ctx
        .dirs
        .logs_dir()
        .join(&cell.id)
        .join(format!("{key}.log"));
    let waiting = Instant::now();
    let preloader = match start {
        Start::Preloaded if ctx.preloading.on() => {
            match ctx
                .preloading
                .for_cell(&ctx.config, &cell.id, environment)
                .await
            {
                Ok(preloader) => Some(preloader),
                Err(reason) => {
                    turn_off_preloading(ctx, cell, reason);
                    None
                }
            }
        }
        _ => None,
    };
    let preloader_ms = ms(waiting.elapsed());
    let launch = Launched {
        cell: &cell.name,
        environment,
        service_dir,
        env: &profile.env,
        database,
        preloader: preloader.as_deref(),
        log: &log,
        template_note: template.as_ref().map(|(name, setup_log)| {
            format!(
                "[upgrade-check: this run's database is a copy of {name}, which the setup commands ran into once; their output: {}]\n",
                relative(setup_log, &ctx.dirs.logs_dir())
            )
        }),
    };
    let outcome = replay_once(ctx, run, &launch, &mut report).await;
    // Dropped behind the run, off its way.
    drop(fresh);
    if let Some(timing) = report.timing.as_mut() {
        timing.database_ms = database_ms;
        timing.database_made_ahead = database_made_ahead;
        timing.harness.preloader_ms = preloader_ms;
    }
    let judging = Instant::now();
    let answered = Answered {
        service_dir,
        log,
        secrets,
        outcome,
    };
    let (mut report, rendered) = judge_replay(ctx, cell, environment, set, run, answered, report);
    if let Some(timing) = report.timing.as_mut() {
        timing.harness.judge_ms = ms(judging.elapsed());
    }
    (report, rendered)
}

/// What a run's service answered, once it has stopped.
struct Answered<'a> {
    service_dir: &'a Path,
    log: PathBuf,
    /// The scenario's secrets and the run's (the database password among them).
    secrets: BTreeMap<String, String>,
    outcome: Option<Startup>,
}

/// Reads the run's log, normalises what the service answered and judges it
/// against the accepted snapshot (or an alternative, or the base's in a
/// pull request); the rendered snapshot with the report.
fn judge_replay(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    set: &ResolvedSet,
    run: &ScenarioRun<'_>,
    answered: Answered<'_>,
    mut report: ScenarioReport,
) -> (ScenarioReport, Option<String>) {
    let Answered {
        service_dir,
        log,
        secrets,
        outcome,
    } = answered;
    let (config, scenario) = (&ctx.config, run.scenario);
    // Where the programs live differs per environment: never part of a snapshot.
    let programs = match &environment.python {
        Some(python) => ("venv", python.venv.display().to_string()),
        None => ("bin", environment.bin.display().to_string()),
    };
    let mut paths = vec![
        ("service_dir", service_dir.display().to_string()),
        programs,
        ("scratch", ctx.scratch.display().to_string()),
    ];
    // The port is chosen per run: a message that names it is the same message.
    if let Some(port) = report.service_port {
        paths.push(("service_address", format!("127.0.0.1:{port}")));
        paths.push(("service_address", format!("localhost:{port}")));
    }
    let mut normaliser = Normaliser::new(
        &secrets,
        &paths,
        &config.redactions,
        &config.replay.keep_headers,
    );
    // The log is read once, for warnings and the report's tail; it was
    // scrubbed of secrets and capped as it was written.
    let log_text = log::read_log(&log);
    // What the service said since its last start, its last lines: read
    // for warnings and output lines alike.
    let last_start = log_text
        .rfind(PORT_RETRY)
        .map_or(&log_text[..], |at| &log_text[at + PORT_RETRY.len()..]);
    let said = log::tail(last_start, SAID_LINES);
    report.warnings = warnings(&said, &mut normaliser);
    report.output = output_lines(&said, &mut normaliser);
    let log_tail = normaliser.literals(&log::tail(&log_text, LOG_TAIL_LINES));
    let Some(outcome) = outcome else {
        report.log_tail = Some(log_tail);
        // A service that would not start: the line of its log that says why.
        if report.verdict == Verdict::StartupFailed
            && let Some(error) = startup_error(&log_text)
        {
            report.summary = Some(match report.summary.take() {
                Some(summary) => format!("{summary}: {}", normaliser.literals(&error)),
                None => normaliser.literals(&error),
            });
        }
        return (report, None);
    };
    // What is about to become a reference is checked for being a doubtful one.
    if let (true, Startup::Started(replayed)) = (cell.is_baseline() || ctx.accepting, &outcome) {
        report.unhealthy = unhealthy(&replayed.exchanges, scenario, &log_text, &normaliser);
    }
    let rendered = render(&outcome, &mut normaliser, scenario.record_startup);
    let accepted = ctx.accepted_snapshot(cell, &run.key);
    let source = relative(&scenario.path, config.base_dir());
    let (failure, died) = match &outcome {
        Startup::Started(replayed) => (
            replayed.failure.as_ref().map(|failure| {
                format!(
                    "step `{}` ({source}:{}): {}",
                    failure.step, failure.line, failure.message
                )
            }),
            replayed
                .died
                .map(|status| format!("the service exited during the scenario ({status})")),
        ),
        Startup::Refused { .. } => (None, None),
    };
    let noisy = ctx.noisy_fields(&run.key);
    let comparison = snapshot::compare(&accepted, &rendered, &noisy);
    let edited = !cell.is_baseline() && ctx.changed_snapshots.contains(&run.key);
    if let Some(base) = ctx.base_snapshots.as_deref().filter(|_| edited) {
        let base = snapshot::accepted_path(base, &run.key);
        match (&comparison, snapshot::compare(&base, &rendered, &noisy)) {
            // As this change's snapshot says, where the base's says otherwise:
            // a change the pull request accepts, shown as base → this change.
            (Ok(Comparison::Matches), Ok(Comparison::Differs { diff, changes })) => {
                report.verdict = Verdict::Accepted;
                report.summary = changes
                    .startup
                    .as_ref()
                    .map(|(before, after)| format!("startup: {before} → {after}"))
                    .or(changes.first_status_change())
                    .or(changes.first_difference);
                report.diff = Some(diff);
                return (report, Some(rendered));
            }
            // As the base's says, where this change's says otherwise: the
            // change is another cell's (or no cell's, which the check says).
            (Ok(Comparison::Differs { .. }), Ok(Comparison::Matches)) => {
                report.verdict = Verdict::Pass;
                return (report, Some(rendered));
            }
            _ => {}
        }
    }
    if let Ok(Comparison::Differs { .. }) = &comparison
        && !cell.is_baseline()
    {
        match matching_alternative(ctx, set, &run.key, &rendered, &noisy) {
            Ok(Some(alternative)) => {
                report.verdict = Verdict::Pass;
                report.alternative = Some(format!(
                    "{} ({})",
                    alternative.range(),
                    relative(&alternative.path, config.base_dir())
                ));
                return (report, Some(rendered));
            }
            Ok(None) => {}
            Err(err) => {
                report.summary = Some(format!("{err:#}"));
                return (report, Some(rendered));
            }
        }
    }
    let judged = verdict::judge(
        comparison,
        RunFacts {
            security: scenario.security,
            failure,
            died,
            accepted: relative(&accepted, config.base_dir()),
        },
    );
    report.verdict = judged.verdict;
    report.summary = judged.summary;
    report.diff = judged.diff;
    report.security = judged.security;
    if !report.verdict.passes() {
        report.log_tail = Some(log_tail);
        // A handler that panicked explains an answer that never came.
        if let Some(panic) = rust_panic(&log_text) {
            let panic = format!("the service panicked: {}", normaliser.literals(&panic));
            report.summary = Some(match report.summary.take() {
                Some(summary) => format!("{summary}; {panic}"),
                None => panic,
            });
        }
    }
    (report, Some(rendered))
}

/// A scenario run as its snapshot holds it: the normalised exchanges (and
/// the startup outcome when the scenario records it), or the refusal.
fn render(outcome: &Startup, normaliser: &mut Normaliser<'_>, record_startup: bool) -> String {
    match outcome {
        Startup::Started(replayed) => {
            let exchanges: Vec<_> = replayed
                .exchanges
                .iter()
                .map(|exchange| normaliser.exchange(exchange))
                .collect();
            // The failure's words are the service's answer too: normalised alike.
            let failure = replayed.failure.clone().map(|failure| replay::StepFailure {
                message: normaliser.text(&failure.message),
                ..failure
            });
            let rendered = snapshot::render(&exchanges, failure.as_ref());
            if record_startup {
                format!("startup: started\n\n{rendered}")
            } else {
                rendered
            }
        }
        Startup::Refused {
            status,
            first_error,
        } => format!(
            "startup: refused\nexit: {status}\nerror: {}\n",
            normaliser.text(first_error)
        ),
    }
}

/// What a scenario run starts the service with.
struct Launched<'a> {
    /// The cell's name, for progress lines.
    cell: &'a str,
    environment: &'a Environment,
    service_dir: &'a Path,
    env: &'a BTreeMap<String, String>,
    database: &'a Database,
    /// The cell's preloader, for a run that starts forked.
    preloader: Option<&'a crate::exec::preload::Preloader>,
    log: &'a Path,
    /// Set when the database is a copy of a template the setup ran into:
    /// the note that opens the log instead of the setup's output.
    template_note: Option<String>,
}

/// The values of the config's `{placeholders}` for one start on `port`.
fn placeholders(ctx: &RunContext, launched: &Launched<'_>, port: u16) -> Placeholders {
    Placeholders::for_start(
        launched.environment,
        port,
        &ctx.run_secret,
        launched.service_dir,
        launched.database.placeholders(),
    )
}

/// How to start the service (or its setup commands) for `launched`.
fn launch<'a>(
    ctx: &'a RunContext,
    launched: &'a Launched<'_>,
    placeholders: &'a Placeholders,
    port: u16,
) -> Launch<'a> {
    let config = &ctx.config;
    let environment = launched.environment;
    Launch {
        command: &config.service.command,
        pass_env: &config.service.pass_env,
        env: launched.env,
        placeholders,
        bin: &environment.bin,
        venv: environment
            .python
            .as_ref()
            .map(|python| python.venv.as_path()),
        cwd: launched.service_dir,
        log: launched.log,
        port,
        health_paths: std::slice::from_ref(&config.service.health_path),
        startup_timeout: config.timeouts.startup,
        grace: config.timeouts.shutdown_grace,
        preloader: launched.preloader,
    }
}

/// With PostgreSQL, the setup commands run once per environment and profile,
/// into a template database; each scenario run's database is a copy of it
/// (`createdb --template`). Their output goes to `setup@PROFILE.log` beside
/// the runs' logs. The template's name, or why the setup failed.
async fn template_database(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    service_dir: &Path,
    profile: &crate::input::config::Profile,
) -> Result<(String, PathBuf), (String, PathBuf)> {
    let log = ctx
        .dirs
        .logs_dir()
        .join(&cell.id)
        .join(format!("setup@{}.log", profile.name));
    let once = ctx
        .templates
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(format!("{}@{}", environment.id, profile.name))
        .or_default()
        .clone();
    let made = once
        .get_or_init(|| async {
            let databases = ctx
                .databases
                .clone()
                .ok_or_else(|| "no PostgreSQL server was started for this run".to_owned())?;
            let database = databases
                .keep()
                .await
                .map_err(|err| format!("cannot make the template database: {err:#}"))?;
            if let Some(dir) = log.parent() {
                fs_err::create_dir_all(dir).map_err(|err| err.to_string())?;
            }
            let launched = Launched {
                cell: &cell.name,
                environment,
                service_dir,
                env: &profile.env,
                database: &database,
                preloader: None,
                log: &log,
                template_note: None,
            };
            let port = service::free_port().map_err(|err| err.to_string())?;
            let placeholders = placeholders(ctx, &launched, port);
            let launch = launch(ctx, &launched, &placeholders, port);
            tokio::task::block_in_place(|| {
                service::run_setup(&launch, &ctx.config.service.setup, None)
            })?;
            match database {
                Database::Postgres { name, .. } => Ok(name),
                Database::Sqlite { .. } => Err("a template needs PostgreSQL".to_owned()),
            }
        })
        .await
        .clone();
    match made {
        Ok(name) => Ok((name, log)),
        Err(reason) => Err((reason, log)),
    }
}

/// Waits for the databases being made and dropped, then drops those no
/// run took and the template databases (on a server the harness did not
/// start, nothing may be left behind).
pub async fn settle_databases(ctx: &RunContext) {
    if let Some(databases) = &ctx.databases {
        databases.settle().await;
    }
}

/// What happened when the service was started for a scenario.
enum Startup {
    Started(Replay),
    /// Only for scenarios that record their startup: the service exited before it was healthy.
    Refused {
        status: String,
        first_error: String,
    },
}

struct Replay {
    exchanges: Vec<replay::Exchange>,
    failure: Option<replay::StepFailure>,
    /// Set when the service exited while the scenario ran.
    died: Option<std::process::ExitStatus>,
}

/// Starts the service, replays the scenario, stops the service.
///
/// `None` means the run ended before a result (a startup failure outside a
/// startup-recording scenario, or a harness problem); the report says why.
async fn replay_once(
    ctx: &RunContext,
    run: &ScenarioRun<'_>,
    launched: &Launched<'_>,
    report: &mut ScenarioReport,
) -> Option<Startup> {
    if let Some(dir) = launched.log.parent()
        && let Err(err) = fs_err::create_dir_all(dir)
    {
        report.summary = Some(format!("cannot create the log folder: {err}"));
        return None;
    }
    // Another process may take the chosen port before the service binds it;
    // the service is then not the one answering, and the run tries another.
    let mut attempt = 0;
    let mut setup_ms = 0;
    let (running, port, startup) = loop {
        attempt += 1;
        let port = match service::free_port() {
            Ok(port) => port,
            Err(err) => {
                report.summary = Some(format!("no free loopback port: {err}"));
                return None;
            }
        };
        if failpoint("steal-port").is_some() {
            service::occupy_once(port);
        }
        let placeholders = placeholders(ctx, launched, port);
        let launch = launch(ctx, launched, &placeholders, port);
        // The log starts anew with each scenario run, with the setup's output
        // (or, where a template database was set up once, a note saying so).
        if attempt == 1 {
            let setup = match launched.template_note.as_deref() {
                Some(_) => &[][..],
                None => &ctx.config.service.setup[..],
            };
            match tokio::task::block_in_place(|| {
                service::run_setup(&launch, setup, launched.template_note.as_deref())
            }) {
                Ok(took) => setup_ms = ms(took),
                Err(reason) => {
                    report.verdict = Verdict::StartupFailed;
                    report.summary = Some(reason);
                    return None;
                }
            }
        }
        let starting = Instant::now();
        match service::start(launch, &ctx.client).await {
            Ok(running) => break (running, port, starting.elapsed()),
            Err(failure) if failure.port_taken && attempt < PORT_ATTEMPTS => {
                // What the start on a taken port printed is no output of the
                // service's: warnings and output lines are read after this.
                let _ = service::note_in_log(launched.log, PORT_RETRY);
                ctx.emit(RunEvent::PortTaken {
                    cell: launched.cell.to_owned(),
                    scenario: report.scenario.clone(),
                    port,
                });
            }
            Err(failure) => {
                if run.scenario.record_startup
                    && let Some(status) = failure.exit_status
                {
                    let status = match (
                        status.code(),
                        std::os::unix::process::ExitStatusExt::signal(&status),
                    ) {
                        (Some(code), _) => format!("code {code}"),
                        (None, Some(signal)) => format!("killed by signal {signal}"),
                        _ => status.to_string(),
                    };
                    // Starting until the refusal is the service's own time too.
                    report.timing = Some(crate::model::report::Timing {
                        setup_ms,
                        database_ms: None,
                        database_made_ahead: false,
                        startup_ms: ms(starting.elapsed()),
                        replay_ms: 0,
                        requests: 0,
                        preloaded: failure.preloaded,
                        harness: Default::default(),
                    });
                    return Some(Startup::Refused {
                        status,
                        first_error: first_error_line(&log::log_tail(launched.log, 200)),
                    });
                }
                report.leaks = failure.stopped.leaks;
                if let Some(error) = failure.stopped.log_error {
                    report.summary = Some(error);
                    return None;
                }
                report.verdict = Verdict::StartupFailed;
                report.summary = Some(failure.reason);
                return None;
            }
        }
    };
    let preloaded = running.preloaded;
    report.service_pid = Some(running.pid());
    report.service_port = Some(port);
    let replaying = Instant::now();
    ctx.emit(RunEvent::ServiceStarted {
        cell: launched.cell.to_owned(),
        scenario: report.scenario.clone(),
        pid: running.pid(),
        port,
    });
    let replayed = replay::replay(
        &ctx.client,
        &running.base_url,
        run.scenario,
        ctx.config.timeouts.request,
    )
    .await;
    report.timing = Some(crate::model::report::Timing {
        setup_ms,
        database_ms: None,
        database_made_ahead: false,
        startup_ms: ms(startup),
        replay_ms: ms(replaying.elapsed()),
        requests: replayed.exchanges.len(),
        preloaded,
        harness: Default::default(),
    });
    // A request that got no answer may mean the service is dying: give it a moment to be seen dead.
    let no_answer = replayed
        .exchanges
        .last()
        .is_some_and(|exchange| exchange.response.is_err());
    let stopping = Instant::now();
    let died = running
        .exit_status_within(if no_answer {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        })
        .await;

    let stopped = running.stop().await;
    if let Some(timing) = report.timing.as_mut() {
        timing.harness.stop_ms = ms(stopping.elapsed());
    }
    report.leaks = stopped.leaks;
    if let Some(error) = stopped.log_error {
        report.verdict = Verdict::Error;
        report.summary = Some(error);
        return None;
    }
    Some(Startup::Started(Replay {
        exchanges: replayed.exchanges,
        failure: replayed.failure,
        died,
    }))
}

/// A scenario run's database: a SQLite file in its scratch folder, or a
/// PostgreSQL database leased until the run ends.
enum FreshDatabase {
    Sqlite(Database),
    Postgres(DatabaseLease),
}

/// A database nobody has used, of the profile's kind.
async fn fresh_database(
    ctx: &RunContext,
    kind: DatabaseKind,
    cell: &str,
    key: &str,
    template: Option<&str>,
) -> anyhow::Result<FreshDatabase> {
    match kind {
        DatabaseKind::Sqlite => {
            let dir = ctx.scratch.join(cell);
            crate::sys::state::unless_quitting(|| Ok(fs_err::create_dir_all(&dir)?))?;
            Ok(FreshDatabase::Sqlite(Database::fresh_sqlite(&dir, key)))
        }
        DatabaseKind::Postgres => {
            let databases = ctx
                .databases
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no PostgreSQL server was started for this run"))?;
            Ok(FreshDatabase::Postgres(databases.take(template).await?))
        }
    }
}

/// The line that says why a service refused to start: the first that
/// mentions an error, else the last line it printed.
fn first_error_line(log: &str) -> String {
    // The harness's own notes (`[upgrade-check: …]`) are not the service's words.
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("[upgrade-check:"))
        .collect();
    lines
        .iter()
        .find(|line| line.to_ascii_lowercase().contains("error"))
        .or(lines.last())
        .map_or_else(|| "(no output)".to_owned(), |line| (*line).to_owned())
}

/// The alternative accepted snapshot of `key` that covers this cell's
/// versions and that `rendered` matches, if any.
fn matching_alternative(
    ctx: &RunContext,
    set: &ResolvedSet,
    key: &str,
    rendered: &str,
    noisy: &std::collections::BTreeSet<String>,
) -> anyhow::Result<Option<snapshot::Alternative>> {
    let config = &ctx.config;
    for alternative in
        snapshot::alternatives(&config.replay.snapshots, key, config.service.ecosystem)?
    {
        let covered = set
            .packages
            .get(&alternative.from.package)
            .is_some_and(|resolved| alternative.covers(&resolved.version));
        if covered && snapshot::compare(&alternative.path, rendered, noisy)? == Comparison::Matches
        {
            return Ok(Some(alternative));
        }
    }
    Ok(None)
}

/// What makes a baseline's run of a scenario a doubtful reference: steps
/// that answer 5xx, steps that ask a path the service does not serve (its
/// framework's own 404 or 405, which no step expects), steps of which none
/// got an answer (a service that died after its health check), and the
/// error of a traceback (Python) or a panic (Rust) in its log.
fn unhealthy(
    exchanges: &[replay::Exchange],
    scenario: &Scenario,
    log: &str,
    normaliser: &Normaliser<'_>,
) -> Vec<String> {
    let unanswered = exchanges
        .iter()
        .map(|exchange| exchange.response.as_ref().err().map(|why| (exchange, why)))
        .collect::<Option<Vec<_>>>()
        .and_then(|all| all.first().copied());
    let mut found: Vec<String> = unanswered
        .map(|(first, why)| {
            format!(
                "no step got an answer (step `{}`: {})",
                first.step,
                normaliser.literals(why)
            )
        })
        .into_iter()
        .collect();
    found.extend(exchanges.iter().filter_map(|exchange| {
        let response = exchange.response.as_ref().ok()?;
        let expected = scenario
            .steps
            .iter()
            .find(|step| step.name == exchange.step)
            .and_then(|step| step.expect_status);
        if not_served(response) && expected != Some(response.status) {
            return Some(format!(
                "step `{}` answered {}: a path the service does not serve ({} {})",
                exchange.step,
                response.status_line(),
                exchange.request.method,
                exchange.request.path
            ));
        }
        (response.status >= 500).then(|| {
            format!(
                "step `{}` answered {}",
                exchange.step,
                response.status_line()
            )
        })
    }));
    let lines: Vec<&str> = log.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        if line.starts_with("Traceback (most recent call last)") {
            // The exception is the first line after the indented frames.
            let error = lines[index + 1..]
                .iter()
                .find(|line| !line.starts_with(char::is_whitespace))
                .unwrap_or(line);
            found.push(format!(
                "the service logged a traceback: {}",
                normaliser.literals(error.trim())
            ));
        } else if line.contains("panicked at") {
            found.push(format!(
                "the service panicked: {}",
                normaliser.literals(line.trim())
            ));
        }
    }
    found.dedup();
    found
}

/// Why a service would not start, from its log: the exception a Python
/// traceback ends with, a Rust panic's message and place, or the first line
/// that says `error`.
fn startup_error(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let traceback = lines
        .iter()
        .rposition(|line| line.starts_with("Traceback (most recent call last)"));
    if let Some(at) = traceback {
        // The exception is the first line after the indented frames.
        return lines[at + 1..]
            .iter()
            .find(|line| !line.starts_with(char::is_whitespace) && !line.trim().is_empty())
            .map(|line| line.trim().to_owned());
    }
    if let Some(panic) = rust_panic(log) {
        return Some(format!("panicked: {panic}"));
    }
    let said = first_error_line(log);
    (said != "(no output)" && said.to_ascii_lowercase().contains("error")).then_some(said)
}

/// A framework's own answer to a path it has no route for: 404 or 405 with
/// a body that is no API's JSON (an HTML page, plain text, nothing), or
/// FastAPI's and Starlette's `{"detail": "Not Found"}`.
fn not_served(response: &replay::Response) -> bool {
    if !matches!(response.status, 404 | 405) {
        return false;
    }
    match serde_json::from_slice::<serde_json::Value>(&response.body) {
        Ok(serde_json::Value::Object(fields)) => {
            fields.len() == 1
                && matches!(
                    fields.get("detail").and_then(|detail| detail.as_str()),
                    Some("Not Found" | "Method Not Allowed")
                )
        }
        Ok(serde_json::Value::Array(_)) => false,
        _ => true,
    }
}

/// The first Rust panic in a service's log: its message and where it was
/// raised (`thread '…' (id) panicked at FILE:LINE:COL:` with the message on the
/// next line, or on the same line before Rust 1.73).
fn rust_panic(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.starts_with("thread '") && line.contains(" panicked at "))?;
    let (_, rest) = lines[at].split_once(" panicked at ")?;
    let (location, message) = match rest.strip_suffix(':') {
        Some(location) => {
            let message = lines[at + 1..]
                .iter()
                .map(|line| line.trim())
                .find(|line| !line.is_empty())
                .unwrap_or("");
            (location, message.to_owned())
        }
        // `'message', src/main.rs:3:5`
        None => match rest.rsplit_once("', ") {
            Some((message, location)) => (location, message.trim_start_matches('\'').to_owned()),
            None => ("", rest.to_owned()),
        },
    };
    let place = match location {
        "" => String::new(),
        location => format!(" ({})", crate::env::cargo_build::place_of(location)),
    };
    Some(format!("{message}{place}"))
}

/// Words that make an output line a warning (see [`warnings`]).
const WARNING_MARKERS: &[&str] = &["warn", "error", "traceback", "exception", "(trapped)"];

/// The service's output lines that are no warning, each once, normalised and
/// with every number masked, so that times, ports and counts do not make a
/// line new; the harness's own notes left out, and so are the indented lines
/// that carry on a warning (a traceback's frames, the source line a Python
/// warning quotes).
fn output_lines(log: &str, normaliser: &mut Normaliser<'_>) -> Vec<String> {
    const MAX: usize = 30;
    let mut found: Vec<String> = Vec::new();
    let mut in_warning = false;
    for raw in log.lines() {
        let line = raw.trim();
        let lower = line.to_ascii_lowercase();
        // Two spaces or a tab: a frame or a quoted line, not a ` * ` banner.
        let carries_on = in_warning && (raw.starts_with("  ") || raw.starts_with('\t'));
        in_warning = carries_on || WARNING_MARKERS.iter().any(|marker| lower.contains(marker));
        if line.is_empty() || line.starts_with("[upgrade-check:") || in_warning {
            continue;
        }
        // A terminal escape's payload (a title, a link) is no output to keep.
        let line = crate::sys::redact::terminal_safe(line);
        let line: String = crate::judge::normalize::log_line(&normaliser.text(line.trim()))
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        if !found.contains(&line) && found.len() < MAX {
            found.push(line);
        }
    }
    found
}

/// Lines of the service's output that look like warnings or errors, normalised.
fn warnings(log: &str, normaliser: &mut Normaliser<'_>) -> Vec<String> {
    const MAX: usize = 20;
    let mut found: Vec<String> = Vec::new();
    // The warning being read: `* ` lines right after it are its own
    // (pydantic: "Valid config keys have changed in V2:" then
    // "* 'orm_mode' has been renamed to 'from_attributes'").
    let mut reading: Option<String> = None;
    let done = |warning: Option<String>, found: &mut Vec<String>| {
        if let Some(warning) = warning
            && !found.contains(&warning)
            && found.len() < MAX
        {
            found.push(warning);
        }
    };
    for line in log.lines() {
        let mut normal = || crate::judge::normalize::log_line(&normaliser.text(line.trim()));
        if line.starts_with("* ")
            && let Some(warning) = reading.as_mut()
        {
            warning.push('\n');
            warning.push_str(&normal());
            continue;
        }
        let lower = line.to_ascii_lowercase();
        let next = WARNING_MARKERS
            .iter()
            .any(|marker| lower.contains(marker))
            .then(normal);
        done(std::mem::replace(&mut reading, next), &mut found);
    }
    done(reading, &mut found);
    found
}

fn failed_cell(ctx: &RunContext, cell: &Cell, verdict: Verdict, reason: &str) -> CellOutcome {
    let summary = reason.lines().last().unwrap_or(reason).to_owned();
    let report = CellReport {
        scenarios: scenario_runs(&ctx.scenarios, &cell.profile)
            .into_iter()
            .map(|run| ScenarioReport {
                summary: Some(summary.clone()),
                log_tail: Some(reason.to_owned()),
                ..ScenarioReport::new(run.key, verdict)
            })
            .collect(),
        ..blank_report(cell)
    };
    CellOutcome {
        report,
        contents: BTreeMap::new(),
    }
}

/// A cell's report before anything is known about it.
fn blank_report(cell: &Cell) -> CellReport {
    CellReport {
        id: cell.id.clone(),
        name: cell.name.clone(),
        baseline: cell.is_baseline(),
        pins: cell
            .pins
            .iter()
            .map(|pin| format!("{}=={}", pin.package, pin.version))
            .collect(),
        changes: Vec::new(),
        new_warnings: Vec::new(),
        new_output: Vec::new(),
        environment: None,
        unbuilt_raised: Vec::new(),
        scenarios: Vec::new(),
        duration_ms: 0,
        result_reused: false,
    }
}

/// `path` relative to `base` for messages, or as it is when outside it.
pub fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_panic_is_read_with_its_message_and_place() {
        let log = "auth-service: listening on 127.0.0.1:4000

thread 'tokio-rt-worker' (29044) panicked at /root/.cargo/registry/src/index.mirror-1949cf8c6b5b557f/jsonwebtoken-10.4.0/src/crypto/mod.rs:124:40:

Could not automatically determine the process-level CryptoProvider from jsonwebtoken crate features.
Call CryptoProvider::install_default() before this point
stack backtrace:";
        assert_eq!(
            rust_panic(log).as_deref(),
            Some(
                "Could not automatically determine the process-level CryptoProvider from jsonwebtoken crate features. (in the dependency jsonwebtoken-10.4.0: src/crypto/mod.rs:124:40)"
            )
        );
        let old_format = "thread 'main' panicked at 'index out of bounds', src/main.rs:3:5";
        assert_eq!(
            rust_panic(old_format).as_deref(),
            Some("index out of bounds (in the service's code: src/main.rs:3:5)")
        );
        assert_eq!(rust_panic("Traceback (most recent call last):"), None);
    }

    #[test]
    fn a_framework_s_own_not_found_is_told_from_an_api_s() {
        let answer = |status: u16, body: &str| replay::Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            truncated_bytes: 0,
        };
        assert!(not_served(&answer(
            404,
            "<!doctype html><title>404 Not Found</title>"
        )));
        assert!(not_served(&answer(404, r#"{"detail":"Not Found"}"#)));
        assert!(not_served(&answer(405, "")));
        assert!(!not_served(&answer(404, r#"{"error":"no such user"}"#)));
        assert!(!not_served(&answer(404, "[]")));
        assert!(!not_served(&answer(200, "<html></html>")));
    }

    #[test]
    fn a_warning_keeps_the_bullet_lines_that_follow_it() {
        let log = "/srv/venv/pydantic/_internal/_config.py:321: UserWarning: Valid config keys have changed in V2:
* 'orm_mode' has been renamed to 'from_attributes'
  warnings.warn(message, UserWarning)
 * Running on http://127.0.0.1:8000
DeprecationWarning: the other one
";
        let secrets = BTreeMap::new();
        let mut normaliser = Normaliser::new(&secrets, &[], &[], &[]);
        let found = warnings(log, &mut normaliser);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].ends_with(
                "UserWarning: Valid config keys have changed in V2:\n* 'orm_mode' has been renamed to 'from_attributes'"
            ),
            "{found:?}"
        );
        assert_eq!(found[1], "warnings.warn(message, UserWarning)");
        assert_eq!(found[2], "DeprecationWarning: the other one");
    }

    #[test]
    fn output_lines_are_what_the_service_says_besides_its_warnings() {
        let log = "[upgrade-check: started cold: no preloader]
 * Serving Flask app 'app'
WARNING: This is a development server.
   Use a production WSGI server instead.
 * Running on http://127.0.0.1:40123
Traceback (most recent call last):
  File \"/srv/app.py\", line 3, in <module>
    boom()
ValueError: boom
127.0.0.1 - - [06/Dec/2026 14:00:00] \"GET /health HTTP/1.1\" 200 -
127.0.0.1 - - [06/Dec/2026 14:00:01] \"GET /health HTTP/1.1\" 200 -
";
        let secrets = BTreeMap::new();
        let mut normaliser = Normaliser::new(&secrets, &[], &[], &[]);
        let lines = output_lines(log, &mut normaliser);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "* Serving Flask app 'app'");
        assert!(
            lines[1].starts_with("* Running on http://[ip]:"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("\"GET /health HTTP/#.#\" ### -"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_start_up_crash_is_said_by_the_line_of_its_log_that_explains_it() {
        let traceback = "Traceback (most recent call last):
  File \"/srv/app/__main__.py\", line 3, in <module>
    from flask.json import JSONEncoder
ImportError: cannot import name 'JSONEncoder' from 'flask.json'
";
        assert_eq!(
            startup_error(traceback).as_deref(),
            Some("ImportError: cannot import name 'JSONEncoder' from 'flask.json'")
        );
        let panic = "thread 'main' (1) panicked at src/main.rs:40:10:\nmissing JWT_SECRET_KEY\n";
        assert_eq!(
            startup_error(panic).as_deref(),
            Some("panicked: missing JWT_SECRET_KEY (in the service's code: src/main.rs:40:10)")
        );
        let said = "starting\nPathError: '/api/<path:rest>' is not a valid route\n";
        assert_eq!(
            startup_error(said).as_deref(),
            Some("PathError: '/api/<path:rest>' is not a valid route")
        );
        assert_eq!(startup_error("listening\nbye\n"), None);
        assert_eq!(startup_error(""), None);
    }
}
