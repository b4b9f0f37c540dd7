//! One scenario run: a fresh copy of the service's source, a fresh
//! database, the service started and the scenario replayed, then what it
//! answered normalised and judged against the accepted snapshot (or an
//! alternative, or the base's in a pull request).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::databases::{FreshDatabase, fresh_database, template_database};
use super::evidence::{output_lines, rust_panic, startup_error, unhealthy, warnings};
use super::start::{Launched, PORT_RETRY, Startup, replay_once};
use super::{RunContext, ScenarioRun, ms};
use crate::env::{Environment, ResolvedSet};
use crate::exec::db::Database;
use crate::exec::replay;
use crate::input::config::DatabaseKind;
use crate::judge::normalize::Normaliser;
use crate::judge::snapshot::{self, Comparison};
use crate::judge::verdict::{self, RunFacts};
use crate::model::cell::Cell;
use crate::model::event::CellStep;
use crate::model::report::{ScenarioReport, Verdict};
use crate::sys::log;
use crate::sys::state::relative;

/// The last lines of a service's log read for warnings and output lines.
pub(super) const SAID_LINES: usize = 2000;

/// Log lines kept in a report for each failure.
pub(super) const LOG_TAIL_LINES: usize = 30;

/// Which replay of a scenario in one cell: the baseline's second one finds
/// noise; a third, cold, tells noise from what preloading changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    First,
    Again,
    Third,
}

/// One scenario run's own copy of the service: its folder, its key
/// (`.again` for the baseline's second replay), and how it starts.
pub(super) struct RunCopy<'a> {
    pub(super) dir: &'a Path,
    pub(super) key: &'a str,
    pub(super) start: Start,
}

/// How a scenario run starts its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// A new interpreter (or program).
    Cold,
    /// Forked from the cell's preloader, where the service can be.
    Preloaded,
}

impl Start {
    /// As the run starts services now.
    pub(super) fn current(ctx: &RunContext) -> Start {
        if ctx.preloading.forks() {
            Start::Preloaded
        } else {
            Start::Cold
        }
    }
}

/// One scenario against a fresh service, from a fresh copy of its source,
/// on a fresh database, once a service slot is free.
pub(super) async fn run_scenario(
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

/// [`run_scenario`] once the service's copy is in place.
pub(super) async fn replay_in(
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
                    ctx.turn_off_preloading(cell, reason);
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
pub(super) struct Answered<'a> {
    pub(super) service_dir: &'a Path,
    pub(super) log: PathBuf,
    /// The scenario's secrets and the run's (the database password among them).
    pub(super) secrets: BTreeMap<String, String>,
    pub(super) outcome: Option<Startup>,
}

/// Reads the run's log, normalises what the service answered and judges it
/// against the accepted snapshot (or an alternative, or the base's in a
/// pull request); the rendered snapshot with the report.
pub(super) fn judge_replay(
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
pub(super) fn render(
    outcome: &Startup,
    normaliser: &mut Normaliser<'_>,
    record_startup: bool,
) -> String {
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

/// The alternative accepted snapshot of `key` that covers this cell's
/// versions and that `rendered` matches, if any.
pub(super) fn matching_alternative(
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
