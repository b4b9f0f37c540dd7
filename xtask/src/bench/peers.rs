//! The same matrix the way teams run it today: a tox env and a nox session
//! per cell that installs the cell's pins, then a small pytest client
//! (`peer/test_scenarios.py`) that starts the service for every scenario
//! run and sends the same requests.
//!
//! Each peer runs with pip and with uv (tox-uv, nox's uv backend), cold (no
//! environments yet) and warm (the same command again: tox keeps an env whose
//! deps did not change, nox reuses its virtualenvs). The peers get the resolved
//! sets the harness found, so they only install and never resolve; they are
//! installed into a throwaway environment, never made dependencies. tox runs
//! `--jobs` envs at once; nox has no parallel mode and runs its sessions one
//! after another. Every cell runs under the service's profile.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use upgrade_check_core::config::{Config, DatabaseKind};
use upgrade_check_core::internals::db::Postgres;
use upgrade_check_core::internals::process;
use upgrade_check_core::scenario::{Body, CaptureSource, Scenario};

const CLIENT: &str = include_str!("peer/test_scenarios.py");
const NOXFILE: &str = include_str!("peer/noxfile.py");

/// How long one peer may take to install and run the whole matrix.
const PEER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One cell as the peers see it: a name they accept and its resolved pins.
pub struct PeerCell {
    pub name: String,
    pub requirements: String,
}

/// A peer's wall time for the whole matrix, cold and warm.
pub struct PeerTimes {
    pub label: &'static str,
    /// Cells at once.
    pub parallel: usize,
    pub cold: Duration,
    pub warm: Duration,
}

struct Peer {
    label: &'static str,
    tool: &'static str,
    /// The tool's arguments for the cold run; `warm` is added for the warm one.
    args: Vec<String>,
    warm: &'static [&'static str],
    parallel: usize,
}

/// Installs tox and nox into a throwaway environment inside `dir`, then runs
/// every peer cold and warm on `cells`.
pub fn measure(
    config: &Config,
    scenarios: &[Scenario],
    cells: &[PeerCell],
    python: &Path,
    dir: &Path,
    jobs: usize,
) -> anyhow::Result<Vec<PeerTimes>> {
    let tools = dir.join("tools");
    install_peers(python, &tools)?;
    write_project(config, cells, dir)?;
    let runs = runs(config, scenarios)?;
    let runs_per_cell = runs.len();
    let needs_postgres = runs
        .iter()
        .any(|run| run["database"] == json!(DatabaseKind::Postgres));
    let postgres = if needs_postgres {
        Some(Postgres::start_cluster(
            config.timeouts.shutdown_grace,
            None,
        )?)
    } else {
        None
    };
    let work = json!({
        "service_dir": dir.join("service"),
        "command": config.service.command,
        "health_path": config.service.health_path,
        "startup_timeout_s": config.timeouts.startup.as_secs_f64(),
        "request_timeout_s": config.timeouts.request.as_secs_f64(),
        "shutdown_grace_s": config.timeouts.shutdown_grace.as_secs_f64(),
        "secret": format!("bench-{:016x}", fastrand::u64(..)),
        "postgres": postgres.as_ref().map(|postgres| {
            postgres
                .admin()
                .placeholders()
                .into_iter()
                .collect::<BTreeMap<_, _>>()
        }),
        "runs": runs,
    });
    fs_err::write(dir.join("work.json"), serde_json::to_vec_pretty(&work)?)?;

    let names: Vec<&str> = cells.iter().map(|cell| cell.name.as_str()).collect();
    let mut times = Vec::new();
    for peer in peers(dir, jobs) {
        let mut timed = [Duration::ZERO; 2];
        for (phase, elapsed) in ["cold", "warm"].into_iter().zip(&mut timed) {
            eprintln!("bench: {}, {phase}…", peer.label);
            let results = dir.join("results").join(format!("{}-{phase}", peer.tool));
            fs_err::create_dir_all(&results)?;
            let mut args = peer.args.clone();
            if phase == "warm" {
                args.extend(peer.warm.iter().map(|arg| (*arg).to_owned()));
            }
            let command = duct::cmd(tools.join("bin").join(peer.tool), args)
                .dir(dir)
                .env("PATH", search_path(&tools)?)
                .env("BENCH_WORK", dir.join("work.json"))
                .env("BENCH_RESULTS", &results)
                .env("BENCH_CELLS", serde_json::to_string(&names)?);
            let started = Instant::now();
            process::run_checked(command, PEER_TIMEOUT, peer.label)?;
            *elapsed = started.elapsed();
            check_every_run_happened(&results, &names, runs_per_cell, peer.label)?;
            fs_err::remove_dir_all(&results)?;
        }
        times.push(PeerTimes {
            label: peer.label,
            parallel: peer.parallel,
            cold: timed[0],
            warm: timed[1],
        });
    }
    Ok(times)
}

/// tox, tox-uv and nox in their own environment at `tools`.
fn install_peers(python: &Path, tools: &Path) -> anyhow::Result<()> {
    eprintln!("bench: installing tox, tox-uv and nox into a throwaway environment…");
    process::run_checked(
        duct::cmd(
            python,
            [OsStr::new("-m"), OsStr::new("venv"), tools.as_os_str()],
        ),
        PEER_TIMEOUT,
        "creating the peers' environment",
    )?;
    process::run_checked(
        duct::cmd(
            tools.join("bin/python"),
            ["-m", "pip", "install", "--quiet", "tox", "tox-uv", "nox"],
        ),
        PEER_TIMEOUT,
        "installing tox, tox-uv and nox",
    )?;
    Ok(())
}

/// The project as a team would lay it out for tox and nox: the service, a
/// pins file per cell, the pytest client, tox.ini and noxfile.py.
fn write_project(config: &Config, cells: &[PeerCell], dir: &Path) -> anyhow::Result<()> {
    upgrade_check_core::util::copy_tree(&config.service.root, &dir.join("service"))?;
    fs_err::create_dir_all(dir.join("cells"))?;
    for cell in cells {
        let pins = format!("{}pytest\n", cell.requirements);
        fs_err::write(dir.join("cells").join(format!("{}.txt", cell.name)), pins)?;
    }
    fs_err::write(dir.join("test_scenarios.py"), CLIENT)?;
    fs_err::write(dir.join("noxfile.py"), NOXFILE)?;
    fs_err::write(dir.join("tox.ini"), tox_ini(cells))?;
    Ok(())
}

/// tox with pip and with tox-uv, nox with virtualenv + pip and with uv.
fn peers(dir: &Path, jobs: usize) -> Vec<Peer> {
    let path = |name: &str| dir.join(name).display().to_string();
    let tox = |workdir: &str, runner: &[&str]| {
        let mut args: Vec<String> = ["-c", "tox.ini", "--workdir"]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect();
        args.push(path(workdir));
        args.extend(runner.iter().map(|arg| (*arg).to_owned()));
        args.extend([
            "-p".to_owned(),
            jobs.to_string(),
            "--parallel-no-spinner".to_owned(),
        ]);
        args
    };
    let nox = |envdir: &str, backend: &str| {
        vec![
            "-f".to_owned(),
            "noxfile.py".to_owned(),
            "--envdir".to_owned(),
            path(envdir),
            "--default-venv-backend".to_owned(),
            backend.to_owned(),
        ]
    };
    vec![
        Peer {
            label: "tox + pip",
            tool: "tox",
            args: tox("tox-pip", &["--runner", "virtualenv"]),
            warm: &[],
            parallel: jobs,
        },
        Peer {
            label: "tox + uv (tox-uv)",
            tool: "tox",
            args: tox("tox-uv", &[]),
            warm: &[],
            parallel: jobs,
        },
        Peer {
            label: "nox + pip (virtualenv)",
            tool: "nox",
            args: nox("nox-pip", "virtualenv"),
            warm: &["--reuse-venv", "yes"],
            parallel: 1,
        },
        Peer {
            label: "nox + uv",
            tool: "nox",
            args: nox("nox-uv", "uv"),
            warm: &["--reuse-venv", "yes"],
            parallel: 1,
        },
    ]
}

/// One env per cell; a failing test does not fail the env, since a breaking
/// upgrade is a result, not a broken bench.
fn tox_ini(cells: &[PeerCell]) -> String {
    let names: Vec<&str> = cells.iter().map(|cell| cell.name.as_str()).collect();
    let mut text = format!(
        "[tox]\nenv_list = {}\n\n[testenv]\npackage = skip\n",
        names.join(", ")
    );
    let _ = write!(
        text,
        "deps = -r {{toxinidir}}/cells/{{env_name}}.txt\n\
         pass_env = BENCH_WORK, BENCH_RESULTS\n\
         set_env = BENCH_CELL = {{env_name}}\n\
         commands = - pytest -q -p no:cacheprovider {{toxinidir}}/test_scenarios.py\n"
    );
    text
}

/// The scenario runs of a cell under the service's profile, with every
/// placeholder left for the client to fill.
fn runs(config: &Config, scenarios: &[Scenario]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut runs = Vec::new();
    for run in upgrade_check_core::internals::scenario_runs(scenarios, &config.service.profile) {
        let profile = config
            .profile(&run.profile)
            .with_context(|| format!("no profile `{}`", run.profile))?;
        let scenario = run.scenario;
        let values: BTreeMap<&String, &String> =
            scenario.vars.iter().chain(&scenario.secrets).collect();
        let steps: Vec<serde_json::Value> = scenario
            .steps
            .iter()
            .map(|step| {
                let mut out = json!({
                    "name": step.name,
                    "method": step.method,
                    "path": step.path,
                    "headers": step.headers,
                    "expect_status": step.expect_status,
                    "captures": step.captures.iter().map(|capture| match &capture.from {
                        CaptureSource::Json(pointer) => json!({"variable": capture.variable, "json": pointer}),
                        CaptureSource::Header(name) => json!({"variable": capture.variable, "header": name}),
                    }).collect::<Vec<_>>(),
                });
                match &step.body {
                    Some(Body::Json(value)) => out["json"] = value.clone(),
                    Some(Body::Text(text)) => out["text"] = json!(text),
                    None => {}
                }
                out
            })
            .collect();
        runs.push(json!({
            "key": run.key,
            "database": profile.database,
            "env": profile.env,
            "record_startup": scenario.record_startup,
            "values": values,
            "steps": steps,
        }));
    }
    Ok(runs)
}

/// The peers' environment folder first, so nox finds the uv that tox-uv brought.
fn search_path(tools: &Path) -> anyhow::Result<std::ffi::OsString> {
    let mut paths: Vec<PathBuf> = vec![tools.join("bin")];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    Ok(std::env::join_paths(paths)?)
}

/// Each cell's client wrote one line per scenario run, none of them about a
/// failure of the client itself: the peer did the work.
fn check_every_run_happened(
    results: &Path,
    cells: &[&str],
    runs_per_cell: usize,
    label: &str,
) -> anyhow::Result<()> {
    for cell in cells {
        let path = results.join(format!("{cell}.jsonl"));
        let lines = std::fs::read_to_string(&path).unwrap_or_default();
        let mut done = 0;
        for line in lines.lines() {
            let result: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{label}: a result line of cell {cell}: {line}"))?;
            if let Some(error) = result["error"].as_str() {
                bail!(
                    "{label}: the client failed on {} of cell {cell}: {error}",
                    result["key"]
                );
            }
            done += 1;
        }
        if done != runs_per_cell {
            bail!("{label} ran {done} of {runs_per_cell} scenario runs for cell {cell}");
        }
    }
    Ok(())
}
