//! The default matrix on the bundled service, against real packages.

use crate::common::Verdict;
use crate::common::{
    TestContext, assert_no_service_left, cell_report, scenario_report, verdict, version_change,
};

#[test]
fn bcrypt_5_breaks_long_passwords_and_nothing_else() {
    let ctx = TestContext::new();
    let accepted_before = std::fs::read(ctx.path("snapshots/long-password.snap")).unwrap();

    let first = ctx.run(&[]);
    assert_eq!(first.code, 1, "a regression exits 1");
    crate::common::assert_readme_sample("## A sample report", &first.stdout);
    crate::common::assert_readme_sample(
        "reports each package's newest safe version (`--no-bisect` skips it):",
        &first.stdout,
    );
    let report = ctx.report();
    // Every column: the four HTTP scenarios and the staging startup ones.
    let scenarios: Vec<String> = report.scenarios.clone();
    assert_eq!(scenarios.len(), 7);
    for scenario in &scenarios {
        let scenario = scenario.as_str();

        assert_eq!(
            verdict(&report, "baseline", scenario),
            Verdict::Pass,
            "baseline {scenario}"
        );
        // 4.1.2 still truncates long passwords silently, like 3.2.0.
        assert_eq!(
            verdict(&report, "bcrypt 4.1.2", scenario),
            Verdict::Pass,
            "bcrypt 4.1.2 {scenario}"
        );
        assert_eq!(
            verdict(&report, "pyjwt 2.8.0", scenario),
            Verdict::Pass,
            "pyjwt 2.8.0 {scenario}"
        );
        let expected = if scenario == "long-password" {
            Verdict::Changed
        } else {
            Verdict::Pass
        };
        assert_eq!(
            verdict(&report, "bcrypt 5.0.0", scenario),
            expected,
            "bcrypt 5.0.0 {scenario}"
        );
    }
    // Two candidates side by side, as a release engineer choosing between them.
    let compared = ctx.run(&["diff", "bcrypt 4.1.2", "bcrypt 5.0.0"]);
    assert_eq!(compared.code, 1, "they differ: {}", compared.stderr);
    assert!(
        compared
            .stdout
            .contains("── long-password: bcrypt 4.1.2 → bcrypt 5.0.0 ──")
            && compared.stdout.contains("-< 201 Created")
            && compared.stdout.contains("+< 500 Internal Server Error")
            && compared.stdout.contains("login: the same"),
        "{}",
        compared.stdout
    );
    let alike = ctx.run(&["diff", "baseline", "bcrypt 4.1.2"]);
    assert_eq!(alike.code, 0, "{}", alike.stdout);
    let unknown = ctx.run(&["diff", "baseline", "bcrypt 9.9.9"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains(
            "no cell `bcrypt 9.9.9` in the last run; its cells are: baseline, bcrypt 4.1.2"
        ),
        "{}",
        unknown.stderr
    );
    let broken = scenario_report(&report, "bcrypt 5.0.0", "long-password");
    assert!(
        broken
            .diff
            .as_deref()
            .unwrap()
            .contains("+< 500 Internal Server Error"),
        "{broken:?}"
    );
    assert!(
        broken
            .log_tail
            .as_deref()
            .unwrap()
            .contains("password cannot be longer than 72 bytes"),
        "the log tail shows bcrypt's ValueError: {broken:?}"
    );
    assert!(
        first.stdout.contains("bcrypt 5.0.0 breaks long-password"),
        "the verdict line names the culprit"
    );

    // bcrypt's newest candidate fails and 4.1.2 passes: the run bisects the
    // index's versions in between (4.1.3, 4.2.0, 4.2.1, 4.3.0) for the newest safe one.
    let newest_safe = |package: &str| {
        report
            .newest_safe
            .iter()
            .find(|safe| safe.package == package)
            .unwrap_or_else(|| panic!("{package} in {:?}", report.newest_safe))
            .clone()
    };
    let bcrypt = newest_safe("bcrypt");
    assert_eq!(
        (bcrypt.newest_safe.as_str(), bcrypt.first_bad.as_deref()),
        ("4.3.0", Some("5.0.0")),
        "{bcrypt:?}"
    );
    assert_eq!(bcrypt.breaks, ["long-password"]);
    assert!(bcrypt.cells_run <= 3, "{bcrypt:?}");
    assert_eq!(newest_safe("flask").newest_safe, "3.0.3");
    assert_eq!(newest_safe("flask").cells_run, 0, "nothing to bisect");
    assert!(
        first
            .stdout
            .contains("↳ bcrypt: newest safe version 4.3.0; first bad 5.0.0 (breaks long-password"),
        "{}",
        first.stdout
    );

    // Werkzeug follows Flask: it moves, marked as transitive.
    let flask = cell_report(&report, "flask 2.3.3");
    let werkzeug = version_change(flask, "werkzeug");
    assert_eq!(werkzeug.before.as_deref(), Some("2.2.3"));
    assert!(werkzeug.transitive);
    let pinned = version_change(flask, "flask");
    assert_eq!(
        (pinned.after.as_deref(), pinned.transitive),
        (Some("2.3.3"), false)
    );

    // A plain run never touches the accepted file; it leaves a pending one for review.
    assert_eq!(
        std::fs::read(ctx.path("snapshots/long-password.snap")).unwrap(),
        accepted_before
    );
    let pending = std::fs::read_to_string(ctx.path("snapshots/long-password.snap.new")).unwrap();
    assert!(
        pending.contains("500 Internal Server Error") && pending.contains("bcrypt 5.0.0"),
        "{pending}"
    );
    assert!(
        !pending.contains("0123456789abcdef"),
        "the password is a secret and is redacted"
    );
    assert_no_service_left(&ctx, &report);

    // Every format is written from the one result: JSON round-trips through
    // the library's model; the JUnit file and the PR comment name the culprit.
    let text = std::fs::read_to_string(ctx.path("state/report/report.json")).unwrap();
    let model: upgrade_check_core::model::report::Report = serde_json::from_str(&text).unwrap();
    let written: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        serde_json::to_value(&model).unwrap(),
        written,
        "report.json round-trips"
    );
    let junit = std::fs::read_to_string(ctx.path("state/report/junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuite name=\"bcrypt 5.0.0\"") && junit.contains("type=\"changed\""),
        "{junit}"
    );
    let comment = std::fs::read_to_string(ctx.path("state/report/report.md")).unwrap();
    assert!(
        comment.contains("bcrypt 5.0.0 breaks long-password"),
        "{comment}"
    );

    // The second run of the same matrix resolves and installs nothing.
    let second = ctx.run(&[]);
    assert_eq!(second.code, 1);
    let report = ctx.report();
    for cell in &report.cells {
        let environment = cell.environment.as_ref().unwrap();
        assert!(environment.resolution_reused, "{}", cell.name);
        assert!(environment.build_reused, "{}", cell.name);
    }
    assert!(
        second
            .stdout
            .contains("environments: 6 of 6 reused, 0 built"),
        "the run says so"
    );
    assert_no_service_left(&ctx, &report);
}
