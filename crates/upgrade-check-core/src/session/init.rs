//! `upgrade-check init [DIR]`: reads a service folder
//! (`input::inspect`), proves what it found by building the
//! baseline and starting the service once, asking each path that might
//! answer its health check, then writes `upgrade-check.toml` and
//! `scenarios/health.toml`. It never overwrites a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Options, once};
use crate::input::config::Config;
use crate::input::inspect::{self, Inspection};
use crate::input::source::InputError;
use crate::model::event::Events;
use crate::sys::{process, state};

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
    for path in [&config, &scenario] {
        state::refuse_outside(dir, path)?;
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
    if !ignores(dir, "target/upgrade-check") {
        notes.push(
            "add /target/ to .gitignore: the harness keeps its state and cache in target/upgrade-check".to_owned(),
        );
    }
    if !ignores(dir, "snapshots/health.snap.new") {
        notes.push(
            "add *.snap.new to .gitignore: a pending snapshot is for review, never to commit with the accepted ones".to_owned(),
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
    let healthy = match once::start(&config, options, events, &inspection.health_paths).await? {
        Ok(started) => {
            let path = started.running.healthy_path.clone();
            started.stop().await;
            Ok(path)
        }
        Err(why) => Err(why),
    };
    Ok(healthy)
}

/// Whether git ignores `path` in `dir` (the harness's state, a pending
/// snapshot); outside a git repository there is nothing to ignore.
fn ignores(dir: &Path, path: &str) -> bool {
    let asked = std::process::Command::new("git")
        .args(["check-ignore", "--quiet", "--no-index", path])
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
