//! The baseline's double replay: fields that differ between two fresh
//! services are noise, masked from then on; where preloading is checked, a
//! cold and a forked start are compared, and a third, cold, replay tells
//! noise from what preloading changed.
//!
//! A baseline whose recorded run had the same inputs (source, scenarios,
//! snapshots, config, environment, harness: its results key), in this
//! checkout or another sharing its cache folder, is replayed once, as configured:
//! that run's check stands, as a reused result's would.

use std::collections::BTreeMap;

use super::scenario::{Attempt, Start, run_scenario};
use super::{RunContext, ScenarioRun, results};
use crate::env::{Environment, ResolvedSet};
use crate::judge::noise;
use crate::judge::snapshot::{self, Comparison};
use crate::model::cell::Cell;
use crate::model::event::CellStep;
use crate::model::findings::Noise;
use crate::model::report::{ScenarioReport, Verdict};

/// The baseline's scenario, replayed twice at once on two fresh services:
/// fields that differ are noise, masked from then on; the first replay is
/// judged with them masked. Where preloading is checked, the first starts
/// cold and the second forked; when they differ, a third (cold) tells
/// noise, which two cold starts show too, from preloading's doing, which
/// turns preloading off for the rest of the run.
pub(super) async fn run_baseline_twice(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    set: &ResolvedSet,
    run: &ScenarioRun<'_>,
) -> (ScenarioReport, Option<String>) {
    let checking = ctx.state.preloading.checked()
        && (ctx.settings.cold_check_only.as_ref()).is_none_or(|only| *only == run.key);
    let (first_start, second_start) = match checking {
        true => (Start::Cold, Start::Preloaded),
        false => (Start::current(ctx), Start::current(ctx)),
    };
    let replay = |attempt, start| run_scenario(ctx, cell, environment, set, run, attempt, start);
    let ((mut report, first), (again, second)) = tokio::join!(
        replay(Attempt::First, first_start),
        replay(Attempt::Again, second_start),
    );
    report.add_check(&again);
    let (Some(first), Some(second)) = (&first, &second) else {
        if checking && first.is_some() != second.is_some() {
            ctx.turn_off_preloading(
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
        let (cold_again, third) = replay(Attempt::Third, Start::Cold).await;
        report.add_check(&cold_again);
        noise = noise_or_preloading(ctx, cell, run, first, third, forked);
    }
    let Some(noise) = noise else {
        return (report, Some(first.clone()));
    };
    let report = masked(ctx, cell, run, noise, report, first);
    (report, Some(first.clone()))
}

/// The noise the baseline's recorded run of the same inputs found, by run
/// key, when the run may take it; its verdict on preloading stands. `None`:
/// the baseline is checked by replaying it twice.
pub(super) fn recorded_noise(
    ctx: &RunContext,
    cell: &Cell,
    keys: &results::Keys,
) -> Option<BTreeMap<String, Noise>> {
    if !ctx.settings.reuse_noise {
        return None;
    }
    // Signed by this machine's harness: noise a pull request brought
    // would mask the very fields it changes.
    let recorded = results::load_check(&ctx.settings.dirs, keys)?;
    match recorded.preloading_off {
        Some(reason) => {
            ctx.state.preloading.turn_off(reason);
        }
        None => ctx.state.preloading.verify(),
    }
    ctx.state
        .noise_from_record
        .store(true, std::sync::atomic::Ordering::SeqCst);
    ctx.step(
        &cell.name,
        CellStep::NoiseFromRecord {
            noisy: recorded.noise.len(),
        },
    );
    Some(
        recorded
            .noise
            .into_iter()
            .map(|found| (found.scenario.clone(), found))
            .collect(),
    )
}

/// The baseline's scenario replayed once, as services start now, judged
/// with the fields its recorded run found noisy masked.
pub(super) async fn run_baseline_once(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    set: &ResolvedSet,
    run: &ScenarioRun<'_>,
    noise: Option<Noise>,
) -> (ScenarioReport, Option<String>) {
    let start = Start::current(ctx);
    let (report, first) =
        run_scenario(ctx, cell, environment, set, run, Attempt::First, start).await;
    match (noise, &first) {
        (Some(noise), Some(rendered)) => {
            let report = masked(ctx, cell, run, noise, report, rendered);
            (report, first)
        }
        _ => (report, first),
    }
}

/// A cold and a forked replay differed: when a third, cold, replay differs
/// from the first just as much, it was noise; otherwise preloading made
/// the difference, and services start cold from now on. The noise found.
fn noise_or_preloading(
    ctx: &RunContext,
    cell: &Cell,
    run: &ScenarioRun<'_>,
    first: &str,
    third: Option<String>,
    forked: Noise,
) -> Option<Noise> {
    let cold = third.and_then(|third| noise::compare_runs(&run.key, first, &third));
    match cold {
        Some(cold)
            if cold.fields == forked.fields
                && cold.unexplained.is_empty() == forked.unexplained.is_empty() =>
        {
            Some(forked)
        }
        cold => {
            ctx.turn_off_preloading(
                cell,
                format!(
                    "scenario run `{}` answered differently started cold and forked from a preloader ({})",
                    run.key,
                    describe_difference(&forked)
                ),
            );
            cold
        }
    }
}

/// Keeps `noise` for every later comparison of the run, and judges the
/// first replay (`first`) again with its fields masked.
fn masked(
    ctx: &RunContext,
    cell: &Cell,
    run: &ScenarioRun<'_>,
    noise: Noise,
    report: ScenarioReport,
    first: &str,
) -> ScenarioReport {
    ctx.step(
        &cell.name,
        CellStep::Noisy {
            scenario: run.key.clone(),
            fields: noise.fields.clone(),
            flaky: noise.is_flaky(),
        },
    );
    let fields = noise.fields.iter().cloned().collect();
    ctx.state
        .noise
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(run.key.clone(), noise);
    if report.verdict != Verdict::Changed {
        return report;
    }
    let accepted = ctx.accepted_snapshot(cell, &run.key);
    match snapshot::compare(&accepted, first, &fields) {
        Ok(Comparison::Matches) => ScenarioReport {
            verdict: Verdict::Pass,
            summary: None,
            diff: None,
            log_tail: None,
            ..report
        },
        Ok(Comparison::Differs { diff, .. }) => ScenarioReport {
            diff: Some(diff),
            ..report
        },
        _ => report,
    }
}

/// What differed between a cold and a forked replay, in a few words.
pub(super) fn describe_difference(found: &Noise) -> String {
    match (found.fields.as_slice(), found.unexplained.first()) {
        ([], Some(line)) => format!("`{}`", line.trim()),
        ([], None) => "their replays differ".to_owned(),
        (fields, _) => format!("field {}", fields.join(", ")),
    }
}
