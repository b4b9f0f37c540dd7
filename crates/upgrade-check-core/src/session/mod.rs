//! One check from start to end, as named phases: load the inputs, find the
//! tools, plan, run the cells, follow up (interactions, bisection), judge
//! against the snapshots and write the reports. The caller gets back a
//! [`Finished`] value to show; everything on the way is a [`RunEvent`].

mod accept;
mod explore;
pub mod import;
pub mod init;
mod once;
mod prepare;
pub mod record;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::env::{Builder, index};
use crate::follow_up::bisect::{self, BisectRequest, Bisected};
use crate::follow_up::interaction;
use crate::input::baseline::BaselineFile;
use crate::input::config::{self, Config};
use crate::input::{scenario, source};
use crate::judge::snapshot;
use crate::model::cell::{Cell, Plan};
use crate::model::event::{Events, RunEvent};
use crate::model::findings::Exploration;
use crate::model::report::{ExitStatus, Report, RunInfo, ScenarioReport, ShardInfo, Verdict};
use crate::plan::{self, pr};
use crate::report::{self, cell_diff};
use crate::run::{self, CellOutcome, RunContext};
use crate::sys::interrupt::Interrupt;
use crate::sys::source_tree::SourceTree;
use crate::sys::state::{self, StateDirs};
use crate::sys::{process, redact, sweep};

pub use explore::ExploreRequest;

/// What a check does with its plan.
#[derive(Debug, Clone, Default)]
pub enum Action {
    /// Run every cell and judge it.
    #[default]
    Run,
    /// Plan and stop: the plan is the answer.
    Plan,
    /// Search the index's versions of one package for the first bad one.
    Bisect(BisectRequest),
    /// Run the baseline alone (no upgrade cell, no follow-up): what it
    /// answers to a new scenario, pending for review (or accepted).
    Baseline,
    /// Run the cells on variants of the recorded steps, judged against the
    /// baseline's answers; write what differs as explored scenarios.
    Explore(ExploreRequest),
    /// Run one cell and accept its output of `scenarios` as alternatives.
    AcceptAlternative {
        /// `PACKAGE VERSION`, as typed.
        cell: String,
        scenarios: Vec<String>,
        acceptance: Acceptance,
    },
}

/// How a check ended, for the caller to show.
#[derive(Debug)]
pub enum Finished {
    /// `Action::Plan`: the plan, not run.
    Planned(Plan),
    /// The cells ran (or some did, when cancelled): the report and the files written.
    Reported {
        report: Box<Report>,
        written: Vec<PathBuf>,
        status: ExitStatus,
    },
    Bisected(Bisected),
    /// `accept --cell`: each alternative snapshot written, with the versions it is for.
    AcceptedAlternatives(Vec<(String, String)>),
    /// A signal stopped the check before it could report: which, and where
    /// it was, as the end of a sentence (`" before any cell ran"`).
    Interrupted {
        signal: String,
        during: &'static str,
    },
}

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// How the user runs the tool (`upgrade-check`, `cargo xtask
    /// upgrade-check`): the reports' hints and reproduce command say it so.
    pub invoked_as: String,
    pub action: Action,
    pub folders: Folders,
    /// Never reach the package index; use cached resolutions, environments and downloads.
    pub offline: bool,
    pub check: CheckSettings,
    /// Pull-request mode: the baseline file at this git ref is the baseline.
    pub since: Option<String>,
    /// Take the baseline's answers as the reference instead of judging them.
    pub accept: Option<Acceptance>,
    /// Run only shard `K` of `N` (1-based) and write a partial result.
    pub shard: Option<(usize, usize)>,
    /// Do not bisect packages whose newest candidate fails.
    pub no_bisect: bool,
    /// New warnings fail the run, not only the scenarios that changed.
    pub deny_warnings: bool,
}

/// Where a check's files are; each `None` is found or defaulted.
#[derive(Debug, Clone, Default)]
pub struct Folders {
    /// The config file; else found from the current folder upwards.
    pub config: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub cache: Option<PathBuf>,
}

/// How scenarios are run and judged, alike for a run of the plan, a
/// bisection and one cell's accept.
#[derive(Debug, Clone, Default)]
pub struct CheckSettings {
    /// Only these scenarios (by file stem); empty: every one.
    pub scenarios: Vec<String>,
    pub jobs: Option<usize>,
    /// A PostgreSQL server to use instead of starting one.
    pub database_url: Option<String>,
    /// Files laid over a copy of the service before anything runs.
    pub overlay: Option<PathBuf>,
    /// Install wheels only: no package's build code runs.
    pub no_build: bool,
    /// Replay the baseline once, not twice: faster, but blind to noise.
    pub no_noise_check: bool,
    /// Check the baseline for noise even when its recorded run did.
    pub recheck_noise: bool,
    /// Run every cell even when a recorded result's inputs are unchanged.
    pub no_cache: bool,
    /// How Python services start, instead of the config's `service.start`.
    pub start: Option<config::StartMode>,
    /// Run every cell even when the baseline is broken.
    pub keep_going: bool,
}

/// Taking answers as the reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acceptance {
    /// Even answers that are unhealthy: a 5xx, or a traceback in the log.
    pub unhealthy: bool,
}

impl Options {
    /// Whether the run writes references: the baseline's accepted
    /// snapshots, or one cell's alternatives.
    fn writes_references(&self) -> bool {
        self.accept.is_some() || matches!(self.action, Action::AcceptAlternative { .. })
    }

    /// The config file: the one named, else the one found from the current
    /// folder upwards.
    pub fn config_path(&self) -> anyhow::Result<PathBuf> {
        match &self.folders.config {
            Some(path) => Ok(path.clone()),
            None => config::discover(),
        }
    }
}

/// Runs the whole check; `events` hears everything on the way.
///
/// Ctrl-C or SIGTERM stop every child process group before returning.
pub fn upgrade_check(options: Options, events: Events) -> anyhow::Result<Finished> {
    // Children die with the thread that spawned them (PR_SET_PDEATHSIG), so no
    // runtime thread may retire while the run lasts.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(24 * 60 * 60))
        .build()?;

    let outcome = runtime.block_on(async {
        let told = events.clone();
        let interrupt = Interrupt::install(move |name, again| {
            told(&RunEvent::Signal {
                name: name.to_owned(),
                again,
            });
        })?;
        tokio::select! {
            outcome = run(options, &interrupt, events) => outcome,
            // Before the cells run there is nothing to report: stop.
            name = interrupt.wait_before_cells() => Ok(Finished::Interrupted {
                signal: name.to_owned(),
                during: " before any cell ran",
            }),
        }
    });
    process::kill_all();
    runtime.shutdown_timeout(Duration::from_secs(5));
    // Tasks cancelled mid-cell may have written into a folder after it was removed.
    state::remove_temp_dirs();
    outcome
}

async fn run(options: Options, interrupt: &Interrupt, events: Events) -> anyhow::Result<Finished> {
    let started = std::time::Instant::now();
    let mut inputs = load(&options, &events)?;
    let scratch = claim_state(&mut inputs, &options, &events)?;
    // An exploration, and the inputs its smaller variants run from.
    let exploring = match &options.action {
        Action::Explore(request) => {
            let schema = explore::openapi(&inputs.config, &options, &events).await;
            let exploring =
                explore::prepare(&mut inputs, request, &schema, scratch.path(), &events)?;
            Some((exploring, inputs.clone()))
        }
        _ => None,
    };
    let tools = find_tools(&inputs, &options, &events).await?;
    if options.offline {
        prepare::check_offline_cache(&tools.builder).await?;
    }
    let planned = plan_check(&mut inputs, &tools, &options, &events).await?;
    if let Action::Plan = options.action {
        return Ok(Finished::Planned(planned.plan));
    }
    let Planned {
        mut plan,
        shard,
        bisection,
        alternative,
    } = planned;
    let Tools {
        builder,
        index,
        pin_files,
        ..
    } = tools;
    let config_path = inputs.config_path.clone();
    // `[explore] in-every-run`: the check's cells are explored after it.
    let explore_after = (matches!(options.action, Action::Run)
        && options.accept.is_none()
        && options.shard.is_none()
        && inputs.config.explore.in_every_run)
        .then(|| inputs.clone());
    // What later runs of the same cells start from: an exploration's
    // smaller variants, or the exploration after a check.
    let (exploring, explored_inputs) = exploring.unzip();
    let again = explored_inputs
        .or(explore_after)
        .map(|inputs| (inputs, builder.clone(), plan.clone(), events.clone()));
    let ctx = start(
        inputs, builder, &plan, &pin_files, &options, &scratch, events, started,
    )
    .await?;
    interrupt.cells_started();
    if let Some(bisection) = bisection {
        let report_dir = ctx.settings.dirs.report_dir();
        let finished = tokio::select! {
            bisected = bisection.run(ctx.clone(), &report_dir) => bisected.map(Finished::Bisected),
            name = interrupt.wait() => Ok(Finished::Interrupted {
                signal: name.to_owned(),
                during: " while bisecting",
            }),
        };
        // Probes whose services a signal killed are no evidence.
        let finished = match crate::sys::interrupt::signalled() {
            Some(name) => Ok(Finished::Interrupted {
                signal: name.to_owned(),
                during: " while bisecting",
            }),
            None => finished,
        };
        run::settle_databases(&ctx).await;
        return finished;
    }
    let (outcomes, cancelled) = tokio::select! {
        // A signal may have killed the last services before the run heard
        // of it: those cells are left out of the outcomes, and it is cancelled.
        outcomes = run::run_plan(ctx.clone(), &plan) => (outcomes, crate::sys::interrupt::signalled()),
        // Every child is dead already; keep what finished, in plan order.
        name = interrupt.wait() => (run::finished(&ctx), Some(name)),
    };
    let outcomes = match options.shard {
        None => shown_once(&mut plan, outcomes),
        Some(_) => outcomes,
    };
    if let Some((pin, keys, acceptance)) = &alternative {
        run::settle_databases(&ctx).await;
        if let Some(name) = cancelled {
            return Ok(Finished::Interrupted {
                signal: name.to_owned(),
                during: "; nothing accepted",
            });
        }
        return accept::alternatives(&ctx, &outcomes, pin, keys, acceptance.unhealthy)
            .map(Finished::AcceptedAlternatives);
    }
    // A shard sees only its own cells: isolating and bisecting need them all;
    // an exploration's findings are its variants'.
    let mut found = FollowUp::default();
    let mut cancelled = cancelled;
    if cancelled.is_none()
        && options.accept.is_none()
        && options.shard.is_none()
        && exploring.is_none()
    {
        let bisect_with = Some(&index).filter(|_| !options.no_bisect);
        tokio::select! {
            done = follow_up(&ctx, &plan, &outcomes, bisect_with) => found = done,
            name = interrupt.wait() => cancelled = Some(name),
        }
        // What a follow-up found on services a signal killed is no finding.
        if let Some(name) = crate::sys::interrupt::signalled() {
            cancelled = Some(name);
            found = FollowUp::default();
        }
    }
    run::settle_databases(&ctx).await;
    let mut report = assemble(
        &ctx,
        &config_path,
        &plan,
        &outcomes,
        shard,
        found,
        cancelled,
    );
    report.run = run_info(&ctx, &config_path, &options);
    // How the services started, as they did: a run whose forks all fell back
    // to cold starts says so. (The baseline's judged runs start cold by
    // design: they are what forked starts are checked against.)
    let timings = || {
        report
            .cells
            .iter()
            .filter(|cell| !cell.baseline)
            .flat_map(|cell| &cell.scenarios)
            .filter_map(|scenario| scenario.timing.as_ref())
    };
    let (forked, started) = (timings().filter(|t| t.preloaded).count(), timings().count());
    report.run.service_start = ctx.state.preloading.describe(forked, started);
    report.run.noise_check = noise_check(&ctx, &report);
    if report.cancelled.is_none() {
        report.unexplained_snapshots = unexplained_snapshots(&ctx, &plan, &report)?;
    }
    // What an interrupted exploration found so far is kept.
    let explored = match again {
        Some((inputs, builder, plan, events)) => {
            let rerun = Rerun {
                inputs,
                builder,
                plan: &plan,
                pin_files: &pin_files,
                options: &options,
                scratch: &scratch,
                events,
                started: ctx.settings.started,
            };
            match &exploring {
                Some(exploring) => {
                    let survey =
                        explore::survey(&ctx, exploring.variants(), exploring.shared(), &outcomes);
                    let (exploration, status, stopped) =
                        explored(&ctx, exploring, survey, rerun, interrupt, false).await?;
                    report.exploration = Some(exploration);
                    report.cancelled = report.cancelled.take().or(stopped);
                    Some(status)
                }
                None if report.cancelled.is_none() && report.stopped_after_baseline.is_none() => {
                    let (exploration, status, cancelled) =
                        explore_after_check(rerun, interrupt).await?;
                    report.exploration = Some(exploration);
                    report.cancelled = cancelled;
                    Some(status)
                }
                None => None,
            }
        }
        None => None,
    };
    let finished = conclude(&ctx, report, &outcomes, &options, explored);
    drop(ctx);
    drop(scratch);
    finished
}

/// What another run of a check's cells starts from: the check's inputs
/// (an exploration's variants made its scenarios), builder and plan.
struct Rerun<'a> {
    inputs: Inputs,
    builder: Builder,
    plan: &'a Plan,
    pin_files: &'a [PathBuf],
    options: &'a Options,
    scratch: &'a state::TempDir,
    events: Events,
    started: std::time::Instant,
}

impl Rerun<'_> {
    /// Every cell of the check's plan (a run adds the baseline itself).
    fn cells(&self) -> Vec<String> {
        (self.plan.cells.iter())
            .filter(|cell| !cell.is_baseline())
            .map(|cell| cell.name.clone())
            .collect()
    }

    /// `scenarios` run on the baseline and on `cells` of the plan, with the
    /// baseline's answers as the reference; the context they ran in, the
    /// outcomes, and the signal that stopped them, if one did.
    async fn run(
        &self,
        scenarios: Vec<scenario::Scenario>,
        cells: &[String],
        interrupt: &Interrupt,
    ) -> anyhow::Result<(
        Arc<RunContext>,
        Vec<CellOutcome>,
        Option<String>,
        state::TempDir,
    )> {
        // Each run in a folder of its own (its databases, copies and
        // references): a name one round gives a variant is another's in
        // the next.
        let scratch = state::TempDir::registered(
            tempfile::Builder::new()
                .prefix("again-")
                .tempdir_in(self.scratch.path())?,
        );
        let mut inputs = Inputs {
            scenarios,
            ..self.inputs.clone()
        };
        inputs.config.replay.snapshots = scratch.path().join("snapshots");
        fs_err::create_dir_all(&inputs.config.replay.snapshots)?;
        let plan = Plan {
            cells: (self.plan.cells.iter())
                .filter(|cell| cell.is_baseline() || cells.contains(&cell.name))
                .cloned()
                .collect(),
            skipped: Vec::new(),
        };
        let options = Options {
            action: Action::Explore(ExploreRequest::default()),
            ..self.options.clone()
        };
        let ctx = start(
            inputs,
            self.builder.clone(),
            &plan,
            self.pin_files,
            &options,
            &scratch,
            self.events.clone(),
            self.started,
        )
        .await?;
        let (outcomes, cancelled) = tokio::select! {
            outcomes = run::run_plan(ctx.clone(), &plan) => (outcomes, crate::sys::interrupt::signalled()),
            name = interrupt.wait() => (run::finished(&ctx), Some(name)),
        };
        run::settle_databases(&ctx).await;
        Ok((ctx, outcomes, cancelled.map(str::to_owned), scratch))
    }

    /// `tried` (variants by the name each runs under, with the place of
    /// the finding each stands for) run on the baseline and `cells`; what
    /// they show, or the signal that stopped them.
    async fn survey(
        &self,
        tried: &std::collections::BTreeMap<String, (usize, crate::plan::variants::Variant)>,
        cells: &[String],
        interrupt: &Interrupt,
    ) -> anyhow::Result<Result<explore::Survey, String>> {
        let variants = tried
            .iter()
            .map(|(name, (_, variant))| (name.clone(), variant.clone()))
            .collect();
        // Each alone: what this shows is what a promoted scenario shows.
        let alone = std::collections::BTreeMap::new();
        let scenarios = explore::scenarios_of(&variants, &alone);
        let (ctx, outcomes, cancelled, _scratch) = self.run(scenarios, cells, interrupt).await?;
        Ok(match cancelled {
            Some(signal) => Err(signal),
            None => Ok(explore::survey(&ctx, &variants, &alone, &outcomes)),
        })
    }
}

/// `[explore] in-every-run`: the check's cells on variants of its
/// scenarios, once it is judged, on the environments it built; what it
/// finds, the status that gives, and the signal that stopped it, if one did.
async fn explore_after_check(
    mut rerun: Rerun<'_>,
    interrupt: &Interrupt,
) -> anyhow::Result<(Exploration, ExitStatus, Option<String>)> {
    let request = ExploreRequest::default();
    let schema = explore::openapi(&rerun.inputs.config, rerun.options, &rerun.events).await;
    let exploring = explore::prepare(
        &mut rerun.inputs,
        &request,
        &schema,
        rerun.scratch.path(),
        &rerun.events,
    )?;
    let scenarios = rerun.inputs.scenarios.clone();
    let (ctx, outcomes, cancelled, _scratch) =
        rerun.run(scenarios, &rerun.cells(), interrupt).await?;
    let survey = explore::survey(&ctx, exploring.variants(), exploring.shared(), &outcomes);
    let (exploration, status, stopped) = match cancelled {
        Some(_) => {
            let program = rerun.options.invoked_as.clone();
            let (exploration, status) =
                explore::conclude(&ctx, &exploring, survey, &program, true)?;
            (exploration, status, None)
        }
        None => explored(&ctx, &exploring, survey, rerun, interrupt, true).await?,
    };
    Ok((exploration, status, cancelled.or(stopped)))
}

/// An exploration's findings made as small as they go (see [`minimise`]),
/// then written; its report, status, and the signal that stopped it.
async fn explored(
    ctx: &RunContext,
    exploring: &explore::Exploring,
    mut survey: explore::Survey,
    rerun: Rerun<'_>,
    interrupt: &Interrupt,
    after_check: bool,
) -> anyhow::Result<(Exploration, ExitStatus, Option<String>)> {
    // Each step while no signal has stopped the one before.
    let mut stopped = crate::sys::interrupt::signalled().map(str::to_owned);
    if stopped.is_none() {
        stopped = run_alone(&rerun, exploring, &mut survey, interrupt).await?;
    }
    if stopped.is_none() {
        stopped = leave_known_out(&rerun, &mut survey, interrupt).await?;
    }
    if stopped.is_none() {
        stopped = minimise(&rerun, &mut survey.found, interrupt).await?;
    }
    let (exploration, status) = explore::conclude(
        ctx,
        exploring,
        survey,
        &rerun.options.invoked_as,
        after_check,
    )?;
    Ok((exploration, status, stopped))
}

/// The variants of shared starts that answered otherwise than the
/// baseline, or whose start state did not allow sharing, run alone on the
/// baseline and every cell: what they show there joins the findings. The
/// signal that stopped it, if one did.
async fn run_alone(
    rerun: &Rerun<'_>,
    exploring: &explore::Exploring,
    survey: &mut explore::Survey,
    interrupt: &Interrupt,
) -> anyhow::Result<Option<String>> {
    let alone = std::mem::take(&mut survey.alone);
    if alone.is_empty() {
        return Ok(None);
    }
    let tried = alone
        .iter()
        .map(|name| (name.clone(), (0, exploring.variants()[name].clone())))
        .collect();
    (rerun.events)(&RunEvent::RunningAlone {
        variants: alone.len(),
    });
    Ok(
        match rerun.survey(&tried, &rerun.cells(), interrupt).await? {
            Ok(shown) => {
                explore::join(survey, shown);
                None
            }
            Err(signal) => Some(signal),
        },
    )
}

/// Each finding's steps run again with the last as recorded: a cell that
/// differs there too shows what the recorded scenario does, and the check
/// reports it; the finding keeps the other cells. The signal that stopped
/// it, if one did.
async fn leave_known_out(
    rerun: &Rerun<'_>,
    survey: &mut explore::Survey,
    interrupt: &Interrupt,
) -> anyhow::Result<Option<String>> {
    if survey.found.is_empty() {
        return Ok(None);
    }
    let controls = explore::as_recorded(&survey.found);
    let cells = explore::cells_of(&survey.found);
    Ok(match rerun.survey(&controls, &cells, interrupt).await? {
        Ok(shown) => {
            explore::leave_known_out(survey, &controls, shown);
            None
        }
        Err(signal) => Some(signal),
    })
}

/// Each finding run again with one earlier step left out, round after
/// round, while a smaller variant still shows it on the same cells: a
/// finding is written with no step it does not need. The signal that
/// stopped it, if one did.
async fn minimise(
    rerun: &Rerun<'_>,
    found: &mut [explore::Found],
    interrupt: &Interrupt,
) -> anyhow::Result<Option<String>> {
    loop {
        let tried = explore::smaller(found);
        if tried.is_empty() {
            return Ok(None);
        }
        (rerun.events)(&RunEvent::Minimising {
            findings: found.len(),
            variants: tried.len(),
        });
        // A round that takes until a signal comes, for the tests.
        if crate::sys::failpoint::failpoint("stall-minimising").is_some() {
            return Ok(Some(interrupt.wait().await.to_owned()));
        }
        let cells = explore::cells_of(found);
        let shown = match rerun.survey(&tried, &cells, interrupt).await? {
            Ok(shown) => shown,
            Err(signal) => return Ok(Some(signal)),
        };
        if !explore::keep_smaller(found, &tried, shown) {
            return Ok(None);
        }
    }
}

/// What a check reads before anything else.
#[derive(Clone)]
struct Inputs {
    config_path: PathBuf,
    config: Config,
    scenarios: Vec<scenario::Scenario>,
    dirs: StateDirs,
    /// The service's source, read once: the results key and every
    /// scenario run's copy come from this reading.
    source: SourceTree,
}

/// Phase 1: the config and scenarios, checked; every scenario secret
/// registered, so that no later write or print can hold one.
fn load(options: &Options, events: &Events) -> anyhow::Result<Inputs> {
    let config_path = options.config_path()?;
    let mut config = Config::load(&config_path)?;
    if let Some(start) = options.check.start {
        config.service.start = start;
    }
    let mut scenarios = scenario::load_dir(&config.replay.scenarios)?;
    // A run that explores nothing does not read `[explore]`.
    if matches!(options.action, Action::Explore(_)) || config.explore.in_every_run {
        explore::check_scenarios(&config, &scenarios)?;
    }
    if let Action::Explore(request) = &options.action
        && let Some(unknown) = explore::unknown_step(&config, &scenarios, &request.steps)
    {
        bail!(
            "no step `{unknown}` in {}",
            explore::explored_names(&config)
        );
    }
    if !options.check.scenarios.is_empty() {
        if let Some(unknown) = options
            .check
            .scenarios
            .iter()
            .find(|name| !scenarios.iter().any(|scenario| &scenario.name == *name))
        {
            bail!(
                "no scenario `{unknown}` in {}",
                config.replay.scenarios.display()
            );
        }
        scenarios.retain(|scenario| options.check.scenarios.contains(&scenario.name));
    }
    snapshot::check_files(&config.replay.snapshots)?;
    for scenario in &scenarios {
        redact::register(&redact::Secrets::new(
            scenario
                .secrets
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        ));
    }
    prepare::check_scenario_profiles(&config, &scenarios)?;
    if options.writes_references() {
        refuse_accepting_in_ci()?;
    }
    let dirs = state_dirs(options, config.base_dir())?;
    events(&RunEvent::ConfigLoaded {
        path: config_path.clone(),
    });
    let source = SourceTree::read(&config.service.root)?;
    Ok(Inputs {
        config_path,
        config,
        scenarios,
        dirs,
        source,
    })
}

/// Phase 2: this run's private folder, claimed; what a dead run left,
/// removed; `--overlay` laid over a copy of the service.
fn claim_state(
    inputs: &mut Inputs,
    options: &Options,
    events: &Events,
) -> anyhow::Result<state::TempDir> {
    let dirs = &inputs.dirs;
    let scratch = dirs.scratch()?;
    sweep::claim(scratch.path())?;
    process::mark_run(scratch.path());
    let swept = sweep::sweep(&dirs.state.join("tmp"), scratch.path());
    let half_written = state::remove_stale_temp_files(&[
        dirs.report_dir(),
        inputs.config.replay.snapshots.clone(),
        dirs.resolutions_dir(),
    ]);
    if swept.processes > 0 || !swept.folders.is_empty() || !half_written.is_empty() {
        events(&RunEvent::LeftoversRemoved {
            processes: swept.processes,
            folders: swept.folders.len(),
            half_written: half_written.len(),
        });
    }
    if let Some(overlay) = &options.check.overlay {
        if options.accept.is_some() {
            bail!("accepting takes the service as it is, with no overlay");
        }
        prepare::lay_over(&mut inputs.config, overlay, scratch.path())?;
        inputs.source = SourceTree::read(&inputs.config.service.root)?;
        events(&RunEvent::OverlayLaid {
            overlay: overlay.clone(),
            service: inputs.config.service.root.clone(),
        });
    }
    let left_out = inputs.source.left_out();
    if !left_out.is_empty() {
        events(&RunEvent::SourceLeftOut {
            entries: left_out
                .iter()
                .map(|left| format!("{} ({})", left.path.display(), left.why))
                .collect(),
        });
    }
    Ok(scratch)
}

/// What builds and lists versions for this service.
struct Tools {
    builder: Builder,
    /// The registry's versions, for ranges and bisection.
    index: index::Index,
    /// The files that declare the baseline's pins.
    pin_files: Vec<PathBuf>,
    /// Pull-request mode: the working tree's baseline file (the change), and
    /// the name of the ref whose file is the baseline.
    change: Option<(BaselineFile, String)>,
}

/// What `plan_check` makes of the request.
struct Planned {
    plan: Plan,
    shard: Option<ShardInfo>,
    bisection: Option<bisect::Bisection>,
    alternative: Option<(crate::model::cell::Pin, Vec<String>, Acceptance)>,
}

/// Phase 3: the baseline file read (at the ref in pull-request mode), the
/// builder for the service's ecosystem with its tools found.
async fn find_tools(inputs: &Inputs, options: &Options, events: &Events) -> anyhow::Result<Tools> {
    let config = &inputs.config;
    let working = BaselineFile::load_with(&config.service.baseline, &config.service.groups)?;
    let pin_files = prepare::pin_files(config, &working);
    // In pull-request mode the file as it was at the ref is the baseline and
    // the working file the change.
    let (baseline, change) = match &options.since {
        Some(git_ref) => {
            let before =
                pr::baseline_at(git_ref, &config.service.baseline, &config.service.groups)??;
            (before.file, Some((working, before.name)))
        }
        None => (working, None),
    };
    // Digests declared on either side of a pull request are checked.
    let also_hashed = change.as_ref().map(|(after, _)| after);
    let builder =
        prepare::builder(config, options, &inputs.dirs, events, baseline, also_hashed).await?;
    let registry = builder.registry(&config.service.root)?;
    let index = index::Index::new(
        registry,
        inputs.dirs.index_dir(),
        options.offline,
        config.timeouts.build,
    );
    Ok(Tools {
        builder,
        index,
        pin_files,
        change,
    })
}

/// Phase 4: the cells to run, by what was asked: a bisection's first
/// round, one alternative cell, the baseline to accept, a pull request's
/// changes, or the matrix (ranges filled from the index); then one shard of it.
async fn plan_check(
    inputs: &mut Inputs,
    tools: &Tools,
    options: &Options,
    events: &Events,
) -> anyhow::Result<Planned> {
    let builder = &tools.builder;
    if tools.change.is_none() {
        prepare::check_baseline_pins(builder, &inputs.dirs).await?;
    }
    let profile = inputs.config.service.profile.clone();
    let mut bisection = None;
    let mut alternative = None;
    let plan = match &options.action {
        Action::Bisect(request) => {
            if options.accept.is_some() || options.since.is_some() {
                bail!(
                    "a bisection starts from the working tree's baseline: it accepts nothing and compares with no other ref"
                );
            }
            let prepared =
                bisect::Bisection::prepare(request, builder.baseline(), &tools.index, events)
                    .await?;
            let plan = prepared.first_plan(&profile);
            bisection = Some(prepared);
            plan
        }
        Action::AcceptAlternative {
            cell,
            scenarios: wanted,
            acceptance,
        } => {
            if options.accept.is_some() || options.since.is_some() {
                bail!(
                    "an alternative is accepted from the working tree's baseline: with no other acceptance and no other ref"
                );
            }
            let known: Vec<String> = run::scenario_runs(&inputs.scenarios, &profile)
                .into_iter()
                .map(|run| run.key)
                .collect();
            let (pin, keys) =
                accept::alternative_request(inputs.config.service.ecosystem, &known, cell, wanted)?;
            let plan = Plan {
                cells: vec![Cell::with_pins(vec![pin.clone()], &profile)],
                skipped: Vec::new(),
            };
            alternative = Some((pin, keys, *acceptance));
            plan
        }
        // Accepting on a pull request's branch takes what the branch will
        // run after the merge: the whole change, never the base's pins.
        Action::Baseline => Plan {
            cells: vec![Cell::baseline(&profile)],
            skipped: Vec::new(),
        },
        Action::Run | Action::Plan if options.accept.is_some() => match &tools.change {
            Some((after, name)) => {
                let changes = pr::changes(builder.baseline(), after);
                let change = pr::plan(&changes, builder.baseline(), after, &profile)
                    .cells
                    .pop()
                    .filter(|cell| !cell.is_baseline());
                events(&RunEvent::PinsChanged {
                    since: name.clone(),
                    changes: changes.iter().map(ToString::to_string).collect(),
                });
                Plan {
                    cells: vec![change.unwrap_or_else(|| Cell::baseline(&profile))],
                    skipped: Vec::new(),
                }
            }
            None => Plan {
                cells: vec![Cell::baseline(&profile)],
                skipped: Vec::new(),
            },
        },
        Action::Run | Action::Plan | Action::Explore(_) => match &tools.change {
            Some((after, name)) => {
                let changes = pr::changes(builder.baseline(), after);
                events(&RunEvent::PinsChanged {
                    since: name.clone(),
                    changes: changes.iter().map(ToString::to_string).collect(),
                });
                prepare::check_versions_exist(builder, after, &changes).await?;
                pr::plan(&changes, builder.baseline(), after, &profile)
            }
            None => plan_matrix(inputs, tools, events).await?,
        },
    };
    events(&RunEvent::Planned {
        cells: plan.cells.len(),
        scenarios: inputs.scenarios.len(),
    });
    let shard = options.shard.map(|(index, count)| ShardInfo {
        index,
        count,
        plan: plan.cells.iter().map(|cell| cell.id.clone()).collect(),
    });
    let plan = match options.shard {
        Some((index, count)) if !matches!(options.action, Action::Plan) => {
            let part = plan::shard(&plan, index - 1, count);
            events(&RunEvent::ShardTaken {
                index,
                count,
                cells: part.cells.len() - 1,
                of: plan.cells.len() - 1,
            });
            part
        }
        _ => plan,
    };
    Ok(Planned {
        plan,
        shard,
        bisection,
        alternative,
    })
}

/// The matrix's cells by its strategy, ranges filled from the index and
/// listed versions checked first.
async fn plan_matrix(inputs: &mut Inputs, tools: &Tools, events: &Events) -> anyhow::Result<Plan> {
    let config = &mut inputs.config;
    prepare::expand_ranges(config, &tools.index, events).await?;
    prepare::check_listed_versions(&tools.builder, config, &inputs.dirs, events).await?;
    prepare::check_matrix_packages(&tools.builder, config).await?;
    let planned = plan::plan(&config.matrix, &config.service.profile, |package| {
        tools.builder.baseline().pinned_version(package)
    });
    let mut plan = planned.map_err(|message| source::InputError {
        path: config.path.clone(),
        line: config.matrix.strategy_line,
        column: 1,
        key: "matrix.strategy".to_owned(),
        message,
    })?;
    plan.skipped.extend(
        tools
            .builder
            .baseline()
            .kept
            .iter()
            .map(|kept| format!("{kept} is installed as the lock has it, never pinned by a cell")),
    );
    if config.matrix.strategy != config::Strategy::OneAtATime {
        events(&RunEvent::StrategyChose {
            strategy: format!("{:?}", config.matrix.strategy),
            cells: plan.cells.len(),
            packages: config.matrix.packages.len(),
            full_product: plan::full_size(&config.matrix),
        });
    }
    Ok(plan)
}

/// Phase 5: what the cells share, ready: PostgreSQL started when a profile
/// needs it, the recorded results' digest, the run secret registered.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one of the phases' results"
)]
async fn start(
    inputs: Inputs,
    builder: Builder,
    plan: &Plan,
    pin_files: &[PathBuf],
    options: &Options,
    scratch: &state::TempDir,
    events: Events,
    started: std::time::Instant,
) -> anyhow::Result<Arc<RunContext>> {
    let Inputs {
        config,
        scenarios,
        dirs,
        source,
        ..
    } = inputs;
    let jobs = options.check.jobs.unwrap_or_else(default_jobs).max(1);
    let databases = prepare::start_postgres(
        &config,
        &scenarios,
        plan,
        options.check.database_url.as_deref(),
        &dirs.cache.join("postgres"),
        jobs,
        &events,
    )
    .await?;
    // Accepting records nothing: its results become the snapshots. An
    // exploration's references are written as it runs.
    let exploring = matches!(options.action, Action::Explore(_));
    let digests = if options.accept.is_some() || exploring {
        None
    } else {
        Some(run::results::run_digests(
            &config,
            &source,
            &dirs.cache,
            &builder.toolchain(),
            &format!(
                "noise-check={} no-build={} start={:?}",
                !options.check.no_noise_check, options.check.no_build, config.service.start
            ),
            pin_files,
        )?)
    };
    // Pull-request mode judges the baseline by the base's own snapshots.
    let base_snapshots = match &options.since {
        Some(git_ref) if options.accept.is_none() && !exploring => {
            let folder = scratch.path().join("base-snapshots");
            pr::snapshots_at(git_ref, &config.replay.snapshots, &folder)?;
            Some(folder)
        }
        _ => None,
    };
    let changed_snapshots = match &base_snapshots {
        Some(base) => changed_snapshots(&config, &scenarios, base)?,
        None => BTreeSet::new(),
    };
    let run_secret = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    redact::register(&redact::Secrets::new([("run", run_secret.as_str())]));
    let preloading = run::preloading::Preloading::new(&config, options.check.start.is_some());
    // An exploration's variants are the recorded steps, changed: one of
    // them is checked cold against forked, the others fork from the start
    // (the check of the scenarios themselves is every run's).
    let cold_check_only = match exploring {
        true => {
            preloading.fork_from_the_start();
            run::scenario_runs(&scenarios, &config.service.profile)
                .into_iter()
                .map(|run| run.key)
                .next()
        }
        false => None,
    };
    Ok(Arc::new(RunContext {
        settings: run::RunSettings {
            // What an accept writes is checked for being a doubtful reference.
            accepting: options.writes_references(),
            check_noise: options.accept.is_none() && !options.check.no_noise_check,
            digests,
            reuse_results: !options.check.no_cache,
            reuse_noise: !options.check.recheck_noise,
            keep_going: options.check.keep_going,
            baseline_is_reference: exploring,
            cold_check_only,
            base_snapshots,
            changed_snapshots,
            scratch: scratch.path().to_owned(),
            source,
            scenarios,
            dirs,
            jobs,
            started,
            run_secret,
            config,
        },
        state: run::RunState {
            finished: Default::default(),
            stopped_after_baseline: Default::default(),
            noise: Default::default(),
            noise_from_record: Default::default(),
            templates: Default::default(),
            preloading,
        },
        services: run::RunServices {
            builder,
            service_slots: tokio::sync::Semaphore::new(jobs),
            events,
            client: crate::exec::replay::client(),
            databases,
        },
    }))
}

/// What the follow-up finds.
#[derive(Default)]
struct FollowUp {
    interactions: Vec<crate::model::findings::Interaction>,
    newest_safe: Vec<crate::model::findings::NewestSafe>,
}

/// Phase 6: interactions isolated from multi-pin cells; each package's
/// newest safe version, bisected with `index` when its newest fails.
async fn follow_up(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    outcomes: &[CellOutcome],
    index: Option<&index::Index>,
) -> FollowUp {
    let interactions = interaction::isolate(ctx, plan, outcomes).await;
    let newest_safe = match index {
        Some(index) => bisect::newest_safe_versions(ctx, plan, outcomes, index).await,
        None => Vec::new(),
    };
    FollowUp {
        interactions,
        newest_safe,
    }
}

/// A pull request's whole change that built the same environment as one of
/// its single cells (`uv add bcrypt==5.0.0` also removes what bcrypt 4
/// needed; `cargo update -p tokio` moves what tokio needs) is that cell
/// again: it is left out of the outcomes and the plan, and said once.
fn shown_once(plan: &mut Plan, mut outcomes: Vec<CellOutcome>) -> Vec<CellOutcome> {
    let environment = |outcome: &CellOutcome| {
        outcome
            .report
            .environment
            .as_ref()
            .map(|environment| environment.id.clone())
    };
    let whole = plan
        .cells
        .iter()
        .find(|cell| cell.is_whole_change())
        .map(|cell| cell.id.clone());
    let Some(whole) = whole else {
        return outcomes;
    };
    let Some(at) = outcomes
        .iter()
        .position(|outcome| outcome.report.id == whole)
    else {
        return outcomes;
    };
    let Some(built) = environment(&outcomes[at]) else {
        return outcomes;
    };
    let twin = outcomes.iter().find(|outcome| {
        outcome.report.id != whole
            && !outcome.report.baseline
            && environment(outcome).as_deref() == Some(built.as_str())
    });
    if let Some(twin) = twin {
        plan.skipped.push(format!(
            "{} builds the same environment as `{}`: shown once, as that cell",
            outcomes[at].report.name, twin.report.name
        ));
        plan.cells.retain(|cell| cell.id != whole);
        outcomes.remove(at);
    }
    outcomes
}

/// Phase 7: the result model of what ran, compared with the baseline.
fn assemble(
    ctx: &RunContext,
    config_path: &Path,
    plan: &Plan,
    outcomes: &[CellOutcome],
    shard: Option<ShardInfo>,
    found: FollowUp,
    cancelled: Option<&str>,
) -> Report {
    let mut report = Report {
        schema_version: crate::model::report::SCHEMA_VERSION,
        config: config_path.display().to_string(),
        scenarios: run::scenario_runs(
            &ctx.settings.scenarios,
            &ctx.settings.config.service.profile,
        )
        .into_iter()
        .map(|run| run.key)
        .collect(),
        cells: outcomes
            .iter()
            .map(|outcome| outcome.report.clone())
            .collect(),
        skipped: plan.skipped.clone(),
        pending_snapshots: Vec::new(),
        accepted_snapshots: Vec::new(),
        cancelled: cancelled.map(str::to_owned),
        stopped_after_baseline: ctx
            .state
            .stopped_after_baseline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        interactions: found.interactions,
        newest_safe: found.newest_safe,
        shard,
        nondeterministic: ctx
            .state
            .noise
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect(),
        planned_cells: plan.cells.len(),
        duration_ms: 0,
        run: RunInfo::default(),
        unexplained_snapshots: Vec::new(),
        exploration: None,
    };
    compare_with_baseline(&mut report, outcomes);
    report
}

/// Pull-request mode: the scenario runs whose accepted snapshot the branch
/// edits (both sides have one, and their contents differ).
fn changed_snapshots(
    config: &Config,
    scenarios: &[scenario::Scenario],
    base: &Path,
) -> anyhow::Result<BTreeSet<String>> {
    let mut changed = BTreeSet::new();
    for run in run::scenario_runs(scenarios, &config.service.profile) {
        let before = snapshot::contents(&snapshot::accepted_path(base, &run.key))?;
        let after =
            snapshot::contents(&snapshot::accepted_path(&config.replay.snapshots, &run.key))?;
        if let (Some(before), Some(after)) = (before, after)
            && before != after
        {
            changed.insert(run.key);
        }
    }
    Ok(changed)
}

/// Pull-request mode: every snapshot the change edits must be what the whole
/// change answers (what the branch runs once merged); each that is not is
/// said, with what the change answers instead. Not in pull-request mode: none.
fn unexplained_snapshots(
    ctx: &RunContext,
    plan: &Plan,
    report: &Report,
) -> anyhow::Result<Vec<String>> {
    let changes: Vec<&Cell> = plan
        .cells
        .iter()
        .filter(|cell| !cell.is_baseline())
        .collect();
    // The whole change: resolved from the new file, or the one pin that moved.
    let whole = match changes.as_slice() {
        [only] => Some(*only),
        _ => changes.iter().copied().find(|cell| cell.is_whole_change()),
    };
    let mut unexplained = Vec::new();
    for key in &ctx.settings.changed_snapshots {
        let working = snapshot::accepted_path(&ctx.settings.config.replay.snapshots, key);
        let file = crate::sys::state::relative(&working, ctx.settings.config.base_dir());
        let Some(whole) = whole else {
            unexplained.push(format!(
                "{file} is changed in this change, but no pin changed: nothing here answers that way"
            ));
            continue;
        };
        let verdict = report
            .cells
            .iter()
            .find(|cell| cell.id == whole.id)
            .and_then(|cell| cell.scenarios.iter().find(|s| &s.scenario == key))
            .map(|scenario| scenario.verdict);
        let answers = match verdict {
            Some(Verdict::Accepted) => continue,
            Some(Verdict::Pass) => "as the base's snapshot says, not as this change's",
            Some(Verdict::Changed) => "neither as this change's snapshot says nor as the base's",
            Some(_) | None => "nothing that can be compared",
        };
        unexplained.push(format!(
            "{file} is changed in this change, but `{}` answers {answers}",
            whole.name
        ));
    }
    Ok(unexplained)
}

/// How the baseline was checked for noise, for the report's run facts.
fn noise_check(ctx: &RunContext, report: &Report) -> String {
    let baseline_reused = report
        .cells
        .iter()
        .any(|cell| cell.baseline && cell.result_reused);
    let from_record = ctx
        .state
        .noise_from_record
        .load(std::sync::atomic::Ordering::SeqCst);
    match (ctx.settings.check_noise, baseline_reused, from_record) {
        (false, ..) => String::new(),
        (true, true, _) => "as its reused result recorded".to_owned(),
        (true, false, true) => {
            "replayed once; its recorded run of the same inputs checked it for noise \
             (--recheck-noise replays it twice again)"
                .to_owned()
        }
        (true, false, false) => "each scenario replayed twice".to_owned(),
    }
}

/// What was compared, with what, and the command that runs it again (from
/// the repository's top, where CI runs it).
fn run_info(ctx: &RunContext, config_path: &Path, options: &Options) -> RunInfo {
    let started = std::time::SystemTime::now() - ctx.settings.started.elapsed();
    let folder = ctx.settings.config.base_dir();
    let mut reproduce = vec![options.invoked_as.clone()];
    if let Action::Explore(request) = &options.action {
        let explore = &ctx.settings.config.explore;
        reproduce.push(format!(
            "explore --budget {} --seed {}",
            request.budget.unwrap_or(explore.budget),
            request.seed.unwrap_or(explore.seed)
        ));
    }
    let in_repository = pr::top_of(folder).and_then(|top| {
        let config = config_path.canonicalize().ok()?;
        Some(config.strip_prefix(top).ok()?.to_owned())
    });
    match in_repository {
        Some(path) if path == Path::new(config::FILE_NAME) => {}
        Some(path) => reproduce.push(format!("--config {}", path.display())),
        None => reproduce.push(format!("--config {}", config_path.display())),
    }
    if let Some(git_ref) = &options.since {
        reproduce.push(format!("--since {git_ref}"));
    }
    if let Some(overlay) = &options.check.overlay {
        reproduce.push(format!("--overlay {}", overlay.display()));
    }
    if options.accept.is_some() {
        reproduce.push("--accept".to_owned());
    }
    RunInfo {
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        toolchain: ctx.services.builder.describe(),
        since: options.since.clone(),
        since_commit: options
            .since
            .as_deref()
            .and_then(|git_ref| pr::commit_of(folder, git_ref)),
        commit: pr::commit_of(folder, "HEAD"),
        reproduce: reproduce.join(" "),
        invoked_as: options.invoked_as.clone(),
        service_start: String::new(),
        noise_check: String::new(),
    }
}

/// Phase 8: snapshots written (accepted, or pending for review; none when
/// cancelled), the reports and the cells' exchanges written, the status.
fn conclude(
    ctx: &RunContext,
    mut report: Report,
    outcomes: &[CellOutcome],
    options: &Options,
    explored: Option<ExitStatus>,
) -> anyhow::Result<Finished> {
    let cancelled = report.cancelled.is_some();
    let exploring_alone = matches!(options.action, Action::Explore(_));
    if cancelled || exploring_alone {
        // A cancelled run judges nothing: no snapshot is written or removed.
        // An exploration's pending snapshots are its findings'.
    } else if let Some(acceptance) = options.accept {
        report.accepted_snapshots = accept::baseline(ctx, outcomes, acceptance.unhealthy)?;
        // What was just accepted matches by definition.
        for scenario in report
            .cells
            .iter_mut()
            .flat_map(|cell| cell.scenarios.iter_mut())
        {
            *scenario = ScenarioReport {
                verdict: Verdict::Pass,
                summary: None,
                diff: None,
                log_tail: None,
                ..scenario.clone()
            };
        }
    } else {
        report.pending_snapshots = accept::write_pending(ctx, outcomes)?;
    }
    report.duration_ms = ctx.settings.started.elapsed().as_millis() as u64;
    let report_dir = ctx.settings.dirs.report_dir();
    let written = report::write_all(&report, &report_dir)?;
    // The cells' normalised exchanges, for `upgrade-check diff` between two of them.
    let exchanges: cell_diff::Exchanges = outcomes
        .iter()
        .map(|outcome| (outcome.report.name.clone(), outcome.contents.clone()))
        .collect();
    state::write_atomic(
        &report_dir.join(cell_diff::FILE),
        &serde_json::to_vec(&exchanges)?,
    )?;
    let status = if cancelled {
        ExitStatus::Interrupted
    } else if let Some(explored) = explored
        && exploring_alone
        && report.stopped_after_baseline.is_none()
    {
        explored
    } else if options.accept.is_some() {
        ExitStatus::Pass
    } else if options.deny_warnings
        && report.status() == ExitStatus::Pass
        && report.has_new_warnings()
    {
        ExitStatus::Regression
    } else {
        // Findings explored after the check count as its failures do.
        match (report.status(), explored) {
            (ExitStatus::Pass, Some(explored)) => explored,
            (status, _) => status,
        }
    };
    Ok(Finished::Reported {
        report: Box::new(report),
        written,
        status,
    })
}

/// Marks failures a cell shares with the baseline, and output lines only the cell prints.
fn compare_with_baseline(report: &mut Report, outcomes: &[CellOutcome]) {
    let Some(baseline) = outcomes.iter().find(|outcome| outcome.report.baseline) else {
        return;
    };
    let baseline_warnings: std::collections::BTreeSet<&String> = baseline
        .report
        .scenarios
        .iter()
        .flat_map(|s| &s.warnings)
        .collect();
    let baseline_output: std::collections::BTreeSet<&String> = baseline
        .report
        .scenarios
        .iter()
        .flat_map(|s| &s.output)
        .collect();
    for (cell, outcome) in report.cells.iter_mut().zip(outcomes) {
        if cell.baseline {
            continue;
        }
        let mut new_warnings: Vec<String> = Vec::new();
        let mut new_output: Vec<String> = Vec::new();
        for scenario in &mut cell.scenarios {
            for line in &scenario.output {
                if !baseline_output.contains(line) && !new_output.contains(line) {
                    new_output.push(line.clone());
                }
            }
            for warning in &scenario.warnings {
                if !baseline_warnings.contains(warning) && !new_warnings.contains(warning) {
                    new_warnings.push(warning.clone());
                }
            }
            let Some(reference) = baseline
                .report
                .scenarios
                .iter()
                .find(|s| s.scenario == scenario.scenario)
            else {
                continue;
            };
            let same_contents = outcome.contents.get(&scenario.scenario)
                == baseline.contents.get(&scenario.scenario);
            scenario.same_as_baseline = scenario.verdict != Verdict::Pass
                && scenario.verdict == reference.verdict
                && same_contents
                && (scenario.verdict == Verdict::Changed || scenario.summary == reference.summary);
        }
        cell.new_warnings = new_warnings;
        cell.new_output = new_output;
    }
}

/// `--state-dir`, else `<cargo target dir>/upgrade-check` of the config's
/// workspace; refused when the repository controls it (tracked files in it,
/// a committed symlink on the way).
pub fn state_dirs(options: &Options, config_dir: &Path) -> anyhow::Result<StateDirs> {
    let state = options.folders.state.clone().unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                cargo_metadata::MetadataCommand::new()
                    .current_dir(if config_dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        config_dir
                    })
                    .no_deps()
                    .exec()
                    .ok()
                    .map(|metadata| metadata.target_directory.into_std_path_buf())
            });
        target
            .unwrap_or_else(|| config_dir.join("target"))
            .join("upgrade-check")
    });
    let cache = options
        .folders
        .cache
        .clone()
        .unwrap_or_else(|| state.clone());
    // Absolute: services run from copies elsewhere, and their `{python}` or
    // `{bin}` must name the environment from there too.
    let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
    let dirs = StateDirs {
        state: absolute(state),
        cache: absolute(cache),
    };
    state::refuse_repository_controlled(&dirs, config_dir)?;
    state::keep_out_of_source(&dirs);
    Ok(dirs)
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// CI systems set `CI`; accepted snapshots are never written there.
/// Accepted snapshots are never written in CI, whatever the command.
pub fn refuse_accepting_in_ci() -> anyhow::Result<()> {
    if is_ci() {
        bail!("refusing to accept snapshots in CI; accept them locally and commit the .snap files");
    }
    Ok(())
}

pub(crate) fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}
