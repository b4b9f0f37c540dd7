//! Python services started from a preloaded interpreter.
//!
//! Most of a Python service's start-up is importing its libraries (Flask,
//! SQLAlchemy, bcrypt…), the same for every scenario run of a cell. A
//! preloader (`preload.py`, the idea of `multiprocessing`'s forkserver and
//! gunicorn's `--preload`) imports them once per cell, then forks a service
//! per run: the child takes the run's environment, folder, log and argv,
//! leads a process group of its own, dies with the preloader, and runs the
//! command as `python -m MODULE` or `python SCRIPT` would. What a run sees
//! differently (a library that read the environment at import time) is
//! found by the baseline's double replay, one copy cold and one forked.
//!
//! Only the harness can ask for a fork: the control channel is a socket
//! pair whose other end is the preloader's standard input, with no name any
//! other process could connect to, and each fork's connection is a socket
//! pair of its own whose end the preloader closes in every service it forks.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sys::process::{self, GroupChild};

/// The preloader's program, run with `python -c`.
const SOURCE: &str = include_str!("preload.py");

/// How long the preloader may take to say it forked a service.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);

/// What a service's command runs, when the preloader can run it the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `python -m MODULE ARGS`.
    Module(String),
    /// `python SCRIPT ARGS`, or a console script of the environment.
    Script(PathBuf),
}

/// The entry point and arguments of a filled command, when it starts
/// `python` of the environment on a module or script with no interpreter
/// options, or runs a console script whose first line names that python.
pub(crate) fn entry(argv: &[String], python: &Path) -> Option<(Entry, Vec<String>)> {
    let (program, rest) = argv.split_first()?;
    let program = Path::new(program);
    if same_file(program, python) {
        return match rest {
            [flag, module, args @ ..] if flag == "-m" => {
                Some((Entry::Module(module.clone()), args.to_vec()))
            }
            [script, args @ ..] if !script.starts_with('-') => {
                Some((Entry::Script(PathBuf::from(script)), args.to_vec()))
            }
            _ => None,
        };
    }
    let mut first_line = String::new();
    std::io::BufReader::new(std::fs::File::open(program).ok()?)
        .take(4096)
        .read_line(&mut first_line)
        .ok()?;
    let interpreter = first_line.strip_prefix("#!")?.trim();
    same_file(Path::new(interpreter), python)
        .then(|| (Entry::Script(program.to_owned()), rest.to_vec()))
}

/// Whether two paths name one file (a venv's `python` and `python3` do).
fn same_file(one: &Path, other: &Path) -> bool {
    one == other
        || matches!(
            (fs_err::canonicalize(one), fs_err::canonicalize(other)),
            (Ok(one), Ok(other)) if one == other
        )
}

/// A preloader serving one cell's scenario runs; stopped (with every
/// service it forked) when dropped.
pub(crate) struct Preloader {
    /// Declared first: stopped before the reader of its output is dropped.
    process: GroupChild,
    /// The harness's end of the control channel: a sequenced-packet socket
    /// pair, so that each fork request arrives whole whichever thread sends it.
    control: OwnedFd,
    grace: Duration,
    /// What it printed after it was ready (a crash's traceback), for errors.
    printed: std::sync::Arc<Mutex<String>>,
}

/// What the preloader says when it is ready: what it imported, and the
/// processes its imports left running.
#[derive(serde::Deserialize)]
struct Ready {
    #[allow(
        dead_code,
        reason = "said by the preloader; what matters is that it was said"
    )]
    imported: Vec<String>,
    #[serde(default)]
    started: Vec<String>,
}

/// The ready line, when `line` is the one that says the preloader is ready.
fn says_ready(line: &str) -> Option<Ready> {
    serde_json::from_str::<Ready>(line).ok()
}

impl Preloader {
    /// Starts `python` of a cell's environment on the service's source
    /// `root`, with the interpreter-level variables a cold start gets
    /// (`env`), and waits until it has imported and listens.
    pub(crate) fn start(
        python: &Path,
        root: &Path,
        env: BTreeMap<OsString, OsString>,
        timeout: Duration,
        grace: Duration,
    ) -> Result<Preloader, String> {
        let (control, theirs) = socket_pair(nix::sys::socket::SockType::SeqPacket)
            .map_err(|err| format!("cannot make the preloader's control channel: {err}"))?;
        let (reader, writer) =
            std::io::pipe().map_err(|err| format!("cannot make a pipe: {err}"))?;
        let expression = duct::cmd(python, [OsString::from("-c"), SOURCE.into(), root.into()])
            .dir("/")
            .stdin_file(theirs)
            .stderr_to_stdout()
            .stdout_file(writer)
            .full_env(env);
        let process = process::spawn(expression, grace)
            .map_err(|err| format!("cannot start `{}`: {err}", python.display()))?;
        let printed = std::sync::Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Option<Ready>>();
        let kept = printed.clone();
        // Its first JSON line says it is ready; any other line (a warning,
        // a traceback) is kept for the error that names why it is not.
        std::thread::spawn(move || {
            let mut waiting = Some(ready_tx);
            for line in std::io::BufReader::new(reader)
                .lines()
                .map_while(Result::ok)
            {
                if waiting.is_some()
                    && let Some(ready) = says_ready(&line)
                {
                    if let Some(waiting) = waiting.take() {
                        let _ = waiting.send(Some(ready));
                    }
                    continue;
                }
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() < 64 << 10 {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
            if let Some(waiting) = waiting {
                let _ = waiting.send(None);
            }
        });
        match ready_rx.recv_timeout(timeout) {
            // A process an import started would be the preloader's, outside
            // every service's group and leak check: services start cold.
            Ok(Some(ready)) if !ready.started.is_empty() => {
                return Err(format!(
                    "a library started a process as it was imported ({}); started cold, it is the service's own and its leak check sees it",
                    ready.started.join(", ")
                ));
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                let said = printed.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(format!(
                    "the preloader failed to start: {}",
                    crate::sys::log::tail(said.trim(), 5)
                ));
            }
            Err(_) => {
                return Err(format!(
                    "the preloader did not start within {}",
                    humantime::format_duration(timeout)
                ));
            }
        }
        Ok(Preloader {
            process,
            control,
            grace,
            printed,
        })
    }

    /// Forks a service: `entry` with `args`, in `cwd`, with exactly `env`,
    /// its output to `log`; in a PID namespace of its own when `namespaced`.
    pub(crate) fn fork(
        &self,
        entry: &Entry,
        args: &[String],
        env: &BTreeMap<OsString, OsString>,
        cwd: &Path,
        log: OwnedFd,
        namespaced: bool,
    ) -> Result<ForkedChild, String> {
        let text = |value: &OsString| {
            value
                .to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{value:?} is not UTF-8"))
        };
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(name, value)| Ok((text(name)?, text(value)?)))
            .collect::<Result<_, String>>()?;
        let (module, script) = match entry {
            Entry::Module(module) => (Some(module.clone()), None),
            Entry::Script(script) => (None, Some(script.display().to_string())),
        };
        let request = serde_json::json!({
            "module": module,
            "script": script,
            "args": args,
            "env": env,
            "cwd": cwd.display().to_string(),
            "namespace": namespaced,
        })
        .to_string();
        let mut message = u32::try_from(request.len())
            .map_err(|_| "the request is too long".to_owned())?
            .to_le_bytes()
            .to_vec();
        message.extend_from_slice(request.as_bytes());
        let broken = |err: &dyn std::fmt::Display| {
            let said = self.printed.lock().unwrap_or_else(|e| e.into_inner());
            format!(
                "the preloader did not fork the service: {err}{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!("; it said: {}", crate::sys::log::tail(said.trim(), 5))
                }
            )
        };
        let (ours, theirs) =
            socket_pair(nix::sys::socket::SockType::Stream).map_err(|err| broken(&err))?;
        // A signal the harness handles (a child's exit) interrupts a call
        // on a socket with a timeout even under SA_RESTART: each is retried.
        loop {
            match nix::sys::socket::sendmsg::<()>(
                self.control.as_raw_fd(),
                &[std::io::IoSlice::new(b"fork")],
                &[nix::sys::socket::ControlMessage::ScmRights(&[
                    theirs.as_raw_fd(),
                    log.as_raw_fd(),
                ])],
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(nix::errno::Errno::EINTR) => {}
                sent => {
                    sent.map_err(|err| broken(&err))?;
                    break;
                }
            }
        }
        drop((theirs, log));
        let mut stream = UnixStream::from(ours);
        stream.write_all(&message).map_err(|err| broken(&err))?;
        stream
            .set_read_timeout(Some(FORK_TIMEOUT))
            .map_err(|err| broken(&err))?;
        // No child exists to stop until the preloader names it: a
        // `ForkedChild` without its pid would stop group 0, the harness's own.
        let line = next_line(&mut stream).map_err(|err| broken(&err))?;
        let pid: i32 = line
            .strip_prefix("pid ")
            .and_then(|pid| pid.parse().ok())
            .filter(|pid| *pid > 1)
            .ok_or_else(|| broken(&line))?;
        process::register_group(pid);
        Ok(ForkedChild {
            stream,
            pid,
            grace: self.grace,
            namespaced,
            said: Mutex::new((Vec::new(), None)),
        })
    }

    /// Whether the preloader is still serving.
    pub(crate) fn alive(&self) -> bool {
        matches!(self.process.try_exit(), Ok(None))
    }
}

/// A connected pair of Unix sockets, closed on exec: neither end reaches a
/// program the harness starts unless handed to it on purpose.
fn socket_pair(kind: nix::sys::socket::SockType) -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        kind,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
}

/// The next line the preloader sent on `stream` (blocking).
fn next_line(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) if byte[0] == b'\n' => return Ok(String::from_utf8_lossy(&line).into_owned()),
            Ok(_) => line.push(byte[0]),
        }
    }
}

/// A service the preloader forked, leader of its own process group. The
/// preloader is its parent; the connection says when and how it ended.
#[derive(Debug)]
pub(crate) struct ForkedChild {
    stream: UnixStream,
    pid: i32,
    grace: Duration,
    namespaced: bool,
    /// What the connection has said so far, and the exit status once known.
    said: Mutex<(Vec<u8>, Option<ExitStatus>)>,
}

impl ForkedChild {
    pub(crate) fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The exit status, if the service has ended. A preloader gone without
    /// saying counts as the service killed (it dies with the preloader).
    pub(crate) fn try_exit(&self) -> std::io::Result<Option<ExitStatus>> {
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = said.1 {
            return Ok(Some(status));
        }
        self.stream.set_nonblocking(true)?;
        let mut buffer = [0u8; 256];
        let ended = loop {
            match (&self.stream).read(&mut buffer) {
                Ok(0) => break true,
                Ok(read) => said.0.extend_from_slice(&buffer[..read]),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break false,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        };
        let text = String::from_utf8_lossy(&said.0).into_owned();
        let status = text
            .lines()
            .find_map(|line| line.strip_prefix("exit ")?.parse::<i32>().ok())
            .map(ExitStatus::from_raw)
            .or_else(|| {
                ended.then(|| ExitStatus::from_raw(nix::sys::signal::Signal::SIGKILL as i32))
            });
        said.1 = status;
        Ok(status)
    }

    /// Stops its group as a spawned service's is stopped: SIGTERM, grace,
    /// SIGKILL; then waits (briefly) to hear that it ended.
    pub(crate) fn stop(&self) {
        let running = || matches!(self.try_exit(), Ok(None));
        process::stop_group(self.pid, self.grace, self.namespaced, running);
        let deadline = Instant::now() + Duration::from_secs(2);
        while running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ForkedChild {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_the_preloader_runs_the_same_way_are_told_from_others() {
        let python = Path::new("/venv/bin/python");
        let argv = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            entry(&argv(&["/venv/bin/python", "-m", "app", "--debug"]), python),
            Some((Entry::Module("app".into()), argv(&["--debug"])))
        );
        assert_eq!(
            entry(&argv(&["/venv/bin/python", "serve.py", "8000"]), python),
            Some((Entry::Script("serve.py".into()), argv(&["8000"])))
        );
        // Interpreter options change how it runs: started cold.
        assert_eq!(
            entry(&argv(&["/venv/bin/python", "-X", "dev", "app.py"]), python),
            None
        );
        // Another program (a cargo binary, a shell wrapper) starts as ever.
        assert_eq!(entry(&argv(&["/bin/sh", "-c", "exec app"]), python), None);
    }

    /// A preloader on the machine's `python3`, serving the script folder `dir`.
    /// Forks `serve.py` of `dir`, its output to `run.log` there.
    fn fork_serve_py(preloader: &Preloader, dir: &Path) -> Result<ForkedChild, String> {
        let log = std::fs::File::create(dir.join("run.log")).unwrap();
        preloader.fork(
            &Entry::Script("serve.py".into()),
            &[],
            &BTreeMap::new(),
            dir,
            log.into(),
            false,
        )
    }

    fn preloader(dir: &Path) -> Preloader {
        let env = BTreeMap::from([(
            OsString::from("PATH"),
            std::env::var_os("PATH").unwrap_or_default(),
        )]);
        let python = which_python3();
        Preloader::start(
            &python,
            dir,
            env,
            Duration::from_secs(30),
            Duration::from_secs(2),
        )
        .unwrap()
    }

    fn which_python3() -> PathBuf {
        std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|dir| dir.join("python3"))
            .find(|path| path.is_file())
            .expect("python3 on PATH")
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_forked_service_gets_its_run_and_its_exit_status_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("serve.py"),
            "import os, sys\nprint(os.getcwd(), sys.argv[1:], os.environ['GREETING'], \
             'PATH' in os.environ, flush=True)\nsys.exit(3)\n",
        )
        .unwrap();
        let preloader = preloader(dir.path());
        let log = dir.path().join("run.log");
        let env = BTreeMap::from([(OsString::from("GREETING"), OsString::from("hello"))]);
        let child = preloader
            .fork(
                &Entry::Script("serve.py".into()),
                &["--port".to_owned(), "8000".to_owned()],
                &env,
                dir.path(),
                std::fs::File::create(&log).unwrap().into(),
                false,
            )
            .unwrap();
        wait_for("the exit status", || {
            matches!(child.try_exit(), Ok(Some(_)))
        });
        assert_eq!(child.try_exit().unwrap().unwrap().code(), Some(3));
        let printed = std::fs::read_to_string(&log).unwrap();
        let cwd = fs_err::canonicalize(dir.path()).unwrap();
        assert_eq!(
            printed.trim(),
            format!("{} ['--port', '8000'] hello False", cwd.display()),
            "its own folder, argv and exactly its environment"
        );
    }

    /// The inodes of the sockets `pid` holds open.
    fn socket_inodes(pid: u32) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_string_lossy().into_owned();
                Some(
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn no_other_process_can_ask_the_preloader_for_a_fork() {
        let dir = tempfile::tempdir().unwrap();
        // The service lists the sockets it holds, then exits.
        std::fs::write(
            dir.path().join("serve.py"),
            "import os\nfor fd in sorted(os.listdir('/proc/self/fd')):\n    try:\n        \
             target = os.readlink(f'/proc/self/fd/{fd}')\n    except OSError:\n        \
             continue\n    if target.startswith('socket:'):\n        print('holds', target, flush=True)\n",
        )
        .unwrap();
        let preloader = preloader(dir.path());
        let preloader_pid = preloader.process.pid();
        let cmdline = std::fs::read(format!("/proc/{preloader_pid}/cmdline")).unwrap();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("upgrade-check-preload"),
            "its command line names no socket"
        );
        // Every socket it holds is unnamed and does not listen: there is
        // nothing in /proc/net/unix (world-readable) for another user to
        // connect to. Columns: Num RefCount Protocol Flags Type St Inode Path.
        let inodes = socket_inodes(preloader_pid);
        assert!(!inodes.is_empty(), "it holds its control channel");
        let table = std::fs::read_to_string("/proc/net/unix").unwrap();
        for line in table.lines().skip(1) {
            let columns: Vec<&str> = line.split_whitespace().collect();
            if !inodes
                .iter()
                .any(|inode| columns.get(6) == Some(&inode.as_str()))
            {
                continue;
            }
            const LISTENING: u32 = 0x0001_0000;
            let flags = u32::from_str_radix(columns[3], 16).unwrap();
            assert_eq!(flags & LISTENING, 0, "a preloader's socket listens: {line}");
            assert_eq!(
                columns.get(7),
                None,
                "a preloader's socket has a name: {line}"
            );
        }
        // The service it forks holds no socket at all: not the control
        // channel, not its own connection, not another run's.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(
            other.path().join("serve.py"),
            "import time\ntime.sleep(30)\n",
        )
        .unwrap();
        let _other_run = fork_serve_py(&preloader, other.path()).unwrap();
        let child = fork_serve_py(&preloader, dir.path()).unwrap();
        wait_for("the exit status", || {
            matches!(child.try_exit(), Ok(Some(_)))
        });
        assert_eq!(child.try_exit().unwrap().unwrap().code(), Some(0));
        let printed = std::fs::read_to_string(dir.path().join("run.log")).unwrap();
        assert!(
            !printed.contains("holds"),
            "the service holds sockets:\n{printed}"
        );
    }

    #[test]
    fn a_process_a_library_starts_as_it_is_imported_turns_the_preloader_down_and_dies() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        let made = std::process::Command::new(which_python3())
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success());
        let python = venv.join("bin/python");
        let site = std::process::Command::new(&python)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ])
            .output()
            .unwrap();
        let site = PathBuf::from(String::from_utf8(site.stdout).unwrap().trim());
        std::fs::write(
            site.join("daemonlib.py"),
            "import subprocess\nsubprocess.Popen(['sleep', '61'])\n",
        )
        .unwrap();
        let source = dir.path().join("service");
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("serve.py"), "import daemonlib\n").unwrap();
        let env = BTreeMap::from([(
            OsString::from("PATH"),
            std::env::var_os("PATH").unwrap_or_default(),
        )]);
        let refused = Preloader::start(
            &python,
            &source,
            env,
            Duration::from_secs(30),
            Duration::from_secs(2),
        )
        .err()
        .expect("no preloader for a service whose imports start a process");
        // Named by its command line, or by its name when the preloader
        // looked between the process's fork and its exec.
        assert!(
            refused.contains("a library started a process as it was imported"),
            "{refused}"
        );
        let pid: u32 = refused
            .split(" (")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|pid| pid.parse().ok())
            .expect("the pid is named");
        wait_for("the import's process to die", || {
            !crate::sys::sweep::is_running(pid)
        });
    }

    #[test]
    fn a_preloader_that_dies_before_naming_its_child_fails_the_fork_and_signals_no_one_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("serve.py"), "import time\ntime.sleep(60)\n").unwrap();
        let preloader = preloader(dir.path());
        let pid = nix::unistd::Pid::from_raw(preloader.process.pid() as i32);
        // Stopped, it takes the request but cannot answer; then it dies.
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        });
        let forked = fork_serve_py(&preloader, dir.path());
        killer.join().unwrap();
        // Stopping a child whose pid never came would signal group 0: this
        // test process's own, which would not be here to see the error.
        assert!(forked.is_err(), "no child was named");
    }

    #[test]
    fn stopping_kills_the_forked_group_and_the_preloader_takes_its_orphans_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let daemon_pid = dir.path().join("daemon.pid");
        std::fs::write(
            dir.path().join("serve.py"),
            format!(
                "import os, time\nif os.fork() == 0:\n    os.setsid()\n    \
                 open({:?}, 'w').write(str(os.getpid()))\n    time.sleep(60)\n\
                 time.sleep(60)\n",
                daemon_pid.display().to_string()
            ),
        )
        .unwrap();
        let preloader = preloader(dir.path());
        let child = fork_serve_py(&preloader, dir.path()).unwrap();
        let leader = child.pid();
        wait_for("the daemon", || {
            std::fs::read_to_string(&daemon_pid).is_ok_and(|pid| !pid.is_empty())
        });
        let daemon: u32 = std::fs::read_to_string(&daemon_pid)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            crate::sys::sweep::process_group(leader as i32),
            Some(leader as i32),
            "the service leads a group of its own"
        );
        // SIGTERM ends the service, whose group it leads; the status says so.
        child.stop();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&child.try_exit().unwrap().unwrap()),
            Some(15)
        );
        assert!(!crate::sys::sweep::is_running(leader));
        // The daemon left the group; the preloader, its subreaper, kills it as it stops.
        assert!(crate::sys::sweep::is_running(daemon));
        drop(child);
        drop(preloader);
        wait_for("the orphan to die", || {
            !crate::sys::sweep::is_running(daemon)
        });
    }
}
