//! `upgrade-check record NAME`: the service on its baseline (a fresh
//! database, as a scenario run has) behind a recording reverse proxy on
//! loopback; what a browser, curl, a frontend or a test suite sends through
//! it becomes `scenarios/NAME.toml` when the recording stops (Ctrl-C,
//! SIGTERM, or `--idle` without a request). The new scenario is then
//! replayed once on the baseline, from a fresh start, and its snapshot left
//! pending for review (or, with `--accept`, accepted).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::import::{check_name, new_scenario_path, write_scenario};
use super::{Acceptance, Action, CheckSettings, Finished, Folders, Options, once};
use crate::exec::proxy::{self, Tape};
use crate::input::config::Config;
use crate::input::traffic;
use crate::model::event::Events;
use crate::model::setting::{Setting, SettingError};
use crate::sys::{process, state};

/// What to record, and where the proxy listens.
#[derive(Debug, Clone)]
pub struct Recording {
    pub name: String,
    /// Loopback only; port 0 takes a free one.
    pub listen: SocketAddr,
    /// Stop after this long without a request.
    pub idle: Option<Duration>,
    /// Accept what the baseline answers to the new scenario, rather than
    /// leave it pending.
    pub accept: bool,
}

/// The scenario written.
#[derive(Debug)]
pub struct Recorded {
    pub scenario: PathBuf,
    pub steps: usize,
    pub notes: Vec<String>,
    /// Why the recording stopped: `interrupt`, `terminated`, `idle`.
    pub stopped_by: &'static str,
    /// The snapshot the replay wrote (pending, or accepted) and its text.
    pub snapshot: Option<(PathBuf, String)>,
}

/// Records until stopped; `listening` hears the proxy's URL once clients
/// can use it.
pub fn record(
    options: &Options,
    recording: &Recording,
    events: Events,
    listening: &dyn Fn(&str),
) -> anyhow::Result<Recorded> {
    let listen = proxy::check_loopback(recording.listen).map_err(anyhow::Error::msg)?;
    if recording.accept {
        super::refuse_accepting_in_ci()?;
    }
    check_name(&recording.name)?;
    let config_path = options.config_path()?;
    let config = Config::load(&config_path)?;
    new_scenario_path(&config, &recording.name)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(24 * 60 * 60))
        .build()?;
    let recorded = runtime.block_on(async {
        // The address first: a busy one is said before anything is built.
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|err| {
            SettingError::new(
                Setting::Listen,
                format!("cannot listen on {listen}: {err}; give another address (port 0 picks a free one)"),
            )
        })?;
        let health = [config.service.health_path.clone()];
        let started = match once::start(&config, options, &events, &health).await? {
            Ok(started) => started,
            Err(why) => anyhow::bail!("the service did not start on its baseline: {why}"),
        };
        let url = format!("http://{}", listener.local_addr()?);
        let tape = Arc::new(Tape::default());
        let serving = tokio::spawn(proxy::serve(
            listener,
            started.running.base_url.clone(),
            tape.clone(),
        ));
        listening(&url);
        let stopped_by = until_stopped(&tape, recording.idle).await;
        serving.abort();
        started.stop().await;
        Ok((tape.take(), stopped_by))
    });
    process::kill_all();
    runtime.shutdown_timeout(Duration::from_secs(5));
    state::remove_temp_dirs();
    let (exchanges, stopped_by) = recorded?;
    if exchanges.is_empty() {
        anyhow::bail!(
            "nothing passed through the proxy before it stopped ({stopped_by}); no scenario written"
        );
    }
    let written = traffic::scenario(
        &format!(
            "recorded through upgrade-check record ({} requests)",
            exchanges.len()
        ),
        &exchanges,
    );
    let (scenario, loaded) = write_scenario(&config, &recording.name, &written)?;
    let replay = Options {
        action: Action::Baseline,
        accept: recording.accept.then_some(Acceptance::default()),
        check: CheckSettings {
            scenarios: vec![recording.name.clone()],
            ..options.check.clone()
        },
        folders: Folders {
            config: Some(config_path),
            ..options.folders.clone()
        },
        ..options.clone()
    };
    let snapshot = match super::upgrade_check(replay, events)? {
        Finished::Reported { report, .. } => {
            let written = match recording.accept {
                true => report.accepted_snapshots.first().cloned(),
                false => report.pending_snapshots.first().cloned(),
            };
            written.map(|relative| {
                let path = config.base_dir().join(relative);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                (path, text)
            })
        }
        _ => None,
    };
    Ok(Recorded {
        scenario,
        steps: loaded.steps.len(),
        notes: written.notes,
        stopped_by,
        snapshot,
    })
}

/// Waits for Ctrl-C, SIGTERM, or `idle` without a request.
async fn until_stopped(tape: &Tape, idle: Option<Duration>) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let started = Instant::now();
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return "no signal handler";
    };
    loop {
        tokio::select! {
            _ = interrupt.recv() => return "interrupt",
            _ = terminate.recv() => return "terminated",
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if idle.is_some_and(|idle| tape.idle_for(started) >= idle) {
                    return "idle";
                }
            }
        }
    }
}
