//! A misbehaving service (`fixtures/variants/faults`): every fault is reported
//! as what it is, bounded by its timeout, and leaves nothing behind.

use crate::common::Verdict;
use crate::common::{TestContext, assert_no_service_left, scenario_report, verdict};

/// The fault variant with `FAULT` set, short timeouts, and only the baseline cell.
fn faulty(fault: &str) -> TestContext {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/faults");
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "[service.env]\n",
            &format!("[service.env]\nFAULT = \"{fault}\"\n"),
        )
        .replace("startup = \"30s\"", "startup = \"3s\"")
        .replace("request = \"10s\"", "request = \"1s\"")
        .replace("shutdown-grace = \"5s\"", "shutdown-grace = \"1s\"")
    });
    ctx
}

#[test]
fn a_crash_mid_scenario_fails_that_scenario_with_its_log_and_the_rest_finish() {
    let ctx = faulty("crash-on-login");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    let crashed = scenario_report(&report, "baseline", "login");
    assert_eq!(crashed.verdict, Verdict::Changed);
    assert_eq!(
        crashed.summary.as_deref(),
        Some("the service exited during the scenario (exit status: 3)")
    );
    assert!(
        crashed
            .log_tail
            .as_deref()
            .unwrap()
            .contains("POST /api/auth/register"),
        "{crashed:?}"
    );
    for scenario in ["health", "register"] {
        assert_eq!(
            verdict(&report, "baseline", scenario),
            Verdict::Pass,
            "{scenario} never logs in"
        );
    }
    assert_no_service_left(&ctx, &report);
}

#[test]
fn a_service_that_never_gets_healthy_says_which_wait_expired() {
    let ctx = faulty("never-healthy");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    let failed = scenario_report(&report, "baseline", "health");
    assert_eq!(failed.verdict, Verdict::StartupFailed);
    assert_eq!(
        failed.summary.as_deref(),
        Some("not healthy within 3s: GET /health (last answer 503 Service Unavailable)")
    );
    assert_no_service_left(&ctx, &report);
}

#[test]
fn a_request_that_hangs_is_cut_at_the_request_timeout() {
    let ctx = faulty("hang-on-login");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    let hung = scenario_report(&report, "baseline", "login");
    assert_eq!(hung.verdict, Verdict::Changed);
    let summary = hung.summary.as_deref().unwrap();
    assert!(
        summary.contains("no response: timed out after 1s"),
        "{summary}"
    );
    assert_eq!(verdict(&report, "baseline", "register"), Verdict::Pass);
    assert_no_service_left(&ctx, &report);
}

#[test]
fn a_body_that_streams_slowly_is_cut_at_the_request_timeout() {
    let ctx = faulty("slow-body");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    let slow = scenario_report(&report, "baseline", "login");
    assert_eq!(slow.verdict, Verdict::Changed);
    let summary = slow.summary.as_deref().unwrap();
    assert!(summary.contains("timed out after 1s"), "{summary}");
    assert_eq!(verdict(&report, "baseline", "register"), Verdict::Pass);
    assert_no_service_left(&ctx, &report);
}

#[test]
fn a_service_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let ctx = faulty("ignore-sigterm");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 0, "ignoring SIGTERM changes no answer");
    assert_no_service_left(&ctx, &ctx.report());
}

#[test]
fn secrets_in_responses_and_logs_reach_no_written_file() {
    let ctx = faulty("leak-secrets");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    let leaked = scenario_report(&report, "baseline", "login");
    let diff = leaked.diff.as_deref().unwrap();
    // Both planted values were there, and were scrubbed.
    assert!(diff.contains("\"echo\": \"[secret:password]\""), "{diff}");
    assert!(diff.contains("\"key\": \"[secret:run]\""), "{diff}");
    let log = std::fs::read_to_string(ctx.path("state/logs/baseline/login.log")).unwrap();
    assert!(
        log.contains("login attempt with password [secret:password]"),
        "{log}"
    );

    let secrets = [
        "s3cret-passphrase",
        "not-the-passphrase",
        "correct horse battery staple",
        "staging-passphrase",
    ];
    let mut checked = 0;
    // What the harness writes: reports, logs, pending snapshots.
    let written = [
        crate::common::files_under(&ctx.path("state")),
        crate::common::files_under(&ctx.path("snapshots")),
    ]
    .concat();
    for file in written {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        for secret in secrets {
            assert!(!text.contains(secret), "{} holds a secret", file.display());
        }
        checked += 1;
    }
    assert!(
        checked > 10,
        "the report, logs and snapshots were checked ({checked} files)"
    );
}

/// Runs a fault that changes the login response; its context and the login diff.
fn login_diff(fault: &str) -> (TestContext, String) {
    let ctx = faulty(fault);
    assert_eq!(ctx.run(&[]).code, 1);
    let diff = scenario_report(&ctx.report(), "baseline", "login")
        .diff
        .as_deref()
        .unwrap()
        .to_owned();
    (ctx, diff)
}

#[test]
fn a_huge_response_is_cut_and_says_so() {
    let (ctx, diff) = login_diff("huge-body");
    let end = &diff[diff.len().saturating_sub(300)..];
    assert!(
        diff.contains("[truncated: 2097152 more bytes not kept]"),
        "{end}"
    );
    let pending = std::fs::metadata(ctx.path("snapshots/login.snap.new"))
        .unwrap()
        .len();
    assert!(
        pending < 2 << 20,
        "the pending snapshot holds at most the kept 1 MiB ({pending} bytes)"
    );
}

#[test]
fn a_binary_response_is_summarised_not_garbled() {
    let (_, diff) = login_diff("binary-body");
    assert!(
        diff.contains("+< [binary body: 1024 bytes, sha256 "),
        "{diff}"
    );
}

#[test]
fn a_panic_in_one_cell_fails_that_cell_and_the_others_finish() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    let mut command = ctx.command(&[]);
    command.env("UPGRADE_CHECK_FAILPOINT", "panic-in-cell=bcrypt-4.1.2");
    let run = ctx.run_command(command);
    assert_eq!(run.code, 2, "the harness failed at its job in one cell");
    let report = ctx.report();
    assert_eq!(verdict(&report, "baseline", "login"), Verdict::Pass);
    let failed = scenario_report(&report, "bcrypt 4.1.2", "login");
    assert_eq!(failed.verdict, Verdict::Error);
    assert!(
        failed
            .summary
            .as_deref()
            .unwrap()
            .contains("the harness panicked in this cell"),
        "{failed:?}"
    );
    assert_no_service_left(&ctx, &report);
    let scratch: Vec<_> = std::fs::read_dir(ctx.path("state/tmp")).unwrap().collect();
    assert!(scratch.is_empty(), "temp dirs removed");
}

#[test]
fn a_port_taken_before_the_service_binds_it_is_detected_and_another_is_tried() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    let mut command = ctx.command(&[]);
    // Something else takes the first chosen port and answers 200 to anything.
    command.env("UPGRADE_CHECK_FAILPOINT", "steal-port=first");
    let run = ctx.run_command(command);
    assert!(
        run.stderr
            .contains("is held by another process; trying another"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.code, 0,
        "the impostor's answers were never taken for the service's"
    );
    // What the start on the taken port printed is no output of the service's.
    assert!(
        !run.stdout.contains("new output in") && !run.stdout.contains("Address already in use"),
        "{}",
        run.stdout
    );
    assert_no_service_left(&ctx, &ctx.report());
}

#[test]
fn a_grandchild_that_leaves_the_group_is_killed_and_reported_as_a_leak() {
    let ctx = faulty("setsid-grandchild");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 0, "no hang, and the answers are unchanged");
    let report = ctx.report();
    let health = scenario_report(&report, "baseline", "health");
    let leaks = &health.leaks;
    assert_eq!(leaks.len(), 1, "{health:?}");
    let leak = leaks[0].as_str();
    assert!(
        leak.contains("(sleep) left the service's process group"),
        "{leak}"
    );
    let pid: u64 = leak.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(!crate::common::alive(pid), "the escaped process was killed");
    assert!(
        run.stdout.contains("processes leaked by the service"),
        "{}",
        run.stdout
    );
}

/// Each scenario run's verdict, summary and number of leaked processes.
fn outcomes(report: &crate::common::Report) -> Vec<String> {
    report.cells[0]
        .scenarios
        .iter()
        .map(|run| {
            format!(
                "{} | {} | {} | {} leaked",
                run.scenario,
                run.verdict.label(),
                run.summary.as_deref().unwrap_or(""),
                run.leaks.len()
            )
        })
        .collect()
}

#[test]
fn a_forked_service_fails_stops_and_leaks_as_a_cold_one_does() {
    // What the harness promises about processes: a crash, SIGTERM ignored
    // (the grace, then SIGKILL), a grandchild escaped into its own session.
    // Forked from a preloader, each is reported as on a cold start, and
    // nothing is left. (Timeouts are the client's, the same either way.)
    for fault in ["crash-on-login", "ignore-sigterm", "setsid-grandchild"] {
        let ctx = faulty(fault);
        ctx.set_matrix("");
        let cold = ctx.run(&["--start", "cold", "--no-noise-check"]);
        let cold_report = ctx.report();
        let forked = ctx.run(&["--start", "preloaded", "--no-noise-check"]);
        let forked_report = ctx.report();
        assert_eq!(forked.code, cold.code, "{fault}: {}", forked.stdout);
        assert_eq!(outcomes(&forked_report), outcomes(&cold_report), "{fault}");
        let runs = &forked_report.cells[0].scenarios;
        assert!(
            runs.iter()
                .all(|run| run.timing.as_ref().is_none_or(|timing| timing.preloaded)),
            "{fault}: every service forked: {forked_report:?}"
        );
        assert_no_service_left(&ctx, &forked_report);
        for leak in runs.iter().flat_map(|run| &run.leaks) {
            let pid: u64 = leak.split(' ').nth(1).unwrap().parse().unwrap();
            assert!(!crate::common::alive(pid), "{fault}: {leak} was killed");
        }
    }
}
