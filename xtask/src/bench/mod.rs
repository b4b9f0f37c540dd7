//! `cargo xtask bench`: what the harness costs, measured and printed.
//!
//! - The fixture's default matrix, cold (an empty environment cache; uv's own
//!   download cache stays as it is, and uv is installed beforehand, as the
//!   peers' tools are) and warm (the same cache again), with
//!   recorded results and bisection off so that every cell really runs.
//! - The floor, from the same warm run: the sum over scenario runs of
//!   starting the service until it answers healthy plus the requests
//!   themselves, divided by the jobs.
//! - The harness's own cost per request: replaying and normalising requests
//!   against a trivial in-process endpoint, against bare HTTP requests to it.
//! - Planning a 1,000-cell matrix.
//! - The same matrix run the way teams do it today, with tox and nox
//!   ([`peers`]), cold and warm, unless `--no-peers`.
//! - A third harness run with nothing changed, which reuses every recorded
//!   result: what a maintainer waits for on a second push.
//! - Resolving the same cells on a uv lock and on the requirements file
//!   ([`resolution`]): a lock must cost no more.
//! - A cargo service's matrix, cold, warm and rebuilt per cell on compiled
//!   crates, and a Node service's, each cell installed by npm
//!   ([`lock_built`]).
//!
//! - `explore` on the same matrix, warm ([`exploration`]): variants answered
//!   per second per core.
//! - The pipeline ([`pipeline`]): when the cold run's baseline is judged
//!   and its first verdict on an upgrade comes, the cores' busy share, how
//!   soon a baseline that does not start stops the run, and the matrix cold
//!   and warm (peers too) on a larger matrix, unless `--no-larger`.
//!
//! `--peers-only` measures the matrix cold and warm and the peers, nothing
//! else. It writes the table to `<state>/bench.md` and prints it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use upgrade_check_core::config::{Candidates, Matrix, Strategy};
use upgrade_check_core::internals::{normalize, plan, replay};
use upgrade_check_core::model::cell::Pin;
use upgrade_check_core::model::package::{PackageName, Version};
use upgrade_check_core::model::report::Report;
use upgrade_check_core::scenario;

mod exploration;
mod lock_built;
mod peers;
mod phases;
mod pipeline;
mod pull_request;
mod resolution;

/// One whole run of the matrix, as the report tells it.
pub struct Measured {
    wall: Duration,
    /// Sum of service start-up and requests over every scenario run.
    floor: Duration,
    /// Start-up to healthy over the runs started cold, and their number.
    started_cold: (Duration, usize),
    /// The same over the runs forked from a preloader.
    started_forked: (Duration, usize),
    /// Waiting for a fresh PostgreSQL database: made when the run asked,
    /// and made ahead of it.
    databases_made_then: (Duration, usize),
    databases_made_ahead: (Duration, usize),
    cells: usize,
    results_reused: usize,
    /// The environment of each cell that was built, in plan order.
    environments: Vec<String>,
    scenario_runs: usize,
    environments_built: usize,
    /// Each upgrade cell's pins (`name==version`), in plan order.
    pins: Vec<Vec<String>>,
    /// The wall time, phase by phase, where scenarios ran.
    phases: Option<phases::Phases>,
    /// When the baseline was judged, and when the last environment was
    /// ready, from the run's start: the pipeline's two ends.
    moments: phases::Moments,
    /// The share of the cores' time that was busy during the run.
    busy_share: Option<f64>,
}

/// What a bench run measures besides the matrix cold and warm.
pub struct Sections<'a> {
    /// Every row about the harness alone: services started cold, nothing
    /// changed, the floor and the phases, databases, resolution, the pull
    /// request, the cost per request, planning.
    pub harness: bool,
    /// The same matrix through tox and nox.
    pub peers: bool,
    /// The cargo service whose matrix the Rust section measures.
    pub rust: Option<&'a Path>,
    /// The Node service whose matrix the Node section measures.
    pub node: Option<&'a Path>,
    /// Whether to measure a larger matrix, and its config (by default the
    /// config's own, its lists made ranges).
    pub larger: Option<Option<&'a Path>>,
}

/// The rows about the harness alone.
struct HarnessRows {
    warm_cold_starts: Measured,
    /// Warm, every cell replayed, the baseline's noise check made again.
    rechecked: Measured,
    unchanged: Measured,
    resolving: resolution::Compared,
    pull_request: Option<pull_request::PullRequest>,
    /// Bare requests, the same through the harness, and their number.
    per_request: (Duration, Duration, usize),
    planning: Duration,
    explored: exploration::Explored,
}

pub fn run(
    config: &Path,
    state: &Path,
    jobs: usize,
    sections: Sections<'_>,
) -> anyhow::Result<i32> {
    fs_err::create_dir_all(state)?;
    install_uv(config, state)?;
    let cache = tempfile::Builder::new()
        .prefix("bench-cache-")
        .tempdir_in(state)
        .context("a cold cache folder")?;
    // One state folder for the default matrix's runs, as a team's own
    // runs share theirs; emptied first, so the cold run finds nothing
    // recorded, and the warm runs find what it recorded.
    let runs = state.join("bench-runs");
    if runs.exists() {
        fs_err::remove_dir_all(&runs)?;
    }
    eprintln!("bench: the default matrix, cold (empty environment cache)…");
    let cold = whole_run(config, &runs, cache.path(), jobs, true, &[])?;
    // Every cell replayed; the baseline once, its noise check the cold run's.
    eprintln!("bench: the default matrix, warm…");
    let warm = whole_run(config, &runs, cache.path(), jobs, true, &[])?;
    let loaded = upgrade_check_core::config::Config::load(config)?;
    let harness = match sections.harness {
        true => Some(harness_rows(
            config,
            &loaded,
            state,
            &runs,
            cache.path(),
            jobs,
            &warm,
        )?),
        false => None,
    };
    let rust = match sections.rust {
        Some(config) => Some(lock_built::measure(config, state, jobs)?),
        None => None,
    };
    let node = match sections.node {
        Some(config) => Some(lock_built::measure(config, state, jobs)?),
        None => None,
    };
    let peers = match sections.peers {
        true => run_peers(&loaded, state, cache.path(), jobs, &warm)?,
        false => Vec::new(),
    };
    let broken = match sections.harness {
        true => Some(pipeline::broken_baseline(config, state, jobs)?),
        false => None,
    };
    let larger = match sections.larger {
        Some(larger) => Some(pipeline::larger_matrix(
            config,
            larger,
            state,
            jobs,
            sections.peers,
        )?),
        None => None,
    };

    let mut table = String::new();
    let _ = writeln!(table, "# upgrade-check bench\n");
    let _ = writeln!(
        table,
        "Machine: {} cores, {}; jobs: {jobs}; debug or release: {}.\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::env::consts::OS,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let _ = writeln!(table, "| measure | value |\n|---|---|");
    let _ = writeln!(
        table,
        "| cold run ({} cells, {} scenario runs, {} environments built) | {:.1} s |",
        cold.cells,
        cold.scenario_runs,
        cold.environments_built,
        secs(cold.wall)
    );
    if let (Some(judged), Some(built)) = (
        cold.moments.baseline_judged,
        cold.moments.last_environment_ready,
    ) {
        let _ = writeln!(
            table,
            "| cold run: the baseline judged / the last environment ready | {:.1} s / {:.1} s |",
            secs(judged),
            secs(built)
        );
    }
    pipeline::write_cold_rows(&mut table, "cold run", &cold);
    if let Some(broken) = &broken {
        pipeline::write_broken_rows(&mut table, broken);
    }
    let _ = writeln!(
        table,
        "| warm run, every cell replayed ({} environments built) | {:.1} s |",
        warm.environments_built,
        secs(warm.wall)
    );
    if let Some(harness) = &harness {
        write_harness_rows(&mut table, harness, &warm, jobs)?;
    }
    if let Some(rust) = &rust {
        rust.write_rows(
            &mut table,
            "cargo service",
            ["locks built into an empty target folder", "locks built"],
            "its lock resolved, built and linked on compiled crates",
        );
    }
    if let Some(node) = &node {
        node.write_rows(
            &mut table,
            "Node service",
            [
                "environments installed by npm ci into an empty cache",
                "environments installed",
            ],
            "its lock resolved and installed from npm's cache",
        );
    }
    for peer in &peers {
        let _ = writeln!(
            table,
            "| {}, {} at once: cold / warm | {:.1} s / {:.1} s |",
            peer.label,
            if peer.parallel == 1 {
                "one cell".to_owned()
            } else {
                format!("{} cells", peer.parallel)
            },
            secs(peer.cold),
            secs(peer.warm)
        );
    }
    pipeline::write_ratios(&mut table, "", &peers, &cold, &warm);
    if let Some(fastest) = peers.iter().min_by_key(|peer| peer.warm)
        && let Some(harness) = &harness
    {
        let _ = writeln!(
            table,
            "| fastest peer warm ({}) / harness warm, nothing changed | {:.1} |",
            fastest.label,
            secs(fastest.warm) / secs(harness.unchanged.wall).max(f64::EPSILON)
        );
    }
    if let Some(harness) = &harness {
        let (bare, through_harness, requests) = harness.per_request;
        let _ = writeln!(
            table,
            "| bare HTTP request to a trivial endpoint ({requests} requests) | {:.3} ms |",
            ms(bare) / requests as f64
        );
        let _ = writeln!(
            table,
            "| the same request replayed, checked and normalised by the harness | {:.3} ms |",
            ms(through_harness) / requests as f64
        );
        let _ = writeln!(
            table,
            "| harness overhead per request (target < 1 ms) | {:.3} ms |",
            (ms(through_harness) - ms(bare)).max(0.0) / requests as f64
        );
        let _ = writeln!(
            table,
            "| planning a 1,000-cell matrix (target < 1 s) | {:.1} ms |",
            ms(harness.planning)
        );
        let explored = &harness.explored;
        let _ = writeln!(
            table,
            "| explore, warm: {} variants ({} requests per cell) × {} cells, {} scenario runs, {} findings | {:.1} s |",
            explored.variants,
            explored.requests,
            explored.cells,
            explored.scenario_runs,
            explored.findings,
            secs(explored.wall)
        );
        let _ = writeln!(
            table,
            "| explore: variants answered per second per core | {:.1} |",
            explored.per_second_per_core()
        );
    }
    if let Some(larger) = &larger {
        pipeline::write_larger_rows(&mut table, larger);
    }
    let path = state.join("bench.md");
    upgrade_check_core::util::write_atomic(&path, table.as_bytes())?;
    print!("{table}");
    eprintln!("bench: written to {}", path.display());
    Ok(0)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// The harness alone: warm with every service started cold, warm with
/// nothing changed, resolution on a lock, a pull request, the cost per
/// request and planning.
fn harness_rows(
    config: &Path,
    loaded: &upgrade_check_core::config::Config,
    state: &Path,
    runs: &Path,
    cache: &Path,
    jobs: usize,
    warm: &Measured,
) -> anyhow::Result<HarnessRows> {
    eprintln!("bench: the default matrix, warm, every service started cold…");
    let warm_cold_starts = whole_run(
        config,
        &state.join("bench-warm-cold-starts"),
        cache,
        jobs,
        true,
        &["--start", "cold"],
    )?;
    eprintln!("bench: the default matrix, warm, the baseline's noise checked again…");
    let rechecked = whole_run(config, runs, cache, jobs, true, &["--recheck-noise"])?;
    eprintln!("bench: the default matrix, warm, nothing changed…");
    let unchanged = whole_run(config, runs, cache, jobs, false, &[])?;
    eprintln!("bench: resolving each cell on a uv lock and on requirements.txt…");
    let pins = warm
        .pins
        .iter()
        .map(|cell| cell.iter().map(|pin| parse_pin(pin)).collect())
        .collect::<anyhow::Result<Vec<Vec<Pin>>>>()?;
    let resolving = resolution::compare(loaded, &pins, state)?;
    let pull_request = match warm.pins.first().and_then(|cell| cell.first()) {
        Some(pin) => {
            let dir = tempfile::Builder::new()
                .prefix("bench-pr-")
                .tempdir_in(state)
                .context("a folder for the pull request")?;
            Some(pull_request::measure(loaded, pin, cache, dir.path(), jobs)?)
        }
        None => None,
    };
    let explored = exploration::measure(config, state, cache, jobs)?;
    eprintln!("bench: harness cost per request…");
    let per_request = per_request()?;
    eprintln!("bench: planning 1,000 cells…");
    let planning = plan_thousand()?;
    Ok(HarnessRows {
        warm_cold_starts,
        rechecked,
        unchanged,
        resolving,
        pull_request,
        per_request,
        planning,
        explored,
    })
}

/// The same matrix through tox and nox, on the resolved sets of the warm
/// run's environments.
fn run_peers(
    config: &upgrade_check_core::config::Config,
    state: &Path,
    cache: &Path,
    jobs: usize,
    warm: &Measured,
) -> anyhow::Result<Vec<peers::PeerTimes>> {
    let dirs = upgrade_check_core::StateDirs {
        state: state.to_owned(),
        cache: cache.to_owned(),
    };
    let cells = warm
        .environments
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let path = dirs.envs_dir().join(id).join("requirements.txt");
            Ok(peers::PeerCell {
                name: format!("cell{index}"),
                requirements: fs_err::read_to_string(path)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scenarios = scenario::load_dir(&config.replay.scenarios)?;
    let python = upgrade_check_core::internals::python::find(config.service.python.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("bench-peers-")
        .tempdir_in(state)
        .context("a folder for the peers")?;
    peers::measure(config, &scenarios, &cells, &python.path, dir.path(), jobs)
}

/// The rows about the harness alone, below the matrix's cold and warm runs.
fn write_harness_rows(
    table: &mut String,
    harness: &HarnessRows,
    warm: &Measured,
    jobs: usize,
) -> anyhow::Result<()> {
    let HarnessRows {
        warm_cold_starts,
        rechecked,
        unchanged,
        resolving,
        pull_request,
        ..
    } = harness;
    // The floor is the cold-start floor: what a run costs that starts each
    // service anew, as every peer does.
    let floor_per_job = warm_cold_starts.floor / jobs as u32;
    let mean_ms = |(total, count): (Duration, usize)| ms(total) / count.max(1) as f64;
    let _ = writeln!(
        table,
        "| warm run, every cell replayed, every service started cold | {:.1} s |",
        secs(warm_cold_starts.wall)
    );
    let _ = writeln!(
        table,
        "| warm run, every cell replayed, the baseline's noise checked again (`--recheck-noise`) / its check replays per job | {:.1} s / {:.2} s |",
        secs(rechecked.wall),
        rechecked
            .phases
            .as_ref()
            .map_or(0.0, |phases| secs(phases.baseline_check))
    );
    let _ = writeln!(
        table,
        "| warm run, nothing changed ({} of {} results reused) | {:.1} s |",
        unchanged.results_reused,
        unchanged.cells,
        secs(unchanged.wall)
    );
    if let Some(pull_request) = pull_request {
        let _ = writeln!(
            table,
            "| pull request moving {}, the default branch's baseline result restored ({} of its cells run) | {:.1} s |",
            pull_request.moved,
            pull_request.cells_run,
            secs(pull_request.wall)
        );
    }
    let _ = writeln!(
        table,
        "| floor: cold service start-up to healthy + requests, summed over {} scenario runs | {:.1} s |",
        warm_cold_starts.scenario_runs,
        secs(warm_cold_starts.floor)
    );
    let _ = writeln!(table, "| floor / jobs | {:.1} s |", secs(floor_per_job));
    let _ = writeln!(
        table,
        "| warm run / (floor / jobs) (target ≤ 1.0) | {:.2} |",
        secs(warm.wall) / secs(floor_per_job).max(f64::EPSILON)
    );
    let _ = writeln!(
        table,
        "| the warm run's own floor (forked starts + requests) / jobs: what is left is the harness's | {:.1} s |",
        secs(warm.floor / jobs as u32)
    );
    let phases = warm
        .phases
        .as_ref()
        .context("the warm run replayed no scenario")?;
    for (phase, took) in phases.rows() {
        let _ = writeln!(
            table,
            "| warm run by phase: {phase} | {:.2} s |",
            secs(took)
        );
    }
    let _ = writeln!(
        table,
        "| start-up to healthy per scenario run: cold ({} runs) / forked from a preloader ({} runs) | {:.0} ms / {:.0} ms |",
        warm_cold_starts.started_cold.1,
        warm.started_forked.1,
        mean_ms(warm_cold_starts.started_cold),
        mean_ms(warm.started_forked)
    );
    // Both warm runs make databases ahead: their first run per template asks first.
    let made_then = add_up(
        warm.databases_made_then,
        warm_cold_starts.databases_made_then,
    );
    let made_ahead = add_up(
        warm.databases_made_ahead,
        warm_cold_starts.databases_made_ahead,
    );
    let _ = writeln!(
        table,
        "| a run's wait for its fresh PostgreSQL database: made when asked ({} runs) / made ahead ({} runs) | {:.0} ms / {:.1} ms |",
        made_then.1,
        made_ahead.1,
        mean_ms(made_then),
        mean_ms(made_ahead)
    );
    let _ = writeln!(
        table,
        "| resolving on requirements.txt / on uv.lock: the baseline | {:.0} ms / {:.0} ms |",
        ms(resolving.requirements.baseline),
        ms(resolving.lock.baseline)
    );
    let _ = writeln!(
        table,
        "| resolving on requirements.txt / on uv.lock: per cell, {} cell{} | {:.0} ms / {:.0} ms |",
        resolving.cells,
        if resolving.cells == 1 { "" } else { "s" },
        ms(resolving.requirements.per_cell),
        ms(resolving.lock.per_cell)
    );
    Ok(())
}

/// Runs the harness binary on the matrix and reads its report; with
/// `replay_all`, recorded results are not reused.
pub(super) fn whole_run(
    config: &Path,
    state: &Path,
    cache: &Path,
    jobs: usize,
    replay_all: bool,
    extra: &[&str],
) -> anyhow::Result<Measured> {
    fs_err::create_dir_all(state)?;
    let events = state.join("bench-events.jsonl");
    let mut args = extra.to_vec();
    args.extend(["--events", path_str(&events)?]);
    if replay_all {
        args.push("--no-cache");
    }
    let before = pipeline::CpuTimes::now();
    let (wall, report) = run_harness(config, state, cache, jobs, &args)?;
    let busy_share = before
        .zip(pipeline::CpuTimes::now())
        .and_then(|(before, after)| before.busy_share_until(after));
    let moments = phases::Moments::read(&events)?;
    let phases = phases::Phases::measure(wall, &report, &moments, jobs);
    let timings = report
        .cells
        .iter()
        .flat_map(|cell| &cell.scenarios)
        .filter_map(|scenario| scenario.timing);
    let (mut floor, mut scenario_runs) = (Duration::ZERO, 0);
    let mut started_cold = (Duration::ZERO, 0);
    let mut started_forked = (Duration::ZERO, 0);
    let mut databases_made_then = (Duration::ZERO, 0);
    let mut databases_made_ahead = (Duration::ZERO, 0);
    let add = |sum: &mut (Duration, usize), ms: u64| {
        sum.0 += Duration::from_millis(ms);
        sum.1 += 1;
    };
    for timing in timings {
        floor += Duration::from_millis(timing.startup_ms + timing.replay_ms);
        scenario_runs += 1;
        match timing.preloaded {
            true => add(&mut started_forked, timing.startup_ms),
            false => add(&mut started_cold, timing.startup_ms),
        }
        match (timing.database_ms, timing.database_made_ahead) {
            (Some(database_ms), true) => add(&mut databases_made_ahead, database_ms),
            (Some(database_ms), false) => add(&mut databases_made_then, database_ms),
            (None, _) => {}
        }
    }
    Ok(Measured {
        wall,
        floor,
        started_cold,
        started_forked,
        databases_made_then,
        databases_made_ahead,
        cells: report.cells.len(),
        results_reused: report
            .cells
            .iter()
            .filter(|cell| cell.result_reused)
            .count(),
        environments: report
            .cells
            .iter()
            .filter_map(|cell| Some(cell.environment.as_ref()?.id.clone()))
            .collect(),
        scenario_runs,
        environments_built: report
            .cells
            .iter()
            .filter_map(|cell| cell.environment.as_ref())
            .filter(|environment| !environment.build_reused)
            .count(),
        pins: report
            .cells
            .iter()
            .filter(|cell| !cell.baseline)
            .map(|cell| cell.pins.clone())
            .collect(),
        phases,
        moments,
        busy_share,
    })
}

/// `path` as an argument; the bench's own folders are UTF-8.
fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// The uv every run of the harness is given, installed before the first:
/// the peers get theirs (tox-uv, nox's uv) beforehand too, so a cold run
/// is an empty environment cache, not a tool being downloaded.
pub(super) static UV: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Installs uv for the bench's runs, as the harness installs it, into a
/// folder of the state's that outlives them.
fn install_uv(config: &Path, state: &Path) -> anyhow::Result<()> {
    let tools = state.join("bench-tools");
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["upgrade-check", "plan", "--quiet", "--config"])
        .arg(config)
        .arg("--state-dir")
        .arg(&tools)
        .arg("--cache-dir")
        .arg(&tools)
        .env_remove("UPGRADE_CHECK_UV")
        .stdout(std::process::Stdio::null())
        .status()?;
    let uv = tools.join("tools/uv/bin/uv");
    match uv.is_file() {
        true => {
            let _ = UV.set(uv);
            Ok(())
        }
        false => bail!(
            "the harness did not install uv into {} ({status})",
            tools.display()
        ),
    }
}

/// One run of the harness binary (bisection off) with `extra` flags; its
/// wall time and report.
pub(super) fn run_harness(
    config: &Path,
    state: &Path,
    cache: &Path,
    jobs: usize,
    extra: &[&str],
) -> anyhow::Result<(Duration, Report)> {
    let mut args = vec!["--no-bisect"];
    args.extend(extra);
    harness_report(&args, config, state, cache, jobs)
}

/// The harness binary run with `args` (a command and its flags) on
/// `config`, its report read from stdout as JSON; its wall time.
pub(super) fn harness_report(
    args: &[&str],
    config: &Path,
    state: &Path,
    cache: &Path,
    jobs: usize,
) -> anyhow::Result<(Duration, Report)> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    if let Some(uv) = UV.get() {
        command.env("UPGRADE_CHECK_UV", uv);
    }
    let started = Instant::now();
    let output = command
        .arg("upgrade-check")
        .args(args)
        .args(["--format", "json"])
        .arg("--jobs")
        .arg(jobs.to_string())
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .arg("--cache-dir")
        .arg(cache)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let wall = started.elapsed();
    if !matches!(output.status.code(), Some(0 | 1)) {
        bail!("the run failed ({})", output.status);
    }
    Ok((wall, serde_json::from_slice(&output.stdout)?))
}

/// Two sums of durations and their counts, added.
fn add_up(a: (Duration, usize), b: (Duration, usize)) -> (Duration, usize) {
    (a.0 + b.0, a.1 + b.1)
}

/// `package==version`, as the report lists a cell's pins.
fn parse_pin(text: &str) -> anyhow::Result<Pin> {
    let (package, version) = text
        .split_once("==")
        .with_context(|| format!("`{text}` is not a pin"))?;
    Ok(Pin {
        package: PackageName::python(package).map_err(anyhow::Error::msg)?,
        version: Version::python(version).map_err(anyhow::Error::msg)?,
    })
}

/// Bare requests, then the same requests through replay, normalising and
/// rendering, against an endpoint that answers at once.
fn per_request() -> anyhow::Result<(Duration, Duration, usize)> {
    const REQUESTS: usize = 500;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(serve_trivially(listener));
        let client = replay::client();
        // Warm the connection pool and the server.
        client.get(format!("{base_url}/ping")).send().await?;

        let started = Instant::now();
        for _ in 0..REQUESTS {
            let response = client.get(format!("{base_url}/ping")).send().await?;
            response.bytes().await?;
        }
        let bare = started.elapsed();

        let dir = tempfile::tempdir()?;
        let mut text = String::from("description = \"trivial\"\n");
        for step in 0..REQUESTS {
            let _ = write!(
                text,
                "\n[[steps]]\nname = \"ping-{step}\"\nmethod = \"GET\"\npath = \"/ping\"\nexpect.status = 200\n"
            );
        }
        fs_err::write(dir.path().join("trivial.toml"), text)?;
        let scenarios = scenario::load_dir(dir.path())?;
        let scenario = scenarios.first().context("the trivial scenario")?;
        let secrets = Default::default();
        let started = Instant::now();
        let replayed = replay::replay(&client, &base_url, scenario, Duration::from_secs(10), &[]).await;
        let mut normaliser = normalize::Normaliser::new(&secrets, &[], &[], &[]);
        let exchanges: Vec<_> = replayed
            .exchanges
            .iter()
            .map(|exchange| normaliser.exchange(exchange))
            .collect();
        let rendered = upgrade_check_core::snapshot::render(&exchanges, replayed.failure.as_ref());
        let harness = started.elapsed();
        if replayed.exchanges.len() != REQUESTS || rendered.is_empty() {
            bail!("the trivial scenario replayed {} requests", replayed.exchanges.len());
        }
        Ok((bare, harness, REQUESTS))
    })
}

/// Answers every request with a small JSON body, keeping connections open.
async fn serve_trivially(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 8192];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let body = "{\"ok\":true}";
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Plans 10 packages × 100 versions one at a time: 1,001 cells.
fn plan_thousand() -> anyhow::Result<Duration> {
    let packages = (0..10)
        .map(|package| {
            let versions = (0..100)
                .map(|minor| Version::python(&format!("1.{minor}.0")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            Ok((
                PackageName::python(&format!("package-{package}")).map_err(anyhow::Error::msg)?,
                Candidates::Versions(versions),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let matrix = Matrix {
        strategy: Strategy::OneAtATime,
        strategy_line: 1,
        max_cells: 2000,
        packages,
        profiles: Vec::new(),
        listed: Vec::new(),
    };
    let started = Instant::now();
    let planned = plan(&matrix, "dev", |_| None).map_err(anyhow::Error::msg)?;
    let elapsed = started.elapsed();
    if planned.cells.len() != 1001 {
        bail!("planned {} cells", planned.cells.len());
    }
    Ok(elapsed)
}
