//! A hostile service (`fixtures/variants/hostile`) against the harness's
//! defences: secrets in every form through every channel, terminal escapes,
//! a refusal hidden behind a body that looks like statuses, processes that
//! try to outlive the run, a flood of output, and inputs that used to make
//! recorded results lie.

use crate::common::Verdict;
use std::path::Path;
use std::process::Command;

use crate::common::{TestContext, scenario_report, verdict};
use base64::Engine;

const PHRASE: &str = "correct horse battery staple";
const PIN: &str = "739184265";
const TOKEN: &str = "Zq9-path-token-77";
const WIRE: &str = "p@ss w/rd&x=1+é";

/// The hostile service on its own, with `mode` as its `HOSTILE`.
fn hostile(mode: &str) -> TestContext {
    let ctx = TestContext::from_workspace("fixtures/variants/hostile", Path::to_owned);
    let pids = ctx.path("pids");
    std::fs::create_dir_all(&pids).unwrap();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("HOSTILE = \"\"", &format!("HOSTILE = \"{mode}\""))
            .replace(
                "PID_DIR = \"\"",
                &format!("PID_DIR = \"{}\"", pids.display()),
            )
    });
    ctx
}

/// Leaves the health scenario alone, for tests about the service, not its answers.
fn keep_only_health(ctx: &TestContext) {
    for scenario in ["secrets", "listing"] {
        std::fs::remove_file(ctx.path(&format!("scenarios/{scenario}.toml"))).unwrap();
    }
}

/// Every form a secret could be written in that the harness must never write.
fn forbidden_forms() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE;
    vec![
        PHRASE.to_owned(),
        PIN.to_owned(),
        TOKEN.to_owned(),
        "correct%20horse%20battery%20staple".to_owned(),
        "correct+horse+battery+staple".to_owned(),
        b64.encode(format!("user:{PHRASE}")),
        url.encode(format!("{PHRASE}?>")),
        "correct horse battery staple\\u00e9".to_owned(),
        WIRE.to_owned(),
        // As the harness sends it in a path and a query.
        "p@ss%20w/rd&x=1+%C3%A9".to_owned(),
        // As the service echoes it: hex, HTML entities, percent-encoded twice.
        hex_of(WIRE),
        "p@ss w/rd&amp;x=1+é".to_owned(),
        "p%2540ss%2520w%252Frd%2526x%253D1%252B%25C3%25A9".to_owned(),
    ]
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

fn assert_clean(what: &str, bytes: &[u8]) {
    assert_no(what, bytes, &forbidden_forms());
}

/// What a terminal must never receive from a service: the escapes its log
/// line is wrapped in (a title, a clipboard write, a link), or their payload.
fn assert_terminal_safe(what: &str, text: &str) {
    assert_clean(what, text.as_bytes());
    let escapes = [
        "\x1b]".to_owned(),
        "pwned-title".to_owned(),
        "\u{9b}".to_owned(),
    ];
    assert_no(what, text.as_bytes(), &escapes);
}

fn assert_no(what: &str, bytes: &[u8], forms: &[String]) {
    let text = String::from_utf8_lossy(bytes);
    for form in forms {
        assert!(
            !text.contains(form.as_str()),
            "{what} holds {form:?}:\n{}",
            &text[..text.len().min(4000)]
        );
    }
}

#[test]
fn secrets_reach_no_written_file_or_output_in_any_form() {
    let ctx = hostile("");
    let accepted = ctx.run(&["--accept"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    // The accepted snapshot holds the placeholders where the secrets were.
    let snap = std::fs::read_to_string(ctx.path("snapshots/secrets.snap")).unwrap();
    for placeholder in [
        "\"[secret:phrase]\": \"as a key\"",
        "\"pin\": \"[secret:pin]\"",
    ] {
        assert!(snap.contains(placeholder), "{placeholder} in:\n{snap}");
    }
    assert!(
        snap.contains("/drop/[secret:token]") && snap.contains("no response"),
        "the unanswered request is recorded without its URL's secret:\n{snap}"
    );
    assert!(
        snap.contains("/wire/[secret:wire]?q=[secret:wire]")
            && snap.contains("\"hex\": \"[secret:wire]\"")
            && snap.contains("\"html\": \"[secret:wire]\"")
            && snap.contains("\"twice\": \"[secret:wire]\""),
        "the echoed request line and its encodings hold placeholders:\n{snap}"
    );

    // Then a plain run, and one that prints the report as JSON: both match.
    let plain = ctx.run(&["--no-cache"]);
    assert_eq!(plain.code, 0, "{}", plain.stdout);
    let json = ctx.run(&["--no-cache", "--format", "json"]);
    assert_eq!(json.code, 0);
    // The two baseline replays ran on two ports; a header naming the port is
    // the same answer, not noise or a flaky scenario.
    assert_eq!(ctx.report().nondeterministic, [], "{}", json.stdout);

    let mut checked = 0;
    for run in [&accepted, &plain, &json] {
        assert_terminal_safe("stdout", &run.stdout);
        assert_terminal_safe("stderr", &run.stderr);
    }
    for file in [
        crate::common::files_under(&ctx.path("state")),
        crate::common::files_under(&ctx.path("snapshots")),
    ]
    .concat()
    {
        assert_clean(&file.display().to_string(), &std::fs::read(&file).unwrap());
        checked += 1;
    }
    assert!(
        checked > 10,
        "reports, results, logs and snapshots ({checked} files)"
    );
    let log = std::fs::read_to_string(ctx.path("state/logs/baseline/secrets.log")).unwrap();
    assert!(
        log.contains("login attempt") && log.contains("[secret:phrase]"),
        "the log keeps the line, not the secret:\n{log}"
    );

    // Files the harness writes get the user's umask, not a temp file's 0600.
    use std::os::unix::fs::PermissionsExt;
    let umask = umask();
    for file in ["state/report/report.json", "snapshots/secrets.snap"] {
        let mode = std::fs::metadata(ctx.path(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o666 & !umask, "{file}: {mode:o}");
    }
}

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("Umask:"))
        .unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn a_later_step_that_now_answers_2xx_is_a_security_finding_behind_a_body_that_looks_like_statuses()
{
    let ctx = hostile("");
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("HOSTILE = \"\"", "HOSTILE = \"admin-open\"")
    });
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    let listing = scenario_report(&report, "baseline", "listing");
    assert_eq!(listing.verdict, Verdict::Changed);
    assert!(listing.security, "{listing:?}");
    assert_eq!(
        listing.summary.as_deref(),
        Some("step `admin`: 403 Forbidden → 200 OK"),
        "the body's `100 items` and `403 Forbidden` lines are body, not statuses"
    );
    assert!(run.stdout.contains("SECURITY"), "{}", run.stdout);
    // In the PR comment the diff stays one code block: its fence is longer
    // than the run of backticks the service sent.
    let markdown = std::fs::read_to_string(ctx.path("state/report/report.md")).unwrap();
    assert!(
        markdown.contains("````diff\n") && markdown.contains("+< ```\n"),
        "{markdown}"
    );
    // The failure's log tail is printed, without the escapes the service wrapped it in.
    assert!(run.stdout.contains("starting link"), "{}", run.stdout);
    assert_terminal_safe("stdout", &run.stdout);
}

/// Pids the hostile service wrote into its pid folder under `name`.
fn recorded_pids(ctx: &TestContext, name: &str) -> Vec<u64> {
    std::fs::read_dir(ctx.path("pids"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            file.strip_prefix(&format!("{name}."))?.parse().ok()
        })
        .collect()
}

#[test]
fn a_service_that_starts_a_session_of_its_own_and_fails_leaves_nothing() {
    let ctx = hostile("setsid-then-fail");
    let run = ctx.run(&["--no-noise-check"]);
    assert_eq!(run.code, 1, "a start-up failure is a regression");
    let report = ctx.report();
    assert_eq!(
        verdict(&report, "baseline", "health"),
        Verdict::StartupFailed
    );
    let escaped = recorded_pids(&ctx, "escaped");
    assert!(!escaped.is_empty(), "the service started its helper");
    for pid in escaped {
        assert!(
            !crate::common::alive(pid),
            "pid {pid} outlived a failed start"
        );
    }
    let health = scenario_report(&report, "baseline", "health");
    assert!(
        !health.leaks.is_empty() || is_root(),
        "without a PID namespace the escaped helper is reported as a leak: {health:?}"
    );
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn a_daemonising_service_is_not_taken_for_a_port_thief_and_its_daemon_dies() {
    if !is_root() {
        eprintln!(
            "not root: no PID namespace, so a daemon that clears its environment cannot be found"
        );
        return;
    }
    let ctx = hostile("daemonise");
    let run = ctx.run(&["--no-noise-check"]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    let health = scenario_report(&report, "baseline", "health");
    assert_eq!(health.verdict, Verdict::StartupFailed, "{health:?}");
    assert!(
        !run.stderr
            .contains("held by another process; trying another"),
        "a daemon of the service's own is not another process:\n{}",
        run.stderr
    );
    let daemons = recorded_pids(&ctx, "daemon");
    assert!(!daemons.is_empty(), "the service daemonised");
    for pid in daemons {
        assert!(
            !crate::common::alive(pid),
            "daemon {pid} (environment cleared, files closed) outlived the run"
        );
    }
}

#[test]
fn a_flood_of_output_is_capped_in_the_log_and_the_harness_memory_stays_bounded() {
    let ctx = hostile("flood");
    keep_only_health(&ctx);
    // The harness's own peak resident memory (`VmHWM`, which only grows),
    // read while it runs: not its children's, nor other tests'.
    let mut harness = ctx
        .command(&["--accept"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", harness.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kib) = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = harness.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    let log = ctx.path("state/logs/baseline/health.log");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size < (8 << 20) + 1024, "the log is capped: {size} bytes");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("[upgrade-check: log cut at 8388608 bytes;"),
        "the cut is said in the log"
    );
    // 256 MiB went through the harness; its peak memory is a small part of it.
    eprintln!("the harness's peak resident memory: {peak_kib} KiB");
    assert!(peak_kib > 0 && peak_kib < 200 * 1024, "{peak_kib} KiB");
}

/// The service's log cannot be written (its folder is a full disk): the run
/// says so as the harness's own failure, never a pass, and no raw output is
/// kept anywhere to be scrubbed later.
#[test]
fn a_log_that_cannot_be_written_fails_the_run_as_an_error() {
    if !is_root() {
        eprintln!("not root: cannot mount a small tmpfs; the full-log check did not run");
        return;
    }
    let ctx = hostile("flood");
    keep_only_health(&ctx);
    let logs = ctx.path("state/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&logs)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount a 256 KiB tmpfs on the logs folder"
    );
    let outcome = std::panic::catch_unwind(|| {
        let run = ctx.run(&["--no-noise-check"]);
        assert_eq!(
            run.code, 2,
            "the harness could not do its job: {}",
            run.stdout
        );
        let report = ctx.report();
        let health = scenario_report(&report, "baseline", "health");
        assert_eq!(health.verdict, Verdict::Error, "{health:?}");
        assert!(
            health
                .summary
                .as_deref()
                .unwrap()
                .starts_with("the service's log could not be written: No space left on device"),
            "{health:?}"
        );
    });
    let _ = Command::new("umount").arg(&logs).status();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Where a report says a cell's result came from.
fn reused(ctx: &TestContext) -> bool {
    crate::common::cell_report(&ctx.report(), "baseline").result_reused
}

#[test]
fn a_recorded_result_is_not_reused_by_another_harness_build_or_environment() {
    let ctx = hostile("");
    keep_only_health(&ctx);
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    let with_tz = |tz: &str| {
        let mut command = ctx.command(&["--no-noise-check"]);
        command.env("TZ", tz);
        ctx.run_command(command)
    };
    assert_eq!(with_tz("UTC").code, 0);
    assert_eq!(with_tz("UTC").code, 0);
    assert!(reused(&ctx), "nothing changed: the result is reused");
    // TZ reaches the service, so it is an input.
    assert_eq!(with_tz("Europe/Paris").code, 0);
    assert!(!reused(&ctx), "another TZ is another input");

    // A variable the harness does not pass on is no input: the service never sees it.
    let with_flavor = |flavor: &str| {
        let mut command = ctx.command(&["--no-noise-check"]);
        command.env("TZ", "Europe/Paris").env("FLAVOR", flavor);
        ctx.run_command(command)
    };
    assert_eq!(with_flavor("b").code, 0, "the service saw no FLAVOR");
    assert!(reused(&ctx), "FLAVOR does not reach the service");
    // Unless the config passes it on: then it is an input, and the service sees it.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("[service.env]", "pass-env = [\"FLAVOR\"]\n\n[service.env]")
    });
    assert_eq!(with_flavor("b").code, 1, "the service saw FLAVOR=b");
    let report = ctx.report();
    let health = scenario_report(&report, "baseline", "health");
    assert!(
        health
            .diff
            .as_deref()
            .unwrap()
            .contains("+<   \"FLAVOR\": \"b\""),
        "{health:?}"
    );
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("pass-env = [\"FLAVOR\"]\n\n", "")
    });

    // Another build of the harness (here: its executable with a byte more).
    let other = ctx.path("other-build");
    let mut exe = std::fs::read(env!("CARGO_BIN_EXE_upgrade-check")).unwrap();
    exe.push(0);
    std::fs::write(&other, exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new(&other);
    command
        .args([
            "--config".as_ref(),
            ctx.path("upgrade-check.toml").as_os_str(),
        ])
        .env("UPGRADE_CHECK_STATE_DIR", ctx.path("state"))
        .env("UPGRADE_CHECK_CACHE_DIR", crate::common::shared_cache())
        .env("TZ", "Europe/Paris")
        .env_remove("CI")
        .arg("--no-noise-check");
    assert_eq!(ctx.run_command(command).code, 0);
    assert!(!reused(&ctx), "another harness build judges again");
}

#[test]
fn a_damaged_cached_environment_is_rebuilt_not_blamed_on_the_service() {
    let ctx = hostile("");
    keep_only_health(&ctx);
    // A cache of its own: the test breaks an environment in it.
    let cache = ctx.path("cache");
    let run = |ctx: &TestContext| {
        let mut command = ctx.command(&["--accept"]);
        command.env("UPGRADE_CHECK_CACHE_DIR", &cache);
        ctx.run_command(command)
    };
    assert_eq!(run(&ctx).code, 0);
    let envs = cache.join("envs");
    let mut broken = 0;
    for entry in std::fs::read_dir(&envs).unwrap().filter_map(Result::ok) {
        let python = entry.path().join("venv/bin/python");
        if std::fs::symlink_metadata(&python).is_ok() {
            std::fs::remove_file(&python).unwrap();
            broken += 1;
        }
    }
    assert_eq!(broken, 1, "one environment, its interpreter removed");
    let again = run(&ctx);
    assert_eq!(
        again.code, 0,
        "rebuilt, not STARTUP-FAILED:\n{}",
        again.stdout
    );
    assert!(Path::new(&envs).exists());
    assert!(
        !crate::common::cell_report(&ctx.report(), "baseline")
            .environment
            .as_ref()
            .unwrap()
            .build_reused,
        "the damaged environment was built again"
    );
}

#[test]
fn an_environment_a_service_wrote_into_is_built_again_and_said() {
    let ctx = hostile("poison");
    keep_only_health(&ctx);
    let cache = ctx.path("cache");
    let run = |ctx: &TestContext, args: &[&str]| {
        let mut command = ctx.command(args);
        command.env("UPGRADE_CHECK_CACHE_DIR", &cache);
        ctx.run_command(command)
    };
    assert_eq!(run(&ctx, &["--accept"]).code, 0);
    let six = || {
        crate::common::files_under(&cache.join("envs"))
            .into_iter()
            .find(|path| path.ends_with("site-packages/six.py"))
            .expect("six in the environment")
    };
    assert!(
        std::fs::read_to_string(six()).unwrap().contains("POISONED"),
        "the service wrote into its environment"
    );
    // The next run, of a well-behaved service, gets the environment as it
    // was built: not the poisoned one, not one made from a poisoned cache.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("HOSTILE = \"poison\"", "HOSTILE = \"\"")
    });
    let again = run(&ctx, &["--no-cache", "-v"]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    let report = ctx.report();
    let environment = crate::common::cell_report(&report, "baseline")
        .environment
        .as_ref()
        .unwrap();
    assert!(!environment.build_reused, "{environment:?}");
    let rebuilt = environment.rebuilt.as_deref().unwrap_or_default();
    assert!(
        rebuilt.contains("six.py changed since it was built"),
        "{environment:?}"
    );
    assert!(
        again.stderr.contains("environment built again") && again.stderr.contains("six.py"),
        "{}",
        again.stderr
    );
    assert!(!std::fs::read_to_string(six()).unwrap().contains("POISONED"));
    // Unchanged since: reused.
    assert_eq!(run(&ctx, &["--no-cache"]).code, 0);
    assert!(
        crate::common::cell_report(&ctx.report(), "baseline")
            .environment
            .as_ref()
            .unwrap()
            .build_reused
    );
}

#[test]
fn an_accepted_snapshot_that_is_a_symlink_is_refused_before_anything_runs() {
    let ctx = hostile("");
    let outside = ctx.path("outside.txt");
    std::fs::write(
        &outside,
        "---\nexpression: health\n---\nprivate: not the project's\n",
    )
    .unwrap();
    std::fs::create_dir_all(ctx.path("snapshots")).unwrap();
    std::os::unix::fs::symlink(&outside, ctx.path("snapshots/health.snap")).unwrap();
    let run = ctx.run(&[]);
    assert_eq!(run.code, 2, "bad input");
    assert!(
        run.stderr.contains("health.snap") && run.stderr.contains("regular file"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("private") && !run.stderr.contains("private: not"));
    assert!(!ctx.path("state/report/report.md").exists(), "nothing ran");
}

#[test]
fn a_baseline_that_answers_no_step_is_unhealthy_and_not_accepted() {
    let ctx = hostile("die-after-health");
    keep_only_health(&ctx);
    let refused = ctx.run(&["--accept"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the baseline is unhealthy")
            && refused
                .stderr
                .contains("no step got an answer (step `health check`"),
        "{}",
        refused.stderr
    );
    assert!(
        !ctx.path("snapshots/health.snap").exists(),
        "nothing accepted"
    );
}

#[test]
fn control_bytes_of_an_answer_are_shown_escaped_in_snapshots_and_reports() {
    let ctx = hostile("");
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    let snap = std::fs::read_to_string(ctx.path("snapshots/secrets.snap")).unwrap();
    assert!(
        snap.contains("welcome \\x1b]0;pwned-title\\x07\\x1b[31mred\\x1b[0m \\u{9b}1m"),
        "{snap}"
    );
    // The service now answers otherwise: the diff reaches every report.
    ctx.edit("snapshots/secrets.snap", |text| {
        text.replace("welcome", "hello")
    });
    assert_eq!(ctx.run(&["--no-cache"]).code, 1);
    let mut checked = Vec::new();
    for file in [
        "snapshots/secrets.snap",
        "snapshots/secrets.snap.new",
        "state/report/report.md",
        "state/report/junit.xml",
        "state/report/report.html",
    ] {
        let text = std::fs::read_to_string(ctx.path(file)).unwrap();
        assert!(text.contains("pwned-title"), "{file} shows what was sent");
        assert!(
            !text.contains(['\x1b', '\x07', '\u{9b}']),
            "{file} holds raw control bytes"
        );
        checked.push(file);
    }
    assert_eq!(checked.len(), 5);
}

/// A step that gets no answer stops the scenario only where a later step
/// needs it (an expectation, a capture), as the scenario format says.
#[test]
fn an_unanswered_step_without_expectations_does_not_stop_the_scenario() {
    let ctx = hostile("");
    keep_only_health(&ctx);
    std::fs::write(
        ctx.path("scenarios/gap.toml"),
        "description = \"an unanswered request, then a plain one\"\n\n[[steps]]\nname = \"dropped\"\n\
         method = \"GET\"\npath = \"/drop/x\"\n\n[[steps]]\nname = \"health\"\nmethod = \"GET\"\n\
         path = \"/health\"\n",
    )
    .unwrap();
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    let snap = std::fs::read_to_string(ctx.path("snapshots/gap.snap")).unwrap();
    assert!(
        snap.contains("# 1. dropped")
            && snap.contains("no response")
            && snap.contains("# 2. health"),
        "{snap}"
    );
    assert!(!snap.contains("stopped at step"), "{snap}");
}

/// A service that closes its connection a moment after a 500, without
/// saying so (uvicorn's way): the 500 is what is reported, run after run,
/// and the next step is answered on a connection of its own.
#[test]
fn the_step_that_answered_500_is_blamed_not_the_one_after_a_closed_connection() {
    let ctx = hostile("");
    keep_only_health(&ctx);
    std::fs::remove_file(ctx.path("scenarios/health.toml")).unwrap();
    std::fs::write(
        ctx.path("scenarios/after-error.toml"),
        "description = \"an error, then a plain request\"\n\n[[steps]]\nname = \"admin\"\n\
         method = \"GET\"\npath = \"/admin\"\n\n[[steps]]\nname = \"health\"\nmethod = \"GET\"\n\
         path = \"/health\"\n",
    )
    .unwrap();
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("HOSTILE = \"\"", "HOSTILE = \"close-after-500\"")
    });
    for attempt in 1..=10 {
        let run = ctx.run(&["--no-cache", "--no-noise-check"]);
        assert_eq!(run.code, 1, "attempt {attempt}: {}", run.stdout);
        let after = scenario_report(&ctx.report(), "baseline", "after-error").clone();
        let summary = after.summary.as_deref().unwrap_or_default();
        assert!(
            summary.contains("step `admin`") && summary.contains("500 Internal Server Error"),
            "attempt {attempt}: {after:?}"
        );
        let diff = after.diff.as_deref().unwrap_or_default();
        assert!(!diff.contains("no response"), "attempt {attempt}: {diff}");
    }
}

#[test]
fn a_cell_that_answers_5xx_is_accepted_as_an_alternative_only_when_told() {
    let ctx = hostile("broken");
    for scenario in ["secrets", "health"] {
        std::fs::remove_file(ctx.path(&format!("scenarios/{scenario}.toml"))).unwrap();
    }
    let refused = ctx.run(&["accept", "--cell", "six 1.17.0", "listing"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("cannot accept: `six 1.17.0` is unhealthy on `listing`")
            && refused
                .stderr
                .contains("step `admin` answered 500 Internal Server Error")
            && refused.stderr.contains("--accept-unhealthy"),
        "{}",
        refused.stderr
    );
    assert!(
        !ctx.path("snapshots/alternatives").exists(),
        "nothing accepted"
    );
    let told = ctx.run(&[
        "accept",
        "--cell",
        "six 1.17.0",
        "listing",
        "--accept-unhealthy",
    ]);
    assert_eq!(told.code, 0, "{}", told.stderr);
    assert!(
        ctx.path("snapshots/alternatives/listing/six-1.17.0.snap")
            .exists()
    );
}

#[test]
fn a_baseline_that_answers_5xx_is_flagged_and_accepted_only_when_told() {
    let ctx = hostile("broken");
    let refused = ctx.run(&["--accept"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the baseline is unhealthy")
            && refused
                .stderr
                .contains("step `admin` answered 500 Internal Server Error")
            && refused.stderr.contains(
                "the service logged a traceback: ValueError: password cannot be longer than 72 bytes"
            )
            && refused.stderr.contains("--accept-unhealthy"),
        "{}",
        refused.stderr
    );
    assert!(
        !ctx.path("snapshots/listing.snap").exists(),
        "nothing accepted"
    );
    assert_eq!(ctx.run(&["--accept", "--accept-unhealthy"]).code, 0);
    assert!(ctx.path("snapshots/listing.snap").exists());
    // Accepted, it matches; every report still says the reference is unhealthy.
    let run = ctx.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let flag =
        "⚠ the baseline is unhealthy in listing: step `admin` answered 500 Internal Server Error";
    assert!(run.stdout.contains(flag), "{}", run.stdout);
    let markdown = std::fs::read_to_string(ctx.path("state/report/report.md")).unwrap();
    assert!(markdown.contains(flag), "{markdown}");
    assert_eq!(
        scenario_report(&ctx.report(), "baseline", "listing").unhealthy[0],
        "step `admin` answered 500 Internal Server Error"
    );
}

/// The one recorded result in the state folder written last.
fn newest_result(ctx: &TestContext) -> std::path::PathBuf {
    crate::common::files_under(&ctx.path("state/results"))
        .into_iter()
        .max_by_key(|path| std::fs::metadata(path).unwrap().modified().unwrap())
        .expect("a recorded result")
}

#[test]
fn a_result_the_repository_brings_is_never_reused_and_a_repository_controlled_state_folder_is_refused()
 {
    let ctx = hostile("");
    keep_only_health(&ctx);
    crate::common::git(&ctx, &["init", "-q"]);
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    crate::common::git(
        &ctx,
        &[
            "add",
            "upgrade-check.toml",
            "scenarios",
            "service",
            "snapshots",
        ],
    );
    crate::common::git(&ctx, &["commit", "-qm", "check upgrades"]);
    assert_eq!(ctx.run(&["--no-noise-check"]).code, 0);
    // What a pull request can write: a pass recorded in the format the
    // harness reads, without this machine's secret.
    let passing = std::fs::read_to_string(newest_result(&ctx)).unwrap();
    let (_, unsigned_pass) = passing.split_once('\n').expect("a signed result");
    assert!(
        unsigned_pass.contains("\"verdict\":\"pass\""),
        "{unsigned_pass}"
    );

    // The service's answers change; the result of that is recorded under
    // a key anyone with this release can compute from the files.
    ctx.edit("snapshots/health.snap", |text| {
        text.replacen("200", "299", 1)
    });
    let changed = ctx.run(&["--no-noise-check"]);
    assert_eq!(changed.code, 1, "the changed answer is a regression");
    // The forged pass put in its place is not read: the cell is judged again.
    std::fs::write(newest_result(&ctx), unsigned_pass).unwrap();
    let forged = ctx.run(&["--no-noise-check"]);
    assert_eq!(forged.code, 1, "a forged pass made the check green");
    assert!(!reused(&ctx));

    // A state folder holding files git tracks (committed with `git add -f`)
    // is refused before anything runs, naming it.
    crate::common::git(&ctx, &["add", "-f", "state/results"]);
    crate::common::git(&ctx, &["commit", "-qm", "a recorded result"]);
    let tracked = ctx.run(&[]);
    assert_eq!(tracked.code, 2, "{}", tracked.stderr);
    assert!(
        tracked.stderr.contains("holds files tracked by git") && tracked.stderr.contains("state"),
        "{}",
        tracked.stderr
    );
    crate::common::git(&ctx, &["rm", "-rq", "--cached", "state"]);
    crate::common::git(&ctx, &["commit", "-qm", "no recorded results"]);

    // A committed symlink on the way to the state folder would send every
    // write where the repository points: refused, naming the link.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), ctx.path("target")).unwrap();
    crate::common::git(&ctx, &["add", "target"]);
    crate::common::git(&ctx, &["commit", "-qm", "a target link"]);
    let mut command = ctx.command(&[]);
    command.env("UPGRADE_CHECK_STATE_DIR", ctx.path("target/upgrade-check"));
    let linked = ctx.run_command(command);
    assert_eq!(linked.code, 2, "{}", linked.stderr);
    assert!(
        linked
            .stderr
            .contains("symlink committed to the repository")
            && linked
                .stderr
                .contains(&ctx.path("target").display().to_string()),
        "{}",
        linked.stderr
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing was written behind the link"
    );
}

#[test]
fn a_secret_that_is_a_word_of_its_own_placeholder_matches_its_accepted_snapshot() {
    let ctx = hostile("");
    keep_only_health(&ctx);
    std::fs::write(
        ctx.path("scenarios/plain.toml"),
        "description = \"the most common test password\"\n\n[secrets]\npassword = \"password\"\n\n\
         [[steps]]\nname = \"echo\"\nmethod = \"POST\"\npath = \"/echo\"\n\
         json = { phrase = \"{{password}}\", pin = \"1\" }\n",
    )
    .unwrap();
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    let snap = std::fs::read_to_string(ctx.path("snapshots/plain.snap")).unwrap();
    assert!(
        snap.contains("\"[secret:password]\": \"as a key\""),
        "{snap}"
    );
    assert!(
        !snap.contains("[secret:[secret:"),
        "redacted twice:\n{snap}"
    );
    let run = ctx.run(&["--no-cache"]);
    assert_eq!(run.code, 0, "the baseline matches its own snapshot");
    // Accepting again writes the same snapshot, which still matches.
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    assert_eq!(
        std::fs::read_to_string(ctx.path("snapshots/plain.snap")).unwrap(),
        snap
    );
    assert_eq!(ctx.run(&["--no-cache"]).code, 0);
}

/// Every encoding of `secret` that a request carries or a service echoes:
/// as written, as the harness sends it in a path and in a query (the URL
/// parser's own encoding), percent-encoded whole, as a form encodes it,
/// twice percent-encoded, as HTML entities, in hex, JSON-escaped.
fn wire_forms(secret: &str) -> Vec<String> {
    let sent = |prefix: &str| {
        let url = reqwest::Url::parse(&format!("{prefix}{secret}")).unwrap();
        url.as_str()[prefix.len()..].to_owned()
    };
    let percent = |keep: &str, space: &str| -> String {
        secret
            .bytes()
            .map(|byte| match byte {
                b' ' => space.to_owned(),
                b if b.is_ascii_alphanumeric() || keep.as_bytes().contains(&b) => {
                    (b as char).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    let whole = percent("-._~", "%20");
    vec![
        secret.to_owned(),
        sent("http://h/"),
        sent("http://h/?"),
        whole.clone(),
        percent("*-._", "+"),
        whole.replace('%', "%25"),
        secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#x27;"),
        hex_of(secret),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
    ]
}

/// Secrets generated from the characters that need escaping (`#` and `?`
/// aside: a URL cuts its path there, so the service never sees the whole
/// secret), sent in a path, a query and a body, echoed back in every
/// encoding: no written file and no stream holds any form of one.
#[test]
fn generated_secrets_reach_no_written_file_or_stream_in_any_form() {
    let mut random = fastrand::Rng::with_seed(31);
    let alphabet: Vec<char> = "aZ09@/&=+ %é\"'<>;:,~$!*()".chars().collect();
    for _ in 0..3 {
        let secret: String = (0..random.usize(8..16))
            .map(|_| alphabet[random.usize(..alphabet.len())])
            .collect();
        let ctx = hostile("");
        for scenario in ["health", "listing"] {
            std::fs::remove_file(ctx.path(&format!("scenarios/{scenario}.toml"))).unwrap();
        }
        let quoted = secret.replace('\\', "\\\\").replace('"', "\\\"");
        ctx.edit("scenarios/secrets.toml", |text| {
            text.replace(
                "wire = \"p@ss w/rd&x=1+é\"",
                &format!("wire = \"{quoted}\""),
            )
        });
        let accepted = ctx.run(&["--accept"]);
        assert_eq!(accepted.code, 0, "{secret:?}: {}", accepted.stderr);
        let plain = ctx.run(&["--no-cache", "-v"]);
        assert_eq!(plain.code, 0, "{secret:?}: {}", plain.stdout);
        let forms = wire_forms(&secret);
        for run in [&accepted, &plain] {
            assert_no(
                &format!("{secret:?}: stdout"),
                run.stdout.as_bytes(),
                &forms,
            );
            assert_no(
                &format!("{secret:?}: stderr"),
                run.stderr.as_bytes(),
                &forms,
            );
        }
        let files = [
            crate::common::files_under(&ctx.path("state")),
            crate::common::files_under(&ctx.path("snapshots")),
        ]
        .concat();
        assert!(files.len() > 5, "{files:?}");
        for file in files {
            let what = format!("{secret:?}: {}", file.display());
            assert_no(&what, &std::fs::read(&file).unwrap(), &forms);
        }
        let snap = std::fs::read_to_string(ctx.path("snapshots/secrets.snap")).unwrap();
        assert!(
            snap.contains("/wire/[secret:wire]?q=[secret:wire]"),
            "{secret:?}:\n{snap}"
        );
    }
}
