//! Progress while cells build and run: a live display on a terminal, plain
//! lines in a log.

use std::io::Read;
use std::process::Stdio;

use crate::common::TestContext;
use nix::pty::{Winsize, openpty};

#[test]
fn a_terminal_gets_a_live_display_and_a_log_gets_plain_lines() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);

    let size = Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).unwrap();
    let mut command = ctx.command(&[]);
    command
        .env("TERM", "xterm-256color")
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave));
    let mut harness = command.spawn().unwrap();
    drop(command);
    let mut terminal = std::fs::File::from(pty.master);
    let mut screen = Vec::new();
    // The read ends with EIO once the harness, the last holder of the other side, exits.
    let _ = terminal.read_to_end(&mut screen);
    assert!(harness.wait().unwrap().success());
    let screen = String::from_utf8_lossy(&screen);
    assert!(
        screen.contains("cells done · ") && screen.contains(" running"),
        "the plan's bar: {screen}"
    );
    assert!(
        screen.contains("bcrypt 4.1.2: ") && screen.contains("\x1b[2K"),
        "a cell's own line, redrawn in place: {screen}"
    );
    assert!(screen.contains("(2/2 cells done)"), "{screen}");

    let logged = ctx.run(&[]);
    assert_eq!(logged.code, 0);
    assert!(!logged.stderr.contains('\x1b'), "{}", logged.stderr);
    assert!(
        logged.stderr.contains("] bcrypt 4.1.2: ") && logged.stderr.contains("(2/2 cells done)"),
        "{}",
        logged.stderr
    );
}

/// `-q` says nothing but the result; `--color always` colours the summary
/// (and only then); `--events FILE` has every event as a JSON line.
#[test]
fn quiet_colour_and_the_event_log() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    let events = ctx.path("events.jsonl");
    let first = ctx.run(&["--events", events.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        !first.stdout.contains('\x1b'),
        "no colour into a pipe: {}",
        first.stdout
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines[0]["event"], "config-loaded", "{lines:?}");
    assert!(lines.iter().all(|line| line["elapsed_ms"].is_u64()));
    let finished: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["event"] == "cell-finished")
        .collect();
    assert_eq!(finished.len(), 2, "{lines:?}");
    assert!(
        finished
            .iter()
            .any(|line| line["cell"] == "bcrypt 4.1.2" && line["outcome"]["not_passing"] == 0),
        "{finished:?}"
    );
    assert!(lines.iter().any(|line| line["event"] == "service-started"
        && line["pid"].is_u64()
        && line["port"].is_u64()));
    // The last line says how the run ended, with the process's exit code.
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["event"], &last["verdict"], &last["exit_code"]),
        (&"finished".into(), &"pass".into(), &0.into()),
        "{last}"
    );

    let quiet = ctx.run(&["-q", "--color", "always"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "", "nothing but the result");
    assert!(
        quiet.stdout.starts_with("\x1b[1m\x1b[32m✓ "),
        "a coloured headline: {}",
        quiet.stdout
    );
}

/// One pipeline: the baseline is built first and judged as soon as its
/// environment is ready, while another cell's environment is still being
/// prepared; that cell runs when its own is ready.
#[test]
fn the_baseline_is_judged_while_another_cell_still_builds() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    let events = ctx.path("events.jsonl");
    let mut command = ctx.command(&["--no-cache", "--events", events.to_str().unwrap()]);
    // The bcrypt cell's preparation takes 20 s longer than it would.
    command.env("UPGRADE_CHECK_FAILPOINT", "slow-prepare=bcrypt-4.1.2:20000");
    let run = ctx.run_command(command);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let at = |found: &dyn Fn(&serde_json::Value) -> bool| {
        let line = lines
            .iter()
            .find(|line| found(line))
            .unwrap_or_else(|| panic!("no such event: {lines:#?}"));
        line["elapsed_ms"].as_u64().unwrap()
    };
    let judged =
        at(&|line| line["event"] == "baseline-judged" && line["failing"] == serde_json::json!([]));
    let bcrypt_ready = at(&|line| {
        line["event"] == "cell-step"
            && line["cell"] == "bcrypt 4.1.2"
            && line["step"]["step"] == "environment-ready"
    });
    let bcrypt_finished =
        at(&|line| line["event"] == "cell-finished" && line["cell"] == "bcrypt 4.1.2");
    // Judged before the cell's environment is ready: a run that prepares
    // every environment first judges it after (on a loaded machine the
    // baseline's own build and replays can take most of the 20 s).
    assert!(
        judged < bcrypt_ready && bcrypt_ready <= bcrypt_finished,
        "the baseline judged at {judged} ms, bcrypt 4.1.2 ready at {bcrypt_ready} ms and finished at {bcrypt_finished} ms"
    );
    let report = ctx.report();
    assert_eq!(
        crate::common::verdict(&report, "bcrypt 4.1.2", "login"),
        crate::common::Verdict::Pass
    );
}

/// The baseline's environment is built before any other: the others
/// resolve meanwhile and install after it (from what it brought into the
/// caches), so that a broken baseline is known before another build ends.
#[test]
fn the_baseline_s_environment_is_built_before_any_other() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    crate::common::ensure_uv(&ctx);
    let events = ctx.path("events.jsonl");
    // An empty cache: both environments are built. The baseline's takes 4 s
    // longer than it would, more than the bcrypt cell's whole build.
    let mut command = ctx.command(&["--no-cache", "--events", events.to_str().unwrap()]);
    command
        .arg("--cache-dir")
        .arg(ctx.path("cache"))
        .env("UPGRADE_CHECK_UV", crate::common::uv())
        .env("UPGRADE_CHECK_FAILPOINT", "slow-prepare=baseline:4000");
    let run = ctx.run_command(command);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ready: Vec<(String, u64, bool)> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["step"]["step"] == "environment-ready")
        .map(|line| {
            (
                line["cell"].as_str().unwrap().to_owned(),
                line["elapsed_ms"].as_u64().unwrap(),
                line["step"]["reused"].as_bool().unwrap(),
            )
        })
        .collect();
    let cells: Vec<(&str, bool)> = ready
        .iter()
        .map(|(cell, _, reused)| (cell.as_str(), *reused))
        .collect();
    assert_eq!(
        cells,
        [("baseline", false), ("bcrypt 4.1.2", false)],
        "{ready:?}"
    );
}

/// A baseline that does not start leaves nothing to compare a cell with:
/// the run stops as soon as it is judged, and the builds still going are
/// killed, not waited for. `--keep-going` runs every cell anyway.
#[test]
fn a_baseline_that_does_not_start_stops_the_run_and_the_builds_still_going() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    ctx.edit("fixtures/python-service/app/__init__.py", |text| {
        format!("raise RuntimeError('DATABASE_URL is not set')\n{text}")
    });
    let events = ctx.path("events.jsonl");
    let mut command = ctx.command(&["--no-cache", "--events", events.to_str().unwrap()]);
    // The bcrypt cell's preparation would take two minutes more: a command
    // that sleeps, run as a build's commands are.
    command.env(
        "UPGRADE_CHECK_FAILPOINT",
        "slow-prepare=bcrypt-4.1.2:120000",
    );
    let started = std::time::Instant::now();
    let run = ctx.run_command(command);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        took < std::time::Duration::from_secs(90),
        "the run waited for the build it no longer needs: {took:?}"
    );
    let sleeping = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .any(|cmdline| cmdline == b"sleep\x00120.000\x00");
    assert!(!sleeping, "the stopped build's command is still running");

    let report = ctx.report();
    let why = report.stopped_after_baseline.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("does not start in `") && why.contains("DATABASE_URL is not set"),
        "{why}"
    );
    let not_run = crate::common::cell_report(&report, "bcrypt 4.1.2");
    assert!(
        not_run
            .not_tried()
            .is_some_and(|reason| reason.contains("--keep-going")),
        "{not_run:?}"
    );
    assert!(
        run.stdout.starts_with("✗ the baseline does not start in `")
            && run.stdout.contains("\n  1 other cell not run: "),
        "{}",
        run.stdout
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let stopped = lines
        .iter()
        .find(|line| line["event"] == "stopped-after-baseline");
    assert_eq!(
        stopped.map(|line| &line["not_run"]),
        Some(&1.into()),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|line| line["cell"] == "bcrypt 4.1.2"
                && line["step"]["step"] == "environment-ready"),
        "the cell's build was stopped before it finished: {lines:#?}"
    );

    // Told to keep going, every cell runs, and fails as the baseline does.
    let kept_going = ctx.run(&["--keep-going"]);
    assert_eq!(kept_going.code, 1);
    let report = ctx.report();
    assert_eq!(report.stopped_after_baseline, None);
    let login = crate::common::scenario_report(&report, "bcrypt 4.1.2", "login");
    assert_eq!(login.verdict, crate::common::Verdict::StartupFailed);
    assert!(login.same_as_baseline, "{login:?}");
}
