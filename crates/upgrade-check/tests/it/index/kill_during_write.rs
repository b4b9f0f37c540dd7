//! SIGKILL while a report or an accepted snapshot is being written: the file
//! is the old one, whole, and the next run removes the half-written temp file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::TestContext;

/// Runs the harness with `args` until it has half written `file`, then SIGKILLs it.
fn kill_while_writing(ctx: &TestContext, args: &[&str], file: &str) {
    let mut command = ctx.command(args);
    command
        .env("UPGRADE_CHECK_FAILPOINT", format!("stall-in-write={file}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut harness = command.spawn().unwrap();
    let stderr = BufReader::new(harness.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut stalled = false;
    for line in stderr.lines().map_while(Result::ok) {
        eprintln!("{line}");
        if line.contains("failpoint stall-in-write:") {
            stalled = true;
            break;
        }
        assert!(Instant::now() < deadline, "the write never started");
    }
    assert!(stalled, "the harness ended before writing {file}");
    harness.kill().unwrap();
    harness.wait().unwrap();
}

fn temp_files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".upgrade-check-")
        })
        .collect()
}

#[test]
fn a_report_killed_mid_write_is_the_old_one_whole() {
    let ctx = TestContext::new();
    ctx.set_matrix("");
    assert_eq!(ctx.run(&[]).code, 0);
    let report_path = ctx.path("state/report/report.json");
    let old = std::fs::read(&report_path).unwrap();

    kill_while_writing(&ctx, &[], "report.json");
    assert_eq!(
        std::fs::read(&report_path).unwrap(),
        old,
        "the old report, untouched"
    );
    let half_written = temp_files_in(&ctx.path("state/report"));
    assert_eq!(half_written.len(), 1, "the killed write's temp file");

    let next = ctx.run(&[]);
    assert_eq!(next.code, 0);
    assert!(
        next.stderr.contains("1 half-written files"),
        "{}",
        next.stderr
    );
    assert!(temp_files_in(&ctx.path("state/report")).is_empty());
    let report = crate::common::report_at(&report_path);
    assert_eq!(report.cells[0].name, "baseline");
}

#[test]
fn an_accepted_snapshot_killed_mid_write_is_the_old_one_whole() {
    let ctx = TestContext::new();
    ctx.set_matrix("");
    let snapshot = ctx.path("snapshots/health.snap");
    // An accepted snapshot the service no longer matches, so --accept rewrites it.
    ctx.edit("snapshots/health.snap", |text| {
        text.replace("200 OK", "201 Created")
    });
    let accepted = std::fs::read(&snapshot).unwrap();

    kill_while_writing(&ctx, &["--accept"], "health.snap");
    assert_eq!(
        std::fs::read(&snapshot).unwrap(),
        accepted,
        "the accepted snapshot, untouched"
    );
    assert_eq!(temp_files_in(&ctx.path("snapshots")).len(), 1);

    let next = ctx.run(&[]);
    assert_eq!(next.code, 1, "the plain run still fails on the mismatch");
    assert!(temp_files_in(&ctx.path("snapshots")).is_empty());
    assert_eq!(std::fs::read(&snapshot).unwrap(), accepted);
}
