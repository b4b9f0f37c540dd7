//! Ctrl-C in the middle of a run leaves no process, port or temp dir behind.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestContext, alive};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn sigint_stops_every_service_and_cleans_up() {
    let ctx = TestContext::new();
    let mut command = ctx.command(&[]);
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

    // Wait until a service is up, then interrupt as a terminal would.
    let mut services = Vec::new();
    let mut cluster = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while services.is_empty() {
        let line = received
            .recv_timeout(deadline - Instant::now())
            .expect("a service starts");
        if let Some(rest) = line.split("PostgreSQL: cluster ").nth(1) {
            let dir = rest.split(' ').next().unwrap().to_owned();
            let pid: u64 = rest
                .split("server pid ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            cluster = Some((dir, pid));
        }
        if let Some(rest) = line.split(": service pid ").nth(1) {
            let mut words = rest.split(' ');
            let pid: u32 = words.next().unwrap().parse().unwrap();
            let port: u16 = words.nth(2).unwrap().parse().unwrap();
            services.push((pid, port));
        }
    }
    kill(Pid::from_raw(harness.id() as i32), Signal::SIGINT).unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = harness.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the harness did not stop within 30s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    // Later lines name services started between our read and the signal.
    while let Ok(line) = received.try_recv() {
        if let Some(rest) = line.split(": service pid ").nth(1) {
            let mut words = rest.split(' ');
            let pid: u32 = words.next().unwrap().parse().unwrap();
            let port: u16 = words.nth(2).unwrap().parse().unwrap();
            services.push((pid, port));
        }
    }
    for (pid, port) in services {
        assert!(!alive(u64::from(pid)), "service {pid} outlived the harness");
        std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|err| panic!("port {port} still held: {err}"));
    }
    let (cluster_dir, cluster_pid) =
        cluster.expect("the harness started its PostgreSQL cluster first");
    assert!(
        !alive(cluster_pid),
        "the PostgreSQL server {cluster_pid} outlived the harness"
    );
    assert!(
        !std::path::Path::new(&cluster_dir).exists(),
        "the cluster folder {cluster_dir} was left behind"
    );
    let scratch = ctx.path("state/tmp");

    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temp dirs left behind: {left:?}");
}
