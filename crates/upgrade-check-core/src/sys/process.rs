//! Child processes, each in a process group of its own that the harness kills.
//!
//! Every child the harness starts (uv, pip, the service) goes through
//! [`spawn`]; the group is registered so that a signal handler can kill all
//! of them with [`kill_all`], and [`GroupChild`] kills its group when dropped.
//! Nothing here goes through a shell: programs get their arguments as a list.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Process groups started and not yet known to be gone.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Set in every child's environment, so that a later run can tell what a
/// dead run left behind (see `sweep`).
pub const RUN_MARKER: &str = "UPGRADE_CHECK_RUN";

/// This run's marker value: its scratch folder.
static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this run in the environment of every child started from now on.
pub fn mark_run(scratch: &std::path::Path) {
    let _ = RUN.set(scratch.display().to_string());
}

/// This run's marker, once [`mark_run`] has set it.
pub fn run_marker() -> Option<&'static str> {
    RUN.get().map(String::as_str)
}

/// The command that starts a program in a PID namespace of its own, where
/// the platform allows it (root, and util-linux's `unshare`): when the
/// service's main process ends, the kernel kills everything it started, even
/// a double-forked daemon that cleared its environment and closed its files.
///
/// `unshare` forks the service as the namespace's init and waits for it with
/// SIGTERM blocked, so SIGTERM reaches the service alone; see
/// [`GroupChild::stop`] for why an init without a handler is killed at once.
pub fn pid_namespace() -> Option<&'static [&'static str]> {
    const PREFIX: &[&str] = &["unshare", "--pid", "--fork", "--kill-child", "--"];
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        std::env::var_os("UPGRADE_CHECK_NO_PID_NAMESPACE").is_none()
            && nix::unistd::geteuid().is_root()
            && std::process::Command::new(PREFIX[0])
                .args(&PREFIX[1..])
                .arg("true")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
    });
    available.then_some(PREFIX)
}

/// A running child, leader of its own process group.
#[derive(Debug)]
pub struct GroupChild {
    handle: duct::Handle,
    pgid: i32,
    grace: Duration,
    /// The leader is `unshare`, whose child is a PID namespace's init.
    namespaced: bool,
}

/// Starts `expression` as the leader of a new process group.
///
/// A new group keeps the terminal's Ctrl-C away from the child (the harness
/// decides when it stops) and lets the harness kill its grandchildren too.
pub fn spawn(expression: duct::Expression, grace: Duration) -> io::Result<GroupChild> {
    spawn_in_group(expression, grace, false, true)
}

/// [`spawn`] for a service, started under [`pid_namespace`]'s prefix when
/// that is available.
pub fn spawn_service(expression: duct::Expression, grace: Duration) -> io::Result<GroupChild> {
    spawn_in_group(expression, grace, pid_namespace().is_some(), true)
}

/// `killed_on_signal`: whether [`kill_all`] kills the group.
fn spawn_in_group(
    expression: duct::Expression,
    grace: Duration,
    namespaced: bool,
    killed_on_signal: bool,
) -> io::Result<GroupChild> {
    let expression = match RUN.get() {
        Some(run) => expression.env(RUN_MARKER, run),
        None => expression,
    };
    let handle = expression
        .before_spawn(|command| {
            command.process_group(0);
            die_with_parent(command);
            Ok(())
        })
        .unchecked()
        .start()?;

    let pid = handle.pids().first().copied().unwrap_or_default();
    let pgid = i32::try_from(pid).map_err(io::Error::other)?;
    if killed_on_signal {
        register_group(pgid);
    }
    Ok(GroupChild {
        handle,
        pgid,
        grace,
        namespaced,
    })
}

/// Has the kernel SIGKILL the child when the thread that started it dies, so
/// that a harness killed with SIGKILL does not leave its children running.
///
/// The signal follows the starting *thread*: the runtime keeps its threads for
/// the whole run (see `lib.rs`), so that fires only when the harness dies.
#[allow(
    unsafe_code,
    reason = "pre_exec is unsafe; the hook only calls prctl, which is async-signal-safe"
)]
fn die_with_parent(command: &mut std::process::Command) {
    // SAFETY: the closure runs between fork and exec and calls only prctl(2).
    unsafe {
        command
            .pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from));
    }
}

/// Tells the commands some threads run that the run no longer needs them:
/// a run that stops early kills the builds still going rather than wait
/// for them to finish.
#[derive(Clone, Debug, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// From now on, every command run under [`Cancel::watching`] is killed.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `work` on this thread with every command it runs to completion
    /// ([`run_captured`] and the like) killed once this is cancelled: they
    /// then fail with [`io::ErrorKind::Interrupted`].
    pub fn watching<T>(&self, work: impl FnOnce() -> T) -> T {
        struct Unwatch;
        impl Drop for Unwatch {
            fn drop(&mut self) {
                WATCHED.with(|watched| watched.borrow_mut().take());
            }
        }
        WATCHED.with(|watched| *watched.borrow_mut() = Some(self.clone()));
        let _unwatch = Unwatch;
        work()
    }
}

thread_local! {
    /// What this thread's commands are cancelled by, while it is watched.
    static WATCHED: std::cell::RefCell<Option<Cancel>> = const { std::cell::RefCell::new(None) };
}

/// Waits for `child` until it exits, `timeout` passes (`Ok(None)`), or the
/// thread's [`Cancel`] is cancelled (an error; the group is killed on drop).
fn wait_unless_cancelled(child: &GroupChild, timeout: Duration) -> io::Result<Option<Output>> {
    let Some(cancel) = WATCHED.with(|watched| watched.borrow().clone()) else {
        return Ok(child.handle.wait_timeout(timeout)?.cloned());
    };
    let deadline = Instant::now() + timeout;
    loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        if let Some(output) = child.handle.wait_timeout(slice)? {
            return Ok(Some(output.clone()));
        }
        if cancel.is_cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "stopped: the run no longer needs it",
            ));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

/// Runs `expression` to completion with captured output, killing it at `timeout`.
///
/// Returns `Ok(None)` when the timeout expired.
pub fn run_captured(expression: duct::Expression, timeout: Duration) -> io::Result<Option<Output>> {
    captured(expression, timeout, true)
}

/// Runs `expression` to its end or `timeout`, output captured; `killed_on_signal` as for [`spawn_in_group`].
fn captured(
    expression: duct::Expression,
    timeout: Duration,
    killed_on_signal: bool,
) -> io::Result<Option<Output>> {
    let child = spawn_in_group(
        expression.stdout_capture().stderr_capture(),
        Duration::from_secs(2),
        false,
        killed_on_signal,
    )?;
    let finished = wait_unless_cancelled(&child, timeout);
    drop(child);
    finished
}

/// [`run_captured`] for a short client command whose effect on a server
/// must be known (`createdb`, `dropdb`): a signal to the harness does not
/// kill it halfway, after the server acted and before it said so; its
/// timeout still does.
pub fn run_captured_uninterrupted(
    expression: duct::Expression,
    timeout: Duration,
) -> io::Result<Option<Output>> {
    captured(expression, timeout, false)
}

/// [`run_captured`] for a step that must succeed: an error names `what`
/// when it times out or fails, with the end of what it printed.
pub fn run_checked(
    expression: duct::Expression,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<Output> {
    checked(run_captured(expression, timeout), timeout, what)
}

/// [`run_checked`] for a command [`run_captured_uninterrupted`] runs.
pub fn run_checked_uninterrupted(
    expression: duct::Expression,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<Output> {
    checked(
        run_captured_uninterrupted(expression, timeout),
        timeout,
        what,
    )
}

fn checked(
    finished: io::Result<Option<Output>>,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<Output> {
    let output = finished
        .with_context(|| format!("cannot start {what}"))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{what} did not finish within {}",
                humantime::format_duration(timeout)
            )
        })?;
    if !output.status.success() {
        let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
        printed.push_str(&String::from_utf8_lossy(&output.stderr));
        anyhow::bail!(
            "{what} failed ({}):\n{}",
            output.status,
            crate::sys::log::tail(printed.trim(), 40)
        );
    }
    Ok(output)
}

impl GroupChild {
    pub fn pid(&self) -> u32 {
        self.pgid as u32
    }

    /// The exit status, if the leader has exited.
    pub fn try_exit(&self) -> io::Result<Option<ExitStatus>> {
        Ok(self.handle.try_wait()?.map(|output| output.status))
    }

    /// Stops the whole group: SIGTERM, then SIGKILL after the grace period.
    ///
    /// Grandchildren that outlive the leader are killed with the group.
    pub fn stop(&self) {
        stop_group(self.pgid, self.grace, self.namespaced, || {
            matches!(self.handle.try_wait(), Ok(None))
        });
        let _ = self.handle.wait();
    }
}

/// Stops group `pgid` whose leader `running` says is alive: SIGTERM, the
/// grace period, then SIGKILL for whatever is left, and forgets the group.
pub fn stop_group(pgid: i32, grace: Duration, namespaced: bool, running: impl Fn() -> bool) {
    // 0 is the caller's own group and 1 init's: never a child's.
    if pgid <= 1 {
        return;
    }
    let group = Pid::from_raw(pgid);
    if running() {
        let _ = killpg(group, Signal::SIGTERM);
        if namespaced && !init_heeds_sigterm(pgid) {
            // A namespace's init ignores signals it has no handler for;
            // outside one SIGTERM would have ended it at once, so SIGKILL
            // now is the same outcome without waiting out the grace.
            let _ = killpg(group, Signal::SIGKILL);
        }
        // Most services are gone within a millisecond or two of SIGTERM:
        // look soon, then less often.
        let deadline = Instant::now() + grace;
        let mut pause = Duration::from_millis(1);
        while Instant::now() < deadline && running() {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
            // An init that caught SIGTERM only to raise it again with no
            // handler (Node does, to restore the terminal first) ignores
            // the raised one: it would wait out the whole grace.
            if namespaced && !init_heeds_sigterm(pgid) {
                let _ = killpg(group, Signal::SIGKILL);
            }
        }
    }
    // The leader may be gone while the rest of its group lives on.
    let _ = killpg(group, Signal::SIGKILL);
    forget_group(pgid);
}

/// Counts group `pgid`, which the harness did not spawn itself (a service
/// forked by a preloader), among those [`kill_all`] kills.
pub fn register_group(pgid: i32) {
    if pgid <= 1 {
        return;
    }
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pgid);
}

/// Group `pgid` is gone.
fn forget_group(pgid: i32) {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pgid);
}

/// Whether the PID namespace's init under leader `pgid` (the leader's child)
/// catches or ignores SIGTERM (`SigCgt`/`SigIgn` in its status); true when
/// that cannot be read.
fn init_heeds_sigterm(pgid: i32) -> bool {
    let children = format!("/proc/{pgid}/task/{pgid}/children");
    let Some(init) = std::fs::read_to_string(children)
        .ok()
        .and_then(|pids| pids.split_whitespace().next().map(str::to_owned))
    else {
        return true;
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{init}/status")) else {
        return true;
    };
    let sigterm = 1u64 << (Signal::SIGTERM as u64 - 1);
    status
        .lines()
        .filter_map(|line| {
            let mask = line
                .strip_prefix("SigCgt:")
                .or_else(|| line.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .any(|mask| mask & sigterm != 0)
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills every process group the harness started; for signal handlers.
pub fn kill_all() {
    let groups = LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid a test's script wrote into `pid_file`, once it is there.
    fn recorded_pid(pid_file: &std::path::Path) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pid_file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        std::fs::read_to_string(pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// `pid` is gone within five seconds.
    fn assert_gone_soon(pid: u32) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while crate::sys::sweep::is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !crate::sys::sweep::is_running(pid),
            "{pid} outlived its group"
        );
    }

    #[test]
    fn dropping_a_child_kills_its_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        // The leader starts a grandchild in the background and records its pid.
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let child = spawn(duct::cmd("sh", ["-c", &script]), Duration::from_millis(200)).unwrap();
        let grandchild = recorded_pid(&pid_file);
        let leader = child.pid();
        assert!(crate::sys::sweep::is_running(leader) && crate::sys::sweep::is_running(grandchild));
        drop(child);
        assert!(!crate::sys::sweep::is_running(leader));
        assert_gone_soon(grandchild);
    }

    /// Node's way with SIGTERM: caught, the handler dropped, the signal
    /// raised again. A namespace's init ignores the raised one.
    #[test]
    fn an_init_that_drops_its_sigterm_handler_is_not_waited_on_for_the_grace() {
        if pid_namespace().is_none() {
            // Outside a namespace the raised SIGTERM ends it like any process.
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            "import os, signal, time\n\
             def again(signum, frame):\n\
             \x20   signal.signal(signal.SIGTERM, signal.SIG_DFL)\n\
             \x20   os.kill(os.getpid(), signal.SIGTERM)\n\
             signal.signal(signal.SIGTERM, again)\n\
             open({:?}, 'w').close()\n\
             time.sleep(120)\n",
            ready.display().to_string()
        );
        let mut command = pid_namespace().unwrap().to_vec();
        command.extend(["python3", "-c", &script]);
        let child = spawn_service(
            duct::cmd(command[0], &command[1..]),
            Duration::from_secs(60),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the script never got ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        let stopping = Instant::now();
        child.stop();
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "waited {:?} of the 60 s grace",
            stopping.elapsed()
        );
    }

    #[test]
    fn run_captured_times_out_and_kills() {
        let started = Instant::now();
        let output = run_captured(duct::cmd("sleep", ["30"]), Duration::from_millis(200)).unwrap();
        assert!(output.is_none());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_cancelled_command_and_its_grandchildren_are_killed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let cancel = Cancel::default();
        let cancelling = cancel.clone();
        let watched = std::thread::spawn(move || {
            let finished = cancelling.watching(|| {
                run_captured(duct::cmd("sh", ["-c", &script]), Duration::from_secs(60))
            });
            // Once `watching` returns, the thread's commands are its own again.
            let unwatched = WATCHED.with(|watched| watched.borrow().is_none());
            (finished, unwatched)
        });
        let grandchild = recorded_pid(&pid_file);
        let cancelled = Instant::now();
        cancel.cancel();
        let (finished, unwatched) = watched.join().unwrap();
        assert!(unwatched);
        assert_eq!(
            finished.unwrap_err().kind(),
            io::ErrorKind::Interrupted,
            "a cancelled command is an error, not a result"
        );
        assert!(cancelled.elapsed() < Duration::from_secs(5));
        assert_gone_soon(grandchild);
    }

    #[test]
    fn run_captured_returns_output_and_status() {
        let output = run_captured(
            duct::cmd("sh", ["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap()
        .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    }
}
