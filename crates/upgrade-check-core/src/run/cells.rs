//! A plan's cells, in one pipeline: every environment prepared (see
//! `prepare`), the baseline run and judged as soon as its own is ready,
//! then every other cell as soon as its own is, each on its own task so
//! that a panic fails that cell alone; recorded results reused where a
//! cell's inputs are unchanged. A broken baseline stops the run there,
//! builds still going included, unless told to keep going.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use tokio::task::JoinSet;

use super::noise_check::{recorded_noise, run_baseline_once, run_baseline_twice};
use super::prepare::{Prepared, prepare_all};
use super::scenario::{Attempt, Start, run_scenario};
use super::{CellOutcome, RunContext, ms, results, scenario_runs};
use crate::env::{BuildError, Environment, ResolvedSet};
use crate::judge::snapshot;
use crate::judge::verdict::{self};
use crate::model::cell::{Cell, Plan};
use crate::model::event::{CellFinish, CellStep, RunEvent};
use crate::model::report::{CellReport, EnvironmentReport, ScenarioReport, Verdict};
use crate::sys::failpoint::failpoint;

/// Runs every cell of `plan`, baseline first, and returns them in plan order.
///
/// One pipeline: every cell resolves at once and installs in plan order
/// (at most `jobs` at once), the baseline's first; the baseline runs as
/// soon as its own is ready, while the others build, and every other cell
/// as soon as its own is ready and the baseline has been judged.
pub(crate) async fn run_plan(ctx: Arc<RunContext>, plan: &Plan) -> Vec<CellOutcome> {
    ctx.emit(RunEvent::PlanStarted {
        cells: plan.cells.len(),
    });
    let baseline = match resolve_baseline(&ctx).await {
        Ok(baseline) => Arc::new(baseline),
        Err((verdict, reason)) => {
            return plan
                .cells
                .iter()
                .map(|cell| failed_cell(&ctx, cell, verdict, &reason))
                .collect();
        }
    };
    ctx.state
        .preloading
        .line_up(plan.cells.iter().map(|cell| cell.id.clone()).collect());
    let (preparing, stop_preparing) = prepare_all(&ctx, plan, &baseline);
    let mut cells = plan.cells.iter().cloned().zip(preparing).enumerate();
    // The baseline is judged before anything else.
    if let Some((index, (cell, preparing))) = cells.next() {
        let mut outcome = guarded(&ctx, cell.clone(), preparing.ready().await, &baseline).await;
        if cell.is_baseline() && ctx.settings.baseline_is_reference {
            take_as_reference(&ctx, &mut outcome);
        }
        // A plan of probes (bisection) judges each cell on its own.
        let stop = if cell.is_baseline() {
            say_how_the_baseline_did(&ctx, &outcome.report);
            broken(&outcome.report, ctx.settings.baseline_is_reference)
                .filter(|_| !ctx.settings.keep_going)
        } else {
            None
        };
        record(&ctx, index, outcome);
        if let Some(why) = stop {
            stop_preparing.stop();
            let not_run = cells.map(|(index, (cell, _))| (index, cell));
            stop_after_baseline(&ctx, why, not_run.collect()).await;
            return finished(&ctx);
        }
    }
    // Every other cell as its environment is ready: their scenario runs
    // queue for the service slots, first come first served, so cells still
    // finish roughly in plan order.
    let mut running = JoinSet::new();
    for (index, (cell, preparing)) in cells {
        let (ctx, baseline) = (ctx.clone(), baseline.clone());
        running.spawn(async move {
            let prepared = preparing.ready().await;
            (index, guarded(&ctx, cell, prepared, &baseline).await)
        });
    }
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((index, outcome)) => record(&ctx, index, outcome),
            Err(err) => unreachable!("guarded cells do not panic: {err}"),
        }
    }
    finished(&ctx)
}

/// Why the baseline leaves nothing to compare the other cells with, when it
/// does: it cannot be built, a scenario does not start or cannot be run on
/// it, or it passes nothing and answers unhealthy. A baseline that only
/// differs from its snapshots does not stop the run: what a cell does
/// besides the baseline's own failure is still news. `exploring`: a variant
/// the baseline cannot run is one variant less, not a broken baseline.
fn broken(baseline: &CellReport, exploring: bool) -> Option<String> {
    let cannot_run = baseline
        .scenarios
        .iter()
        .find(|scenario| match scenario.verdict {
            Verdict::BuildFailed | Verdict::StartupFailed => true,
            Verdict::Error => !exploring,
            _ => false,
        });
    if let Some(scenario) = cannot_run {
        let summary = scenario.summary.as_deref().unwrap_or("no reason given");
        return Some(match scenario.verdict {
            Verdict::BuildFailed => format!("cannot be built — {summary}"),
            Verdict::StartupFailed => {
                format!("does not start in `{}` — {summary}", scenario.scenario)
            }
            _ => format!("cannot run `{}` — {summary}", scenario.scenario),
        });
    }
    let unhealthy = !baseline.scenarios.is_empty()
        && baseline
            .scenarios
            .iter()
            .all(|scenario| scenario.verdict.fails() && !scenario.unhealthy.is_empty());
    unhealthy.then(|| "fails every scenario and answers unhealthy".to_owned())
}

/// Exploration: the baseline's answer to each variant, written as its
/// accepted snapshot in the run's own snapshots folder, and its verdict a
/// pass (it is the reference); one it could not run stays as it is.
fn take_as_reference(ctx: &RunContext, outcome: &mut CellOutcome) {
    let snapshots = &ctx.settings.config.replay.snapshots;
    for scenario in &mut outcome.report.scenarios {
        let Some(contents) = outcome.contents.get(&scenario.scenario) else {
            continue;
        };
        let no_snapshot = scenario
            .summary
            .as_deref()
            .is_some_and(|summary| summary.starts_with(verdict::NO_SNAPSHOT));
        if scenario.verdict != Verdict::Changed || !no_snapshot {
            continue;
        }
        let path = snapshot::accepted_path(snapshots, &scenario.scenario);
        let header = snapshot::Header {
            source: scenario.scenario.clone(),
            scenario: &scenario.scenario,
            description: "the baseline's answer, the reference of this exploration",
        };
        match snapshot::accept(&path, &header, contents) {
            Ok(()) => {
                scenario.verdict = Verdict::Pass;
                scenario.summary = None;
            }
            Err(err) => {
                scenario.verdict = Verdict::Error;
                scenario.summary = Some(format!("cannot write the reference: {err:#}"));
            }
        }
    }
}

/// Every cell after a broken baseline, not tried and saying why; a
/// preloader started ahead for one stops now.
async fn stop_after_baseline(ctx: &RunContext, why: String, not_run: Vec<(usize, Cell)>) {
    ctx.emit(RunEvent::StoppedAfterBaseline {
        why: why.clone(),
        not_run: not_run.len(),
    });
    let reason = format!("not run: the baseline {why} (--keep-going runs every cell anyway)");
    for (index, cell) in not_run {
        ctx.state.preloading.finish_cell(&cell.id).await;
        record(
            ctx,
            index,
            failed_cell(ctx, &cell, Verdict::NotTried, &reason),
        );
    }
    *ctx.state
        .stopped_after_baseline
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(why);
}

/// The baseline's resolved set, or the verdict every cell gets without it:
/// a baseline that cannot be resolved fails its build; a failure of the
/// harness's leaves nothing known about any cell.
async fn resolve_baseline(ctx: &RunContext) -> Result<ResolvedSet, (Verdict, String)> {
    ctx.emit(RunEvent::ResolvingBaseline);
    let builder = ctx.services.builder.clone();
    match tokio::task::spawn_blocking(move || builder.resolve_baseline()).await {
        Ok(Ok(resolution)) => Ok(resolution.set),
        Ok(Err(BuildError::Refused(why))) => Err((
            Verdict::BuildFailed,
            format!("the baseline cannot be resolved:\n{why}"),
        )),
        Ok(Err(err)) => Err((
            Verdict::Error,
            format!("resolving the baseline failed: {err:#}"),
        )),
        Err(err) => Err((
            Verdict::Error,
            format!("resolving the baseline failed: {err}"),
        )),
    }
}

/// The baseline's verdict, said before any other cell's: the scenarios it
/// fails, and among them those that only lack an accepted snapshot.
fn say_how_the_baseline_did(ctx: &RunContext, report: &CellReport) {
    let failing = report.failures().map(|s| s.scenario.clone()).collect();
    let unaccepted = report
        .failures()
        .filter(|s| {
            s.summary
                .as_deref()
                .is_some_and(|summary| summary.starts_with(verdict::NO_SNAPSHOT))
        })
        .map(|s| s.scenario.clone())
        .collect();
    ctx.emit(RunEvent::BaselineJudged {
        accepting: ctx.settings.accepting,
        failing,
        unaccepted,
    });
}

/// Runs a cell on its own task so that a panic in it fails that cell only.
pub(super) async fn guarded(
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
    ctx.state.preloading.finish_cell(&cell.id).await;
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
pub(super) struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps a finished cell where both the end of the run and a cancellation
/// find it; not one that finished after a signal killed its services.
pub(super) fn record(ctx: &RunContext, index: usize, outcome: CellOutcome) {
    if crate::sys::interrupt::signalled().is_some() {
        return;
    }
    ctx.state
        .finished
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((index, outcome));
}

/// The cells finished so far, in plan order (all of them once the run is over).
pub(crate) fn finished(ctx: &RunContext) -> Vec<CellOutcome> {
    let mut finished =
        std::mem::take(&mut *ctx.state.finished.lock().unwrap_or_else(|e| e.into_inner()));
    finished.sort_by_key(|(index, _)| *index);
    finished.into_iter().map(|(_, outcome)| outcome).collect()
}

pub(super) async fn run_cell(
    ctx: Arc<RunContext>,
    cell: Cell,
    prepared: Prepared,
    baseline: Arc<ResolvedSet>,
) -> CellOutcome {
    if failpoint("panic-in-cell").as_deref() == Some(cell.id.as_str()) {
        panic!("failpoint panic-in-cell={}", cell.id);
    }
    let started = Instant::now();
    let (environment, resolution) = match prepared {
        Prepared::Ready {
            environment,
            resolution,
        } => (*environment, *resolution),
        Prepared::Failed {
            verdict,
            reason,
            raised,
        } => return not_prepared(&ctx, &cell, verdict, &reason, raised),
    };
    let set = &resolution.set;
    let report = match cell_report(&cell, &environment, &resolution, &baseline) {
        Ok(report) => report,
        Err(why) => return not_prepared(&ctx, &cell, Verdict::NotTried, &why, Vec::new()),
    };
    let keys =
        (ctx.settings.digests.as_ref()).map(|digests| results::Keys::of(digests, &cell, set));
    if let Some(recorded) = results::reusable(&ctx.settings, keys.as_ref()) {
        return reuse(&ctx, &cell, recorded, report);
    }
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
    let replayed = replay_every_scenario(&ctx, &cell, &environment, set, keys.as_ref()).await;
    // A signal killed the services: what they answered since is not this
    // cell's result, to report or to record for reuse.
    if crate::sys::interrupt::signalled().is_some() {
        return failed_cell(&ctx, &cell, Verdict::Error, "interrupted");
    }
    if cell.is_baseline() && ctx.settings.check_noise && ctx.state.preloading.checked() {
        ctx.state.preloading.verify();
    }
    let mut contents = BTreeMap::new();
    let mut report = report;
    for (key, (scenario_report, rendered)) in replayed {
        if let Some(rendered) = rendered {
            contents.insert(key, rendered);
        }
        report.scenarios.push(scenario_report);
    }
    report.duration_ms = ms(started.elapsed());
    ctx.finished_cell(&cell.name, judged(&report, false));
    let outcome = CellOutcome { report, contents };
    if let Some(keys) = keys {
        store_result(&ctx, &cell, &keys, &outcome);
    }
    outcome
}

/// A cell whose environment could not be made: every scenario says why.
fn not_prepared(
    ctx: &RunContext,
    cell: &Cell,
    verdict: Verdict,
    reason: &str,
    raised: Vec<String>,
) -> CellOutcome {
    ctx.finished_cell(
        &cell.name,
        CellFinish::Failed {
            verdict: verdict.label().to_owned(),
        },
    );
    let mut failed = failed_cell(ctx, cell, verdict, reason);
    failed.report.unbuilt_raised = raised;
    failed
}

/// The cell's report before its scenarios run: the versions that differ
/// from the baseline's (and why each moved) and its environment; or why
/// the cell is not tried, when a pin is forced over what a kept package
/// declares (what its service answers would blame the wrong thing).
fn cell_report(
    cell: &Cell,
    environment: &Environment,
    resolution: &crate::env::Resolution,
    baseline: &ResolvedSet,
) -> Result<CellReport, String> {
    let set = &resolution.set;
    let pinned: Vec<_> = cell.pins.iter().map(|pin| pin.package.clone()).collect();
    let mut changes = set.changes_from(baseline, &pinned);
    if let Some(python) = &environment.python {
        crate::env::moves::explain(python, set, baseline, &mut changes);
        if cell.from_file.is_none()
            && let Some(broken) = crate::env::moves::broken_requirement(python, set, &cell.pins)
        {
            return Err(format!("not installable alone ({broken})"));
        }
    }
    Ok(CellReport {
        changes,
        environment: Some(EnvironmentReport {
            id: environment.id.clone(),
            resolution_reused: resolution.reused,
            build_reused: environment.reused,
            hash_checked: environment.hash_checked,
            built_from_source: environment.built_from_source.clone(),
            raised_requirements: environment.raised_requirements.clone(),
            rebuilt: environment.rebuilt.clone(),
            moves_not_held: resolution.moves_not_held.clone(),
        }),
        ..blank_report(cell)
    })
}

/// Every scenario run of the cell, at once (each waits for a service
/// slot): the baseline's twice when noise is checked, unless its recorded
/// run of the same inputs (`keys`) did. By run key.
async fn replay_every_scenario(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    set: &ResolvedSet,
    keys: Option<&results::Keys>,
) -> Vec<(String, (ScenarioReport, Option<String>))> {
    let runs = scenario_runs(&ctx.settings.scenarios, &cell.profile);
    let check_noise = cell.is_baseline() && ctx.settings.check_noise;
    let recorded_noise = keys
        .filter(|_| check_noise)
        .and_then(|keys| recorded_noise(ctx, cell, keys));
    let replays = runs.iter().map(|run| async {
        let outcome = if let Some(recorded) = &recorded_noise {
            let noise = recorded.get(&run.key).cloned();
            run_baseline_once(ctx, cell, environment, set, run, noise).await
        } else if check_noise {
            run_baseline_twice(ctx, cell, environment, set, run).await
        } else {
            let start = Start::current(ctx);
            run_scenario(ctx, cell, environment, set, run, Attempt::First, start).await
        };
        ctx.step(
            &cell.name,
            CellStep::Judged {
                scenario: run.key.clone(),
                verdict: outcome.0.verdict.label().to_owned(),
            },
        );
        (run.key.clone(), outcome)
    });
    join_all(replays).await
}

/// Records the cell's result for reuse, unless the harness failed in it
/// (its own failures are no results: they run again next time).
fn store_result(ctx: &RunContext, cell: &Cell, keys: &results::Keys, outcome: &CellOutcome) {
    let judged = outcome
        .report
        .scenarios
        .iter()
        .all(|scenario| scenario.verdict != Verdict::Error);
    if !judged {
        return;
    }
    let noise = if cell.is_baseline() {
        ctx.state
            .noise
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
            .then(|| ctx.state.preloading.found_off())
            .flatten(),
    };
    let stored = results::store(&ctx.settings.dirs, &keys.result, &recorded).and_then(|()| {
        match cell.is_baseline() {
            true => results::store_check(
                &ctx.settings.dirs,
                &keys.check,
                &results::BaselineCheck {
                    noise: recorded.noise,
                    preloading_off: recorded.preloading_off,
                },
            ),
            false => Ok(()),
        }
    });
    if let Err(err) = stored {
        ctx.emit(RunEvent::NotRecorded {
            cell: cell.name.clone(),
            error: format!("{err:#}"),
        });
    }
}

/// How a finished cell did, in a few words.
pub(super) fn judged(report: &CellReport, reused: bool) -> CellFinish {
    CellFinish::Judged {
        not_passing: report.failures().count(),
        reused,
    }
}

/// A recorded result in place of running the cell. What depends on this
/// run (its environment, the versions that differ from its baseline) is
/// taken from `fresh`; a reused baseline restores its noise for the others.
pub(super) fn reuse(
    ctx: &RunContext,
    cell: &Cell,
    recorded: results::Recorded,
    fresh: CellReport,
) -> CellOutcome {
    if cell.is_baseline() {
        let mut noise = ctx.state.noise.lock().unwrap_or_else(|e| e.into_inner());
        for found in recorded.noise {
            noise.insert(found.scenario.clone(), found);
        }
        match recorded.preloading_off {
            Some(reason) => {
                ctx.state.preloading.turn_off(reason);
            }
            None if ctx.settings.check_noise => ctx.state.preloading.verify(),
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

pub(super) fn failed_cell(
    ctx: &RunContext,
    cell: &Cell,
    verdict: Verdict,
    reason: &str,
) -> CellOutcome {
    let summary = reason.lines().last().unwrap_or(reason).to_owned();
    let report = CellReport {
        scenarios: scenario_runs(&ctx.settings.scenarios, &cell.profile)
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
pub(super) fn blank_report(cell: &Cell) -> CellReport {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(scenarios: Vec<ScenarioReport>) -> CellReport {
        CellReport {
            scenarios,
            ..blank_report(&Cell::baseline("dev"))
        }
    }

    fn scenario(name: &str, verdict: Verdict, summary: &str) -> ScenarioReport {
        ScenarioReport {
            summary: Some(summary.to_owned()),
            ..ScenarioReport::new(name.to_owned(), verdict)
        }
    }

    #[test]
    fn a_baseline_is_broken_when_nothing_can_be_compared_with_it() {
        let starts_not = baseline(vec![
            scenario("login", Verdict::Pass, ""),
            scenario("health", Verdict::StartupFailed, "ImportError: x"),
        ]);
        assert_eq!(
            broken(&starts_not, false).as_deref(),
            Some("does not start in `health` — ImportError: x")
        );
        let unbuilt = baseline(vec![scenario("login", Verdict::BuildFailed, "no wheel")]);
        assert_eq!(
            broken(&unbuilt, false).as_deref(),
            Some("cannot be built — no wheel")
        );
        let mut unhealthy = scenario("login", Verdict::Changed, "200 OK → 500");
        unhealthy.unhealthy = vec!["500 Internal Server Error".to_owned()];
        assert_eq!(
            broken(&baseline(vec![unhealthy.clone()]), false).as_deref(),
            Some("fails every scenario and answers unhealthy")
        );
        // A baseline that differs from its snapshots, or is unhealthy in
        // some scenarios only, still says something of every cell.
        let differs = baseline(vec![
            unhealthy,
            scenario("register", Verdict::Pass, ""),
            scenario("health", Verdict::Changed, "200 OK → 404"),
        ]);
        assert_eq!(broken(&differs, false), None);
        // Exploring, a variant the baseline cannot run is one variant less.
        let one_variant = baseline(vec![
            scenario("login-2-password-null", Verdict::Error, "no step ran"),
            scenario("login-2-password-73-bytes", Verdict::Pass, ""),
        ]);
        assert!(broken(&one_variant, false).is_some());
        assert_eq!(broken(&one_variant, true), None);
        assert!(broken(&starts_not, true).is_some());
    }
}
