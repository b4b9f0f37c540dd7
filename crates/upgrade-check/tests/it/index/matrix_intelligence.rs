//! Versions from the package index: matrix ranges and bisection, against the
//! real index.

use crate::common::Verdict;
use crate::common::{TestContext, cell_names};

/// The plan's cell ids, as `upgrade-check plan` prints them.
fn planned_ids(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split('\t').next())
        .collect()
}

#[test]
fn a_range_expands_from_the_index_before_anything_runs_and_skips_yanked_versions() {
    let ctx = TestContext::new();
    ctx.set_matrix(
        r#"bcrypt = { range = ">=4.0,<4.2", pick = "all" }
flask = { range = ">=2.2,<3.1", pick = "latest-per-minor" }"#,
    );
    let run = ctx.run(&["plan"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    crate::common::assert_readme_sample(
        "The expansion is printed before anything runs:",
        &run.stderr,
    );
    // 4.1.0 was yanked; 2.2.5, the baseline's pin, is the newest 2.2.
    assert_eq!(
        planned_ids(&run.stdout),
        [
            "baseline",
            "bcrypt-4.0.0",
            "bcrypt-4.0.1",
            "bcrypt-4.1.1",
            "bcrypt-4.1.2",
            "bcrypt-4.1.3",
            "flask-2.3.3",
            "flask-3.0.3",
        ]
    );
    let expansion = run
        .stderr
        .lines()
        .find(|line| line.contains("bcrypt >=4.0, <4.2 (all): 5 of "))
        .unwrap_or_else(|| panic!("the expansion is shown: {}", run.stderr));
    // Another test may have asked the index about bcrypt within the hour.
    assert!(
        expansion.ends_with("from the package index: 4.0.0, 4.0.1, 4.1.1, 4.1.2, 4.1.3")
            || expansion.ends_with("index answer cached: 4.0.0, 4.0.1, 4.1.1, 4.1.2, 4.1.3"),
        "{expansion}"
    );
    assert!(
        run.stdout
            .contains("# skipped: flask 2.2.5 is the baseline version")
    );
    assert!(!ctx.path("state/report").exists(), "planning runs nothing");

    // Offline, the cached answer is used and said to be cached.
    let offline = ctx.run(&["--offline", "plan"]);
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert!(
        offline
            .stderr
            .contains("versions, index answer cached: 2.2.5, 2.3.3, 3.0.3"),
        "{}",
        offline.stderr
    );
}

#[test]
fn a_range_the_index_has_nothing_for_names_its_line() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = { range = ">=99", pick = "latest" }"#);
    let run = ctx.run(&["plan"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("upgrade-check.toml:")
            && run.stderr.contains("`matrix.packages.bcrypt`")
            && run
                .stderr
                .contains("no version of bcrypt on the package index is in `>=99`"),
        "{}",
        run.stderr
    );
}

#[test]
fn bisect_finds_the_first_bad_bcrypt_in_at_most_five_builds() {
    let ctx = TestContext::new();
    let run = ctx.run(&["bisect", "bcrypt", "--from", "3.2.0", "--to", "5.0.0"]);
    assert_eq!(
        run.code, 1,
        "a first bad version is a regression: {}",
        run.stderr
    );
    crate::common::assert_readme_sample("`report/bisect.json`:", &run.stdout);
    let report = crate::common::bisect_report(&ctx);
    assert_eq!(report.versions_between, 10, "{report:?}");
    assert_eq!(report.first_bad.as_deref(), Some("5.0.0"), "{report:?}");
    assert_eq!(report.last_good, "4.3.0", "{report:?}");
    assert_eq!(report.scenarios, ["long-password"]);
    let builds = report.probes.len() - 1;
    assert!(builds <= 5, "{builds} builds: {report:?}");
    assert!(
        run.stdout
            .contains("first bad: bcrypt 5.0.0 (breaks long-password)")
            && run.stdout.contains("-< 201 Created"),
        "{}",
        run.stdout
    );
    // The evidence a run shows: the summary, the diff cut to a screen, and
    // the log tail with the error that explains the break.
    assert!(
        run.stdout
            .contains("step `register`: 201 Created → 500 Internal Server Error")
            && run.stdout.contains("log tail:")
            && run
                .stdout
                .contains("ValueError: password cannot be longer than 72 bytes"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.lines().count() < 150, "{}", run.stdout);
}

#[test]
fn a_pin_that_alone_explains_a_bigger_cell_is_named_in_every_report() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("strategy = \"one-at-a-time\"", "strategy = \"latest\"")
    });
    ctx.set_matrix(
        r#"bcrypt = ["5.0.0"]
flask = ["2.3.3"]"#,
    );
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = ctx.report();
    assert_eq!(report.interactions.len(), 1, "{:?}", report.interactions);
    let interaction = &report.interactions[0];
    assert_eq!(
        (
            &interaction.pins[..],
            &interaction.scenarios[..],
            interaction.found_in.as_str(),
            interaction.cells_run,
            interaction.differently.is_empty()
        ),
        (
            &["bcrypt 5.0.0".to_owned()][..],
            &["long-password".to_owned()][..],
            "bcrypt 5.0.0, flask 2.3.3",
            2,
            true
        )
    );
    let line = "↳ isolated: bcrypt 5.0.0 alone breaks long-password (found in `bcrypt 5.0.0, flask 2.3.3` with 2 extra cells)";
    assert!(run.stdout.contains(line), "{}", run.stdout);
    for file in ["report.md", "report.html"] {
        let text = std::fs::read_to_string(ctx.path(&format!("state/report/{file}"))).unwrap();
        assert!(
            text.contains("bcrypt 5.0.0 alone breaks long-password"),
            "{file}: {text}"
        );
    }
}

#[test]
fn two_pins_that_break_only_together_are_isolated_from_a_bigger_cell() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/flask-pyjwt-interaction");
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("strategy = \"one-at-a-time\"", "strategy = \"latest\"")
    });
    ctx.set_matrix(
        r#"bcrypt = ["4.1.2"]
flask = ["2.3.3"]
pyjwt = ["2.8.0"]"#,
    );
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    crate::common::assert_readme_sample("reports it as an interaction:", &run.stdout);
    let report = ctx.report();
    assert_eq!(
        cell_names(&report),
        ["baseline", "bcrypt 4.1.2, flask 2.3.3, pyjwt 2.8.0"]
    );
    let interactions = &report.interactions;
    assert_eq!(interactions.len(), 1, "{report:?}");
    let interaction = &interactions[0];
    assert_eq!(interaction.pins, ["flask 2.3.3", "pyjwt 2.8.0"]);
    assert_eq!(
        interaction.scenarios,
        ["login", "long-password", "staging@staging"]
    );
    // Without bcrypt: still fails; without flask, or without PyJWT: passes.
    assert_eq!(interaction.cells_run, 3);
    assert!(
        run.stdout
            .contains("⚠ interaction: flask 2.3.3 + pyjwt 2.8.0 break login, long-password, staging@staging together"),
        "{}",
        run.stdout
    );
    crate::common::assert_no_service_left(&ctx, &report);
}

#[test]
fn pairwise_prints_its_count_before_running() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("strategy = \"one-at-a-time\"", "strategy = \"pairwise\"")
    });
    let run = ctx.run(&["plan"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // 3 × 3 × 2 versions: 9 rows cover every pair; the all-baseline row is the baseline.
    assert!(
        run.stderr
            .contains("Pairwise strategy: 9 cells for 3 packages (the full product is 18)"),
        "{}",
        run.stderr
    );
    assert_eq!(planned_ids(&run.stdout).len(), 9);
}

#[test]
fn a_deprecation_warning_is_the_early_signal_of_the_next_break() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/werkzeug-url-quote");
    ctx.set_matrix(r#"werkzeug = ["2.3.8", "3.0.6"]"#);
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    crate::common::assert_readme_sample("### Warnings as an early signal", &run.stdout);
    let report = ctx.report();
    for scenario in ["health", "login", "long-password", "register"] {
        assert_eq!(
            crate::common::verdict(&report, "werkzeug 2.3.8", scenario),
            Verdict::Pass
        );
    }
    let warned = crate::common::cell_report(&report, "werkzeug 2.3.8")
        .new_warnings
        .join("\n");
    assert!(
        warned.contains("DeprecationWarning") && warned.contains("url_quote"),
        "{warned}"
    );
    assert_eq!(
        crate::common::cell_report(&report, "baseline").new_warnings,
        Vec::<String>::new()
    );
    assert_eq!(
        crate::common::verdict(&report, "werkzeug 3.0.6", "register"),
        Verdict::StartupFailed
    );
    // The soft finding names the cell that passes; the one that breaks is named above it.
    assert!(
        run.stdout
            .contains("⚠ new warnings (not a failure unless --deny-warnings): werkzeug 2.3.8\n"),
        "{}",
        run.stdout
    );
}

/// Flask 2.3.3 requires Werkzeug>=2.3.7. The newest Werkzeug (3.x) fits that
/// too, but removes `url_quote`, which this variant's service uses: released
/// to its newest, Werkzeug would make Flask 2.3.3 look like it breaks the
/// service. Moved only as far as Flask needs (2.3.7), the cell passes, and the
/// report says which requirement moved Werkzeug.
#[test]
fn a_released_package_moves_to_the_nearest_version_that_fits_not_the_newest() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/werkzeug-url-quote");
    ctx.set_matrix(r#"flask = ["2.3.3"]"#);
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let report = ctx.report();
    let flask = crate::common::cell_report(&report, "flask 2.3.3");
    let werkzeug = crate::common::version_change(flask, "werkzeug");
    assert_eq!(
        (werkzeug.before.as_deref(), werkzeug.after.as_deref()),
        (Some("2.2.3"), Some("2.3.7")),
        "{flask:?}"
    );
    assert_eq!(werkzeug.forced_by, ["flask 2.3.3 requires werkzeug>=2.3.7"]);
    // Unchanged packages stay at the baseline's versions.
    assert!(
        flask
            .changes
            .iter()
            .all(|change| ["flask", "werkzeug", "blinker"].contains(&change.package.as_str())),
        "{flask:?}"
    );
}

#[test]
fn a_field_randomised_on_purpose_is_found_by_the_double_baseline_and_masked() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/random-field");
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    // Accepted with one random id; every later run draws another.
    let accepted = ctx.run(&["--accept"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let snapshot = std::fs::read_to_string(ctx.path("snapshots/register.snap")).unwrap();
    assert!(snapshot.contains("\"nonce\": \""), "{snapshot}");

    // Checked anew: a run of the same inputs elsewhere on this machine
    // (this test, earlier) may have left its check in the shared cache.
    let run = ctx.run(&["--recheck-noise"]);
    assert_eq!(
        run.code, 0,
        "masked, the random id is no regression: {}",
        run.stdout
    );
    crate::common::assert_readme_sample("### Noise: the baseline, twice", &run.stdout);
    let report = ctx.report();
    let noise = &report.nondeterministic;
    let register = noise
        .iter()
        .find(|noise| noise.scenario == "register")
        .unwrap_or_else(|| panic!("register is flagged: {report:?}"));
    assert_eq!(register.fields, ["nonce"]);
    assert!(register.unexplained.is_empty(), "{register:?}");
    assert!(
        run.stdout
            .contains("register differs between two baseline runs in nonce")
            && run.stdout.contains("json-key = \"nonce\""),
        "{}",
        run.stdout
    );
    assert_eq!(
        crate::common::verdict(&report, "bcrypt 4.1.2", "register"),
        Verdict::Pass
    );

    assert_eq!(report.run.noise_check, "each scenario replayed twice");
    let found_by_the_check = report.nondeterministic.clone();
    let check_ms = |report: &crate::common::Report| -> u64 {
        crate::common::cell_report(report, "baseline")
            .scenarios
            .iter()
            .filter_map(|scenario| scenario.timing.as_ref())
            .map(|timing| timing.harness.check_ms)
            .sum()
    };
    // The baseline replayed once, what the check found masked again.
    let check_taken_from_record = |report: &crate::common::Report| {
        assert!(
            report
                .run
                .noise_check
                .starts_with("replayed once; its recorded run"),
            "{:?}",
            report.run
        );
        assert_eq!(report.nondeterministic, found_by_the_check);
        assert_eq!(check_ms(report), 0, "no check replay ran");
    };

    // Every cell replayed again, nothing changed: the baseline runs once,
    // and what its recorded run found is masked again.
    let events = ctx.path("events.jsonl");
    let again = ctx.run(&["--no-cache", "--events", events.to_str().unwrap()]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    let report = ctx.report();
    check_taken_from_record(&report);
    assert_eq!(
        crate::common::verdict(&report, "bcrypt 4.1.2", "register"),
        Verdict::Pass
    );
    let said = std::fs::read_to_string(&events).unwrap();
    assert!(said.contains("\"noise-from-record\""), "{said}");
    // The progress says so, on stderr.
    assert!(
        again.stderr.contains(
            "baseline: replayed once: its recorded run of the same inputs checked it for noise (4 scenario runs noisy, masked again; --recheck-noise replays it twice again)"
        ),
        "{}",
        again.stderr
    );
    assert!(
        again
            .stdout
            .contains("register differs between two baseline runs in nonce"),
        "{}",
        again.stdout
    );

    // Asked to, the baseline is checked again.
    let rechecked = ctx.run(&["--no-cache", "--recheck-noise"]);
    assert_eq!(rechecked.code, 0, "{}", rechecked.stdout);
    let report = ctx.report();
    assert_eq!(report.run.noise_check, "each scenario replayed twice");
    assert!(check_ms(&report) > 0, "{report:?}");

    // Another checkout of the same service, as CI's fresh clone, trying
    // another matrix: nothing of this one's state, its results neither,
    // yet the baseline's check comes from the cache the two share (the
    // matrix does not decide it), and the id is still masked.
    let checkout = ctx.another_checkout();
    assert!(!checkout.path("state").exists());
    checkout.set_matrix(r#"bcrypt = ["4.0.1"]"#);
    let cloned = checkout.run(&[]);
    assert_eq!(cloned.code, 0, "{}", cloned.stdout);
    let report = checkout.report();
    check_taken_from_record(&report);
    assert!(
        report.cells.iter().all(|cell| !cell.result_reused),
        "its results are its own: {}",
        cloned.stdout
    );

    // Without the second baseline run the same id is a mismatch.
    let blind = ctx.run(&["--no-noise-check"]);
    assert_eq!(blind.code, 1, "{}", blind.stdout);
}

/// Flask-SQLAlchemy 3.0.5 on a Flask 1.1 service: Flask, Werkzeug and
/// SQLAlchemy move as little as they must, even though the nearest search
/// meets greenlet releases (0.1, 1.0.0) that do not build on Python 3.11; the
/// cell steps over them and says so, instead of taking the newest Flask 3
/// and SQLAlchemy 2 without a word.
#[test]
fn nearest_moves_step_over_releases_that_do_not_build() {
    let ctx = TestContext::from_workspace(
        "fixtures/variants/flask-1-sqlalchemy",
        std::path::Path::to_path_buf,
    );
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    let cell = crate::common::cell_report(&report, "flask-sqlalchemy 3.0.5");
    assert_eq!(
        crate::common::verdict(&report, "flask-sqlalchemy 3.0.5", "tags"),
        Verdict::Pass
    );
    for (package, after) in [
        ("flask", "2.2.5"),
        ("sqlalchemy", "1.4.18"),
        ("werkzeug", "2.2.2"),
        ("greenlet", "2.0.0"),
    ] {
        let change = crate::common::version_change(cell, package);
        assert_eq!(change.after.as_deref(), Some(after), "{change:?}");
    }
    assert_eq!(
        cell.environment.as_ref().unwrap().moves_not_held.as_deref(),
        Some("releases that do not build were stepped over: greenlet==0.1, greenlet==1.0.0")
    );
    // Flask 2.2 starts with another banner than Flask 1.1: output that
    // changed is shown, never judged; the cell passes.
    assert_eq!(
        cell.new_output[0], "* Serving Flask app '__main__'",
        "{:?}",
        cell.new_output
    );
    assert!(
        run.stdout.contains(
            "new output in flask-sqlalchemy 3.0.5, not judged: * Serving Flask app '__main__'"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "nearest moves not held in flask-sqlalchemy 3.0.5: releases that do not build were stepped over: greenlet==0.1, greenlet==1.0.0"
        ),
        "{}",
        run.stdout
    );
}

/// Flask-SQLAlchemy 3.0.5 with SQLAlchemy 2.0.36 answers 500 where the
/// service runs raw SQL as a plain string; SQLAlchemy 2.0.36 alone does not
/// start at all (Flask-SQLAlchemy 2.5.1 reads `sqlalchemy.__all__`). Isolated
/// from a cell of both, the break is an interaction of both: the failure
/// SQLAlchemy shows alone is another one, and is no explanation.
#[test]
fn a_pin_that_alone_fails_another_way_is_not_the_cause() {
    let ctx = TestContext::from_workspace(
        "fixtures/variants/flask-1-sqlalchemy",
        std::path::Path::to_path_buf,
    );
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("strategy = \"one-at-a-time\"", "strategy = \"latest\"")
            .replace(
                "flask-sqlalchemy = [\"3.0.5\"]",
                "flask-sqlalchemy = [\"3.0.5\"]\nsqlalchemy = [\"2.0.36\"]",
            )
    });
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    let interactions = &report.interactions;
    assert_eq!(interactions.len(), 1, "{report:?}");
    assert_eq!(
        interactions[0].pins,
        ["flask-sqlalchemy 3.0.5", "sqlalchemy 2.0.36"]
    );
    assert!(
        run.stdout.starts_with(
            "✗ flask-sqlalchemy 3.0.5, sqlalchemy 2.0.36 breaks tags: step `how many`: 200 OK → 500 Internal Server Error\n  ⚠ interaction: flask-sqlalchemy 3.0.5 + sqlalchemy 2.0.36 break tags together"
        ) && !run.stdout.contains("isolated: sqlalchemy 2.0.36 alone"),
        "{}",
        run.stdout
    );
}
