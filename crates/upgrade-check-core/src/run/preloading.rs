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

/// How many cells after one that asked for its preloader start theirs
/// ahead: a cell's runs can take less than a preloader's imports (a few
/// hundred ms), so one ahead still leaves the cell after it waiting.
const AHEAD: usize = 2;

/// A cell's preloader, started by its first scenario run, or why it could not start.
type PreloaderOnce = tokio::sync::OnceCell<Result<Arc<Preloader>, String>>;

/// How the run's services start, and the preloaders of the cells running.
pub(crate) struct Preloading {
    mode: StartMode,
    /// Why the service always starts cold (the config, its command).
    cannot: Option<String>,
    /// What the baseline's check found, turning preloading off.
    found: Mutex<Option<String>>,
    /// The baseline's check passed: forked starts answer as cold ones.
    verified: std::sync::atomic::AtomicBool,
    by_cell: Mutex<BTreeMap<String, Arc<PreloaderOnce>>>,
    /// The cells to run, in plan order, with their environments once
    /// ready: as a cell's preloader is asked for, the next [`AHEAD`]
    /// cells' start ahead if their environments are ready.
    lined_up: Mutex<Vec<(String, Option<Environment>)>>,
    /// The cells whose preloader was started ahead.
    ahead: Mutex<std::collections::BTreeSet<String>>,
    /// The cells that asked for their preloader: the [`AHEAD`] cells after
    /// one of them start their own as soon as their environments are ready.
    asked: Mutex<std::collections::BTreeSet<String>>,
}

/// All a preloader needs to start, owned: it may start on a task of its own.
struct PreloaderStart {
    interpreter: std::path::PathBuf,
    root: std::path::PathBuf,
    env: BTreeMap<std::ffi::OsString, std::ffi::OsString>,
    startup: std::time::Duration,
    grace: std::time::Duration,
}

impl PreloaderStart {
    fn new(config: &Config, environment: &Environment) -> Result<PreloaderStart, String> {
        let python = environment
            .python
            .as_ref()
            .ok_or_else(|| "the environment has no Python".to_owned())?;
        let env = service::interpreter_env(
            &config.service.pass_env,
            &environment.bin,
            Some(&python.venv),
        )?;
        // The preloader runs from `/`: the source's folder, as the copies are made from it.
        let root = std::path::absolute(&config.service.root)
            .map_err(|err| format!("cannot find the service's folder: {err}"))?;
        Ok(PreloaderStart {
            interpreter: python.interpreter.clone(),
            root,
            env,
            startup: config.timeouts.startup,
            grace: config.timeouts.shutdown_grace,
        })
    }

    /// Starts the preloader (off the async threads).
    async fn run(self) -> Result<Arc<Preloader>, String> {
        tokio::task::spawn_blocking(move || {
            Preloader::start(
                &self.interpreter,
                &self.root,
                self.env,
                self.startup,
                self.grace,
            )
        })
        .await
        .map_err(|err| err.to_string())?
        .map(Arc::new)
    }
}

impl Preloading {
    /// Preloading as the config (or the caller, when `asked_by_the_caller`)
    /// asks, where the service can have it: a Python service whose command
    /// runs a module or script of its environment, and whose config leaves
    /// the interpreter's own variables alone.
    pub(crate) fn new(config: &Config, asked_by_the_caller: bool) -> Preloading {
        let cannot = match config.service.start {
            StartMode::Cold if asked_by_the_caller => Some("asked for a cold start".to_owned()),
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
            lined_up: Mutex::new(Vec::new()),
            ahead: Mutex::new(std::collections::BTreeSet::new()),
            asked: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    /// The cells that will run, in plan order: each one's preloader starts
    /// as one of the [`AHEAD`] before it asks for its own (the first one's,
    /// as soon as its environment is ready), so that it is ready when the
    /// cell's first run comes.
    pub(crate) fn line_up(&self, cells: Vec<String>) {
        *self.lined_up.lock().unwrap_or_else(|e| e.into_inner()) =
            cells.into_iter().map(|id| (id, None)).collect();
    }

    /// `cell_id`'s environment is ready: its preloader starts ahead now if
    /// it is first in line, or one of the [`AHEAD`] cells before it has
    /// asked for its own already; else when one does, or it asks itself.
    pub(crate) fn ready(&self, config: &Config, cell_id: &str, environment: Environment) {
        let before: Vec<String> = {
            let mut lined_up = self.lined_up.lock().unwrap_or_else(|e| e.into_inner());
            let Some(index) = lined_up.iter().position(|(id, _)| id == cell_id) else {
                return;
            };
            lined_up[index].1 = Some(environment.clone());
            lined_up[index.saturating_sub(AHEAD)..index]
                .iter()
                .map(|(id, _)| id.clone())
                .collect()
        };
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        let first = before.is_empty();
        if first || before.iter().any(|id| asked.contains(id)) {
            drop(asked);
            self.start_ahead(config, cell_id, &environment);
        }
    }

    /// Whether scenario runs start forked from a preloader now.
    pub(crate) fn on(&self) -> bool {
        self.cannot.is_none() && self.found_off().is_none()
    }

    /// Whether scenario runs fork their service now: preloading is on, and
    /// forced or checked.
    pub(crate) fn forks(&self) -> bool {
        self.on()
            && (self.mode == StartMode::Preloaded
                || self.verified.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Services fork before the baseline's check has passed: for an
    /// exploration, whose check is one variant's (see
    /// `RunSettings::cold_check_only`); a difference it finds still turns
    /// preloading off for the rest of the run.
    pub(crate) fn fork_from_the_start(&self) {
        self.verify();
    }

    /// The baseline's check passed (or its recorded result says it did).
    pub(crate) fn verify(&self) {
        self.verified
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the baseline checks forked starts against cold ones.
    pub(crate) fn checked(&self) -> bool {
        self.mode == StartMode::Auto && self.on()
    }

    /// Starts every later scenario run cold, for `reason`; whether that is
    /// news (it was on).
    pub(crate) fn turn_off(&self, reason: String) -> bool {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        let news = found.is_none();
        found.get_or_insert(reason);
        news
    }

    /// Why the baseline's check turned preloading off, if it did: recorded
    /// with the baseline's result, so that reusing it keeps the verdict.
    pub(crate) fn found_off(&self) -> Option<String> {
        self.found.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How the run's services started, for the report: `forked` of the
    /// `started` scenario runs were forked, the rest started cold (a fork
    /// the preloader refused falls back to a cold start).
    pub(crate) fn describe(&self, forked: usize, started: usize) -> String {
        let meant = match self.cannot.clone().or_else(|| self.found_off()) {
            Some(reason) => return format!("cold: {reason}"),
            None if self.mode == StartMode::Preloaded => {
                "forked from a preloaded interpreter (`start = \"preloaded\"`)"
            }
            None if self.verified.load(std::sync::atomic::Ordering::SeqCst) => {
                "forked from a preloaded interpreter, checked against cold starts"
            }
            None => return "cold: no baseline replay checked forked starts in this run".to_owned(),
        };
        match (forked, started) {
            (0, 0) => meant.to_owned(),
            (0, _) => "cold: the preloader forked no service; every one started cold (the reason is in each run's log)".to_owned(),
            (forked, started) if forked < started => {
                format!("{meant}: {forked} of {started} scenario runs; the rest started cold")
            }
            _ => meant.to_owned(),
        }
    }

    /// `cell`'s preloader, started on first use in its environment; or why
    /// it cannot start (or serve) a service.
    pub(crate) async fn for_cell(
        &self,
        config: &Config,
        cell_id: &str,
        environment: &Environment,
    ) -> Result<Arc<Preloader>, String> {
        let once = self.once(cell_id);
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cell_id.to_owned());
        self.start_next_ahead(config, cell_id);
        let preloader = once
            .get_or_init(|| async { PreloaderStart::new(config, environment)?.run().await })
            .await
            .clone()?;
        match preloader.alive() {
            true => Ok(preloader),
            false => Err(format!("the preloader of cell {cell_id} exited")),
        }
    }

    /// Notes that `cell_id`'s preloader starts ahead; false when it did already.
    fn started_ahead(&self, cell_id: &str) -> bool {
        self.ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cell_id.to_owned())
    }

    /// Where `cell`'s preloader is (or will be).
    fn once(&self, cell_id: &str) -> Arc<PreloaderOnce> {
        self.by_cell
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cell_id.to_owned())
            .or_default()
            .clone()
    }

    /// Starts the preloaders of the [`AHEAD`] cells lined up after
    /// `cell_id` on tasks of their own, unless they have started: a long
    /// matrix never has more preloaders than cells running and [`AHEAD`].
    fn start_next_ahead(&self, config: &Config, cell_id: &str) {
        if !self.on() {
            return;
        }
        let next: Vec<(String, Option<Environment>)> = {
            let lined_up = self.lined_up.lock().unwrap_or_else(|e| e.into_inner());
            match lined_up.iter().position(|(id, _)| id == cell_id) {
                Some(index) => lined_up
                    .iter()
                    .skip(index + 1)
                    .take(AHEAD)
                    .cloned()
                    .collect(),
                None => Vec::new(),
            }
        };
        // Those not ready yet start ahead when they are.
        for (next_id, environment) in next {
            if let Some(environment) = environment {
                self.start_ahead(config, &next_id, &environment);
            }
        }
    }

    /// Starts `cell_id`'s preloader on a task of its own, unless it has
    /// started.
    fn start_ahead(&self, config: &Config, next_id: &str, environment: &Environment) {
        if !self.on() {
            return;
        }
        let once = self.once(next_id);
        // Started (or starting) already: once is enough.
        if once.initialized() || !self.started_ahead(next_id) {
            return;
        }
        // What cannot start here is said when the cell asks itself.
        let Ok(start) = PreloaderStart::new(config, environment) else {
            return;
        };
        tokio::spawn(async move {
            let _ = once.get_or_init(|| start.run()).await;
            // The cell may be over already: its preloader stops off the async threads.
            let _ = tokio::task::spawn_blocking(move || drop(once)).await;
        });
    }

    /// `cell`'s runs are over (or were never needed): its preloader stops
    /// (off the async threads), and none starts ahead for it any more.
    pub(crate) async fn finish_cell(&self, cell_id: &str) {
        self.lined_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| id != cell_id);
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cell_id);
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
    match command {
        // `-c CODE` and other interpreter options are nothing a preloader
        // can enter: such a service always starts cold.
        [python, rest @ ..] if python == "{python}" => match rest {
            [flag, _, ..] if flag == "-m" => true,
            [script, ..] => !script.starts_with('-'),
            [] => false,
        },
        [program, ..] => program.starts_with("{bin}/"),
        [] => false,
    }
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
