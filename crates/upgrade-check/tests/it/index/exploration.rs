//! `explore` finds the breaks no scenario asks for: variants of the recorded
//! steps, judged against the baseline's answers, on real package versions.

use upgrade_check_core::model::findings::FindingKind;
use upgrade_check_core::model::report::Verdict;

use crate::common::{TestContext, assert_no_service_left, verdict};

/// The bundled service as a team that never wrote a long-password scenario
/// has it: bcrypt 5.0.0 is the break, the other cells are harmless.
fn without_the_long_password_scenario() -> TestContext {
    let ctx = TestContext::new();
    std::fs::remove_file(ctx.path("scenarios/long-password.toml")).unwrap();
    std::fs::remove_file(ctx.path("snapshots/long-password.snap")).unwrap();
    ctx.set_matrix(
        "bcrypt = [\"4.1.2\", \"5.0.0\"]\nflask = [\"2.3.3\", \"3.0.3\"]\npyjwt = [\"2.8.0\"]",
    );
    // The config explores the ordinary register and login scenarios.
    let config = std::fs::read_to_string(ctx.path("upgrade-check.toml")).unwrap();
    assert!(config.contains("[explore]\nbudget = 200\nscenarios = [\"register\", \"login\"]"));
    ctx
}

#[test]
fn exploring_the_ordinary_scenarios_finds_bcrypt_5_and_its_scenario_then_catches_it() {
    let ctx = without_the_long_password_scenario();
    // The ordinary scenarios miss the break.
    let plain = ctx.run(&["--no-bisect"]);
    assert_eq!(plain.code, 0, "{}\n{}", plain.stdout, plain.stderr);

    // A third of the config's budget finds it as well, at a third of the cost.
    let explored = ctx.run(&["explore", "--budget", "60"]);
    assert_eq!(explored.code, 1, "a finding fails the check");
    let report = ctx.report();
    let exploration = report
        .exploration
        .as_ref()
        .expect("an exploration's report");
    assert!(exploration.requests <= 60, "{exploration:?}");
    assert!(!exploration.findings.is_empty());
    for finding in &exploration.findings {
        // bcrypt 5.0.0 alone, on a password past 72 bytes, and nothing else.
        assert_eq!(finding.cells, ["bcrypt 5.0.0"], "{finding:?}");
        assert!(finding.mutation.starts_with("/password: "), "{finding:?}");
        assert_eq!(finding.kind, FindingKind::Crash, "{finding:?}");
        assert!(finding.answer.starts_with("500"), "{finding:?}");
        assert!(finding.written.ends_with("(pending review)"), "{finding:?}");
    }
    // Registering with a long password is found, from a one-step variant.
    let register = exploration
        .findings
        .iter()
        .find(|finding| finding.request.starts_with("POST /api/auth/register"))
        .expect("the register endpoint's finding");
    assert_eq!(register.baseline, "201 Created");
    assert!(register.diff.contains("+< 500 Internal Server Error"));
    // Said first, on the terminal and in the comment.
    assert!(
        explored.stdout.starts_with("exploration: ")
            && explored.stdout.contains("bcrypt 5.0.0")
            && explored
                .stdout
                .contains("bcrypt 4.1.2: answers every variant as the baseline does")
            && explored
                .stdout
                .contains("flask 3.0.3: answers every variant as the baseline does")
            && explored
                .stdout
                .contains("pyjwt 2.8.0: answers every variant as the baseline does"),
        "{}",
        explored.stdout
    );
    crate::common::assert_readme_sample(
        "within a budget of 60 requests per cell",
        &explored.stdout,
    );
    let comment = std::fs::read_to_string(ctx.path("state/report/report.md")).unwrap();
    assert!(
        comment.contains(&register.scenario) && comment.contains("```http"),
        "{comment}"
    );
    let junit = std::fs::read_to_string(ctx.path("state/report/junit.xml")).unwrap();
    assert!(
        junit.contains(&format!("name=\"{}\"", register.scenario)),
        "{junit}"
    );
    assert_no_service_left(&ctx, &report);

    // Each finding is an ordinary scenario pending review; the secrets stay
    // in the scenario it came from.
    let names: Vec<String> = exploration
        .findings
        .iter()
        .map(|f| f.scenario.clone())
        .collect();
    for name in &names {
        let file =
            std::fs::read_to_string(ctx.path(&format!("scenarios/explored/{name}.toml"))).unwrap();
        assert!(file.contains("secrets-from = "), "{file}");
        assert!(
            !file.contains("correct horse") && !file.contains("s3cret"),
            "{file}"
        );
        assert!(ctx.path(&format!("snapshots/{name}.snap.new")).is_file());
    }
    let mut accept = vec!["accept"];
    accept.extend(names.iter().map(String::as_str));
    let accepted = ctx.run(&accept);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);

    // Every later run checks them, without exploring.
    let caught = ctx.run(&["--no-bisect"]);
    assert_eq!(caught.code, 1, "{}", caught.stdout);
    let report = ctx.report();
    assert!(report.exploration.is_none());
    for name in &names {
        assert_eq!(verdict(&report, "baseline", name), Verdict::Pass);
        assert_eq!(verdict(&report, "bcrypt 4.1.2", name), Verdict::Pass);
        assert_eq!(verdict(&report, "flask 3.0.3", name), Verdict::Pass);
        assert_eq!(verdict(&report, "bcrypt 5.0.0", name), Verdict::Changed);
    }
    assert!(
        caught.stdout.starts_with("✗ bcrypt 5.0.0 breaks"),
        "{}",
        caught.stdout
    );
}

#[test]
fn an_exploration_is_the_same_for_a_seed_every_run_may_explore_and_its_config_is_checked() {
    let ctx = without_the_long_password_scenario();
    ctx.set_matrix("bcrypt = [\"4.1.2\"]");
    let first = ctx.run(&["explore", "--budget", "30", "--seed", "7"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let tried = |ctx: &TestContext| -> Vec<String> {
        let report = ctx.report();
        let mut names = report.scenarios.clone();
        names.sort();
        names
    };
    let once = tried(&ctx);
    assert!(once.len() > 5, "{once:?}");
    let report = ctx.report();
    let exploration = report.exploration.unwrap();
    assert!(exploration.findings.is_empty() && exploration.requests <= 30);
    assert!(
        report
            .run
            .reproduce
            .contains("explore --budget 30 --seed 7"),
        "{}",
        report.run.reproduce
    );
    assert!(
        !ctx.path("scenarios/explored").exists(),
        "nothing found, nothing written"
    );
    let again = ctx.run(&["explore", "--budget", "30", "--seed", "7"]);
    assert_eq!(again.code, 0);
    assert_eq!(tried(&ctx), once);

    // One step alone, with the whole budget: login's second (`login-2-…`).
    let step = ctx.run(&["explore", "--budget", "30", "--step", "good password"]);
    assert_eq!(step.code, 0, "{}\n{}", step.stdout, step.stderr);
    let of_step = tried(&ctx);
    assert!(
        of_step.len() > once.iter().filter(|n| n.starts_with("login-2-")).count()
            && of_step.iter().all(|name| name.starts_with("login-2-")),
        "{of_step:?} against {once:?}"
    );
    let unknown_step = ctx.run(&["explore", "--step", "log in"]);
    assert_eq!(unknown_step.code, 2, "{}", unknown_step.stderr);
    assert!(
        unknown_step
            .stderr
            .contains("no step `log in` in `register`, `login`"),
        "{}",
        unknown_step.stderr
    );

    // Every run explores after its check: a check that passes fails on
    // what exploration finds, said under its verdict.
    ctx.set_matrix("bcrypt = [\"5.0.0\"]");
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "budget = 200\nscenarios = [\"register\", \"login\"]",
            "budget = 30\nscenarios = [\"register\"]\nin-every-run = true",
        )
    });
    let checked = ctx.run(&["--no-bisect"]);
    assert_eq!(checked.code, 1, "{}\n{}", checked.stdout, checked.stderr);
    let mut lines = checked.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("✓ all 2 cells match the accepted snapshots")
    );
    assert!(
        lines
            .next()
            .is_some_and(|line| line.starts_with("exploration: ") && line.contains("bcrypt 5.0.0")),
        "{}",
        checked.stdout
    );
    let report = ctx.report();
    assert_eq!(verdict(&report, "bcrypt 5.0.0", "register"), Verdict::Pass);
    let exploration = report.exploration.unwrap();
    assert!(exploration.after_check && exploration.requests <= 30);
    assert!(!exploration.findings.is_empty());
    assert!(
        exploration
            .findings
            .iter()
            .all(|f| f.cells == ["bcrypt 5.0.0"])
    );
    // The check's own columns: its scenarios, not the variants.
    assert!(
        report
            .scenarios
            .iter()
            .all(|name| !name.starts_with("register-")),
        "{:?}",
        report.scenarios
    );
    // Findings that only warn: reported, and the check passes.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "in-every-run = true",
            "in-every-run = true\nfindings = \"warn\"",
        )
    });
    let warned = ctx.run(&["explore"]);
    assert_eq!(warned.code, 0, "{}\n{}", warned.stdout, warned.stderr);
    assert!(!ctx.report().exploration.unwrap().findings.is_empty());

    // A scenario the config names that is not there: file, line and key.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("scenarios = [\"register\"]", "scenarios = [\"signup\"]")
    });
    let unknown = ctx.run(&["explore"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("upgrade-check.toml:")
            && unknown.stderr.contains("explore.scenarios")
            && unknown.stderr.contains("no scenario `signup`"),
        "{}",
        unknown.stderr
    );
    // A step none of them has, the same way.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "scenarios = [\"signup\"]",
            "scenarios = [\"register\"]\nsteps = [\"good password\"]",
        )
    });
    let unknown = ctx.run(&["explore"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("upgrade-check.toml:")
            && unknown.stderr.contains("explore.steps")
            && unknown
                .stderr
                .contains("no step `good password` in `register`"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn the_token_variants_find_jsonwebtoken_8_3_refusing_a_padded_payload() {
    let ctx =
        TestContext::from_workspace("fixtures/rust-auth-service", std::path::Path::to_path_buf);
    // The service as it was before the upgrade: jsonwebtoken 8.2.0 in its lock.
    ctx.edit("service/Cargo.toml", |text| {
        text.replace(
            "jsonwebtoken = { version = \"8.3.0\"",
            "jsonwebtoken = { version = \"8.2.0\"",
        )
    });
    let downgraded = std::process::Command::new("cargo")
        .args([
            "update",
            "--quiet",
            "-p",
            "jsonwebtoken",
            "--precise",
            "8.2.0",
        ])
        .current_dir(ctx.path("service"))
        .output()
        .unwrap();
    assert!(
        downgraded.status.success(),
        "{}",
        String::from_utf8_lossy(&downgraded.stderr)
    );
    ctx.set_matrix("jsonwebtoken = [\"8.3.0\"]");

    let explored = ctx.run(&["explore", "--scenario", "login"]);
    assert_eq!(explored.code, 1, "{}\n{}", explored.stdout, explored.stderr);
    let report = ctx.report();
    // The token variants of `/me` (a GET) shared one service start after
    // one replay of the four steps before it; the one 8.3 answered
    // otherwise there ran alone, and showed it alone.
    assert!(
        report
            .scenarios
            .iter()
            .any(|name| name == "login-5-shared-start"),
        "{:?}",
        report.scenarios
    );
    assert!(
        explored
            .stderr
            .contains("running 1 variant of shared service starts alone"),
        "{}",
        explored.stderr
    );
    let exploration = report.exploration.unwrap();
    let [finding] = exploration.findings.as_slice() else {
        panic!("{:#?}", exploration.findings);
    };
    // The token the service issued, its payload padded and signed again
    // with the service's key: 8.2 takes it, 8.3 refuses it.
    assert_eq!(finding.cells, ["jsonwebtoken 8.3.0"]);
    assert_eq!(finding.mutation, "Authorization: a padded payload");
    assert_eq!(finding.kind, FindingKind::Status);
    assert_eq!(
        (finding.baseline.as_str(), finding.answer.as_str()),
        ("200 OK", "401 Unauthorized")
    );
    assert!(
        finding.request.contains("Bearer {{token | jwt-padded}}"),
        "{}",
        finding.request
    );
    assert!(
        finding.diff.contains("authorization: Bearer [jwt:padded]"),
        "{}",
        finding.diff
    );
    // Made as small as it goes: the steps the token needs, and no other.
    let written =
        std::fs::read_to_string(ctx.path(&format!("scenarios/explored/{}.toml", finding.scenario)))
            .unwrap();
    let steps: Vec<&str> = written
        .lines()
        .filter_map(|line| line.strip_prefix("name = "))
        .collect();
    assert_eq!(
        steps,
        ["\"register\"", "\"good password\"", "\"me with the token\""],
        "{written}"
    );
    assert!(
        explored.stderr.contains("making 1 finding smaller"),
        "{}",
        explored.stderr
    );

    // Accepted, the explored scenario catches the upgrade in a normal run.
    let accepted = ctx.run(&["accept", &finding.scenario]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let caught = ctx.run(&["--no-bisect", "--scenario", &finding.scenario]);
    assert_eq!(caught.code, 1, "{}", caught.stdout);
    let report = ctx.report();
    assert_eq!(
        verdict(&report, "baseline", &finding.scenario),
        Verdict::Pass
    );
    assert_eq!(
        verdict(&report, "jsonwebtoken 8.3.0", &finding.scenario),
        Verdict::Changed
    );
}

#[test]
fn the_fields_a_service_s_openapi_document_bounds_are_tried_just_past_their_bounds() {
    // The FastAPI service: `username` 3 to 32 characters, `password` 8 at least.
    // A budget of 8 requests, of 16 variants: every bound the document
    // gives is among the first tried.
    let ctx = crate::common::fastapi_signing_up();
    crate::common::explore_reading_openapi(&ctx, "8");
    let report = ctx.report();
    for name in [
        "signup-1-username-33-bytes-over-its-maxlength-32",
        "signup-1-username-32-bytes-its-maxlength",
        "signup-1-username-2-bytes-under-its-minlength-3",
        "signup-1-password-7-bytes-under-its-minlength-8",
    ] {
        assert!(
            report.scenarios.iter().any(|s| s == name),
            "{name}: {:?}",
            report.scenarios
        );
        // Tried within the budget, answered by the baseline twice alike.
        assert_eq!(verdict(&report, "baseline", name), Verdict::Pass);
    }
    assert!(report.exploration.unwrap().unstable.is_empty());
}

#[test]
fn ctrl_c_keeps_what_the_exploration_found() {
    let ctx = without_the_long_password_scenario();
    ctx.set_matrix("bcrypt = [\"5.0.0\"]");
    let mut command = ctx.command(&["explore", "--budget", "40", "--scenario", "login"]);
    // Its findings made smaller take until the signal comes.
    command
        .env("UPGRADE_CHECK_FAILPOINT", "stall-minimising=1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut harness = command.spawn().unwrap();
    let stderr = std::io::BufReader::new(harness.stderr.take().unwrap());
    let mut said = String::new();
    for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
        said.push_str(&line);
        said.push('\n');
        if line.contains("smaller: ") {
            break;
        }
    }
    assert!(said.contains("smaller: "), "{said}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(harness.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = harness.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{said}");
    let report = ctx.report();
    assert_eq!(report.cancelled.as_deref(), Some("SIGINT"));
    // What was found before the signal is reported and written.
    let exploration = report.exploration.unwrap();
    assert!(!exploration.findings.is_empty());
    for finding in &exploration.findings {
        assert!(
            ctx.path(&format!("scenarios/explored/{}.toml", finding.scenario))
                .is_file()
        );
    }
    assert_no_service_left(&ctx, &ctx.report());
}

#[test]
fn a_difference_the_recorded_step_shows_too_is_left_to_the_check() {
    // jsonwebtoken 10.4 panics on the first token it signs: logging in
    // never answers, whatever the variant. The ordinary check says so.
    let ctx =
        TestContext::from_workspace("fixtures/rust-auth-service", std::path::Path::to_path_buf);
    ctx.set_matrix("jsonwebtoken = [\"10.4.0\"]");
    let explored = ctx.run(&["explore", "--scenario", "login"]);
    assert_eq!(explored.code, 0, "{}\n{}", explored.stdout, explored.stderr);
    let exploration = ctx.report().exploration.unwrap();
    assert!(
        exploration.findings.is_empty(),
        "{:#?}",
        exploration.findings
    );
    assert!(
        exploration
            .known
            .iter()
            .any(|known| known.starts_with("jsonwebtoken 10.4.0: crash at login's `good password`")),
        "{:?}",
        exploration.known
    );
    assert!(
        explored.stdout.contains(
            "jsonwebtoken 10.4.0: differs only where its recorded steps do (the check reports that)"
        ),
        "{}",
        explored.stdout
    );
    assert!(!ctx.path("scenarios/explored").exists());
}

#[test]
fn variants_that_share_a_start_run_alone_when_the_state_they_share_moves() {
    // A GET whose answer depends on the ones before it: after two refused
    // tokens, `/account` is locked. Its token variants share a service
    // start; the step as recorded answers 200 before them and 429 after,
    // so each is run alone, where it is refused (401), not locked.
    let ctx = TestContext::from_workspace("fixtures/variants/hostile", std::path::Path::to_owned);
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("HOSTILE = \"\"", "HOSTILE = \"lockout\"")
            + "\n[matrix.packages]\nclick = [\"8.1.8\"]\n"
    });
    std::fs::write(
        ctx.path("scenarios/account.toml"),
        "description = \"an account behind a token\"\n\n\
         [[steps]]\nname = \"health\"\nmethod = \"GET\"\npath = \"/health\"\n\n\
         [[steps]]\nname = \"account\"\nmethod = \"GET\"\npath = \"/account\"\n\
         headers = { Authorization = \"Bearer open-sesame\" }\n",
    )
    .unwrap();
    let explored = ctx.run(&["explore", "--scenario", "account"]);
    assert_eq!(explored.code, 0, "{}\n{}", explored.stdout, explored.stderr);
    let report = ctx.report();
    // `health` has nothing to vary: every variant is the account's, in
    // one start, and every one of them ran alone.
    assert_eq!(report.scenarios, ["account-2-shared-start"]);
    let exploration = report.exploration.unwrap();
    assert!(exploration.variants >= 3, "{exploration:#?}");
    let alone = format!(
        "running {} variants of shared service starts alone",
        exploration.variants
    );
    assert!(
        explored.stderr.contains(&alone),
        "{alone}\n{}",
        explored.stderr
    );
    assert!(
        exploration.findings.is_empty() && exploration.unstable.is_empty(),
        "{exploration:#?}"
    );
    assert!(
        explored
            .stdout
            .contains("click 8.1.8: answers every variant as the baseline does"),
        "{}",
        explored.stdout
    );

    // Without the lockout the account answers alike before and after the
    // variants: the shared start vouches for them, nothing runs again.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("HOSTILE = \"lockout\"", "HOSTILE = \"\"")
    });
    let unlocked = ctx.run(&["explore", "--scenario", "account"]);
    assert_eq!(unlocked.code, 0, "{}\n{}", unlocked.stdout, unlocked.stderr);
    assert!(
        !unlocked.stderr.contains("shared service starts alone"),
        "{}",
        unlocked.stderr
    );
}
