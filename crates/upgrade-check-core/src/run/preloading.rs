//! Whether a run's Python services start from a preloader, and the
//! preloader of each cell.
//!
//! With `start = "auto"` preloading is checked, never assumed: the baseline
//! replays each scenario once cold and once forked, and a difference that
//! two cold starts do not also show turns it off for the rest of the run,
//! with the reason in the report. Until that check has passed (in this run
//! or in the recorded baseline result it reuses), services start cold.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::env::Environment;
use crate::exec::preload::Preloader;
use crate::exec::service;
use crate::input::config::{Config, Ecosystem, StartMode};

/// A cell's preloader, started by its first scenario run, or why it could not start.
type PreloaderOnce = tokio::sync::OnceCell<Result<Arc<Preloader>, String>>;

/// How the run's services start, and the preloaders of the cells running.
pub struct Preloading {
    mode: StartMode,
    /// Why the service always starts cold (the config, its command).
    cannot: Option<String>,
    /// What the baseline's check found, turning preloading off.
    found: Mutex<Option<String>>,
    /// The baseline's check passed: forked starts answer as cold ones.
    verified: std::sync::atomic::AtomicBool,
    by_cell: Mutex<BTreeMap<String, Arc<PreloaderOnce>>>,
}

impl Preloading {
    /// Preloading as the config (or `--start`, when `from_command_line`)
    /// asks, where the service can have it: a Python service whose command
    /// runs a module or script of its environment, and whose config leaves
    /// the interpreter's own variables alone.
    pub fn new(config: &Config, from_command_line: bool) -> Preloading {
        let cannot = match config.service.start {
            StartMode::Cold if from_command_line => Some("`--start cold`".to_owned()),
            StartMode::Cold => Some("`start = \"cold\"` in the config".to_owned()),
            _ if config.service.ecosystem != Ecosystem::Python => {
                Some("not a Python service".to_owned())
            }
            _ if !runs_python(&config.service.command) => {
                Some("its command does not run a Python module or script".to_owned())
            }
            _ => interpreter_variable(config).map(|name| {
                format!("the config sets {name}, which Python reads once, as it starts")
            }),
        };
        Preloading {
            mode: config.service.start,
            cannot,
            found: Mutex::new(None),
            verified: Default::default(),
            by_cell: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether scenario runs start forked from a preloader now.
    pub fn on(&self) -> bool {
        self.cannot.is_none() && self.found_off().is_none()
    }

    /// Whether scenario runs fork their service now: preloading is on, and
    /// forced or checked.
    pub fn forks(&self) -> bool {
        self.on()
            && (self.mode == StartMode::Preloaded
                || self.verified.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The baseline's check passed (or its recorded result says it did).
    pub fn verify(&self) {
        self.verified
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the baseline checks forked starts against cold ones.
    pub fn checked(&self) -> bool {
        self.mode == StartMode::Auto && self.on()
    }

    /// Starts every later scenario run cold, for `reason`; whether that is
    /// news (it was on).
    pub fn turn_off(&self, reason: String) -> bool {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        let news = found.is_none();
        found.get_or_insert(reason);
        news
    }

    /// Why the baseline's check turned preloading off, if it did: recorded
    /// with the baseline's result, so that reusing it keeps the verdict.
    pub fn found_off(&self) -> Option<String> {
        self.found.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How the run's services started, for the report.
    pub fn describe(&self) -> String {
        match self.cannot.clone().or_else(|| self.found_off()) {
            Some(reason) => format!("cold: {reason}"),
            None if self.mode == StartMode::Preloaded => {
                "forked from a preloaded interpreter (`start = \"preloaded\"`)".to_owned()
            }
            None if self.verified.load(std::sync::atomic::Ordering::SeqCst) => {
                "forked from a preloaded interpreter, checked against cold starts".to_owned()
            }
            None => "cold: no baseline replay checked forked starts in this run".to_owned(),
        }
    }

    /// `cell`'s preloader, started on first use in its environment; or why
    /// it cannot start (or serve) a service.
    pub async fn for_cell(
        &self,
        config: &Config,
        cell_id: &str,
        environment: &Environment,
    ) -> Result<Arc<Preloader>, String> {
        let python = environment
            .python
            .as_ref()
            .ok_or_else(|| "the environment has no Python".to_owned())?;
        let once = self
            .by_cell
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cell_id.to_owned())
            .or_default()
            .clone();
        let preloader = once
            .get_or_init(|| async {
                let env = service::interpreter_env(
                    &config.service.pass_env,
                    &environment.bin,
                    Some(&python.venv),
                )?;
                let interpreter = python.interpreter.clone();
                // The preloader runs from `/`: the source's folder, as the copies are made from it.
                let root = std::path::absolute(&config.service.root)
                    .map_err(|err| format!("cannot find the service's folder: {err}"))?;
                let (startup, grace) = (config.timeouts.startup, config.timeouts.shutdown_grace);
                tokio::task::spawn_blocking(move || {
                    Preloader::start(&interpreter, &root, env, startup, grace)
                })
                .await
                .map_err(|err| err.to_string())?
                .map(Arc::new)
            })
            .await
            .clone()?;
        match preloader.alive() {
            true => Ok(preloader),
            false => Err(format!("the preloader of cell {cell_id} exited")),
        }
    }

    /// `cell`'s runs are over: its preloader stops (off the async threads).
    pub async fn finish_cell(&self, cell_id: &str) {
        let once = self
            .by_cell
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cell_id);
        if let Some(once) = once {
            let _ = tokio::task::spawn_blocking(move || drop(once)).await;
        }
    }
}

/// Whether a command starts `{python}` (or a program of the environment,
/// which may be a console script) rather than another program.
fn runs_python(command: &[String]) -> bool {
    command
        .first()
        .is_some_and(|program| program == "{python}" || program.starts_with("{bin}/"))
}

/// A variable the interpreter reads as it starts (`PYTHON…`) that the
/// config sets: a preloader started once could not honour each run's value.
fn interpreter_variable(config: &Config) -> Option<String> {
    config
        .profiles
        .iter()
        .flat_map(|profile| profile.env.keys())
        .find(|name| name.starts_with("PYTHON"))
        .cloned()
}
