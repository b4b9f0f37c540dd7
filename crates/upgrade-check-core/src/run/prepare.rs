//! Every cell's environment, prepared for the pipeline: the baseline's
//! first and alone, so that nothing competes with it for the caches'
//! locks, the index or the cores, the others then use what it brought
//! into the caches, and a broken baseline is known before any other build
//! ends. Then every other cell resolves at once (at most twice `jobs`:
//! resolving asks the index more than the cores) and installs in plan
//! order, at most `jobs` at once. A run that stops kills the commands
//! still going.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;

use super::{RunContext, results};
use crate::env::{BuildError, Environment, Resolution, ResolvedSet};
use crate::model::cell::{Cell, Plan};
use crate::model::event::CellStep;
use crate::model::report::Verdict;
use crate::sys::failpoint::failpoint;
use crate::sys::process::Cancel;

/// A cell ready to run, or the reason it cannot.
pub(super) enum Prepared {
    Ready {
        environment: Box<Environment>,
        /// The resolved set, whether it came from the cache, and how near.
        resolution: Box<Resolution>,
    },
    Failed {
        verdict: Verdict,
        reason: String,
        /// Requirements raised before the build failed: the footer names them too.
        raised: Vec<String>,
    },
}

/// One cell's environment, being prepared on a task of its own.
pub(super) struct Preparing(oneshot::Receiver<Prepared>);

impl Preparing {
    /// The environment once it is ready, or why the cell cannot run.
    pub(super) async fn ready(self) -> Prepared {
        // A task that panicked dropped its sender: that cell is the harness's failure.
        self.0.await.unwrap_or_else(|_| Prepared::Failed {
            verdict: Verdict::Error,
            reason: "the harness panicked while preparing this cell".to_owned(),
            raised: Vec::new(),
        })
    }
}

/// Stops the preparations still going, the commands they run included
/// (uv, cargo: a build the run no longer needs is killed, not waited
/// for); when told, and when the run ends early (the guard is dropped).
pub(super) struct StopPreparing {
    feeder: tokio::task::AbortHandle,
    cancel: Cancel,
}

impl StopPreparing {
    pub(super) fn stop(&self) {
        self.cancel.cancel();
        self.feeder.abort();
    }
}

impl Drop for StopPreparing {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one cell's preparation answers to.
#[derive(Clone)]
struct Control {
    /// The run no longer needs it: its commands are killed.
    cancel: Cancel,
    /// Open once the baseline's environment is prepared, ready or not.
    baseline_prepared: watch::Receiver<bool>,
    /// Resolutions at once.
    resolving: Arc<Semaphore>,
}

/// Starts preparing every cell's environment and hands back each one's to
/// await on its own, with what stops whatever is still preparing. Once the
/// baseline's is prepared, each other cell resolves at once (at most twice
/// `jobs` at a time); its turn to install comes in plan order, with one of
/// `jobs` permits.
pub(super) fn prepare_all(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    baseline: &Arc<ResolvedSet>,
) -> (Vec<Preparing>, StopPreparing) {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        plan.cells.iter().map(|_| oneshot::channel()).unzip();
    let (ctx, baseline, cells) = (ctx.clone(), baseline.clone(), plan.cells.clone());
    let cancel = Cancel::default();
    let (open_gate, baseline_prepared) = watch::channel(false);
    // A plan of probes (bisection) has no baseline to wait for.
    if !cells.first().is_some_and(Cell::is_baseline) {
        open_gate.send_replace(true);
    }
    let mut open_gate = Some(open_gate);
    let control = Control {
        cancel: cancel.clone(),
        baseline_prepared,
        resolving: Arc::new(Semaphore::new(2 * ctx.settings.jobs)),
    };
    let feeder = tokio::spawn(async move {
        let mut preparing = JoinSet::new();
        let mut turns = Vec::new();
        for (cell, sender) in cells.into_iter().zip(senders) {
            let (give_turn, turn) = oneshot::channel();
            turns.push(give_turn);
            // The baseline's preparation opens the gate when it ends, however it ends.
            let opens = match cell.is_baseline() {
                true => open_gate.take(),
                false => None,
            };
            let (ctx, baseline, control) = (ctx.clone(), baseline.clone(), control.clone());
            preparing.spawn(async move {
                let prepared = prepare(&ctx, &cell, &baseline, control, turn, opens).await;
                match &prepared {
                    Prepared::Ready {
                        environment,
                        resolution,
                    } if !takes_a_recorded_result(&ctx, &cell, &resolution.set) => {
                        let config = &ctx.settings.config;
                        ctx.state
                            .preloading
                            .ready(config, &cell.id, (**environment).clone());
                    }
                    // Never lined up (it starts no service, or cannot): the
                    // cell before starts the one after ahead.
                    _ => ctx.state.preloading.finish_cell(&cell.id).await,
                }
                let _ = sender.send(prepared);
            });
        }
        // Turns to install, in plan order: the baseline's first. A cell
        // whose resolution failed hands its permit straight back.
        let permits = Arc::new(Semaphore::new(ctx.settings.jobs));
        for give_turn in turns {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let _ = give_turn.send(permit);
        }
        while preparing.join_next().await.is_some() {}
    });
    let stop = StopPreparing {
        feeder: feeder.abort_handle(),
        cancel,
    };
    let preparing = receivers.into_iter().map(Preparing).collect();
    (preparing, stop)
}

/// Whether `cell` on `set` will take its recorded result: it starts no
/// service, and a preloader started ahead for it would be thrown away.
fn takes_a_recorded_result(ctx: &RunContext, cell: &Cell, set: &ResolvedSet) -> bool {
    let keys = (ctx.settings.digests.as_ref()).map(|digests| results::Keys::of(digests, cell, set));
    results::reusable(&ctx.settings, keys.as_ref()).is_some()
}

/// Resolves one cell (another than the baseline once the baseline's
/// environment is prepared), then installs it on its turn.
async fn prepare(
    ctx: &Arc<RunContext>,
    cell: &Cell,
    baseline: &Arc<ResolvedSet>,
    control: Control,
    turn: oneshot::Receiver<OwnedSemaphorePermit>,
    opens: Option<watch::Sender<bool>>,
) -> Prepared {
    let _open_when_done = opens.map(OpenWhenDone);
    // Nothing competes with the baseline's own preparation for the
    // caches' locks, the index or the cores.
    let mut gate = control.baseline_prepared.clone();
    if !cell.is_baseline() && gate.wait_for(|open| *open).await.is_err() {
        return stopped();
    }
    ctx.step(&cell.name, CellStep::Resolving);
    let resolved = {
        let _resolving = control.resolving.clone().acquire_owned().await;
        let builder = ctx.services.builder.clone();
        let (pins, from_file) = (cell.pins.clone(), cell.from_file.clone());
        let (baseline, id) = (baseline.clone(), cell.id.clone());
        blocking(&control.cancel, move || {
            slowed_when_asked(&id)?;
            resolve(&builder, &baseline, &pins, from_file.as_deref())
        })
        .await
        .and_then(|resolved| resolved)
    };
    let built = match resolved {
        Ok(resolution) => {
            // Ends only when the run is stopped: then nothing is installed.
            let Ok(_permit) = turn.await else {
                return stopped();
            };
            let builder = ctx.services.builder.clone();
            match blocking(&control.cancel, move || install(&builder, resolution)).await {
                Ok(installed) => installed,
                Err(err) => Err((err, Vec::new())),
            }
        }
        Err(err) => Err((err, Vec::new())),
    };
    said(ctx, cell, built)
}

/// Runs `work` on a blocking thread whose commands `cancel` kills; a
/// panic in it is the harness's failure.
async fn blocking<T: Send + 'static>(
    cancel: &Cancel,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BuildError> {
    let cancel = cancel.clone();
    tokio::task::spawn_blocking(move || cancel.watching(work))
        .await
        .map_err(|err| BuildError::Harness(anyhow::anyhow!("{err}")))
}

/// What a preparation the run stopped leaves: nothing any report shows.
fn stopped() -> Prepared {
    Prepared::Failed {
        verdict: Verdict::Error,
        reason: "stopped: the run no longer needs it".to_owned(),
        raised: Vec::new(),
    }
}

/// The cell's environment, or why there is none, as the run tells it.
fn said(
    ctx: &RunContext,
    cell: &Cell,
    built: Result<(Environment, Resolution), (BuildError, Vec<String>)>,
) -> Prepared {
    match built {
        Ok((environment, resolution)) => {
            ctx.step(
                &cell.name,
                CellStep::EnvironmentReady {
                    id: environment.id.clone(),
                    reused: environment.reused,
                    rebuilt: environment.rebuilt.clone(),
                },
            );
            Prepared::Ready {
                environment: Box::new(environment),
                resolution: Box::new(resolution),
            }
        }
        Err((BuildError::Refused(why), raised)) => {
            ctx.step(&cell.name, CellStep::BuildFailed);
            Prepared::Failed {
                verdict: Verdict::BuildFailed,
                reason: why,
                raised,
            }
        }
        Err((BuildError::NotHeld(why), raised)) => Prepared::Failed {
            verdict: Verdict::NotTried,
            reason: why,
            raised,
        },
        Err((err, raised)) => Prepared::Failed {
            verdict: Verdict::Error,
            reason: format!("{err:#}"),
            raised,
        },
    }
}

/// Opens the gate when the baseline's preparation ends, however it ends
/// (an aborted run included).
struct OpenWhenDone(watch::Sender<bool>);

impl Drop for OpenWhenDone {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// A cell's pins on the baseline, or a pull request's file as it is,
/// resolved; refused when the set does not hold a pin as named.
fn resolve(
    builder: &crate::env::Builder,
    baseline: &ResolvedSet,
    pins: &[crate::model::cell::Pin],
    from_file: Option<&std::path::Path>,
) -> Result<Resolution, BuildError> {
    let resolution = match from_file {
        Some(path) => builder.resolve_file(path),
        None => builder.resolve_cell(baseline, pins),
    }?;
    if let Some(why) = resolution.set.not_holding(pins) {
        return Err(BuildError::NotHeld(why));
    }
    Ok(resolution)
}

/// The resolved set's environment, built or found; on failure, the
/// requirements raised before it, which the report names too.
fn install(
    builder: &crate::env::Builder,
    mut resolution: Resolution,
) -> Result<(Environment, Resolution), (BuildError, Vec<String>)> {
    let environment = match resolution.built.take() {
        Some(built) => Ok(built),
        None => builder.materialise(&resolution.set),
    }
    .map_err(|err| {
        let raised = resolution
            .set
            .locked
            .iter()
            .flat_map(|inputs| &inputs.raised);
        (err, raised.map(ToString::to_string).collect())
    })?;
    Ok((environment, resolution))
}

/// Makes `cell_id`'s preparation longer when a test asks
/// (`slow-prepare=CELL_ID:MS`), to see the pipeline's order: a command
/// that sleeps, run as a build's commands are, so that a run that stops
/// early kills it as it kills them.
fn slowed_when_asked(cell_id: &str) -> Result<(), BuildError> {
    let asked = failpoint("slow-prepare").and_then(|value| {
        let (id, ms) = value.rsplit_once(':')?;
        Some((id.to_owned(), ms.parse::<u64>().ok()?))
    });
    if let Some((id, ms)) = asked
        && id == cell_id
    {
        let seconds = format!("{}.{:03}", ms / 1000, ms % 1000);
        let timeout = std::time::Duration::from_millis(ms) * 2;
        crate::sys::process::run_captured(duct::cmd("sleep", [seconds]), timeout)
            .map_err(|err| BuildError::Harness(err.into()))?;
    }
    Ok(())
}
