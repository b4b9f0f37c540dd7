//! A plan split across machines: the job matrix, three shards run as
//! separate processes, and their parts merged into the one report a single
//! run writes.

use std::process::Stdio;

use crate::common::{Report, TestContext};
use serde_json::Value;

/// The report without what differs from run to run whatever the result:
/// timings and the start time, service pids and ports (which the log tails
/// show too), and
/// whether caches were warm.
fn comparable(mut report: Report) -> Report {
    report.duration_ms = 0;
    report.run.started_at.clear();
    for cell in &mut report.cells {
        cell.duration_ms = 0;
        if let Some(environment) = cell.environment.as_mut() {
            environment.build_reused = false;
            environment.resolution_reused = false;
        }
        for scenario in &mut cell.scenarios {
            scenario.service_pid = None;
            scenario.service_port = None;
            scenario.log_tail = None;
            scenario.timing = None;
        }
    }
    report
}

#[test]
fn three_shards_merged_equal_one_run() {
    let ctx = TestContext::new();

    let matrix = ctx.run(&["plan", "--format", "github-matrix", "--shards", "3"]);
    assert_eq!(matrix.code, 0, "{}", matrix.stderr);
    let matrix: Value = serde_json::from_str(&matrix.stdout).unwrap();
    let include = matrix["include"].as_array().unwrap();
    assert_eq!(include.len(), 3);
    let mut planned: Vec<String> = include
        .iter()
        .flat_map(|job| {
            job["cells"]
                .as_str()
                .unwrap()
                .split("; ")
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    planned.sort();
    assert_eq!(
        planned,
        [
            "bcrypt 4.1.2",
            "bcrypt 5.0.0",
            "flask 2.3.3",
            "flask 3.0.3",
            "pyjwt 2.8.0"
        ],
        "every cell but the baseline in exactly one shard"
    );

    let whole = ctx.run(&["--no-bisect"]);
    assert_eq!(whole.code, 1);
    let whole_report = ctx.report();

    // The shards as CI runs them: separate processes, at once, each with its own state.
    let shards: Vec<_> = (1..=3)
        .map(|index| {
            let mut command = ctx.command(&["--shard", &format!("{index}/3")]);
            command
                .env(
                    "UPGRADE_CHECK_STATE_DIR",
                    ctx.path(&format!("shard-{index}")),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            command.spawn().unwrap()
        })
        .collect();
    for mut shard in shards {
        let status = shard.wait().unwrap();
        assert!(matches!(status.code(), Some(0 | 1)), "{status}");
    }
    let part = crate::common::report_at(&ctx.path("shard-1/report/report.json"));
    assert_eq!(part.shard.as_ref().map(|shard| shard.index), Some(1));
    assert_eq!(part.cells[0].name, "baseline");

    let merged_dir = ctx.path("merged");
    let merged = ctx.run_command({
        let mut command = ctx.command(&["report", "merge"]);
        for index in 1..=3 {
            command.arg(ctx.path(&format!("shard-{index}")));
        }
        command.arg("--out").arg(&merged_dir);
        command
    });
    assert_eq!(merged.code, whole.code, "{}", merged.stderr);
    let merged_report = crate::common::report_at(&merged_dir.join("report.json"));
    let (merged_report, whole_report) = (comparable(merged_report), comparable(whole_report));
    for (merged_cell, whole_cell) in merged_report.cells.iter().zip(&whole_report.cells) {
        assert_eq!(
            serde_json::to_value(merged_cell).unwrap(),
            serde_json::to_value(whole_cell).unwrap(),
            "cell {}",
            whole_cell.name
        );
    }
    assert_eq!(
        serde_json::to_value(&merged_report).unwrap(),
        serde_json::to_value(&whole_report).unwrap()
    );
    assert!(merged.stdout.contains("bcrypt 5.0.0 breaks long-password"));
    for format in ["junit.xml", "report.md", "report.html"] {
        assert!(merged_dir.join(format).is_file(), "{format}");
    }
}

#[test]
fn merging_needs_every_shard_once() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2", "5.0.0"]"#);
    let run = ctx.run(&["--shard", "1/2", "--no-bisect"]);
    assert!(matches!(run.code, 0 | 1), "{}", run.stderr);
    let merged = ctx.run(&["report", "merge", ctx.path("state").to_str().unwrap()]);
    assert_eq!(merged.code, 2);
    assert!(
        merged
            .stderr
            .contains("merging needs each of 1..=2 exactly once"),
        "{}",
        merged.stderr
    );
}
