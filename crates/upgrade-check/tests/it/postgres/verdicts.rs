//! Exact verdicts on a service laid out as teams lay them out: the harness's
//! own files beside or inside the service, nothing of theirs taken for source.

use crate::common::TestContext;
use crate::common::Verdict;

/// The hostile fixture's service with its config, scenarios and snapshots
/// inside the service's own folder (`root = "."`).
fn config_at_the_service_root() -> TestContext {
    let ctx = TestContext::from_workspace("fixtures/variants/hostile", |relative| {
        relative
            .strip_prefix("service")
            .unwrap_or(relative)
            .to_owned()
    });
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("root = \"service\"", "root = \".\"")
    });
    for scenario in ["secrets", "listing"] {
        std::fs::remove_file(ctx.path(&format!("scenarios/{scenario}.toml"))).unwrap();
    }
    ctx
}

#[test]
fn the_harness_files_inside_the_service_tree_are_not_its_source() {
    let ctx = config_at_the_service_root();
    // The state folder inside the tree too, under a name that is not `target`.
    let state = ctx.path("upgrade-check-state");
    let run = |args: &[&str]| {
        let mut command = ctx.command(args);
        command.env("UPGRADE_CHECK_STATE_DIR", &state);
        ctx.run_command(command)
    };
    assert_eq!(run(&["--accept"]).code, 0);
    assert_eq!(run(&["--no-noise-check"]).code, 0);
    assert_eq!(run(&["--no-noise-check"]).code, 0);
    // Whether the last run took the baseline's recorded result.
    let reused = || {
        let report = crate::common::report_at(&state.join("report/report.json"));
        crate::common::cell_report(&report, "baseline").result_reused
    };
    assert!(reused(), "nothing changed");
    // A pending snapshot beside the accepted ones is what a run writes, not source.
    std::fs::write(ctx.path("snapshots/health.snap.new"), "pending\n").unwrap();
    assert_eq!(run(&["--no-noise-check"]).code, 0);
    assert!(reused(), "a .snap.new does not make the service new");
    // The service's own code still counts.
    ctx.edit("hostile.py", |text| format!("{text}\n# a change\n"));
    assert_eq!(run(&["--no-noise-check"]).code, 0);
    assert!(!reused(), "a change to the service runs it again");
}

/// The hostile service with a setup command that seeds its fresh database,
/// and a scenario that reads the seed back.
fn seeded() -> TestContext {
    let ctx = config_at_the_service_root();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "[service.env]",
            "setup = [[\"{python}\", \"seed.py\", \"{sqlite_path}\"]]\n\n[service.env]",
        )
    });
    std::fs::write(
        ctx.path("scenarios/seeded.toml"),
        "description = \"reads what the setup wrote\"\n\n[[steps]]\nname = \"seed\"\nmethod = \"GET\"\npath = \"/seed\"\nexpect = { status = 200 }\n",
    )
    .unwrap();
    ctx
}

#[test]
fn setup_commands_run_on_each_fresh_database_before_the_service_starts() {
    let ctx = seeded();
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    let snap = std::fs::read_to_string(ctx.path("snapshots/seeded.snap")).unwrap();
    assert!(
        snap.contains("\"greetings\": [\n<     \"hello\"\n<   ]"),
        "one row: the setup ran once on this run's own database:\n{snap}"
    );
    // The baseline runs each scenario twice, each on a fresh, freshly set up database.
    let run = ctx.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let log = std::fs::read_to_string(ctx.path("state/logs/baseline/seeded.log")).unwrap();
    assert!(
        log.starts_with("[upgrade-check: setup `") && log.contains("seeded 1 row"),
        "{log}"
    );
    let report = ctx.report();
    let timing = crate::common::scenario_report(&report, "baseline", "seeded")
        .timing
        .as_ref()
        .unwrap();
    assert!(timing.setup_ms > 0, "{timing:?}");
}

#[test]
fn a_failing_setup_command_is_a_startup_failure_with_its_output() {
    let ctx = seeded();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("[service.env]\n", "[service.env]\nSEED_FAIL = \"1\"\n")
    });
    let run = ctx.run(&["--no-noise-check"]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    let seeded = crate::common::scenario_report(&report, "baseline", "seeded");
    assert_eq!(seeded.verdict, Verdict::StartupFailed);
    let summary = seeded.summary.as_deref().unwrap();
    assert!(
        summary.starts_with("setup command `")
            && summary.ends_with("failed (exit status: 1): seeding failed: no such table: users"),
        "{summary}"
    );
    assert!(
        seeded
            .log_tail
            .as_deref()
            .unwrap()
            .contains("seeding failed: no such table: users"),
        "{seeded:?}"
    );
}

#[test]
fn with_postgres_the_setup_runs_once_into_a_template_every_run_copies() {
    let ctx = seeded();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "setup = [[\"{python}\", \"seed.py\", \"{sqlite_path}\"]]",
            "database = \"postgres\"\nsetup = [[\"{python}\", \"seed.py\", \"{database_url}\"]]",
        )
        .replace(
            "DATABASE_PATH = \"{sqlite_path}\"",
            "DATABASE_URL = \"{database_url}\"",
        )
    });
    let pids = ctx.path("pids");
    std::fs::create_dir_all(&pids).unwrap();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "PID_DIR = \"\"",
            &format!("PID_DIR = \"{}\"", pids.display()),
        )
    });
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    std::fs::remove_file(pids.join("setup-runs")).unwrap();
    // The baseline's double replay: two runs of each of two scenarios, four
    // databases, each a copy of the one template.
    let run = ctx.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let snap = std::fs::read_to_string(ctx.path("snapshots/seeded.snap")).unwrap();
    assert!(
        snap.contains("\"greetings\": [\n<     \"hello\"\n<   ]"),
        "{snap}"
    );
    let setup_log =
        std::fs::read_to_string(ctx.path("state/logs/baseline/setup@default.log")).unwrap();
    assert_eq!(
        setup_log.matches("[upgrade-check: setup `").count(),
        1,
        "the setup ran once:\n{setup_log}"
    );
    assert!(setup_log.contains("seeded 1 row"), "{setup_log}");
    assert_eq!(
        std::fs::read_to_string(pids.join("setup-runs")).unwrap(),
        "ran\n",
        "one setup for four scenario runs"
    );
    let log = std::fs::read_to_string(ctx.path("state/logs/baseline/seeded.log")).unwrap();
    assert!(
        log.starts_with("[upgrade-check: this run's database is a copy of upgrade_check_")
            && log.contains("baseline/setup@default.log"),
        "{log}"
    );

    // On a server the harness does not own, the template goes with the runs' databases.
    let server = upgrade_check_core::internals::db::Postgres::start_cluster(
        std::time::Duration::from_secs(5),
        None,
    )
    .unwrap();
    let run = ctx.run(&["--database-url", &server.url()]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        server.leftover_databases().unwrap(),
        Vec::<String>::new(),
        "every database it made, the template too, was dropped"
    );
}

/// The service warns at every start with its port, pid and an object's
/// address in the line: the same warning in every cell, so `--deny-warnings`
/// fails nothing.
#[test]
fn a_warning_that_differs_only_by_port_pid_and_address_is_not_new_output() {
    let ctx = config_at_the_service_root();
    ctx.edit("upgrade-check.toml", |text| {
        format!("{text}\n[matrix.packages]\nsix = [\"1.17.0\"]\n")
    });
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    let run = ctx.run(&["--deny-warnings", "--no-noise-check"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let report = ctx.report();
    let six = crate::common::cell_report(&report, "six 1.17.0");
    assert_eq!(six.new_warnings, Vec::<String>::new(), "{six:?}");
    let health = crate::common::scenario_report(&report, "six 1.17.0", "health");
    assert!(
        health.warnings[0]
            .as_str()
            .contains("laddr=('[ip]', [port])> at 0x[address] in pid [pid]"),
        "{health:?}"
    );
}

#[test]
fn a_service_that_needs_postgresql_is_asked_for_its_openapi_document_on_a_database_of_its_own() {
    // The FastAPI service started as many are: its setup makes a table,
    // its start script checks it is there, then starts the app. Without
    // the PostgreSQL database its profile asks for, it never starts.
    let ctx = crate::common::fastapi_signing_up();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "command = [\"{python}\", \"-m\", \"uvicorn\", \"app:app\", \"--host\", \"127.0.0.1\", \"--port\", \"{port}\"]",
            "command = [\"sh\", \"-c\", \"psql \\\"$DATABASE_URL\\\" -qAt -c 'SELECT count(*) FROM seen' > /dev/null \
             && exec \\\"$0\\\" -m uvicorn app:app --host 127.0.0.1 --port \\\"$PORT\\\"\", \"{python}\"]\n\
             database = \"postgres\"\n\
             setup = [[\"psql\", \"{database_url}\", \"-v\", \"ON_ERROR_STOP=1\", \"-q\", \"-c\", \"CREATE TABLE seen (id int)\"]]",
        )
        .replace(
            "SECRET_KEY = \"{secret}\"",
            "SECRET_KEY = \"{secret}\"\nPORT = \"{port}\"\nDATABASE_URL = \"{database_url}\"",
        )
    });
    // Enough budget for the username bound's variant: every variant here
    // is a cold start of uvicorn behind the script.
    let explored = crate::common::explore_reading_openapi(&ctx, "6");
    let report = ctx.report();
    assert!(
        report
            .scenarios
            .iter()
            .any(|s| s == "signup-1-username-33-bytes-over-its-maxlength-32"),
        "{:?}",
        report.scenarios
    );
    // The start's cluster and the run's: each said, each gone.
    let clusters: Vec<&str> = explored
        .stderr
        .split_whitespace()
        .filter(|word| word.contains("/upgrade-check-pg-"))
        .collect();
    assert!(clusters.len() >= 2, "{}", explored.stderr);
    for cluster in clusters {
        assert!(!std::path::Path::new(cluster).exists(), "{cluster} is left");
    }

    // A start script that looks for a table no setup made: the service
    // never starts, and exploring says why it asked for no document.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("FROM seen", "FROM missing")
    });
    let unstarted = ctx.run(&["explore", "--budget", "4"]);
    assert!(
        unstarted.stderr.contains(
            "not asked for an OpenAPI document, the service did not start on its own \
             (the service exited during startup (exit status: 1): \
             ERROR:  relation \"missing\" does not exist)"
        ),
        "{}",
        unstarted.stderr
    );
}
