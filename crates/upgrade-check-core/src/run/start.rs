//! Starting the service for one scenario run (its setup commands first, on
//! another port when the chosen one was taken), replaying the scenario and
//! stopping it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::evidence::first_error_line;
use super::failure::{RunFailure, Trace};
use super::{RunContext, ScenarioRun, ms};
use crate::env::Environment;
use crate::exec::db::Database;
use crate::exec::replay;
use crate::exec::service::{self, Launch, Placeholders, StartIn};
use crate::model::event::RunEvent;
use crate::model::report::Timing;
use crate::sys::failpoint::failpoint;
use crate::sys::log;

/// Ports tried for one service start before giving up.
pub(super) const PORT_ATTEMPTS: usize = 3;

/// The note a service's log gets when its start found the port taken and
/// starts again on another.
pub(super) const PORT_RETRY: &str =
    "[upgrade-check: the port was taken; starting again on another]";

/// What a scenario run starts the service with.
pub(super) struct Launched<'a> {
    /// The cell's name, for progress lines.
    pub(super) cell: &'a str,
    pub(super) environment: &'a Environment,
    pub(super) service_dir: &'a Path,
    pub(super) env: &'a BTreeMap<String, String>,
    pub(super) database: &'a Database,
    /// The cell's preloader, for a run that starts forked.
    pub(super) preloader: Option<&'a crate::exec::preload::Preloader>,
    pub(super) log: &'a Path,
    /// Set when the database is a copy of a template the setup ran into:
    /// the note that opens the log instead of the setup's output.
    pub(super) template_note: Option<String>,
}

/// The values of the config's `{placeholders}` for one start on `port`.
pub(super) fn placeholders(ctx: &RunContext, launched: &Launched<'_>, port: u16) -> Placeholders {
    Placeholders::for_start(
        launched.environment,
        port,
        &ctx.settings.run_secret,
        launched.service_dir,
        launched.database.placeholders(),
    )
}

/// How to start the service (or its setup commands) for `launched`.
pub(super) fn launch<'a>(
    ctx: &'a RunContext,
    launched: &'a Launched<'_>,
    placeholders: &'a Placeholders,
    port: u16,
) -> Launch<'a> {
    let this = StartIn {
        cwd: launched.service_dir,
        log: launched.log,
        port,
        env: launched.env,
        placeholders,
    };
    Launch {
        preloader: launched.preloader,
        ..Launch::of(&ctx.settings.config, launched.environment, this)
    }
}

/// What happened when the service was started for a scenario.
pub(super) enum Startup {
    Started(Replay),
    /// Only for scenarios that record their startup: the service exited before it was healthy.
    Refused {
        status: String,
        first_error: String,
    },
}

pub(super) struct Replay {
    pub(super) exchanges: Vec<replay::Exchange>,
    pub(super) failure: Option<replay::StepFailure>,
    /// Set when the service exited while the scenario ran.
    pub(super) died: Option<std::process::ExitStatus>,
}

/// Starts the service, replays the scenario, stops the service: what it
/// answered (or how its start was refused, for a scenario that records its
/// startup), or why the run ended before that; with what is known of it.
pub(super) async fn replay_once(
    ctx: &RunContext,
    run: &ScenarioRun<'_>,
    launched: &Launched<'_>,
) -> (Trace, Result<Startup, RunFailure>) {
    if let Some(dir) = launched.log.parent()
        && let Err(err) = fs_err::create_dir_all(dir)
    {
        let failure = RunFailure::Harness(format!("cannot create the log folder: {err}"));
        return (Trace::default(), Err(failure));
    }
    let started = match start_on_a_free_port(ctx, run, launched).await {
        Ok(started) => started,
        Err(Unstarted::Refused { timing, startup }) => {
            let trace = Trace {
                timing: Some(timing),
                ..Trace::default()
            };
            return (trace, Ok(startup));
        }
        Err(Unstarted::Failed { failure, leaks }) => {
            let trace = Trace {
                leaks,
                ..Trace::default()
            };
            return (trace, Err(failure));
        }
    };
    replay_and_stop(ctx, run, launched, started).await
}

/// A service up and healthy, and what starting it took.
struct Started {
    running: service::RunningService,
    port: u16,
    setup_ms: u64,
    startup: Duration,
}

/// Why there is no running service to replay on.
enum Unstarted {
    /// A scenario that records its startup saw the service exit first.
    Refused { timing: Timing, startup: Startup },
    Failed {
        failure: RunFailure,
        leaks: Vec<String>,
    },
}

/// Runs the setup commands, then starts the service on a free port; on
/// another when a process took the chosen one before the service bound it
/// (the service would then not be the one answering).
async fn start_on_a_free_port(
    ctx: &RunContext,
    run: &ScenarioRun<'_>,
    launched: &Launched<'_>,
) -> Result<Started, Unstarted> {
    let failed = |failure| Unstarted::Failed {
        failure,
        leaks: Vec::new(),
    };
    let mut setup_ms = 0;
    for attempt in 1..=PORT_ATTEMPTS {
        let port = service::free_port()
            .map_err(|err| failed(RunFailure::Harness(format!("no free loopback port: {err}"))))?;
        if failpoint("steal-port").is_some() {
            service::occupy_once(port);
        }
        let placeholders = placeholders(ctx, launched, port);
        let launch = launch(ctx, launched, &placeholders, port);
        if attempt == 1 {
            setup_ms = run_setup(ctx, launched, &launch).map_err(failed)?;
        }
        let starting = Instant::now();
        let failure = match service::start(launch, &ctx.services.client).await {
            Ok(running) => {
                return Ok(Started {
                    running,
                    port,
                    setup_ms,
                    startup: starting.elapsed(),
                });
            }
            Err(failure) => failure,
        };
        if failure.port_taken && attempt < PORT_ATTEMPTS {
            // What the start on a taken port printed is no output of the
            // service's: warnings and output lines are read after this.
            let _ = service::note_in_log(launched.log, PORT_RETRY);
            ctx.emit(RunEvent::PortTaken {
                cell: launched.cell.to_owned(),
                scenario: run.key.clone(),
                port,
            });
            continue;
        }
        return Err(not_started(run, launched, failure, setup_ms, starting));
    }
    unreachable!("the last attempt returns")
}

/// The log starts anew with each scenario run, with the setup commands'
/// output (or, where a template database was set up once, a note saying
/// so); how long they took.
fn run_setup(
    ctx: &RunContext,
    launched: &Launched<'_>,
    launch: &Launch<'_>,
) -> Result<u64, RunFailure> {
    let setup = match launched.template_note.as_deref() {
        Some(_) => &[][..],
        None => &ctx.settings.config.service.setup[..],
    };
    tokio::task::block_in_place(|| {
        service::run_setup(launch, setup, launched.template_note.as_deref())
    })
    .map(ms)
    .map_err(RunFailure::Startup)
}

/// A start that failed: a refusal the scenario records, or the failure.
fn not_started(
    run: &ScenarioRun<'_>,
    launched: &Launched<'_>,
    failure: service::StartupFailure,
    setup_ms: u64,
    starting: Instant,
) -> Unstarted {
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
        let timing = Timing {
            setup_ms,
            startup_ms: ms(starting.elapsed()),
            preloaded: failure.preloaded,
            ..Timing::default()
        };
        let startup = Startup::Refused {
            status,
            first_error: first_error_line(&log::log_tail(launched.log, 200)),
        };
        return Unstarted::Refused { timing, startup };
    }
    let failure_of_run = match failure.stopped.log_error {
        Some(error) => RunFailure::Harness(error),
        None => RunFailure::Startup(failure.reason),
    };
    Unstarted::Failed {
        failure: failure_of_run,
        leaks: failure.stopped.leaks,
    }
}

/// A server error's cause is often logged just after the answer went out
/// (Express logs it on the event loop's next turn): after a run that ended
/// on a 5xx the log goes quiet before the service is stopped, or its tail
/// would miss it. An earlier 5xx's line was written while the service
/// went on to the next request.
async fn let_a_server_error_s_cause_reach_the_log(log: &Path, exchanges: &[replay::Exchange]) {
    let ended_on_a_server_error = exchanges.last().is_some_and(|exchange| {
        exchange
            .response
            .as_ref()
            .is_ok_and(|response| response.status >= 500)
    });
    if ended_on_a_server_error {
        log::settled(log, Duration::from_millis(30), Duration::from_millis(300)).await;
    }
}

/// Replays the scenario on the started service, then stops it.
async fn replay_and_stop(
    ctx: &RunContext,
    run: &ScenarioRun<'_>,
    launched: &Launched<'_>,
    started: Started,
) -> (Trace, Result<Startup, RunFailure>) {
    let Started {
        running,
        port,
        setup_ms,
        startup,
    } = started;
    let replaying = Instant::now();
    ctx.emit(RunEvent::ServiceStarted {
        cell: launched.cell.to_owned(),
        scenario: run.key.clone(),
        pid: running.pid(),
        port,
    });
    let replayed = replay::replay(
        &ctx.services.client,
        &running.base_url,
        run.scenario,
        ctx.settings.config.timeouts.request,
        // What `{secret}` gives the service, its signing key in most configs.
        std::slice::from_ref(&ctx.settings.run_secret),
    )
    .await;
    let mut timing = Timing {
        setup_ms,
        startup_ms: ms(startup),
        replay_ms: ms(replaying.elapsed()),
        requests: replayed.exchanges.len(),
        preloaded: running.preloaded,
        ..Timing::default()
    };
    // A request that got no answer may mean the service is dying: give it
    // a moment to be seen dead.
    let no_answer = replayed
        .exchanges
        .last()
        .is_some_and(|exchange| exchange.response.is_err());
    let stopping = Instant::now();
    let_a_server_error_s_cause_reach_the_log(launched.log, &replayed.exchanges).await;
    let patience = if no_answer {
        Duration::from_secs(2)
    } else {
        Duration::ZERO
    };
    let died = running
        .exit_status_within(patience, &ctx.services.client)
        .await;
    let pid = running.pid();
    let stopped = running.stop().await;
    timing.harness.stop_ms = ms(stopping.elapsed());
    let trace = Trace {
        pid: Some(pid),
        port: Some(port),
        timing: Some(timing),
        leaks: stopped.leaks,
    };
    if let Some(error) = stopped.log_error {
        return (trace, Err(RunFailure::Harness(error)));
    }
    let replay = Replay {
        exchanges: replayed.exchanges,
        failure: replayed.failure,
        died,
    };
    (trace, Ok(Startup::Started(replay)))
}
