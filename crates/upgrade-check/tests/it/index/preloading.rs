//! Services forked from a preloaded interpreter (`[service] start`): checked
//! against cold starts on the bundled auth service, where they answer the
//! same, and on a real library that reads the environment as it is imported
//! (`fixtures/variants/import-time-env`), where they do not.

use crate::common::Verdict;
use std::path::Path;

use crate::common::{Report, ScenarioReport, TestContext, verdict};

/// Every scenario run of the report, with its cell's name.
fn each_run(report: &Report) -> impl Iterator<Item = (&str, &ScenarioReport)> {
    report.cells.iter().flat_map(|cell| {
        let name = cell.name.as_str();
        cell.scenarios.iter().map(move |run| (name, run))
    })
}

/// Whether the scenario run's service was forked from a preloader.
fn forked(run: &ScenarioReport) -> bool {
    run.timing.as_ref().is_some_and(|timing| timing.preloaded)
}

/// Every scenario run's verdict, and whether its service was forked.
fn runs(report: &Report) -> Vec<(String, String, String, bool)> {
    each_run(report)
        .map(|(cell, run)| {
            (
                cell.to_owned(),
                run.scenario.clone(),
                run.verdict.label().to_owned(),
                forked(run),
            )
        })
        .collect()
}

#[test]
fn forked_starts_of_the_auth_service_give_the_verdicts_of_cold_ones() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["5.0.0"]"#);
    // The command line overrides the config's default for one run.
    let cold = ctx.run(&["--no-cache", "--start", "cold"]);
    assert_eq!(
        cold.code, 1,
        "bcrypt 5 breaks long passwords: {}",
        cold.stdout
    );
    let report = ctx.report();
    assert_eq!(report.run.service_start, "cold: asked for a cold start");
    let cold_runs = runs(&report);
    assert!(cold_runs.iter().all(|run| !run.3), "{cold_runs:?}");

    // The default, its baseline checked anew (a run of the same service
    // elsewhere may have left its check in the shared cache).
    let forked = ctx.run(&["--no-cache", "--recheck-noise"]);
    assert_eq!(forked.code, 1, "{}", forked.stdout);
    let report = ctx.report();
    assert_eq!(
        report.run.service_start,
        "forked from a preloaded interpreter, checked against cold starts",
        "{}",
        forked.stdout
    );
    let forked_runs = runs(&report);
    let verdicts = |runs: &[(String, String, String, bool)]| {
        runs.iter()
            .map(|(cell, scenario, verdict, _)| format!("{cell} {scenario} {verdict}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts(&forked_runs), verdicts(&cold_runs));
    // The baseline's judged copy starts cold; every upgrade cell's runs fork.
    for (cell, scenario, _, preloaded) in &forked_runs {
        assert_eq!(*preloaded, cell != "baseline", "{cell} {scenario}");
    }
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
}

#[test]
fn a_library_that_reads_the_environment_at_import_turns_preloading_off() {
    let ctx = TestContext::from_workspace("fixtures/variants/import-time-env", Path::to_owned);
    let accepted = ctx.run(&["--accept"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let snapshot = std::fs::read_to_string(ctx.path("snapshots/metrics.snap")).unwrap();
    assert!(
        snapshot.contains("requests_total") && !snapshot.contains("requests_created"),
        "accepted from a cold start, as the config asks: {snapshot}"
    );

    // Checked anew: a run of the same inputs elsewhere (this test, earlier)
    // may have left its check in the shared cache.
    let run = ctx.run(&["--recheck-noise"]);
    assert_eq!(
        run.code, 0,
        "judged as cold starts would be: {}",
        run.stdout
    );
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains(
            "services start cold from now on: scenario run `metrics` answered differently \
             started cold and forked from a preloader"
        ),
        "{said}"
    );
    let report = ctx.report();
    let said = report.run.service_start.as_str();
    assert!(said.starts_with("cold: scenario run `metrics`"), "{said}");
    assert!(
        runs(&report).iter().all(|run| !run.3),
        "nothing forked after the difference: {report:?}"
    );
    assert!(report.nondeterministic.is_empty(), "{report:?}");

    // Reusing the recorded baseline keeps what its check found.
    let again = ctx.run(&[]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    let said = ctx.report().run.service_start.as_str().to_owned();
    assert!(said.starts_with("cold: scenario run `metrics`"), "{said}");

    // Forced, unchecked, the library's import-time read shows as a change.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("start = \"auto\"", "start = \"preloaded\"")
    });
    let forced = ctx.run(&["--no-cache"]);
    assert_eq!(forced.code, 1, "{}", forced.stdout);
    assert_eq!(
        verdict(&ctx.report(), "baseline", "metrics"),
        Verdict::Changed
    );
    assert!(
        forced.stdout.contains("requests_created"),
        "{}",
        forced.stdout
    );
}

/// Each scenario run's verdict and summary, by cell.
fn verdicts_and_summaries(report: &Report) -> Vec<String> {
    each_run(report)
        .map(|(cell, run)| {
            format!(
                "{cell} | {} | {} | {}",
                run.scenario,
                run.verdict.label(),
                run.summary.as_deref().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn the_breaking_variants_give_the_same_verdicts_cold_and_forked() {
    // Each variant with the versions that break it: a token type that
    // changed, two pins that break only together, a module that is gone at
    // import (the preloader's import fails as the service's does), and a
    // security finding in the baseline itself.
    let variants = [
        ("pyjwt-bytes-token", "one-at-a-time", r#"pyjwt = ["2.8.0"]"#),
        (
            "flask-pyjwt-interaction",
            "latest",
            "flask = [\"2.3.3\"]\npyjwt = [\"2.8.0\"]",
        ),
        (
            "werkzeug-url-quote",
            "one-at-a-time",
            r#"werkzeug = ["3.0.6"]"#,
        ),
        (
            "jwt-secret-fallback",
            "one-at-a-time",
            r#"bcrypt = ["4.1.2"]"#,
        ),
    ];
    for (variant, strategy, matrix) in variants {
        let ctx = TestContext::new();
        ctx.overlay(&format!("fixtures/variants/{variant}"));
        ctx.set_matrix(matrix);
        ctx.edit("upgrade-check.toml", |text| {
            text.replace(
                "strategy = \"one-at-a-time\"",
                &format!("strategy = \"{strategy}\""),
            )
            .replace(
                "profile = \"dev\"\n",
                "profile = \"dev\"\nstart = \"cold\"\n",
            )
        });
        // Forced forking shows every run forked, the baseline's too.
        let flags = ["--no-cache", "--no-bisect", "--no-noise-check"];
        let cold = ctx.run(&flags);
        assert_eq!(cold.code, 1, "{variant} breaks: {}", cold.stdout);
        let cold_report = ctx.report();
        assert!(runs(&cold_report).iter().all(|run| !run.3), "{variant}");

        ctx.edit("upgrade-check.toml", |text| {
            text.replace("start = \"cold\"", "start = \"preloaded\"")
        });
        let forked = ctx.run(&flags);
        assert_eq!(forked.code, 1, "{variant}: {}", forked.stdout);
        let forked_report = ctx.report();
        // A service that never started (a failed import) has no timing.
        let started_cold = |report: &Report| {
            each_run(report)
                .filter(|(_, run)| run.timing.as_ref().is_some_and(|timing| !timing.preloaded))
                .count()
        };
        assert_eq!(
            started_cold(&forked_report),
            0,
            "{variant}: every service forked: {forked_report:?}"
        );
        assert_eq!(
            verdicts_and_summaries(&forked_report),
            verdicts_and_summaries(&cold_report),
            "{variant}"
        );
        assert_eq!(
            forked_report.interactions, cold_report.interactions,
            "{variant}"
        );
    }
}

/// What `run.service_start` says is what happened: a command that runs
/// `{python} -c …` cannot be entered by a preloader, so every run starts
/// cold and the report says so, refusals included.
#[test]
fn a_command_no_preloader_can_enter_is_said_to_start_cold() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            r#"command = ["{python}", "-m", "app"]"#,
            r#"command = ["{python}", "-c", "import runpy; runpy.run_module('app', run_name='__main__')"]"#,
        )
    });
    let run = ctx.run(&[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    assert_eq!(
        report.run.service_start,
        "cold: its command does not run a Python module or script"
    );
    let forked: Vec<_> = runs(&report).into_iter().filter(|run| run.3).collect();
    assert!(forked.is_empty(), "{forked:?}");
}
