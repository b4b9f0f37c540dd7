//! Starting the service for one scenario run (its setup commands first, on
//! another port when the chosen one was taken), replaying the scenario and
//! stopping it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::evidence::first_error_line;
use super::{RunContext, ScenarioRun, ms};
use crate::env::Environment;
use crate::exec::db::Database;
use crate::exec::replay;
use crate::exec::service::{self, Launch, Placeholders};
use crate::model::event::RunEvent;
use crate::model::report::{ScenarioReport, Verdict};
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
        &ctx.run_secret,
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

/// Starts the service, replays the scenario, stops the service.
///
/// `None` means the run ended before a result (a startup failure outside a
/// startup-recording scenario, or a harness problem); the report says why.
pub(super) async fn replay_once(
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
