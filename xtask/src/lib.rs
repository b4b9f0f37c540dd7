//! upgrade-check: does the service still answer the same way with these dependency versions?
//!
//! The data flow, one module per box:
//!
//! ```text
//! config ─► plan ─► per cell: env (uv) ─► db ─► service ─► replay ─► normalize ─► snapshot ─► report
//! ```
//!
//! [`upgrade_check`] wires them together; `run` drives the cells; `main.rs`
//! only parses arguments and maps the outcome to an exit code.

pub mod bench;
pub mod bisect;
pub mod cell_diff;
pub mod cli;
pub mod config;
pub mod db;
pub mod env;
pub mod failpoint;
pub mod gc;
pub mod index;
pub mod input;
pub mod interaction;
pub mod interrupt;
pub mod noise;
pub mod normalize;
pub mod package;
pub mod plan;
pub mod pr;
pub mod process;
pub mod progress;
pub mod redact;
pub mod replay;
pub mod report;
pub mod results;
pub mod review;
pub mod run;
pub mod scenario;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod sweep;
pub mod test_tools;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::env::{BaselineFile, Builder};
use crate::plan::{Cell, Plan};
use crate::progress::Progress;
use crate::report::{Report, Verdict};
use crate::run::{CellOutcome, RunContext, relative};
use crate::state::StateDirs;

pub use crate::interrupt::EXIT_INTERRUPTED;
use crate::interrupt::Interrupt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A summary table and each failure's diff, for people.
    #[default]
    Terminal,
    /// The whole result as JSON on stdout (also written to report.json).
    Json,
    /// For `plan`: the shards as a GitHub Actions job matrix (`strategy.matrix`).
    GithubMatrix,
}

/// What a run does with its plan.
#[derive(Debug, Clone, Default)]
pub enum Action {
    /// Run every cell and judge it.
    #[default]
    Run,
    /// Print the plan and stop; with `--format github-matrix`, as this many shards.
    Plan { shards: usize },
    /// Trim the cache to a policy.
    Gc(gc::Policy),
    /// Merge shards' partial results (report folders) into one report.
    MergeReports {
        dirs: Vec<PathBuf>,
        out: Option<PathBuf>,
    },
    /// Search the index's versions of one package for the first bad one.
    Bisect(BisectRequest),
    /// Compare two cells of the last run with each other.
    DiffCells { a: String, b: String },
    /// Accept pending snapshots (of `scenarios`, or all), running nothing.
    AcceptPending { scenarios: Vec<String> },
    /// Walk the pending snapshots: accept, reject or skip each.
    Review,
    /// Run one cell and accept its output of `scenarios` as alternatives.
    AcceptAlternative {
        /// `PACKAGE VERSION`, as typed.
        cell: String,
        scenarios: Vec<String>,
    },
}

/// `upgrade-check bisect PACKAGE [--from V] [--to V] [--pre]`, as typed.
#[derive(Debug, Clone)]
pub struct BisectRequest {
    pub package: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub pre: bool,
}

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub action: Action,
    /// Run only shard `K` of `N` (1-based) and write a partial result.
    pub shard: Option<(usize, usize)>,
    pub config: Option<PathBuf>,
    pub accept: bool,
    /// With `accept`: take a baseline that answers 5xx or logs a traceback.
    pub accept_unhealthy: bool,
    pub format: Format,
    pub jobs: Option<usize>,
    pub state_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// A PostgreSQL server to use instead of starting one.
    pub database_url: Option<String>,
    /// Files laid over a copy of the service before anything runs.
    pub overlay: Option<PathBuf>,
    /// Install wheels only: no package's build code runs.
    pub no_build: bool,
    /// New warnings fail the run, not only the scenarios that changed.
    pub deny_warnings: bool,
    /// Replay the baseline once, not twice: faster, but blind to noise.
    pub no_noise_check: bool,
    /// Do not bisect packages whose newest candidate fails.
    pub no_bisect: bool,
    /// Run every cell even when a recorded result's inputs are unchanged.
    pub no_cache: bool,
    /// Never reach the package index; use cached resolutions, environments and downloads.
    pub offline: bool,
    /// Pull-request mode: the baseline file at this git ref is the baseline.
    pub since: Option<String>,
}

/// Runs the whole check and returns the process exit code.
///
/// Ctrl-C or SIGTERM stop every child process group before returning.
pub fn upgrade_check(options: Options) -> anyhow::Result<i32> {
    if let Action::MergeReports { dirs, out } = &options.action {
        return merge_reports(&options, dirs, out.as_deref());
    }
    if let Action::Gc(policy) = options.action {
        return collect_garbage(&options, policy);
    }
    if matches!(
        options.action,
        Action::AcceptPending { .. } | Action::Review
    ) {
        return review::run(&options);
    }
    if let Action::DiffCells { a, b } = &options.action {
        let config_dir = match &options.config {
            Some(path) => path.parent().unwrap_or(Path::new("")).to_owned(),
            None => default_config()?
                .parent()
                .unwrap_or(Path::new(""))
                .to_owned(),
        };
        let (text, differ) =
            cell_diff::compare(&state_dirs(&options, &config_dir).report_dir(), a, b)?;
        crate::out!("{text}");
        return Ok(i32::from(differ));
    }
    // Children die with the thread that spawned them (PR_SET_PDEATHSIG), so no
    // runtime thread may retire while the run lasts.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(24 * 60 * 60))
        .build()?;

    let outcome = runtime.block_on(async {
        let interrupt = Interrupt::install()?;
        tokio::select! {
            outcome = run(options, &interrupt) => outcome,
            // Before the cells run there is nothing to report: stop.
            name = interrupt.wait_before_cells() => {
                crate::errln!("upgrade-check: interrupted by {name} before any cell ran");
                Ok(EXIT_INTERRUPTED)
            }
        }
    });
    process::kill_all();
    runtime.shutdown_timeout(Duration::from_secs(5));
    // Tasks cancelled mid-cell may have written into a folder after it was removed.
    state::remove_temp_dirs();
    outcome
}

async fn run(options: Options, interrupt: &Interrupt) -> anyhow::Result<i32> {
    let config_path = match &options.config {
        Some(path) => path.clone(),
        None => default_config()?,
    };
    let mut config = Config::load(&config_path)?;
    let scenarios = scenario::load_dir(&config.replay.scenarios)?;
    snapshot::check_files(&config.replay.snapshots)?;
    // From here on, no write or print of this process can hold a scenario secret.
    for scenario in &scenarios {
        redact::register(&redact::Secrets::new(
            scenario
                .secrets
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        ));
    }
    check_scenario_profiles(&config, &scenarios)?;
    let accepts = options.accept || matches!(options.action, Action::AcceptAlternative { .. });
    if accepts {
        refuse_accepting_in_ci()?;
    }
    let dirs = state_dirs(&options, config.base_dir());
    let progress = Progress::new(false);
    progress.say(&format!("using config {}", config_path.display()));
    let scratch = dirs.scratch()?;
    sweep::claim(scratch.path())?;
    process::mark_run(scratch.path());
    let swept = sweep::sweep(&dirs.state.join("tmp"), scratch.path());
    let half_written = state::remove_stale_temp_files(&[
        dirs.report_dir(),
        config.replay.snapshots.clone(),
        dirs.resolutions_dir(),
    ]);
    if swept.processes > 0 || !swept.folders.is_empty() || !half_written.is_empty() {
        progress.say(&format!(
            "removed what a dead run left behind: {} processes, {} folders, {} half-written files",
            swept.processes,
            swept.folders.len(),
            half_written.len()
        ));
    }
    if let Some(overlay) = &options.overlay {
        if options.accept {
            bail!("--accept takes the service as it is; drop --overlay");
        }
        lay_over(&mut config, overlay, scratch.path())?;
        progress.say(&format!(
            "service: {} laid over {}",
            overlay.display(),
            config.service.root.display()
        ));
    }
    let working = BaselineFile::load(&config.service.baseline)?;
    let pin_files = pin_files(&config, &working);
    // In pull-request mode the file as it was at the ref is the baseline and
    // the working file the change.
    let (baseline, after) = match &options.since {
        Some(git_ref) => {
            let before = pr::baseline_at(git_ref, &config.service.baseline)??;
            (before.file, Some((working, before.name)))
        }
        None => (working, None),
    };
    let builder = match config.service.ecosystem {
        config::Ecosystem::Python => {
            let mut hashes = env::DeclaredHashes::default();
            hashes.add(&baseline);
            if let Some((after, _)) = &after {
                hashes.add(after);
            }
            Builder::Python(
                uv_builder(&config, &options, &dirs, &progress, baseline, hashes).await?,
            )
        }
        config::Ecosystem::Cargo => Builder::Cargo(cargo_builder(
            &config, &options, &dirs, &progress, baseline,
        )?),
    };
    // Only the Python index lists a package's versions: ranges and bisection need it.
    let index = match &builder {
        Builder::Python(builder) => Some(index::Index {
            python: builder.python.clone(),
            cache: dirs.index_dir(),
            ttl: index::DEFAULT_TTL,
            offline: options.offline,
            timeout: config.timeouts.build,
        }),
        Builder::Cargo(_) => None,
    };
    let bisection = match &options.action {
        Action::Bisect(request) => {
            if options.accept || options.since.is_some() {
                bail!("bisect takes neither --accept nor --since");
            }
            let Some(index) = &index else {
                bail!(
                    "bisect searches the Python package index's versions; a cargo service has no such listing"
                );
            };
            let baseline = builder.baseline();
            Some(bisect::Bisection::prepare(request, baseline, index, &progress).await?)
        }
        Action::Run
        | Action::Plan { .. }
        | Action::MergeReports { .. }
        | Action::Gc(_)
        | Action::DiffCells { .. }
        | Action::AcceptPending { .. }
        | Action::Review
        | Action::AcceptAlternative { .. } => None,
    };
    let alternative = match &options.action {
        Action::AcceptAlternative {
            cell,
            scenarios: wanted,
        } => {
            let known: Vec<String> = run::scenario_runs(&scenarios, &config.service.profile)
                .into_iter()
                .map(|run| run.key)
                .collect();
            if options.accept || options.since.is_some() {
                bail!("accept --cell takes neither --accept nor --since");
            }
            Some(alternative_request(
                config.service.ecosystem,
                &known,
                cell,
                wanted,
            )?)
        }
        _ => None,
    };
    let plan = if let Some(bisection) = &bisection {
        bisection.first_plan(&config.service.profile)
    } else if let Some((pin, _)) = &alternative {
        Plan {
            cells: vec![Cell::with_pins(vec![pin.clone()], &config.service.profile)],
            skipped: Vec::new(),
        }
    } else if options.accept {
        Plan {
            cells: vec![Cell::baseline(&config.service.profile)],
            skipped: Vec::new(),
        }
    } else if let Some((after, name)) = after {
        let changes = pr::changes(builder.baseline(), &after);
        let described: Vec<String> = changes.iter().map(ToString::to_string).collect();
        progress.say(&format!(
            "since {}: {} changed: {}",
            name,
            report::headline::plural(changes.len(), "pin"),
            if described.is_empty() {
                "none".to_owned()
            } else {
                described.join(", ")
            }
        ));
        check_versions_exist(&builder, &after, &changes).await?;
        pr::plan(&changes, &config.service.profile, &after.path)
    } else {
        if let Some(index) = &index {
            expand_ranges(&mut config, index, &progress).await?;
        }
        check_listed_versions(&builder, &config, &dirs, &progress).await?;
        let planned = plan::plan(&config.matrix, &config.service.profile, |package| {
            builder.baseline().pinned_version(package)
        });
        let plan = planned.map_err(|message| input::InputError {
            path: config.path.clone(),
            line: config.matrix.strategy_line,
            column: 1,
            key: "matrix.strategy".to_owned(),
            message,
        })?;
        if config.matrix.strategy != config::Strategy::OneAtATime {
            let full = plan::full_size(&config.matrix);
            progress.say(&format!(
                "{:?} strategy: {} cells for {} packages (the full product is {full})",
                config.matrix.strategy,
                plan.cells.len(),
                config.matrix.packages.len()
            ));
        }
        plan
    };
    progress.say(&format!(
        "{} × {}",
        report::headline::plural(plan.cells.len(), "cell"),
        report::headline::plural(scenarios.len(), "scenario")
    ));
    if let Action::Plan { shards } = options.action {
        print_plan(&plan, options.format, shards)?;
        return Ok(0);
    }
    let shard_info = options.shard.map(|(index, count)| report::ShardInfo {
        index,
        count,
        plan: plan.cells.iter().map(|cell| cell.id.clone()).collect(),
    });
    let plan = match options.shard {
        Some((index, count)) => {
            let part = plan::shard(&plan, index - 1, count);
            progress.say(&format!(
                "shard {index}/{count}: {} of the plan's {} cells, with the baseline",
                part.cells.len() - 1,
                plan.cells.len() - 1
            ));
            part
        }
        None => plan,
    };
    let postgres = start_postgres(
        &config,
        &scenarios,
        &plan,
        options.database_url.as_deref(),
        &dirs.cache.join("postgres"),
        &progress,
    )
    .await?;
    // Accepting records nothing: its results become the snapshots.
    let results_digest = if options.accept {
        None
    } else {
        Some(results::run_digest(
            &config,
            &builder.toolchain(),
            &format!(
                "noise-check={} no-build={}",
                !options.no_noise_check, options.no_build
            ),
            &pin_files,
        )?)
    };
    let jobs = options.jobs.unwrap_or_else(default_jobs).max(1);
    let run_secret = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    redact::register(&redact::Secrets::new([("run", run_secret.as_str())]));
    let ctx = Arc::new(RunContext {
        finished: Default::default(),
        templates: Default::default(),
        postgres,
        accepting: options.accept,
        check_noise: !options.accept && !options.no_noise_check,
        results_digest,
        reuse_results: !options.no_cache,
        noise: Default::default(),

        scratch: scratch.path().to_owned(),
        config,
        scenarios,
        builder,
        dirs: dirs.clone(),
        jobs,
        service_slots: tokio::sync::Semaphore::new(jobs),
        progress,
        client: replay::client(),
        run_secret,
    });
    interrupt.cells_started();
    if let Some(bisection) = bisection {
        let report_dir = dirs.report_dir();
        let code = tokio::select! {
            code = bisection.run(ctx.clone(), &report_dir) => code,
            name = interrupt.wait() => {
                crate::errln!("upgrade-check: bisection interrupted by {name}");
                Ok(EXIT_INTERRUPTED)
            }
        };
        run::drop_templates(&ctx).await;
        return code;
    }
    let (outcomes, mut cancelled) = tokio::select! {
        outcomes = run::run_plan(ctx.clone(), &plan) => (outcomes, None),
        name = interrupt.wait() => {
            // Every child is dead already; keep what finished, in plan order.
            (run::finished(&ctx), Some(name))

        }
    };
    if let Some((pin, keys)) = &alternative {
        if let Some(name) = cancelled {
            crate::errln!("upgrade-check: interrupted by {name}; nothing accepted");
            return Ok(EXIT_INTERRUPTED);
        }
        ctx.progress.finish();
        run::drop_templates(&ctx).await;
        return accept_alternatives(&ctx, &outcomes, pin, keys);
    }
    // A shard sees only its own cells: isolating and bisecting need them all.
    let (mut interactions, mut newest_safe) = (Vec::new(), Vec::new());
    if cancelled.is_none() && !options.accept && options.shard.is_none() {
        let follow_up = async {
            let interactions = interaction::isolate(&ctx, &plan, &outcomes).await;
            let newest_safe = match &index {
                Some(index) if !options.no_bisect => {
                    bisect::newest_safe_versions(&ctx, &plan, &outcomes, index).await
                }
                _ => Vec::new(),
            };
            (interactions, newest_safe)
        };
        tokio::select! {
            found = follow_up => (interactions, newest_safe) = found,
            name = interrupt.wait() => cancelled = Some(name),
        }
    }

    run::drop_templates(&ctx).await;
    let mut report = Report {
        schema_version: report::SCHEMA_VERSION,
        config: config_path.display().to_string(),
        scenarios: run::scenario_runs(&ctx.scenarios, &ctx.config.service.profile)
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
        interactions,
        newest_safe,
        shard: shard_info,
        nondeterministic: ctx
            .noise
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect(),
        planned_cells: plan.cells.len(),
        duration_ms: 0,
    };
    compare_with_baseline(&mut report, &outcomes);
    if cancelled.is_some() {
        // A cancelled run judges nothing: no snapshot is written or removed.
    } else if options.accept {
        report.accepted_snapshots = accept_baseline(&ctx, &outcomes, options.accept_unhealthy)?;
        // What was just accepted matches by definition.
        for scenario in report
            .cells
            .iter_mut()
            .flat_map(|cell| cell.scenarios.iter_mut())
        {
            *scenario = report::ScenarioReport {
                verdict: Verdict::Pass,
                summary: None,
                diff: None,
                log_tail: None,
                ..scenario.clone()
            };
        }
    } else {
        report.pending_snapshots = write_pending(&ctx, &outcomes)?;
    }
    report.duration_ms = ctx.progress.elapsed_ms();
    let written = report::write_all(&report, &dirs.report_dir())?;
    // The cells' normalised exchanges, for `upgrade-check diff` between two of them.
    let exchanges: cell_diff::Exchanges = outcomes
        .iter()
        .map(|outcome| (outcome.report.name.clone(), outcome.contents.clone()))
        .collect();
    state::write_atomic(
        &dirs.report_dir().join(cell_diff::FILE),
        &serde_json::to_vec(&exchanges)?,
    )?;
    ctx.progress.finish();
    match options.format {
        Format::Terminal => crate::out!("{}", report::terminal::render(&report)),
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&report)?),
        Format::GithubMatrix => bail!("--format github-matrix is for `upgrade-check plan`"),
    }
    let written: Vec<String> = written
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    crate::errln!("reports: {}", written.join(", "));
    drop(ctx);
    drop(scratch);
    Ok(if cancelled.is_some() {
        EXIT_INTERRUPTED
    } else if options.accept {
        0
    } else if options.deny_warnings && report.exit_code() == 0 && report.has_new_warnings() {
        1
    } else {
        report.exit_code()
    })
}

/// Writes the baseline's results as the accepted snapshots.
fn accept_baseline(
    ctx: &RunContext,
    outcomes: &[CellOutcome],
    accept_unhealthy: bool,
) -> anyhow::Result<Vec<String>> {
    let baseline = outcomes.first().context("the plan has no baseline")?;
    if let Some(broken) = baseline.report.scenarios.iter().find(|s| {
        matches!(
            s.verdict,
            Verdict::BuildFailed | Verdict::StartupFailed | Verdict::Error
        )
    }) {
        bail!(
            "cannot accept: the baseline is {} on `{}`: {}",
            broken.verdict.label(),
            broken.scenario,
            broken.summary.as_deref().unwrap_or("")
        );
    }
    let unhealthy: Vec<String> = baseline
        .report
        .scenarios
        .iter()
        .filter(|s| !s.unhealthy.is_empty())
        .map(|s| format!("{}: {}", s.scenario, s.unhealthy.join("; ")))
        .collect();
    if !unhealthy.is_empty() && !accept_unhealthy {
        bail!(
            "cannot accept: the baseline is unhealthy ({}); fix the service, or accept \
             this behaviour as it is with --accept-unhealthy",
            unhealthy.join(" | ")
        );
    }
    let mut accepted = Vec::new();
    for run in run::scenario_runs(&ctx.scenarios, &ctx.config.service.profile) {
        let Some(contents) = baseline.contents.get(&run.key) else {
            continue;
        };
        let path = snapshot::accepted_path(&ctx.config.replay.snapshots, &run.key);
        snapshot::accept(
            &path,
            &header(ctx, &run, "accepted from the baseline"),
            contents,
        )?;
        accepted.push(relative(&path, ctx.config.base_dir()));
    }
    Ok(accepted)
}

/// `PACKAGE VERSION` and scenario keys, checked before anything runs.
fn alternative_request(
    ecosystem: config::Ecosystem,
    known: &[String],
    cell: &str,
    scenarios: &[String],
) -> anyhow::Result<(plan::Pin, Vec<String>)> {
    let Some((package, version)) = cell.trim().split_once(' ') else {
        bail!("--cell `{cell}`: name the cell as the report does, `PACKAGE VERSION`");
    };
    let pin = plan::Pin {
        package: package::PackageName::parse(ecosystem, package.trim())
            .map_err(|err| anyhow::anyhow!("--cell `{cell}`: {err}"))?,
        version: package::Version::parse(ecosystem, version.trim())
            .map_err(|err| anyhow::anyhow!("--cell `{cell}`: {err}"))?,
    };
    for scenario in scenarios {
        if !known.contains(scenario) {
            bail!(
                "no scenario `{scenario}`; the scenarios are: {}",
                known.join(", ")
            );
        }
    }
    Ok((pin, scenarios.to_vec()))
}

/// Writes the cell's output of each scenario in `keys` as an alternative
/// accepted snapshot; refuses, writing nothing, when the cell did not run them.
fn accept_alternatives(
    ctx: &RunContext,
    outcomes: &[CellOutcome],
    pin: &plan::Pin,
    keys: &[String],
) -> anyhow::Result<i32> {
    let outcome = outcomes.first().context("the plan has no cell")?;
    let mut accepted = Vec::new();
    for key in keys {
        let scenario = outcome.report.scenarios.iter().find(|s| &s.scenario == key);
        let contents = outcome.contents.get(key);
        let (Some(scenario), Some(contents)) = (scenario, contents) else {
            bail!("cannot accept: `{}` did not run {key}", outcome.report.name);
        };
        if matches!(
            scenario.verdict,
            Verdict::BuildFailed | Verdict::StartupFailed | Verdict::Error
        ) {
            bail!(
                "cannot accept: `{}` is {} on `{key}`: {}",
                outcome.report.name,
                scenario.verdict.label(),
                scenario.summary.as_deref().unwrap_or("")
            );
        }
        accepted.push((key, contents));
    }
    for (key, contents) in accepted {
        let run = run::scenario_runs(&ctx.scenarios, &ctx.config.service.profile)
            .into_iter()
            .find(|run| &run.key == key)
            .context("the scenario ran, so it exists")?;
        let path = snapshot::alternative_path(&ctx.config.replay.snapshots, key, pin);
        let alternative = snapshot::Alternative {
            path: path.clone(),
            from: pin.clone(),
        };
        let description = format!(
            "alternative accepted for {} (cell `{}`); the baseline's {key}.snap stays the reference",
            alternative.range(),
            outcome.report.name
        );
        snapshot::accept(&path, &header(ctx, &run, &description), contents)?;
        crate::outln!(
            "accepted alternative: {} (for {})",
            relative(&path, ctx.config.base_dir()),
            alternative.range()
        );
    }
    Ok(0)
}

/// One `.snap.new` per scenario that did not match: the baseline's result if
/// the baseline differs, else the first differing cell's; stale ones go.
fn write_pending(ctx: &RunContext, outcomes: &[CellOutcome]) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    for run in run::scenario_runs(&ctx.scenarios, &ctx.config.service.profile) {
        let path = snapshot::accepted_path(&ctx.config.replay.snapshots, &run.key);
        let changed = outcomes.iter().find_map(|outcome| {
            let verdict = outcome
                .report
                .scenarios
                .iter()
                .find(|s| s.scenario == run.key)?
                .verdict;
            let contents = outcome.contents.get(&run.key)?;
            (verdict == Verdict::Changed).then_some((outcome, contents))
        });
        match changed {
            Some((outcome, contents)) => {
                let description = if outcome.report.baseline {
                    "result of the baseline".to_owned()
                } else {
                    format!(
                        "result of cell `{}`; accepting it makes this the expected behaviour",
                        outcome.report.name
                    )
                };
                let pending =
                    snapshot::write_pending(&path, &header(ctx, &run, &description), contents)?;
                written.push(relative(&pending, ctx.config.base_dir()));
            }
            None => snapshot::remove_pending(&path)?,
        }
    }
    Ok(written)
}

fn header<'a>(
    ctx: &RunContext,
    run: &'a run::ScenarioRun<'_>,
    description: &'a str,
) -> snapshot::Header<'a> {
    snapshot::Header {
        source: relative(&run.scenario.path, ctx.config.base_dir()),
        scenario: &run.key,
        description,
    }
}

/// Makes a copy of the service with `overlay`'s files on top (a variant or an
/// incident's pre-fix files), and points the config at it.
fn lay_over(config: &mut Config, overlay: &Path, scratch: &Path) -> anyhow::Result<()> {
    if !overlay.is_dir() {
        bail!("--overlay {}: no such folder", overlay.display());
    }
    let root = scratch.join("service-with-overlay");
    state::copy_tree(&config.service.root, &root)?;
    state::copy_tree(overlay, &root)?;
    // A variant's README describes it; it is not part of the service.
    let readme = root.join("README.md");
    if overlay.join("README.md").is_file() && !config.service.root.join("README.md").is_file() {
        fs_err::remove_file(readme)?;
    }
    let baseline = config
        .service
        .baseline
        .strip_prefix(&config.service.root)?
        .to_owned();
    config.service.baseline = root.join(baseline);
    config.service.root = root;
    Ok(())
}

/// `cargo xtask bench`: the costs of the harness on the config's matrix.
pub fn bench(
    config: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    jobs: Option<usize>,
    with_peers: bool,
) -> anyhow::Result<i32> {
    let config = match config {
        Some(path) => path,
        None => default_config()?,
    };
    let config_dir = config.parent().unwrap_or(Path::new("")).to_owned();
    let options = Options {
        state_dir,
        ..Options::default()
    };
    let dirs = state_dirs(&options, &config_dir);
    bench::run(
        &config,
        &dirs.state,
        jobs.unwrap_or_else(default_jobs).max(1),
        with_peers,
    )
}

/// `upgrade-check gc`: says what it removed (or would) and what it kept.
fn collect_garbage(options: &Options, policy: gc::Policy) -> anyhow::Result<i32> {
    let dirs = state_dirs(options, Path::new(""));
    // The state folder is gc's when named, or when nothing is named (the
    // default layout keeps the cache in it); never when only --cache-dir is.
    let state_given = options.state_dir.is_some() || options.cache_dir.is_none();
    let collected = gc::collect(&dirs, policy, state_given)?;
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let verb = if policy.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (path, bytes, reason) in &collected.removed {
        crate::outln!(
            "{verb} {} ({:.1} MiB): {reason}",
            path.display(),
            mib(*bytes)
        );
    }
    crate::outln!(
        "{verb} {} entries ({:.1} MiB); kept {} environments ({:.1} MiB) in {}",
        collected.removed.len(),
        mib(collected.removed.iter().map(|(_, bytes, _)| bytes).sum()),
        collected.kept_environments,
        mib(collected.kept_bytes),
        dirs.cache.display()
    );
    Ok(0)
}

/// `upgrade-check report merge`: the shards' parts as one report, written
/// in every format; the exit code is the merged result's.
fn merge_reports(options: &Options, dirs: &[PathBuf], out: Option<&Path>) -> anyhow::Result<i32> {
    let merged = report::merge::merge(report::merge::read_parts(dirs)?)?;
    let out = match out {
        Some(out) => out.to_owned(),
        None => state_dirs(options, Path::new("")).report_dir(),
    };
    let written = report::write_all(&merged, &out)?;
    match options.format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&merged)?),
        _ => crate::out!("{}", report::terminal::render(&merged)),
    }
    let written: Vec<String> = written
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    crate::errln!("merged {} parts: {}", dirs.len(), written.join(", "));
    Ok(merged.exit_code())
}

/// The plan on stdout: one cell per line, JSON, or a job matrix of shards.
fn print_plan(plan: &Plan, format: Format, shards: usize) -> anyhow::Result<()> {
    match format {
        Format::GithubMatrix => {
            let include: Vec<serde_json::Value> = (0..shards)
                .map(|index| {
                    let names: Vec<String> = plan::shard(plan, index, shards)
                        .cells
                        .into_iter()
                        .skip(1)
                        .map(|cell| cell.name)
                        .collect();
                    serde_json::json!({
                        "shard": format!("{}/{shards}", index + 1),
                        "cells": names.join("; "),
                    })
                })
                .collect();
            crate::outln!("{}", serde_json::json!({ "include": include }));
        }
        Format::Terminal => {
            for cell in &plan.cells {
                crate::outln!("{}\t{}\t{}", cell.id, cell.name, cell.profile);
            }
            for skipped in &plan.skipped {
                crate::outln!("# skipped: {skipped}");
            }
        }
        Format::Json => {
            let cells: Vec<serde_json::Value> = plan
                .cells
                .iter()
                .map(|cell| {
                    serde_json::json!({
                        "id": cell.id,
                        "name": cell.name,
                        "profile": cell.profile,
                        "pins": cell.pins.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "cells": cells,
                    "skipped": plan.skipped,
                }))?
            );
        }
    }
    Ok(())
}

/// Fills each range entry of the matrix with the versions it picks from the
/// index, and says what it picked before anything runs.
async fn expand_ranges(
    config: &mut Config,
    index: &index::Index,
    progress: &Progress,
) -> anyhow::Result<()> {
    let config_path = config.path.clone();
    for (package, candidates) in &mut config.matrix.packages {
        let config::Candidates::Range(range) = candidates else {
            continue;
        };
        let listing = index.list(package, range.pre).await?;
        range.expanded = range.pick_from(&listing.versions);
        let source = match (listing.from_cache, listing.stale) {
            (_, true) => "index answer cached, STALE (--offline)",
            (true, false) => "index answer cached",
            (false, false) => "from the package index",
        };
        let picked: Vec<String> = range.expanded.iter().map(ToString::to_string).collect();
        progress.say(&format!(
            "{package} {} ({}): {} of {} versions, {source}: {}",
            range.specifiers,
            range.pick,
            picked.len(),
            listing.versions.len(),
            picked.join(", ")
        ));
        if range.expanded.is_empty() {
            return Err(input::InputError {
                path: config_path.clone(),
                line: range.line,
                column: 1,
                key: format!("matrix.packages.{package}"),
                message: format!(
                    "no version of {package} on the package index is in `{}`",
                    range.specifiers
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Finds Python and uv (bootstrapping uv when absent) for a Python service.
async fn uv_builder(
    config: &Config,
    options: &Options,
    dirs: &StateDirs,
    progress: &Progress,
    baseline: BaselineFile,
    hashes: env::DeclaredHashes,
) -> anyhow::Result<env::UvBuilder> {
    let python = env::python::find(config.service.python.as_deref())?;
    let tools_dir = dirs.tools_dir();
    let bootstrap_python = python.clone();
    let offline = options.offline;
    let uv = tokio::task::spawn_blocking(move || {
        env::uv::locate_or_bootstrap(&tools_dir, &bootstrap_python, offline, &|message| {
            crate::errln!("{message}")
        })
    })
    .await??;
    progress.say(&format!(
        "using {} and Python {} ({})",
        uv.version,
        python.version,
        python.path.display()
    ));
    Ok(env::UvBuilder {
        python,
        uv,
        dirs: dirs.clone(),
        baseline,
        hashes,
        timeout: config.timeouts.build,
        no_build: options.no_build,
        offline: options.offline,
    })
}

/// Finds cargo for a cargo service; in pull-request mode, also the
/// manifests the change edits, which the baseline is built without.
fn cargo_builder(
    config: &Config,
    options: &Options,
    dirs: &StateDirs,
    progress: &Progress,
    baseline: BaselineFile,
) -> anyhow::Result<env::CargoBuilder> {
    if options.no_build {
        bail!("--no-build refuses Python source distributions; a cargo service is always built");
    }
    let cargo = env::cargo_build::Cargo::find()?;
    progress.say(&format!("using {}", cargo.version));
    let lock_path = config
        .service
        .baseline
        .strip_prefix(&config.service.root)
        .context("the baseline lock is inside the service's folder")?
        .to_owned();
    let root = &config.service.root;
    let source_digest = env::cargo_build::source_digest(root, &config.service.baseline)?;
    let mut base_manifests = Vec::new();
    if let Some(git_ref) = &options.since {
        base_manifests = pr::manifests_changed_since(git_ref, root)?;
        for (path, _) in &base_manifests {
            progress.say(&format!(
                "since {git_ref}: {} changed; the baseline is built with the old one",
                path.display()
            ));
        }
    }
    Ok(env::CargoBuilder {
        cargo,
        dirs: dirs.clone(),
        root: root.clone(),
        lock_path,
        source_digest,
        baseline,
        base_manifests,
        timeout: config.timeouts.build,
        offline: options.offline,
    })
}

/// A version a change asks for must exist on the index (registry), or the change is
/// bad input: exit 2 naming the line, before anything is built.
/// Every version the matrix lists must be one the index (or registry) has:
/// a missing or yanked one is bad input, refused with its line before any
/// cell runs, not a build failure found after the whole matrix ran. A version
/// found is remembered for an hour (`index/exists/`), so warm runs ask nothing.
async fn check_listed_versions(
    builder: &Builder,
    config: &Config,
    dirs: &StateDirs,
    progress: &Progress,
) -> anyhow::Result<()> {
    let known = dirs.index_dir().join("exists");
    let mut asked = 0;
    for listed in &config.matrix.listed {
        let marker = known.join(format!("{}=={}", listed.package, listed.version));
        let fresh = std::fs::metadata(&marker)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age < index::DEFAULT_TTL);
        if fresh {
            continue;
        }
        let pin = plan::Pin {
            package: listed.package.clone(),
            version: listed.version.clone(),
        };
        asked += 1;
        let checker = builder.clone();
        let looked_up = pin.clone();
        match tokio::task::spawn_blocking(move || checker.check_exists(&looked_up)).await?? {
            Ok(()) => state::write_atomic(&marker, b"")?,
            // An index that cannot be reached (or, offline, a cold cache) says
            // nothing about the version: the cells that need it fail as they build.
            Err(failure)
                if matches!(builder, Builder::Python(_))
                    && !failure.0.contains("no version of")
                    && !failure.0.contains("yanked") =>
            {
                continue;
            }
            Err(failure) => {
                let place = (config.path.as_path(), listed.line, listed.key.as_str());
                let hint = "; list a version it has";
                return Err(not_installable(builder, place, &pin, hint, &failure).into());
            }
        }
    }
    if asked > 0 {
        progress.say(&format!(
            "checked that the index has the matrix's {}",
            report::headline::plural(asked, "listed version")
        ));
    }
    Ok(())
}

/// A pin the index (or registry) refuses, as bad input at its (file, line,
/// key), in the resolver's words.
fn not_installable(
    builder: &Builder,
    (path, line, key): (&Path, usize, &str),
    pin: &plan::Pin,
    hint: &str,
    failure: &env::BuildFailure,
) -> input::InputError {
    input::InputError {
        path: path.to_owned(),
        line,
        column: 1,
        key: key.to_owned(),
        message: format!(
            "{pin} cannot be installed from the {}{hint}:\n{}",
            match builder {
                Builder::Python(_) => "package index",
                Builder::Cargo(_) => "registry",
            },
            failure.0
        ),
    }
}

async fn check_versions_exist(
    builder: &Builder,
    after: &BaselineFile,
    changes: &[pr::PinChange],
) -> anyhow::Result<()> {
    for change in changes {
        let Some(version) = change.after.clone() else {
            continue;
        };
        let pin = plan::Pin {
            package: change.package.clone(),
            version,
        };
        let checker = builder.clone();
        let asked = pin.clone();
        if let Err(failure) =
            tokio::task::spawn_blocking(move || checker.check_exists(&asked)).await??
        {
            let (path, line) = after.origin_of(&pin).unwrap_or((after.path.as_path(), 1));
            let key = pin.package.to_string();
            return Err(not_installable(builder, (path, line, &key), &pin, "", &failure).into());
        }
    }
    Ok(())
}

/// Every profile a scenario names must exist in the config.
fn check_scenario_profiles(
    config: &Config,
    scenarios: &[scenario::Scenario],
) -> Result<(), input::InputError> {
    for scenario in scenarios {
        for (index, profile) in scenario.profiles.iter().enumerate() {
            if config.profile(profile).is_none() {
                let known: Vec<_> = config
                    .profiles
                    .iter()
                    .map(|profile| profile.name.as_str())
                    .collect();
                return Err(input::InputError {
                    path: scenario.path.clone(),
                    line: scenario.profiles_line,
                    column: 1,
                    key: format!("profiles[{index}]"),
                    message: format!(
                        "no profile `{profile}` in {}; known: {}",
                        config.path.display(),
                        known.join(", ")
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The requirements files that declare the baseline: the top file and its
/// includes. A `pyproject.toml` is not one: it may hold more than pins.
fn pin_files(config: &Config, baseline: &BaselineFile) -> Vec<PathBuf> {
    if config.service.baseline.file_name() == Some(std::ffi::OsStr::new("pyproject.toml")) {
        return Vec::new();
    }
    std::iter::once(config.service.baseline.clone())
        .chain(
            baseline
                .requirements
                .iter()
                .map(|declared| declared.path.clone()),
        )
        .collect()
}

/// Starts (or connects to) PostgreSQL when any planned run's profile uses it.
async fn start_postgres(
    config: &Config,
    scenarios: &[scenario::Scenario],
    plan: &Plan,
    database_url: Option<&str>,
    templates: &Path,
    progress: &Progress,
) -> anyhow::Result<Option<Arc<db::Postgres>>> {
    let needed = plan.cells.iter().any(|cell| {
        run::scenario_runs(scenarios, &cell.profile)
            .iter()
            .any(|run| {
                config
                    .profile(&run.profile)
                    .is_some_and(|profile| profile.database == config::DatabaseKind::Postgres)
            })
    });
    if !needed {
        return Ok(None);
    }
    let grace = config.timeouts.shutdown_grace;
    let postgres = match database_url {
        Some(url) => {
            let url = url.to_owned();
            tokio::task::spawn_blocking(move || db::Postgres::external(&url)).await??
        }
        None => {
            progress.say("starting a throwaway PostgreSQL cluster");
            let templates = templates.to_owned();
            tokio::task::spawn_blocking(move || {
                db::Postgres::start_cluster(grace, Some(&templates))
            })
            .await??
        }
    };
    progress.say(&format!("PostgreSQL: {}", postgres.describe()));
    if postgres.password().is_empty() {
        check_no_empty_password(config)?;
    }
    Ok(Some(Arc::new(postgres)))
}

/// A server named without a password fills `{db_password}` with nothing: a
/// service given an empty password would fail as if broken. Refused up front,
/// naming where the placeholder is used.
fn check_no_empty_password(config: &Config) -> anyhow::Result<()> {
    const PLACEHOLDER: &str = "{db_password}";
    let in_command = config
        .service
        .command
        .iter()
        .chain(config.service.setup.iter().flatten())
        .any(|arg| arg.contains(PLACEHOLDER));
    let in_env = config
        .profiles
        .iter()
        .filter(|profile| profile.database == config::DatabaseKind::Postgres)
        .find_map(|profile| {
            profile
                .env
                .iter()
                .find(|(_, value)| value.contains(PLACEHOLDER))
                .map(|(name, _)| format!("profile `{}` sets {name} from it", profile.name))
        });
    let used = match (in_command, in_env) {
        (true, _) => Some("the service's command uses it".to_owned()),
        (false, found) => found,
    };
    if let Some(used) = used {
        bail!(
            "--database-url names no password, so {PLACEHOLDER} would be empty ({used}); \
             put the password in the URL: postgresql://USER:PASSWORD@HOST:PORT/DB"
        );
    }
    Ok(())
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
    for (cell, outcome) in report.cells.iter_mut().zip(outcomes) {
        if cell.baseline {
            continue;
        }
        let mut new_warnings: Vec<String> = Vec::new();
        for scenario in &mut cell.scenarios {
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
    }
}

/// `upgrade-check.toml` in the current folder, else at the workspace root.
pub(crate) fn default_config() -> anyhow::Result<PathBuf> {
    let here = PathBuf::from("upgrade-check.toml");
    if here.is_file() {
        return Ok(here);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let at_root = root.join("upgrade-check.toml");
    if at_root.is_file() {
        return Ok(at_root);
    }
    bail!(
        "no upgrade-check.toml in the current folder or at {}; pass --config",
        root.display()
    )
}

/// `--state-dir`, else `<cargo target dir>/upgrade-check` of the config's workspace.
fn state_dirs(options: &Options, config_dir: &Path) -> StateDirs {
    let state = options.state_dir.clone().unwrap_or_else(|| {
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
    let cache = options.cache_dir.clone().unwrap_or_else(|| state.clone());
    let dirs = StateDirs { state, cache };
    state::keep_out_of_source(&dirs);
    dirs
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// CI systems set `CI`; accepted snapshots are never written there.
/// Accepted snapshots are never written in CI, whatever the command.
pub(crate) fn refuse_accepting_in_ci() -> anyhow::Result<()> {
    if is_ci() {
        bail!("refusing to accept snapshots in CI; accept them locally and commit the .snap files");
    }
    Ok(())
}

pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}
