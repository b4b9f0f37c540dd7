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

use crate::process::{self, GroupChild};

/// Values for the config's `{placeholders}`.
#[derive(Debug, Clone)]
pub struct Placeholders {
    pub values: BTreeMap<&'static str, String>,
}

impl Placeholders {
    pub fn fill(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.values {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }
}

/// How to start one service instance.
pub struct Launch<'a> {
    pub command: &'a [String],
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
    pub health_path: &'a str,
    pub startup_timeout: Duration,
    pub grace: Duration,
}

/// Names one service start in the environment of the service and all its
/// descendants, so that those which leave its process group can be found.
const SERVICE_MARKER: &str = "UPGRADE_CHECK_SERVICE";

/// A service that answered its health check.
pub struct RunningService {
    child: GroupChild,
    pub base_url: String,
    pub log: PathBuf,
}

/// Why a service never became ready.
#[derive(Debug, Clone)]
pub struct StartupFailure {
    pub reason: String,
    pub log: PathBuf,
    /// Set when the service exited on its own (rather than never answering).
    pub exit_status: Option<std::process::ExitStatus>,
    /// Another process holds the port: worth another try on another port.
    pub port_taken: bool,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Spawns the service and waits until its health check answers 2xx.
pub async fn start(
    launch: Launch<'_>,
    client: &reqwest::Client,
) -> Result<RunningService, StartupFailure> {
    let base_url = format!("http://127.0.0.1:{}", launch.port);
    let failure = |reason: String| StartupFailure {
        reason,
        log: launch.log.to_owned(),
        exit_status: None,
        port_taken: false,
    };
    let argv: Vec<String> = launch
        .command
        .iter()
        .map(|arg| launch.placeholders.fill(arg))
        .collect();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let bin = launch.bin.to_owned();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))
        .map_err(|err| failure(format!("cannot build PATH: {err}")))?;
    let mut expression = duct::cmd(&argv[0], &argv[1..])
        .dir(launch.cwd)
        .stdin_null()
        .stderr_to_stdout()
        .stdout_path(launch.log)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PATH", path)
        .env(SERVICE_MARKER, launch.log)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        // Deprecations are the early signal of the next break: print each once.
        // A profile may set its own.
        .env("PYTHONWARNINGS", "default");
    if let Some(venv) = launch.venv {
        expression = expression.env("VIRTUAL_ENV", venv);
    }
    for (name, value) in launch.env {
        expression = expression.env(name, launch.placeholders.fill(value));
    }
    let child = process::spawn(expression, launch.grace)
        .map_err(|err| failure(format!("cannot start `{}`: {err}", argv[0])))?;
    let health = format!("{base_url}{}", launch.health_path);
    let started = Instant::now();
    let mut last_answer = "no answer yet".to_owned();
    loop {
        if let Ok(Some(status)) = child.try_exit() {
            let in_use = log_tail(launch.log, 50).contains("Address already in use");
            return Err(StartupFailure {
                exit_status: Some(status),
                port_taken: in_use,
                ..failure(format!("the service exited during startup ({status})"))
            });
        }
        match client
            .get(&health)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => break,
            Ok(response) => last_answer = format!("last answer {}", response.status()),
            Err(_) => {}
        }
        if started.elapsed() >= launch.startup_timeout {
            return Err(failure(format!(
                "not healthy within {}: GET {} ({last_answer})",
                humantime::format_duration(launch.startup_timeout),
                launch.health_path
            )));
        }
        // Often enough that waiting adds little to a start-up of a few hundred ms.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Something answered; make sure it was the service, not whoever holds the port.
    if listener_in_group(launch.port, child.pid()) == Some(false) {
        drop(child);
        return Err(StartupFailure {
            port_taken: true,
            ..failure(format!(
                "port {} answered, but another process holds it",
                launch.port
            ))
        });
    }
    Ok(RunningService {
        child,
        base_url,
        log: launch.log.to_owned(),
    })
}

/// Whether the process group `pgid` holds the socket listening on loopback `port`.
///
/// `None` when that cannot be told (no `/proc`, or no listener found).
fn listener_in_group(port: u16, pgid: u32) -> Option<bool> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs_err::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    let listening = *fields.get(3)? == "0A";
                    (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                        .then(|| fields.get(9).map(|inode| (*inode).to_owned()))?
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let sockets: Vec<String> = inodes
        .iter()
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    let mut members = fs_err::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let group = crate::sweep::process_group(pid)?;
            (u32::try_from(group).ok()? == pgid).then_some(pid)
        });
    Some(members.any(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| {
                    sockets
                        .iter()
                        .any(|socket| target.as_os_str() == socket.as_str())
                })
        })
    }))
}

/// Holds `port` with a listener that answers 200 to anything, as another
/// process would; for the `steal-port` failpoint of the fault tests. Only the
/// first call of a run steals.
pub fn occupy_once(port: u16) {
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
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Whether the service died while serving (it should outlive its scenario),
    /// waiting up to `patience` for it to be seen exiting.
    pub async fn exit_status_within(&self, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            let status = self.child.try_exit().ok().flatten();
            if status.is_some() || Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the process group (SIGTERM, grace, SIGKILL) off the async threads,
    /// then kills whatever the service started that left the group (`setsid`),
    /// and says what that was: a leak to report.
    pub async fn stop(self) -> Vec<String> {
        let child = self.child;
        let marker = self.log.display().to_string();
        tokio::task::spawn_blocking(move || {
            drop(child);
            crate::sweep::processes_with(SERVICE_MARKER)
                .into_iter()
                .filter(|(_, value)| *value == marker)
                .map(|(pid, _)| {
                    let name = crate::sweep::command_name(pid);
                    crate::sweep::kill_with_group(pid);
                    format!("pid {pid} ({name}) left the service's process group and outlived it; killed")
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }
}

/// Terminal colour and cursor sequences, which mean nothing in a report.
static ANSI_ESCAPE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").expect("valid regex"));

/// A log file as the service wrote it (lossy UTF-8; empty if unreadable).
pub fn read_log(path: &Path) -> String {
    fs_err::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last `lines` lines of a log's text, without terminal escapes, for reports.
pub fn tail(log: &str, lines: usize) -> String {
    let text = ANSI_ESCAPE.replace_all(log, "");
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last `lines` lines of a log file, without terminal escapes.
pub fn log_tail(path: &Path, lines: usize) -> String {
    tail(&read_log(path), lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_of_a_listening_port_is_found_by_process_group() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let ours = nix::unistd::getpgrp().as_raw() as u32;
        assert_eq!(listener_in_group(port, ours), Some(true));
        // Any other group does not hold it.
        assert_eq!(listener_in_group(port, ours + 1_000_000), Some(false));
        drop(listener);
        assert_eq!(
            listener_in_group(port, ours),
            None,
            "nobody listens any more"
        );
    }
}
