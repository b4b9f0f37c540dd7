//! Signals in the middle of a run leave no process, port, cluster or temp dir
//! behind, and a report marked cancelled is written.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{TestContext, alive};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What the harness said it started, read from its progress lines.
#[derive(Default)]
struct Started {
    services: Vec<(u32, u16)>,
    cluster: Option<(String, u64)>,
}

impl Started {
    fn read(&mut self, line: &str) {
        if let Some(rest) = line.split("PostgreSQL: cluster ").nth(1) {
            let dir = rest.split(' ').next().unwrap().to_owned();
            let pid = rest
                .split("server pid ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            self.cluster = Some((dir, pid.parse().unwrap()));
        }
        if let Some(rest) = line.split(": service pid ").nth(1) {
            let mut words = rest.split(' ');
            let pid = words.next().unwrap().parse().unwrap();
            let port = words.nth(2).unwrap().parse().unwrap();
            self.services.push((pid, port));
        }
    }
}

/// Starts the harness on the default matrix and returns once a service is
/// up and the PostgreSQL cluster (which starts beside the first runs) too.
fn start_and_wait_for_a_service(ctx: &TestContext) -> (Child, mpsc::Receiver<String>, Started) {
    start_with_and_wait_for_a_service(ctx, &[])
}

/// The same with `args`.
fn start_with_and_wait_for_a_service(
    ctx: &TestContext,
    args: &[&str],
) -> (Child, mpsc::Receiver<String>, Started) {
    start_and_wait(ctx.command(args))
}

/// The same with `command`.
fn start_and_wait(mut command: Command) -> (Child, mpsc::Receiver<String>, Started) {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut harness = command.spawn().unwrap();
    let (lines, received) = mpsc::channel();
    let stderr = harness.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = lines.send(line);
        }
    });
    let mut started = Started::default();
    let deadline = Instant::now() + Duration::from_secs(300);
    while started.services.is_empty() || started.cluster.is_none() {
        let line = received
            .recv_timeout(deadline - Instant::now())
            .expect("a service and the cluster start");
        started.read(&line);
    }
    (harness, received, started)
}

fn signal(harness: &Child, signal: Signal) {
    kill(Pid::from_raw(harness.id() as i32), signal).unwrap();
}

/// Waits for the harness to exit, failing past `limit`.
fn exit_within(harness: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = harness.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the harness did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing the harness started is left: services, ports, cluster, temp dirs.
fn assert_nothing_left(ctx: &TestContext, received: &mpsc::Receiver<String>, mut started: Started) {
    // Later lines name services started between our read and the signal.
    while let Ok(line) = received.try_recv() {
        started.read(&line);
    }
    for (pid, port) in started.services {
        assert!(!alive(u64::from(pid)), "service {pid} outlived the harness");
        std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|err| panic!("port {port} still held: {err}"));
    }
    let (cluster_dir, cluster_pid) = started
        .cluster
        .expect("the harness started its PostgreSQL cluster first");
    assert!(
        !alive(cluster_pid),
        "the PostgreSQL server {cluster_pid} outlived the harness"
    );
    assert!(
        !std::path::Path::new(&cluster_dir).exists(),
        "the cluster folder {cluster_dir} was left behind"
    );
    assert_no_temp_dir_left(ctx);
}

/// The run's scratch folders are gone.
fn assert_no_temp_dir_left(ctx: &TestContext) {
    let scratch = ctx.path("state/tmp");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "temp dirs left behind: {left:?}");
}

#[test]
fn a_cell_that_finishes_after_the_signal_is_neither_reported_nor_recorded() {
    let ctx = TestContext::new();
    // The baseline only.
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    let mut command = ctx.command(&[]);
    // The run hears of the signal 10 s after its services were killed:
    // time enough for the baseline to finish on what they (never) answered.
    command.env("UPGRADE_CHECK_FAILPOINT", "slow-cancel=10000");
    let (mut harness, _received, _started) = start_and_wait(command);
    signal(&harness, Signal::SIGINT);
    let status = exit_within(&mut harness, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "a signalled run is cancelled");
    let report = ctx.report();
    assert_eq!(report.cancelled.as_deref(), Some("SIGINT"));
    assert_eq!(
        report.cells.len(),
        0,
        "the baseline finished after its services were killed: {report:?}"
    );
    // Nothing was recorded for reuse: the next run replays the baseline.
    let next = ctx.run(&[]);
    assert_eq!(next.code, 0, "{}\n{}", next.stdout, next.stderr);
    assert!(!next.stderr.contains("result reused"), "{}", next.stderr);
}

#[test]
fn sigint_stops_everything_and_writes_a_cancelled_report() {
    let ctx = TestContext::new();
    let (mut harness, received, started) = start_and_wait_for_a_service(&ctx);
    signal(&harness, Signal::SIGINT);
    let status = exit_within(&mut harness, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    assert_nothing_left(&ctx, &received, started);
    let report = ctx.report();
    assert_eq!(report.cancelled.as_deref(), Some("SIGINT"));
    assert_eq!(report.planned_cells, 6);
    assert!(report.cells.len() < 6, "only finished cells are reported");
    assert!(
        !ctx.path("snapshots/long-password.snap.new").exists(),
        "a cancelled run writes no snapshot"
    );
}

#[test]
fn a_second_signal_quits_at_once_and_still_leaves_nothing() {
    let ctx = TestContext::new();
    let (mut harness, received, started) = start_and_wait_for_a_service(&ctx);
    // Two different signals: the kernel would merge two of the same kind.
    signal(&harness, Signal::SIGTERM);
    signal(&harness, Signal::SIGINT);
    let status = exit_within(&mut harness, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    // Everything it printed, up to the end of its stderr.
    let mut rest = Vec::new();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(10)) {
        rest.push(line);
    }

    assert!(
        rest.iter().any(|line| line.contains("again: quitting now")),
        "the second signal took the fast path: {rest:?}"
    );
    let mut started = started;
    rest.iter().for_each(|line| started.read(line));
    assert_nothing_left(&ctx, &received, started);
}

#[test]
fn a_ci_cancel_is_cleaned_up_before_the_follow_up_sigterm() {
    // GitHub Actions sends SIGINT, then SIGTERM 7.5 s later, then SIGKILL:
    // all cleanup must be done inside the first 7.5 s.
    let ctx = TestContext::new();
    let (mut harness, received, started) = start_and_wait_for_a_service(&ctx);
    signal(&harness, Signal::SIGINT);
    let status = exit_within(&mut harness, Duration::from_millis(7500));
    assert_eq!(status.code(), Some(130));
    assert_nothing_left(&ctx, &received, started);
}

/// Waits up to 10 s for a process to be gone.
fn gone_soon(pid: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

#[test]
fn after_sigkill_children_die_and_the_next_run_removes_the_leftovers() {
    let ctx = TestContext::new();
    let (mut harness, received, mut started) = start_and_wait_for_a_service(&ctx);
    signal(&harness, Signal::SIGKILL);
    harness.wait().unwrap();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(5)) {
        started.read(&line);
    }
    // The kernel kills direct children with their parent.
    for (pid, _) in &started.services {
        assert!(
            gone_soon(u64::from(*pid)),
            "service {pid} outlived a SIGKILLed harness"
        );
    }
    let (cluster_dir, cluster_pid) = started.cluster.clone().unwrap();
    assert!(
        gone_soon(cluster_pid),
        "the PostgreSQL server outlived a SIGKILLed harness"
    );
    // Its folders could not be removed by a dead process...
    assert!(std::path::Path::new(&cluster_dir).exists());
    // ...and its shared memory segments are files in it, not loose in
    // /dev/shm, where a SIGKILLed server leaves them for good.
    let segments = std::fs::read_dir(format!("{cluster_dir}/data/pg_dynshmem"))
        .unwrap()
        .count();
    assert!(segments > 0, "no shared memory segment in {cluster_dir}");
    assert_eq!(std::fs::read_dir(ctx.path("state/tmp")).unwrap().count(), 1);

    // ...so the next run does it.
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    let next = ctx.run(&[]);
    assert_eq!(next.code, 0);
    assert!(
        next.stderr.contains("removed what a dead run left behind"),
        "{}",
        next.stderr
    );
    assert!(
        !std::path::Path::new(&cluster_dir).exists(),
        "the dead run's cluster folder is gone"
    );
    assert_eq!(
        std::fs::read_dir(ctx.path("state/tmp")).unwrap().count(),
        0,
        "no temp folder is left"
    );
}

/// The preloaders, and the services they forked (which keep their argv),
/// of the harness whose state folder is `state`: their command line is the
/// preloader's program, and their environment carries the run's marker, a
/// folder under `state`.
fn preloaded_processes(state: &std::path::Path) -> Vec<String> {
    const PROGRAM: &str = "The preloader: a Python service's third-party modules imported once";
    let state = state.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            (cmdline.contains(PROGRAM) && String::from_utf8_lossy(&environ).contains(&state)).then(
                || {
                    format!(
                        "{}: {}",
                        entry.file_name().to_string_lossy(),
                        &cmdline[..80.min(cmdline.len())]
                    )
                },
            )
        })
        .collect()
}

#[test]
fn sigint_leaves_no_preloader_and_no_forked_service() {
    let ctx = TestContext::new();
    let (mut harness, received, started) =
        start_with_and_wait_for_a_service(&ctx, &["--start", "preloaded"]);
    assert!(
        !preloaded_processes(&ctx.path("state")).is_empty(),
        "the service was forked from a preloader"
    );
    signal(&harness, Signal::SIGINT);
    let status = exit_within(&mut harness, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    assert_nothing_left(&ctx, &received, started);
    assert_eq!(
        preloaded_processes(&ctx.path("state")),
        Vec::<String>::new()
    );
}

#[test]
fn sigint_leaves_no_database_on_a_server_named_by_database_url() {
    // A server the harness does not own: its databases, those made ahead of
    // the runs among them, must all be dropped before the harness exits.
    let server =
        upgrade_check_core::internals::db::Postgres::start_cluster(Duration::from_secs(5), None)
            .unwrap();
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    let mut command = ctx.command(&["--database-url", &server.url()]);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut harness = command.spawn().unwrap();
    let stderr = BufReader::new(harness.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    // A service on PostgreSQL is up: its database was taken, the next made ahead.
    let started = lines
        .by_ref()
        .inspect(|line| eprintln!("{line}"))
        .find(|line| line.contains("@staging: service pid"));
    assert!(
        started.is_some(),
        "a staging scenario run starts its service"
    );
    assert!(
        !server.leftover_databases().unwrap().is_empty(),
        "the run holds databases on the server while it runs"
    );
    signal(&harness, Signal::SIGINT);
    let status = exit_within(&mut harness, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        server.leftover_databases().unwrap(),
        Vec::<String>::new(),
        "every database it made or made ahead was dropped"
    );
}

/// Every process descended from `pid`, with its command line.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let parents: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The parent is the second field after the parenthesised name.
            let parent = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some((
                child,
                parent,
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
            ))
        })
        .collect();
    let mut found = vec![];
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, _, cmdline) in parents.iter().filter(|(_, of, _)| *of == parent) {
            found.push((*child, cmdline.clone()));
            frontier.push(*child);
        }
    }
    found
}

#[test]
fn sigint_while_the_cluster_starts_leaves_no_server() {
    let ctx = TestContext::new();
    let mut command = ctx.command(&[]);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut harness = command.spawn().unwrap();
    let stderr = BufReader::new(harness.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    assert!(
        lines
            .by_ref()
            .any(|line| line.contains("starting a throwaway PostgreSQL cluster")),
        "the cluster starts"
    );
    // Signalled while its server is starting, or as soon after as can be.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut running = descendants(harness.id());
    while !running
        .iter()
        .any(|(_, cmdline)| cmdline.contains("postgres"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
        running = descendants(harness.id());
    }
    signal(&harness, Signal::SIGINT);
    let status = exit_within(&mut harness, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    assert!(
        running
            .iter()
            .any(|(_, cmdline)| cmdline.contains("postgres")),
        "a PostgreSQL program was running: {running:?}"
    );
    for (pid, cmdline) in &running {
        assert!(
            gone_soon(u64::from(*pid)),
            "{pid} ({cmdline}) outlived the harness"
        );
        // The cluster's private folder, named in its programs' arguments.
        for word in cmdline.split([' ', '=']) {
            if let Some(at) = word.find("upgrade-check-pg-") {
                let end = word[at..].find('/').map_or(word.len(), |slash| at + slash);
                let folder = &word[..end];
                assert!(
                    !std::path::Path::new(folder).exists(),
                    "the cluster folder {folder} was left behind"
                );
            }
        }
    }
    assert_no_temp_dir_left(&ctx);
}
