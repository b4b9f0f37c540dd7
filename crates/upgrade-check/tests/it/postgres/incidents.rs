//! The incidents of the auth service as regression fixtures: the harness must catch each.
//!
//! Real packages from the index and a real PostgreSQL cluster started by the harness.

use crate::common::Verdict;
use crate::common::{TestContext, assert_no_service_left, cell_report, scenario_report, verdict};

const DEFAULT_SCENARIOS: [&str; 4] = ["health", "login", "long-password", "register"];

#[test]
fn inc_001_passlib_warns_on_bcrypt_4_and_breaks_on_bcrypt_5() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["3.2.0", "4.1.2", "5.0.0"]"#);
    // As a user reproduces it: the pre-fix files laid over the service by the harness.
    let overlay = crate::common::workspace_root().join("fixtures/incidents/INC-001");
    let run = ctx.run(&["--overlay", overlay.to_str().unwrap()]);
    crate::common::assert_readme_sample(
        "upgrade-check --overlay fixtures/incidents/INC-001\n",
        &run.stdout,
    );

    assert_eq!(run.code, 1);
    let report = ctx.report();
    for scenario in DEFAULT_SCENARIOS {
        assert_eq!(
            verdict(&report, "baseline", scenario),
            Verdict::Pass,
            "baseline {scenario}"
        );
        assert_eq!(
            verdict(&report, "bcrypt 4.1.2", scenario),
            Verdict::Pass,
            "bcrypt 4.1.2 {scenario}"
        );
    }
    // 4.1.2 passes, but its new stderr output is surfaced as a warning.
    let warned = cell_report(&report, "bcrypt 4.1.2").new_warnings.join("\n");
    assert!(
        warned.contains("(trapped) error reading bcrypt version"),
        "{warned}"
    );
    assert!(warned.contains("has no attribute '__about__'"), "{warned}");
    assert_eq!(cell_report(&report, "baseline").new_warnings.len(), 0);
    assert!(
        run.stdout
            .contains("bcrypt 4.1.2 · new output the baseline does not print"),
        "{}",
        run.stdout
    );
    // 5.0.0: every hash fails, so login and register answer 500.
    for scenario in ["login", "register"] {
        let broken = scenario_report(&report, "bcrypt 5.0.0", scenario);
        assert_eq!(broken.verdict, Verdict::Changed, "{broken:?}");
        assert!(
            broken
                .summary
                .as_deref()
                .unwrap()
                .contains("500 Internal Server Error"),
            "{broken:?}"
        );
        assert!(
            broken
                .log_tail
                .as_deref()
                .unwrap()
                .contains("password cannot be longer than 72 bytes")
        );
    }
    assert!(
        run.stdout
            .lines()
            .next()
            .unwrap()
            .contains("bcrypt 5.0.0 breaks login"),
        "{}",
        run.stdout
    );
    assert_no_service_left(&ctx, &report);
}

#[test]
fn inc_001_as_reported_is_a_broken_baseline_not_an_upgrade() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/incidents/INC-001-str-hash");
    ctx.set_matrix("bcrypt = [\"4.1.2\", \"5.0.0\"]\npyjwt = [\"2.8.0\"]");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    crate::common::assert_readme_sample(
        "upgrade-check --overlay fixtures/incidents/INC-001-str-hash\n",
        &run.stdout,
    );
    let report = ctx.report();
    // bcrypt 3.2.0 raises TypeError for a str hash too.
    let login = scenario_report(&report, "baseline", "login");
    assert_eq!(login.verdict, Verdict::Changed);
    assert!(
        login.log_tail.as_deref().unwrap().contains("TypeError"),
        "{login:?}"
    );
    for cell in ["bcrypt 4.1.2", "pyjwt 2.8.0"] {
        let failing = scenario_report(&report, cell, "login");
        assert_eq!(failing.verdict, Verdict::Changed);
        assert!(
            failing.same_as_baseline,
            "{cell} fails exactly like the baseline"
        );
    }
    // The broken baseline is said first; no upgrade is blamed for what the
    // baseline does too, and bcrypt 5.0.0 only for what it breaks itself
    // (long passwords fail earlier there, at registration).
    let headline: Vec<&str> = run
        .stdout
        .lines()
        .take_while(|line| !line.is_empty())
        .collect();
    assert!(
        headline[0].contains("the baseline itself does not match"),
        "{headline:?}"
    );
    assert_eq!(
        headline[1],
        "✗ bcrypt 5.0.0 breaks long-password: step `register`: 201 Created → 500 Internal Server Error",
        "{headline:?}"
    );
    assert!(
        !headline.iter().any(|line| line.contains("breaks login")),
        "no upgrade is blamed for the baseline's failure: {headline:?}"
    );
}

#[test]
fn inc_002_renamed_database_variables_are_caught_on_postgres() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/incidents/INC-002");
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    crate::common::assert_readme_sample(
        "upgrade-check --overlay fixtures/incidents/INC-002\n",
        &run.stdout,
    );
    assert!(
        run.stderr.contains("PostgreSQL: cluster"),
        "the harness started its own cluster"
    );
    let report = ctx.report();
    // Dev (SQLite) never reads the database variables.
    for scenario in DEFAULT_SCENARIOS {
        assert_eq!(verdict(&report, "baseline", scenario), Verdict::Pass);
    }
    // Staging starts, then every database-backed step answers 500.
    let staging = scenario_report(&report, "baseline", "staging@staging");
    assert_eq!(staging.verdict, Verdict::Changed);
    assert!(
        staging
            .diff
            .as_deref()
            .unwrap()
            .contains("+< 500 Internal Server Error"),
        "{staging:?}"
    );
    assert!(
        staging.log_tail.as_deref().unwrap().contains("localhost"),
        "the log shows where it connected"
    );
    // Without DB_PASS the fixed service refuses to start; this one starts.
    let missing = scenario_report(&report, "baseline", "staging@staging-no-db-pass");
    assert_eq!(missing.verdict, Verdict::Changed);
    assert_eq!(
        missing.summary.as_deref(),
        Some("startup: refused → started")
    );
    assert_no_service_left(&ctx, &report);
}

#[test]
fn the_fixed_service_serves_on_postgres_and_names_a_missing_variable() {
    let ctx = TestContext::new();
    // The database driver is a matrix package like any other.
    ctx.set_matrix(r#"psycopg2-binary = ["2.9.9"]"#);
    let run = ctx.run(&[]);
    assert_eq!(run.code, 0, "the baseline matches every accepted snapshot");
    let report = ctx.report();
    assert_eq!(
        verdict(&report, "baseline", "staging@staging"),
        Verdict::Pass
    );
    assert_eq!(
        verdict(&report, "psycopg2-binary 2.9.9", "staging@staging"),
        Verdict::Pass
    );
    // The cluster the harness started is stopped and deleted at the end of the run.
    let cluster = run
        .stderr
        .split("PostgreSQL: cluster ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("the harness started its own cluster")
        .to_owned();
    assert!(
        !std::path::Path::new(&cluster).exists(),
        "{cluster} was deleted"
    );

    assert_eq!(
        verdict(&report, "baseline", "staging@staging-no-db-pass"),
        Verdict::Pass
    );
    // The accepted outcome names the missing variable.
    let accepted =
        std::fs::read_to_string(ctx.path("snapshots/staging@staging-no-db-pass.snap")).unwrap();
    assert!(accepted.contains("startup: refused"), "{accepted}");
    assert!(
        accepted.contains("missing environment variables for staging: DB_PASS"),
        "{accepted}"
    );
    // Scenario secrets travel in every request body, and never reach a report or snapshot.
    let written = std::fs::read_to_string(ctx.path("state/report/report.json")).unwrap();
    let snapshot = std::fs::read_to_string(ctx.path("snapshots/staging@staging.snap")).unwrap();
    for text in [&written, &snapshot] {
        assert!(
            !text.contains("staging-passphrase"),
            "a scenario secret leaked"
        );
    }
    assert!(snapshot.contains("[secret:password]"), "{snapshot}");

    assert_no_service_left(&ctx, &report);
}

#[test]
fn inc_003_json_encoder_fails_to_start_on_flask_2_3_and_3_0() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/incidents/INC-003");
    ctx.set_matrix("bcrypt = [\"5.0.0\"]\nflask = [\"2.2.5\", \"2.3.3\", \"3.0.3\"]");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    crate::common::assert_readme_sample(
        "upgrade-check --overlay fixtures/incidents/INC-003\n",
        &run.stdout,
    );
    let report = ctx.report();
    for scenario in DEFAULT_SCENARIOS {
        assert_eq!(
            verdict(&report, "baseline", scenario),
            Verdict::Pass,
            "Flask 2.2.5 still has JSONEncoder"
        );
        assert_eq!(
            verdict(&report, "flask 2.3.3", scenario),
            Verdict::StartupFailed
        );
        assert_eq!(
            verdict(&report, "flask 3.0.3", scenario),
            Verdict::StartupFailed
        );
    }
    let failed = scenario_report(&report, "flask 2.3.3", "health");
    // The one-line summary names the error, not only the exit.
    assert_eq!(
        failed.summary.as_deref(),
        Some(
            "the service exited during startup (exit status: 1): ImportError: cannot import name 'JSONEncoder' from 'flask.json' ([venv]/lib/python3.11/site-packages/flask/json/__init__.py)"
        )
    );
    let log = failed.log_tail.as_deref().unwrap();
    assert!(
        log.contains("ImportError") && log.contains("JSONEncoder"),
        "{log}"
    );
    assert!(
        run.stdout.contains("ImportError"),
        "the terminal shows the log tail"
    );
    assert_no_service_left(&ctx, &report);
}

#[test]
fn a_hard_coded_jwt_secret_is_a_security_finding() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/jwt-secret-fallback");
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    crate::common::assert_readme_sample(
        "upgrade-check --overlay fixtures/variants/jwt-secret-fallback\n",
        &run.stdout,
    );
    let report = ctx.report();
    let finding = scenario_report(&report, "baseline", "jwt-secret@staging-no-jwt-secret");
    assert_eq!(finding.verdict, Verdict::Changed);
    assert!(finding.security);
    assert_eq!(
        finding.summary.as_deref(),
        Some("startup: refused → started")
    );
    assert!(
        finding
            .diff
            .as_deref()
            .unwrap()
            .contains("+<   \"access_token\": \"[jwt]\""),
        "tokens are issued: {finding:?}"
    );
    assert!(run.stdout.contains("[security]"), "{}", run.stdout);
}

#[test]
fn a_server_named_by_database_url_gets_its_databases_created_and_dropped() {
    // A server the harness does not own: started here, outside the run.
    let server = upgrade_check_core::internals::db::Postgres::start_cluster(
        std::time::Duration::from_secs(5),
        None,
    )
    .unwrap();
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    let run = ctx.run(&["--database-url", &server.url()]);
    assert_eq!(
        run.code, 0,
        "the staging scenarios pass on the named server"
    );
    assert!(run.stderr.contains("PostgreSQL: server "), "{}", run.stderr);
    assert!(
        !run.stderr.contains("PostgreSQL: cluster"),
        "no cluster of its own was started"
    );
    let report = ctx.report();
    assert_eq!(
        verdict(&report, "baseline", "staging@staging"),
        Verdict::Pass
    );
    // The first run on PostgreSQL waited for its database; later ones took
    // one made ahead.
    let waits: Vec<(u64, bool)> = report
        .cells
        .iter()
        .flat_map(|cell| &cell.scenarios)
        .filter_map(|run| {
            let timing = run.timing.as_ref()?;
            Some((timing.database_ms?, timing.database_made_ahead))
        })
        .collect();
    assert!(
        waits.iter().any(|(_, ahead)| *ahead) && waits.iter().any(|(_, ahead)| !*ahead),
        "{waits:?}"
    );
    assert_eq!(
        server.leftover_databases().unwrap(),
        Vec::<String>::new(),
        "every database it made, and made ahead, was dropped"
    );
}

/// A server named without a password: `{db_password}` would be empty and the
/// staging service would look broken. Refused up front with the one fix.
#[test]
fn a_database_url_without_a_password_is_refused_before_anything_runs() {
    let server = upgrade_check_core::internals::db::Postgres::start_cluster(
        std::time::Duration::from_secs(5),
        None,
    )
    .unwrap();
    let url = server.url();
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let user = scheme_user.rsplit_once(':').unwrap().0;
    let without_password = format!("{user}@{rest}");
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    let run = ctx.run(&["--database-url", &without_password]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("the PostgreSQL server's URL names no password, so {db_password} would be empty (profile `staging` sets DB_PASS from it); put the password in the URL")
            && run.stderr.contains("note: see --database-url"),
        "{}",
        run.stderr
    );
    assert!(
        !ctx.path("state/report/report.json").exists(),
        "nothing ran"
    );
}

#[test]
fn new_warnings_are_a_soft_finding_unless_denied() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    let overlay = crate::common::workspace_root().join("fixtures/incidents/INC-001");
    let overlay = overlay.to_str().unwrap();
    let run = ctx.run(&["--overlay", overlay]);
    assert_eq!(
        run.code, 0,
        "passlib's trapped warning fails nothing by default"
    );
    assert!(
        run.stdout
            .contains("⚠ new warnings (not a failure unless --deny-warnings): bcrypt 4.1.2"),
        "{}",
        run.stdout
    );
    let denied = ctx.run(&["--overlay", overlay, "--deny-warnings"]);
    assert_eq!(denied.code, 1);
}

#[test]
fn a_cluster_copied_from_the_cached_template_serves_like_a_fresh_one() {
    let cache = tempfile::tempdir().unwrap();
    let grace = std::time::Duration::from_secs(5);
    let first =
        upgrade_check_core::internals::db::Postgres::start_cluster(grace, Some(cache.path()))
            .unwrap();
    drop(first);
    let templates: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(templates.len(), 1, "one whole template: {templates:?}");
    assert!(templates[0].join("complete").exists());
    let made = std::fs::metadata(templates[0].join("complete"))
        .unwrap()
        .modified()
        .unwrap();

    // The second cluster is a copy: it takes databases like the first, and
    // the template stays as it was.
    let second =
        upgrade_check_core::internals::db::Postgres::start_cluster(grace, Some(cache.path()))
            .unwrap();
    let database = second.create_database(None).unwrap();
    assert_eq!(second.leftover_databases().unwrap().len(), 1);
    second.drop_database(&database);
    assert!(second.leftover_databases().unwrap().is_empty());
    assert_eq!(
        std::fs::metadata(templates[0].join("complete"))
            .unwrap()
            .modified()
            .unwrap(),
        made
    );
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
}
