//! Starts the service under test, waits until it is healthy, and stops it.
//!
//! The service runs from a private copy of its source, in its own process
//! group, with its output in a log file. Every wait has a deadline, and a
//! startup that fails says what it waited for and shows the log's tail.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::env::Environment;
use crate::exec::preload::{self, ForkedChild, Preloader};
use crate::input::config::Config;
use crate::sys::process::{self, GroupChild};

/// Values for the config's `{placeholders}`.
#[derive(Debug, Clone)]
pub(crate) struct Placeholders {
    pub values: BTreeMap<&'static str, String>,
}

impl Placeholders {
    /// The values one start of the service fills: its environment's
    /// programs (and interpreter), its port, the run's secret, the folder it
    /// runs from, and its database's connection settings (`Database::placeholders`).
    pub(crate) fn for_start(
        environment: &crate::env::Environment,
        port: u16,
        secret: &str,
        service_dir: &Path,
        database: Vec<(&'static str, String)>,
    ) -> Placeholders {
        let mut values = BTreeMap::from([
            ("bin", environment.bin.display().to_string()),
            ("port", port.to_string()),
            ("secret", secret.to_owned()),
            ("service_dir", service_dir.display().to_string()),
        ]);
        if let Some(python) = &environment.python {
            values.insert("python", python.interpreter.display().to_string());
            values.insert("venv", python.venv.display().to_string());
        }
        values.extend(database);
        Placeholders { values }
    }

    /// Fills every `{name}` in one pass: a value is never expanded again, so
    /// a path that happens to contain `{secret}` does not receive the secret.
    pub(crate) fn fill(&self, text: &str) -> String {
        static PLACEHOLDER: LazyLock<regex::Regex> =
            LazyLock::new(|| regex::Regex::new(r"\{([a-z_]+)\}").expect("valid regex"));
        PLACEHOLDER
            .replace_all(text, |found: &regex::Captures<'_>| {
                self.values
                    .get(&found[1])
                    .cloned()
                    .unwrap_or_else(|| found[0].to_owned())
            })
            .into_owned()
    }
}

/// How to start one service instance.
pub(crate) struct Launch<'a> {
    pub command: &'a [String],
    /// The config's `pass-env`: more of the harness's variables to pass on.
    pub pass_env: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub placeholders: &'a Placeholders,
    /// The environment's programs: first on PATH.
    pub bin: &'a Path,
    /// A Python environment's venv, named in `VIRTUAL_ENV`.
    pub venv: Option<&'a Path>,
    pub cwd: &'a Path,
    pub log: &'a Path,
    /// The loopback port the service was told to listen on.
    pub port: u16,
    /// Paths asked in turn until one answers 2xx: the config's health path
    /// (or, while `init` probes a service, each it might have).
    pub health_paths: &'a [String],
    pub startup_timeout: Duration,
    pub grace: Duration,
    /// Forks the service from preloaded modules, when its command is one
    /// the preloader runs the same way; otherwise it starts cold.
    pub preloader: Option<&'a Preloader>,
}

/// Where this start's own values go into a [`Launch`].
pub(crate) struct StartIn<'a> {
    /// The service's folder (its own copy of the source).
    pub cwd: &'a Path,
    pub log: &'a Path,
    pub port: u16,
    /// The profile's variables.
    pub env: &'a BTreeMap<String, String>,
    pub placeholders: &'a Placeholders,
}

impl<'a> Launch<'a> {
    /// A start of the service `config` describes, in `environment`: its
    /// command, variables passed on, health path and timeouts, from the one
    /// place every start (a scenario run's, `init`'s, `record`'s) takes
    /// them; cold unless a preloader is set.
    pub(crate) fn of(
        config: &'a Config,
        environment: &'a Environment,
        this: StartIn<'a>,
    ) -> Launch<'a> {
        Launch {
            command: &config.service.command,
            pass_env: &config.service.pass_env,
            env: this.env,
            placeholders: this.placeholders,
            bin: &environment.bin,
            venv: environment
                .python
                .as_ref()
                .map(|python| python.venv.as_path()),
            cwd: this.cwd,
            log: this.log,
            port: this.port,
            health_paths: std::slice::from_ref(&config.service.health_path),
            startup_timeout: config.timeouts.startup,
            grace: config.timeouts.shutdown_grace,
            preloader: None,
        }
    }
}

/// Names one service start in the environment of the service and all its
/// descendants, so that those which leave its process group can be found.
const SERVICE_MARKER: &str = "UPGRADE_CHECK_SERVICE";

/// The longest log kept per scenario run; the rest is counted, not kept.
pub(crate) const LOG_CAP_BYTES: u64 = 8 << 20;

/// A service's processes and the thread that writes its log. However it
/// ends (stopped, failed to start, dropped by a cancelled run), the group is
/// killed, every process carrying its marker is killed, and the log is whole.
struct ServiceProcess {
    child: Option<ServiceChild>,
    marker: String,
    /// Says how the log pump ended: `Err` when the log could not be written.
    pump: std::sync::Mutex<std::sync::mpsc::Receiver<std::io::Result<()>>>,
}

/// The service's main process: spawned, or forked by a preloader.
enum ServiceChild {
    Spawned(Box<GroupChild>),
    Forked(ForkedChild),
}

impl ServiceChild {
    fn pid(&self) -> u32 {
        match self {
            ServiceChild::Spawned(child) => child.pid(),
            ServiceChild::Forked(child) => child.pid(),
        }
    }

    fn try_exit(&self) -> std::io::Result<Option<std::process::ExitStatus>> {
        match self {
            ServiceChild::Spawned(child) => child.try_exit(),
            ServiceChild::Forked(child) => child.try_exit(),
        }
    }
}

/// What stopping a service found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stopped {
    /// Processes that left the service's group and outlived it (killed).
    pub leaks: Vec<String>,
    /// Why the log is incomplete, if it is.
    pub log_error: Option<String>,
}

impl ServiceProcess {
    /// Stops the group (SIGTERM, grace, SIGKILL), kills what left it, and
    /// waits (briefly) for the log to be written to its end.
    fn shut_down(&mut self) -> Stopped {
        let Some(child) = self.child.take() else {
            return Stopped::default();
        };
        // Seen before the group stops: in a PID namespace they die with it,
        // but they are still worth reporting.
        let group = i32::try_from(child.pid()).ok();
        let mut escaped: Vec<(i32, String)> = crate::sys::sweep::processes_with(SERVICE_MARKER)
            .into_iter()
            .filter(|(pid, value)| {
                *value == self.marker && crate::sys::sweep::process_group(*pid) != group
            })
            .map(|(pid, _)| (pid, crate::sys::sweep::command_name(pid)))
            .collect();
        // A forked service's own forks carry the preloader's environment, not
        // the marker: those that left its group are found as its descendants.
        if let (ServiceChild::Forked(_), Some(leader)) = (&child, group) {
            for pid in descendants_outside_group(leader) {
                if !escaped.iter().any(|(known, _)| *known == pid) {
                    escaped.push((pid, crate::sys::sweep::command_name(pid)));
                }
            }
        }
        drop(child);
        for pid in crate::sys::sweep::processes_with(SERVICE_MARKER)
            .into_iter()
            .filter(|(_, value)| *value == self.marker)
            .map(|(pid, _)| pid)
            .chain(escaped.iter().map(|(pid, _)| *pid))
        {
            crate::sys::sweep::kill_with_group(pid);
        }
        let leaks = escaped
            .into_iter()
            .map(|(pid, name)| {
                format!(
                    "pid {pid} ({name}) left the service's process group and outlived it; killed"
                )
            })
            .collect();
        let pump = self.pump.lock().unwrap_or_else(|e| e.into_inner());
        let log_error = match pump.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(format!("the service's log could not be written: {err}")),
            Err(_) => Some("the service's log was still open 5 s after it stopped".to_owned()),
        };
        Stopped { leaks, log_error }
    }
}

/// The processes descending from `leader` that are not in its group.
fn descendants_outside_group(leader: i32) -> Vec<i32> {
    crate::sys::sweep::ProcessTable::read()
        .descendants(leader)
        .into_iter()
        .filter(|entry| entry.group != leader)
        .map(|entry| entry.pid)
        .collect()
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A service that answered its health check.
pub(crate) struct RunningService {
    process: ServiceProcess,
    pid: u32,
    /// Forked by a preloader rather than started cold.
    pub preloaded: bool,
    pub base_url: String,
    /// The health path that answered 2xx.
    pub healthy_path: String,
}

/// Why a service never became ready.
#[derive(Debug, Clone)]
pub(crate) struct StartupFailure {
    pub reason: String,
    pub log: PathBuf,
    /// Set when the service exited on its own (rather than never answering).
    pub exit_status: Option<std::process::ExitStatus>,
    /// Another process holds the port: worth another try on another port.
    pub port_taken: bool,
    /// What stopping the failed start found (leaks, an unwritable log).
    pub stopped: Stopped,
    /// The service was forked from the preloader, not started cold.
    pub preloaded: bool,
}

/// Appends the harness's own `note` (a fixed text, never the service's) as a
/// line of a service's log.
pub(crate) fn note_in_log(log: &Path, note: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(log)?
        .write_all(format!("{note}\n").as_bytes())
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Spawns the service and waits until its health check answers 2xx.
///
/// On failure the service is already stopped, and its log complete.
pub(crate) async fn start(
    launch: Launch<'_>,
    client: &reqwest::Client,
) -> Result<RunningService, StartupFailure> {
    let base_url = format!("http://127.0.0.1:{}", launch.port);
    let failure = |reason: String| StartupFailure {
        reason,
        log: launch.log.to_owned(),
        exit_status: None,
        port_taken: false,
        stopped: Stopped::default(),
        preloaded: false,
    };
    let (process, pid) = spawn(&launch).map_err(failure)?;
    let preloaded = matches!(process.child, Some(ServiceChild::Forked(_)));
    let failure = |reason: String| StartupFailure {
        preloaded,
        ..failure(reason)
    };
    // Ends a failed start: the processes stopped and the log whole, then the reason.
    let fail = |mut process: ServiceProcess, failure: StartupFailure| async move {
        let stopped = tokio::task::spawn_blocking(move || process.shut_down())
            .await
            .unwrap_or_default();
        StartupFailure { stopped, ..failure }
    };
    let started = Instant::now();
    let mut last_answer = "no answer yet".to_owned();
    let healthy_path = 'waiting: loop {
        let exited = process
            .child
            .as_ref()
            .and_then(|child| child.try_exit().ok().flatten());
        if let Some(status) = exited {
            let stopped = fail(process, failure(String::new())).await;
            let in_use =
                crate::sys::log::log_tail(launch.log, 50).contains("Address already in use");
            let reason = if stopped.stopped.leaks.is_empty() {
                format!("the service exited during startup ({status})")
            } else {
                format!(
                    "the service exited during startup ({status}) and left processes running \
                     (does it daemonise itself? it must stay in the foreground)"
                )
            };
            return Err(StartupFailure {
                reason,
                exit_status: Some(status),
                port_taken: in_use,
                ..stopped
            });
        }
        for path in launch.health_paths {
            match client
                .get(format!("{base_url}{path}"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => break 'waiting path.clone(),
                Ok(response) => last_answer = format!("last answer {}", response.status()),
                // Not listening yet: the next round starts again from the
                // first path, so that the one answering is the one most
                // preferred, not whichever was asked as the service came up.
                Err(_) => break,
            }
        }
        if started.elapsed() >= launch.startup_timeout {
            let reason = format!(
                "not healthy within {}: GET {} ({last_answer})",
                humantime::format_duration(launch.startup_timeout),
                launch.health_paths.join(", ")
            );
            return Err(fail(process, failure(reason)).await);
        }
        // Often enough that waiting adds little to a start-up of a few hundred ms.
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Something answered; make sure it was the service, not whoever holds the port.
    match port_holder(launch.port, pid, &process.marker) {
        Holder::Service | Holder::Unknown => {}
        Holder::Descendant(holder) => {
            let reason = format!(
                "port {} is held by pid {holder}, which the service started outside its \
                 process group (does it daemonise itself? it must stay in the foreground)",
                launch.port
            );
            return Err(fail(process, failure(reason)).await);
        }
        Holder::Other => {
            let reason = format!(
                "port {} answered, but another process holds it",
                launch.port
            );
            return Err(StartupFailure {
                port_taken: true,
                ..fail(process, failure(reason)).await
            });
        }
    }
    let preloaded = matches!(process.child, Some(ServiceChild::Forked(_)));
    Ok(RunningService {
        process,
        pid,
        preloaded,
        base_url,
        healthy_path,
    })
}

/// Starts the service's command with its log pump; the group leader's pid.
fn spawn(launch: &Launch<'_>) -> Result<(ServiceProcess, u32), String> {
    let argv: Vec<String> = launch
        .command
        .iter()
        .map(|arg| launch.placeholders.fill(arg))
        .collect();
    // Appended to: the log may begin with the setup commands' output.
    let log = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(launch.log)
        .map_err(|err| err.to_string())?;
    let (reader, writer) =
        std::io::pipe().map_err(|err| format!("cannot make a pipe for the log: {err}"))?;
    let marker = launch.log.display().to_string();
    let mut env = service_env(launch, &marker)?;
    if let Some(venv) = launch.venv {
        env.insert("VIRTUAL_ENV".into(), venv.into());
    }
    let forked = launch.preloader.and_then(|preloader| {
        let python = launch.placeholders.values.get("python")?;
        let (entry, args) = preload::entry(&argv, Path::new(python))?;
        let writer = writer.try_clone().ok()?;
        let namespaced = crate::sys::process::pid_namespace().is_some();
        Some(preloader.fork(&entry, &args, &env, launch.cwd, writer.into(), namespaced))
    });
    let child = match forked {
        Some(Ok(child)) => {
            drop(writer);
            ServiceChild::Forked(child)
        }
        Some(Err(reason)) => {
            // Said in the log, and started as it would be without one.
            let note = format!("[upgrade-check: started cold: {reason}]\n");
            let _ = crate::sys::redact::pump_log(note.as_bytes(), &log, LOG_CAP_BYTES);
            ServiceChild::Spawned(Box::new(spawn_cold(launch, &argv, env, writer)?))
        }
        None => ServiceChild::Spawned(Box::new(spawn_cold(launch, &argv, env, writer)?)),
    };
    let pid = child.pid();
    let (done, pump) = std::sync::mpsc::channel();
    let file = log.into_parts().0;
    std::thread::spawn(move || {
        let _ = done.send(crate::sys::redact::pump_log(reader, file, LOG_CAP_BYTES));
    });
    Ok((
        ServiceProcess {
            child: Some(child),
            marker,
            pump: std::sync::Mutex::new(pump),
        },
        pid,
    ))
}

/// Starts the service's command as a process of its own (in a PID namespace
/// where one is available).
fn spawn_cold(
    launch: &Launch<'_>,
    argv: &[String],
    env: BTreeMap<std::ffi::OsString, std::ffi::OsString>,
    writer: std::io::PipeWriter,
) -> Result<GroupChild, String> {
    let (program, args) = match crate::sys::process::pid_namespace() {
        // In a PID namespace of its own, whatever the service starts dies with it.
        Some(prefix) => (
            prefix[0].to_owned(),
            prefix[1..]
                .iter()
                .map(|arg| (*arg).to_owned())
                .chain(argv.iter().cloned())
                .collect::<Vec<_>>(),
        ),
        None => (argv[0].clone(), argv[1..].to_vec()),
    };
    let expression = duct::cmd(&program, &args)
        .dir(launch.cwd)
        .stdin_null()
        .stderr_to_stdout()
        .stdout_file(writer)
        .full_env(env);
    process::spawn_service(expression, launch.grace)
        .map_err(|err| format!("cannot start `{}`: {err}", argv[0]))
}

/// Runs the config's setup commands in order, with the service's environment
/// and placeholders and in its folder, before it starts; their output opens
/// its log (scrubbed, as the service's own). The time it took, or why it failed.
pub(crate) fn run_setup(
    launch: &Launch<'_>,
    commands: &[Vec<String>],
    note: Option<&str>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let log = fs_err::File::create(launch.log).map_err(|err| err.to_string())?;
    let mut log = log.into_parts().0;
    if let Some(note) = note {
        crate::sys::redact::pump_log(note.as_bytes(), &mut log, LOG_CAP_BYTES)
            .map_err(|err| format!("the service's log could not be written: {err}"))?;
    }
    let env = service_env(launch, &launch.log.display().to_string())?;
    for command in commands {
        let argv: Vec<String> = command
            .iter()
            .map(|arg| launch.placeholders.fill(arg))
            .collect();
        let shown = argv.join(" ");
        let mut expression = duct::cmd(&argv[0], &argv[1..])
            .dir(launch.cwd)
            .stdin_null()
            .stderr_to_stdout()
            .full_env(env.clone());
        if let Some(venv) = launch.venv {
            expression = expression.env("VIRTUAL_ENV", venv);
        }
        let header = format!("[upgrade-check: setup `{shown}`]\n");
        let _ = crate::sys::redact::pump_log(header.as_bytes(), &mut log, LOG_CAP_BYTES);
        let output = process::run_captured(expression, launch.startup_timeout)
            .map_err(|err| format!("cannot start setup command `{shown}`: {err}"))?;
        let Some(output) = output else {
            return Err(format!(
                "setup command `{shown}` did not finish within {}",
                humantime::format_duration(launch.startup_timeout)
            ));
        };
        crate::sys::redact::pump_log(&output.stdout[..], &mut log, LOG_CAP_BYTES)
            .map_err(|err| format!("the service's log could not be written: {err}"))?;
        if !output.status.success() {
            let printed = String::from_utf8_lossy(&output.stdout);
            let last = printed
                .lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("(no output)");
            return Err(format!(
                "setup command `{shown}` failed ({}): {}",
                output.status,
                last.trim()
            ));
        }
    }
    Ok(started.elapsed())
}

/// Variables of the harness's own environment a service receives; every
/// other one must be set by the config (`[service.env]`, a profile). Only
/// these, so that a variable set in one shell and not the next cannot change
/// a verdict unseen (they are part of the recorded results' key too).
pub(crate) const PASSED_THROUGH: &[&str] = &[
    "HOME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LOGNAME",
    "SSL_CERT_DIR",
    "SSL_CERT_FILE",
    "TMPDIR",
    "TZ",
    "USER",
];

/// The harness's variables that reach a service (those it always passes,
/// and the config's `pass_env`), with their values.
pub(crate) fn passed_through(pass_env: &[String]) -> Vec<(String, String)> {
    PASSED_THROUGH
        .iter()
        .copied()
        .chain(pass_env.iter().map(String::as_str))
        .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
        .collect()
}

/// The whole environment a service (and its setup commands) starts with:
/// the environment's programs first on PATH.
fn service_env(
    launch: &Launch<'_>,
    marker: &str,
) -> Result<BTreeMap<std::ffi::OsString, std::ffi::OsString>, String> {
    let mut env = interpreter_env(launch.pass_env, launch.bin, None)?;
    env.insert(SERVICE_MARKER.into(), marker.into());
    for (name, value) in launch.env {
        env.insert(name.into(), launch.placeholders.fill(value).into());
    }
    Ok(env)
}

/// What every start of a service's interpreter gets, whatever the run: the
/// harness's variables it passes on, the environment's programs first on
/// PATH, the run's marker and Python's settings. A preloader starts with
/// these (and `VIRTUAL_ENV`); each service it forks takes its run's own.
pub(crate) fn interpreter_env(
    pass_env: &[String],
    bin: &Path,
    venv: Option<&Path>,
) -> Result<BTreeMap<std::ffi::OsString, std::ffi::OsString>, String> {
    let path = std::env::join_paths(std::iter::once(bin.to_owned()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .map_err(|err| format!("cannot build PATH: {err}"))?;
    let mut env: BTreeMap<std::ffi::OsString, std::ffi::OsString> = passed_through(pass_env)
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .collect();
    env.insert("PATH".into(), path);
    if let Some(run) = process::run_marker() {
        env.insert(process::RUN_MARKER.into(), run.into());
    }
    if let Some(venv) = venv {
        env.insert("VIRTUAL_ENV".into(), venv.into());
    }
    env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    env.insert("PYTHONUNBUFFERED".into(), "1".into());
    // Deprecations are the early signal of the next break: print each once.
    // A profile may set its own.
    env.insert("PYTHONWARNINGS".into(), "default".into());
    Ok(env)
}

/// Who listens on the service's port.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    Service,
    /// A process the service started that left its group (a daemon).
    Descendant(i32),
    Other,
    /// Cannot be told (no `/proc`, or no listener found).
    Unknown,
}

/// Who holds the socket listening on loopback `port`: the service's group
/// `pgid`, a process carrying its `marker`, or another process.
fn port_holder(port: u16, pgid: u32, marker: &str) -> Holder {
    let sockets = listening_sockets(port);
    if sockets.is_empty() {
        return Holder::Unknown;
    }
    // Nearly always the service's own: its group's few processes are
    // looked at before every process's open files.
    let leader = i32::try_from(pgid).unwrap_or_default();
    let table = crate::sys::sweep::ProcessTable::read();
    if table.in_group(leader).any(|pid| holds_any(pid, &sockets)) {
        return Holder::Service;
    }
    let holders = holders_of(&sockets, &table);
    if holders.is_empty() {
        return Holder::Unknown;
    }
    let ours: Vec<i32> = crate::sys::sweep::processes_with(SERVICE_MARKER)
        .into_iter()
        .filter(|(_, value)| value == marker)
        .map(|(pid, _)| pid)
        .collect();
    // A daemon that cleared its environment is still the service's: in a PID
    // namespace it was re-parented to the service itself.
    let descendants: Vec<i32> = table
        .descendants(leader)
        .iter()
        .map(|entry| entry.pid)
        .collect();
    match holders
        .iter()
        .find(|pid| ours.contains(pid) || descendants.contains(pid))
    {
        Some(pid) => Holder::Descendant(*pid),
        None => Holder::Other,
    }
}

/// The processes holding a socket that listens on loopback `port`.
pub fn listeners(port: u16) -> Vec<i32> {
    holders_of(
        &listening_sockets(port),
        &crate::sys::sweep::ProcessTable::read(),
    )
}

/// The sockets listening on loopback `port`, as `/proc/<pid>/fd` links name them.
fn listening_sockets(port: u16) -> Vec<String> {
    let inodes: Vec<String> = match crate::sys::listening::inodes(port) {
        Some(inodes) => inodes.iter().map(ToString::to_string).collect(),
        None => listening_in_proc(port),
    };
    inodes
        .iter()
        .map(|inode| format!("socket:[{inode}]"))
        .collect()
}

/// The processes of `table` holding any of `sockets`.
fn holders_of(sockets: &[String], table: &crate::sys::sweep::ProcessTable) -> Vec<i32> {
    if sockets.is_empty() {
        return Vec::new();
    }
    table
        .pids()
        .filter(|pid| holds_any(*pid, sockets))
        .collect()
}

/// Whether process `pid` has any of `sockets` open.
fn holds_any(pid: i32, sockets: &[String]) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| {
                sockets
                    .iter()
                    .any(|socket| target.as_os_str() == socket.as_str())
            })
    })
}

/// The inodes of the sockets listening on `port`, from `/proc/net/tcp*`:
/// where the kernel cannot be asked directly.
fn listening_in_proc(port: u16) -> Vec<String> {
    // The tables also list every connection in TIME_WAIT; only lines
    // naming the port are split into fields.
    let local_port = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs_err::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| line.contains(&local_port))
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    let listening = *fields.get(3)? == "0A";
                    (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                        .then(|| fields.get(9).map(|inode| (*inode).to_owned()))?
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Holds `port` with a listener that answers 200 to anything, as another
/// process would; for the `steal-port` failpoint of the fault tests. Only the
/// first call of a run steals.
pub(crate) fn occupy_once(port: u16) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) else {
        return;
    };
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().filter_map(Result::ok) {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
}

impl RunningService {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the service died while serving (it should outlive its scenario),
    /// waiting up to `patience` for it to be seen exiting, or for it to show
    /// that it lives on by answering its health check again: a service whose
    /// crash stayed inside one request (a panicking handler) would otherwise
    /// cost every such run the whole `patience`. A process on its way out may
    /// still answer for a moment, so it is asked only after `SETTLE`.
    pub(crate) async fn exit_status_within(
        &self,
        patience: Duration,
        client: &reqwest::Client,
    ) -> Option<std::process::ExitStatus> {
        const SETTLE: Duration = Duration::from_millis(200);
        let begun = Instant::now();
        let exited = || {
            self.process
                .child
                .as_ref()
                .and_then(|child| child.try_exit().ok().flatten())
        };
        loop {
            let status = exited();
            if status.is_some() || begun.elapsed() >= patience {
                return status;
            }
            if begun.elapsed() >= SETTLE && self.answers_health(client).await {
                return exited();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The health path that answered at start-up answers 2xx now.
    async fn answers_health(&self, client: &reqwest::Client) -> bool {
        let asked = client
            .get(format!("{}{}", self.base_url, self.healthy_path))
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        asked.is_ok_and(|answer| answer.status().is_success())
    }

    /// Stops the process group (SIGTERM, grace, SIGKILL) off the async threads,
    /// then kills whatever the service started that left the group (`setsid`),
    /// and says what that was (a leak to report) and whether the log is whole.
    pub(crate) async fn stop(self) -> Stopped {
        let mut process = self.process;
        tokio::task::spawn_blocking(move || process.shut_down())
            .await
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_names_the_listeners_the_kernel_does() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let asked: Vec<String> = crate::sys::listening::inodes(port)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(asked.len(), 1);
        assert_eq!(listening_in_proc(port), asked);
    }

    #[test]
    fn the_owner_of_a_listening_port_is_found_by_process_group() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let ours = nix::unistd::getpgrp().as_raw() as u32;
        assert_eq!(port_holder(port, ours, "no marker"), Holder::Service);
        // Any other group, without the service's marker, does not hold it.
        assert_eq!(
            port_holder(port, ours + 1_000_000, "no marker"),
            Holder::Other
        );
        drop(listener);
        assert_eq!(
            port_holder(port, ours, "no marker"),
            Holder::Unknown,
            "nobody listens any more"
        );
    }

    #[test]
    fn placeholders_are_filled_in_one_pass() {
        let placeholders = Placeholders {
            values: BTreeMap::from([
                ("secret", "s3cr3t".to_owned()),
                ("service_dir", "/tmp/{secret}/x".to_owned()),
            ]),
        };
        assert_eq!(
            placeholders.fill("{service_dir} {secret} {unknown}"),
            "/tmp/{secret}/x s3cr3t {unknown}"
        );
    }
}
