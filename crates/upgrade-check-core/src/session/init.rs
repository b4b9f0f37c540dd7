//! `upgrade-check init [DIR]`: reads a service folder
//! ([`crate::input::inspect`]), proves what it found by building the
//! baseline and starting the service once, asking each path that might
//! answer its health check, then writes `upgrade-check.toml` and
//! `scenarios/health.toml`. It never overwrites a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Options, prepare};
use crate::env::{BuildError, Builder};
use crate::exec::{db, replay, service};
use crate::input::baseline::{BaselineFile, DeclaredHashes};
use crate::input::config::{Config, Ecosystem};
use crate::input::inspect::{self, Inspection};
use crate::input::source::InputError;
use crate::model::event::Events;
use crate::sys::{log, process, state};

/// What `init` found and wrote.
#[derive(Debug)]
pub struct Initialised {
    pub inspection: Inspection,
    pub config: PathBuf,
    pub scenario: PathBuf,
    /// The health path that answered when the service was started once.
    pub healthy: Option<String>,
    /// Why the service could not be proven (not built, not started, no
    /// path answered), with its log's tail; `None` when it was.
    pub unproven: Option<String>,
    /// What the repository around it needs, outside the config.
    pub notes: Vec<String>,
}

/// Inspects `dir`, proves it, and writes the two files.
pub fn init(dir: &Path, options: &Options, events: Events) -> anyhow::Result<Initialised> {
    if !dir.is_dir() {
        return Err(InputError::in_file(dir, "is not a folder: name the service's folder").into());
    }
    let dir = &std::path::absolute(dir)?;
    let config = dir.join("upgrade-check.toml");
    let scenario = dir.join("scenarios").join("health.toml");
    for path in [&config, &scenario] {
        if path.exists() {
            return Err(
                InputError::in_file(path, "exists already; init never overwrites a file").into(),
            );
        }
    }
    let inspection = inspect::inspect(dir)?;
    // The config names it: it must be there for the config to load.
    fs_err::create_dir_all(dir.join("scenarios"))?;
    let proven = if inspection.command.is_some() && inspection.baseline.is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_keep_alive(Duration::from_secs(24 * 60 * 60))
            .build()?;
        let proven = runtime.block_on(prove(dir, &inspection, options, &events));
        process::kill_all();
        runtime.shutdown_timeout(Duration::from_secs(5));
        state::remove_temp_dirs();
        proven?
    } else {
        Err("not started: what is missing is listed below".to_owned())
    };
    let (healthy, unproven) = match proven {
        Ok(path) => (Some(path), None),
        Err(why) => (None, Some(why)),
    };
    let mut notes = Vec::new();
    if !ignores_state(dir) {
        notes.push(
            "add /target/ to .gitignore: the harness keeps its state and cache in target/upgrade-check".to_owned(),
        );
    }
    write_new(&config, &inspection.config_text(healthy.as_deref()))?;
    let first_guess = inspection
        .health_paths
        .first()
        .map_or("/health", String::as_str);
    write_new(
        &scenario,
        &inspect::health_scenario_text(healthy.as_deref().unwrap_or(first_guess)),
    )?;
    Ok(Initialised {
        inspection,
        config,
        scenario,
        healthy,
        unproven,
        notes,
    })
}

/// Builds the baseline the inspection found and starts the service once
/// from a config that says so (written beside the real one's place, and
/// gone after): the health path that answered, or why none did.
async fn prove(
    dir: &Path,
    inspection: &Inspection,
    options: &Options,
    events: &Events,
) -> anyhow::Result<Result<String, String>> {
    let mut draft = tempfile::Builder::new()
        .prefix(".upgrade-check-init-")
        .suffix(".toml")
        .tempfile_in(dir)?;
    draft.write_all(inspection.config_text(None).as_bytes())?;
    let config = match Config::load(draft.path()) {
        Ok(config) => config,
        Err(err) => return Ok(Err(format!("the config it found does not load: {err}"))),
    };
    let dirs = super::state_dirs(options, dir);
    let baseline = match BaselineFile::load_with(&config.service.baseline, &config.service.groups) {
        Ok(baseline) => baseline,
        Err(err) => return Ok(Err(err.to_string())),
    };
    let builder = match config.service.ecosystem {
        Ecosystem::Python => {
            let mut hashes = DeclaredHashes::default();
            hashes.add(&baseline);
            Builder::Python(
                prepare::uv_builder(&config, options, &dirs, events, baseline, hashes).await?,
            )
        }
        Ecosystem::Cargo => Builder::Cargo(prepare::cargo_builder(
            &config, options, &dirs, events, baseline,
        )?),
    };
    let building = builder.clone();
    let built = tokio::task::spawn_blocking(move || {
        let resolution = building.resolve_baseline()?;
        building.materialise(&resolution.set)
    })
    .await?;
    let environment = match built {
        Ok(environment) => environment,
        Err(BuildError::Refused(why) | BuildError::Unavailable(why)) => {
            return Ok(Err(format!("the baseline does not build:\n{why}")));
        }
        Err(BuildError::Harness(err)) => return Err(err),
    };
    let scratch = state::temp_dir()?;
    let service_dir = scratch.path().join("service");
    state::copy_tree(&config.service.root, &service_dir)?;
    let log_path = scratch.path().join("service.log");
    let port = service::free_port()?;
    let database = db::Database::Sqlite {
        path: scratch.path().join("db.sqlite3"),
    };
    let mut values = std::collections::BTreeMap::from([
        ("bin", environment.bin.display().to_string()),
        ("port", port.to_string()),
        (
            "secret",
            format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
        ),
        ("service_dir", service_dir.display().to_string()),
    ]);
    if let Some(python) = &environment.python {
        values.insert("python", python.interpreter.display().to_string());
        values.insert("venv", python.venv.display().to_string());
    }
    values.extend(database.placeholders());
    let placeholders = service::Placeholders { values };
    let env = config
        .profile(&config.service.profile)
        .map(|profile| profile.env.clone())
        .unwrap_or_default();
    let launch = service::Launch {
        command: &config.service.command,
        pass_env: &config.service.pass_env,
        env: &env,
        placeholders: &placeholders,
        bin: &environment.bin,
        venv: environment
            .python
            .as_ref()
            .map(|python| python.venv.as_path()),
        cwd: &service_dir,
        log: &log_path,
        port,
        health_paths: &inspection.health_paths,
        startup_timeout: config.timeouts.startup,
        grace: config.timeouts.shutdown_grace,
    };
    Ok(match service::start(launch, &replay::client()).await {
        Ok(running) => {
            let path = running.healthy_path.clone();
            running.stop().await;
            Ok(path)
        }
        Err(failure) => Err(format!(
            "{}; the service's log ends:\n{}",
            failure.reason,
            log::log_tail(&failure.log, 20)
        )),
    })
}

/// Whether git ignores `target/` in `dir` (where the harness's state goes
/// by default); outside a git repository there is nothing to ignore.
fn ignores_state(dir: &Path) -> bool {
    let asked = std::process::Command::new("git")
        .args([
            "check-ignore",
            "--quiet",
            "--no-index",
            "target/upgrade-check",
        ])
        .current_dir(dir)
        .status();
    match asked {
        Ok(status) => status.code() != Some(1),
        Err(_) => true,
    }
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    state::write_new(path, text.as_bytes()).map_err(|_| {
        InputError::in_file(path, "exists already; init never overwrites a file").into()
    })
}
