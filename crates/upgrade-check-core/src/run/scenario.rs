//! One scenario run: a fresh copy of the service's source, a fresh
//! database, the service started and the scenario replayed, then what it
//! answered normalised and judged against the accepted snapshot (or an
//! alternative, or the base's in a pull request).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::databases::{FreshDatabase, fresh_database, template_database};
use super::evidence::{output_lines, rust_panic, startup_error, unhealthy, warnings};
use super::failure::{LOG_TAIL_LINES, LogEvidence, RunFailure, Trace};
use super::start::{Launched, PORT_RETRY, Startup, replay_once};
use super::{RunContext, ScenarioRun, ms};
use crate::env::{Environment, ResolvedSet};
use crate::exec::db::Database;
use crate::exec::preload::Preloader;
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
        if ctx.state.preloading.forks() {
            Start::Preloaded
        } else {
            Start::Cold
        }
    }
}

impl Attempt {
    /// The run's key: a second replay beside the first needs its own
    /// copy, database and log.
    fn key(self, run: &ScenarioRun<'_>) -> String {
        match self {
            Attempt::First => run.key.clone(),
            Attempt::Again => format!("{}.again", run.key),
            Attempt::Third => format!("{}.cold", run.key),
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
    let key = attempt.key(run);
    let _slot = ctx.services.service_slots.acquire().await;
    let held = Instant::now();
    ctx.step(
        &cell.name,
        CellStep::StartingService {
            scenario: key.clone(),
        },
    );
    // Each run its own copy: a service that writes beside its code (a
    // default database file, an upload folder) leaves nothing for the next.
    let service_dir = ctx
        .settings
        .scratch
        .join(&cell.id)
        .join(format!("{key}.service"));
    let copying = Instant::now();
    let copied = crate::sys::state::unless_quitting(|| {
        ctx.settings.source.copy_to(&service_dir)?;
        Ok(environment.lay_into(&service_dir)?)
    });
    let copied_in = copying.elapsed();
    let (mut report, rendered) = match copied {
        Ok(()) => {
            let copy = RunCopy {
                dir: &service_dir,
                key: &key,
                start,
            };
            replay_in(ctx, cell, environment, set, run, copy).await
        }
        Err(err) => {
            let failure = RunFailure::Harness(format!("cannot copy the service: {err:#}"));
            (failure.report(&run.key, Trace::default(), None), None)
        }
    };
    let removing = Instant::now();
    let _ = fs_err::remove_dir_all(&service_dir);
    if let Some(timing) = report.timing.as_mut() {
        timing.harness.copy_ms = ms(copied_in + removing.elapsed());
        timing.harness.slot_ms = ms(held.elapsed());
    }
    (report, rendered)
}

/// [`run_scenario`] once the service's copy is in place: its database and
/// preloader made ready, the service run, its answers judged.
pub(super) async fn replay_in(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    set: &ResolvedSet,
    run: &ScenarioRun<'_>,
    copy: RunCopy<'_>,
) -> (ScenarioReport, Option<String>) {
    let ready = match ready_to_start(ctx, cell, environment, run, &copy).await {
        Ok(ready) => ready,
        Err(failure) => return (failure.report(&run.key, Trace::default(), None), None),
    };
    let launched = ready.launched(ctx, cell, environment, copy.dir);
    let (mut trace, outcome) = replay_once(ctx, run, &launched).await;
    drop(launched);
    let Ready {
        secrets,
        fresh,
        database_ms,
        database_made_ahead,
        log,
        preloader_ms,
        ..
    } = ready;
    // Dropped behind the run, off its way.
    drop(fresh);
    if let Some(timing) = trace.timing.as_mut() {
        timing.database_ms = database_ms;
        timing.database_made_ahead = database_made_ahead;
        timing.harness.preloader_ms = preloader_ms;
    }
    let judging = Instant::now();
    let answered = Answered {
        service_dir: copy.dir,
        log,
        secrets,
        trace,
        outcome,
    };
    let (mut report, rendered) = judge_replay(ctx, cell, environment, set, run, answered);
    if let Some(timing) = report.timing.as_mut() {
        timing.harness.judge_ms = ms(judging.elapsed());
    }
    (report, rendered)
}

/// What a scenario run's service starts with, made ready.
struct Ready<'a> {
    profile: &'a crate::input::config::Profile,
    /// The scenario's secrets and the run's (the database password among them).
    secrets: BTreeMap<String, String>,
    /// The template database the run's is a copy of, and its setup's log.
    template: Option<(String, PathBuf)>,
    fresh: FreshDatabase,
    database_ms: Option<u64>,
    database_made_ahead: bool,
    log: PathBuf,
    preloader: Option<Arc<Preloader>>,
    preloader_ms: u64,
}

/// The run's profile, database (from the template its setup ran into, with
/// PostgreSQL) and preloader, or why the run cannot start.
async fn ready_to_start<'a>(
    ctx: &'a RunContext,
    cell: &Cell,
    environment: &Environment,
    run: &ScenarioRun<'_>,
    copy: &RunCopy<'_>,
) -> Result<Ready<'a>, RunFailure> {
    let config = &ctx.settings.config;
    let profile = config
        .profile(&run.profile)
        .ok_or_else(|| RunFailure::Harness(format!("no profile `{}`", run.profile)))?;
    let mut secrets = run.scenario.secrets.clone();
    secrets.insert("run".to_owned(), ctx.settings.run_secret.clone());
    let template = if profile.database == DatabaseKind::Postgres && !config.service.setup.is_empty()
    {
        let made = template_database(ctx, cell, environment, copy.dir, profile).await;
        Some(made.map_err(|(reason, log)| RunFailure::Setup { reason, log })?)
    } else {
        None
    };
    let from_template = template.as_ref().map(|(name, _)| name.as_str());
    let taking = Instant::now();
    let fresh = fresh_database(ctx, profile.database, &cell.id, copy.key, from_template)
        .await
        .map_err(|err| RunFailure::Harness(format!("cannot make a fresh database: {err:#}")))?;
    let (database_ms, database_made_ahead) = match &fresh {
        FreshDatabase::Sqlite(_) => (None, false),
        FreshDatabase::Postgres(lease) => (Some(ms(taking.elapsed())), lease.made_ahead),
    };
    if let Database::Postgres { password, .. } = fresh.database() {
        secrets.insert("db_password".to_owned(), password.clone());
    }
    let log = ctx
        .settings
        .dirs
        .logs_dir()
        .join(&cell.id)
        .join(format!("{}.log", copy.key));
    let waiting = Instant::now();
    let preloader = match copy.start {
        Start::Preloaded if ctx.state.preloading.on() => {
            match ctx
                .state
                .preloading
                .for_cell(config, &cell.id, environment)
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
    Ok(Ready {
        profile,
        secrets,
        template,
        fresh,
        database_ms,
        database_made_ahead,
        log,
        preloader,
        preloader_ms: ms(waiting.elapsed()),
    })
}

impl Ready<'_> {
    /// What the service starts with, in `service_dir`.
    fn launched<'a>(
        &'a self,
        ctx: &RunContext,
        cell: &'a Cell,
        environment: &'a Environment,
        service_dir: &'a Path,
    ) -> Launched<'a> {
        Launched {
            cell: &cell.name,
            environment,
            service_dir,
            env: &self.profile.env,
            database: self.fresh.database(),
            preloader: self.preloader.as_deref(),
            log: &self.log,
            template_note: self.template.as_ref().map(|(name, setup_log)| {
                format!(
                    "[upgrade-check: this run's database is a copy of {name}, which the setup commands ran into once; their output: {}]\n",
                    relative(setup_log, &ctx.settings.dirs.logs_dir())
                )
            }),
        }
    }
}

/// What a run's service answered, once it has stopped.
pub(super) struct Answered<'a> {
    pub(super) service_dir: &'a Path,
    pub(super) log: PathBuf,
    /// The scenario's secrets and the run's (the database password among them).
    pub(super) secrets: BTreeMap<String, String>,
    pub(super) trace: Trace,
    pub(super) outcome: Result<Startup, RunFailure>,
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
) -> (ScenarioReport, Option<String>) {
    let Answered {
        service_dir,
        log,
        secrets,
        trace,
        outcome,
    } = answered;
    let mut normaliser = normaliser_for(ctx, environment, service_dir, &secrets, trace.port);
    // The log is read once, for warnings and the report's tail; it was
    // scrubbed of secrets and capped as it was written.
    let log_text = log::read_log(&log);
    let evidence = read_evidence(&log_text, &mut normaliser);
    let startup = match outcome {
        Ok(startup) => startup,
        Err(failure) => return (failure.report(&run.key, trace, Some(evidence)), None),
    };
    // What is about to become a reference is checked for being a doubtful one.
    let unhealthy = match (cell.is_baseline() || ctx.settings.accepting, &startup) {
        (true, Startup::Started(replayed)) => {
            unhealthy(&replayed.exchanges, run.scenario, &log_text, &normaliser)
        }
        _ => Vec::new(),
    };
    let rendered = render(&startup, &mut normaliser, run.scenario.record_startup);
    let judged = judgement(ctx, cell, set, run, &startup, &rendered);
    let (summary, log_tail) = match judged.with_log {
        // A handler that panicked explains an answer that never came.
        true => match rust_panic(&log_text) {
            Some(panic) => {
                let panic = format!("the service panicked: {}", normaliser.literals(&panic));
                let summary = match judged.summary {
                    Some(summary) => format!("{summary}; {panic}"),
                    None => panic,
                };
                (Some(summary), Some(evidence.tail))
            }
            None => (judged.summary, Some(evidence.tail)),
        },
        false => (judged.summary, None),
    };
    let report = ScenarioReport {
        summary,
        diff: judged.diff,
        log_tail,
        security: judged.security,
        alternative: judged.alternative,
        warnings: evidence.warnings,
        output: evidence.output,
        unhealthy,
        ..ScenarioReport::new(run.key.clone(), judged.verdict)
    };
    (trace.into_report(report), Some(rendered))
}

/// The normaliser of one run's answers and log: its secrets, and the paths
/// and address that differ per run (never part of a snapshot).
fn normaliser_for<'a>(
    ctx: &'a RunContext,
    environment: &Environment,
    service_dir: &Path,
    secrets: &'a BTreeMap<String, String>,
    port: Option<u16>,
) -> Normaliser<'a> {
    // Where the programs live differs per environment.
    let programs = match (&environment.python, &environment.node_modules) {
        (Some(python), _) => ("venv", python.venv.display().to_string()),
        // Its `.bin` is inside: one name covers a stack trace's every frame.
        (None, Some(modules)) => ("node_modules", modules.display().to_string()),
        (None, None) => ("bin", environment.bin.display().to_string()),
    };
    let mut paths = vec![
        ("service_dir", service_dir.display().to_string()),
        programs,
        ("scratch", ctx.settings.scratch.display().to_string()),
    ];
    // The port is chosen per run: a message that names it is the same message.
    if let Some(port) = port {
        paths.push(("service_address", format!("127.0.0.1:{port}")));
        paths.push(("service_address", format!("localhost:{port}")));
    }
    let config = &ctx.settings.config;
    Normaliser::new(
        secrets,
        &paths,
        &config.redactions,
        &config.replay.keep_headers,
    )
}

/// What the log says: what the service said since its last start, its last
/// lines (read for warnings and output lines alike), its tail, and why it
/// would not start.
fn read_evidence(log_text: &str, normaliser: &mut Normaliser<'_>) -> LogEvidence {
    let last_start = log_text
        .rfind(PORT_RETRY)
        .map_or(log_text, |at| &log_text[at + PORT_RETRY.len()..]);
    let said = log::tail(last_start, SAID_LINES);
    LogEvidence {
        warnings: warnings(&said, normaliser),
        output: output_lines(&said, normaliser),
        tail: normaliser.literals(&log::tail(log_text, LOG_TAIL_LINES)),
        start_error: startup_error(log_text).map(|error| normaliser.literals(&error)),
    }
}

/// What a run's answers were judged to be.
struct Judgement {
    verdict: Verdict,
    summary: Option<String>,
    diff: Option<String>,
    security: bool,
    /// The alternative snapshot the answers matched.
    alternative: Option<String>,
    /// A failure judged against the snapshot: the log's tail goes with it.
    with_log: bool,
}

impl Judgement {
    fn of(verdict: Verdict) -> Judgement {
        Judgement {
            verdict,
            summary: None,
            diff: None,
            security: false,
            alternative: None,
            with_log: false,
        }
    }
}

/// Judges `rendered`: by what the pull request changes, then by an
/// alternative that covers the cell, then by the accepted snapshot.
fn judgement(
    ctx: &RunContext,
    cell: &Cell,
    set: &ResolvedSet,
    run: &ScenarioRun<'_>,
    startup: &Startup,
    rendered: &str,
) -> Judgement {
    let config = &ctx.settings.config;
    let accepted = ctx.accepted_snapshot(cell, &run.key);
    let noisy = ctx.noisy_fields(&run.key);
    let comparison = snapshot::compare(&accepted, rendered, &noisy);
    if let Some(judged) = judged_by_the_change(ctx, cell, &run.key, &comparison, rendered, &noisy) {
        return judged;
    }
    if let Ok(Comparison::Differs { .. }) = &comparison
        && !cell.is_baseline()
    {
        match matching_alternative(ctx, set, &run.key, rendered, &noisy) {
            Ok(Some(alternative)) => {
                return Judgement {
                    alternative: Some(format!(
                        "{} ({})",
                        alternative.range(),
                        relative(&alternative.path, config.base_dir())
                    )),
                    ..Judgement::of(Verdict::Pass)
                };
            }
            Ok(None) => {}
            Err(err) => {
                return Judgement {
                    summary: Some(format!("{err:#}")),
                    ..Judgement::of(Verdict::Error)
                };
            }
        }
    }
    let source = relative(&run.scenario.path, config.base_dir());
    let (failure, died) = match startup {
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
    let judged = verdict::judge(
        comparison,
        RunFacts {
            security: run.scenario.security,
            failure,
            died,
            accepted: relative(&accepted, config.base_dir()),
        },
    );
    Judgement {
        with_log: !judged.verdict.passes(),
        summary: judged.summary,
        diff: judged.diff,
        security: judged.security,
        ..Judgement::of(judged.verdict)
    }
}

/// In a pull request, a cell's run of a scenario whose snapshot the branch
/// edits: accepted when it answers as the branch's snapshot says and the
/// base's does not (shown as base → this change); passing when it answers
/// as the base's says (the change is another cell's, or no cell's, which
/// the check says).
fn judged_by_the_change(
    ctx: &RunContext,
    cell: &Cell,
    key: &str,
    comparison: &anyhow::Result<Comparison>,
    rendered: &str,
    noisy: &std::collections::BTreeSet<String>,
) -> Option<Judgement> {
    let edited = !cell.is_baseline() && ctx.settings.changed_snapshots.contains(key);
    let base = ctx.settings.base_snapshots.as_deref().filter(|_| edited)?;
    let base = snapshot::accepted_path(base, key);
    match (comparison, snapshot::compare(&base, rendered, noisy)) {
        (Ok(Comparison::Matches), Ok(Comparison::Differs { diff, changes })) => Some(Judgement {
            summary: changes
                .startup
                .as_ref()
                .map(|(before, after)| format!("startup: {before} → {after}"))
                .or(changes.first_status_change())
                .or(changes.first_difference),
            diff: Some(diff),
            ..Judgement::of(Verdict::Accepted)
        }),
        (Ok(Comparison::Differs { .. }), Ok(Comparison::Matches)) => {
            Some(Judgement::of(Verdict::Pass))
        }
        _ => None,
    }
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
    let config = &ctx.settings.config;
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
