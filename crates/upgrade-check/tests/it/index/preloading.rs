//! Services forked from a preloaded interpreter (`[service] start`): checked
//! against cold starts on the bundled auth service, where they answer the
//! same, and on a real library that reads the environment as it is imported
//! (`fixtures/variants/import-time-env`), where they do not.

use std::path::Path;

use crate::common::{TestContext, verdict};

/// Every scenario run's verdict, and whether its service was forked.
fn runs(report: &serde_json::Value) -> Vec<(String, String, String, bool)> {
    report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|cell| {
            cell["scenarios"].as_array().unwrap().iter().map(|run| {
                (
                    cell["name"].as_str().unwrap().to_owned(),
                    run["scenario"].as_str().unwrap().to_owned(),
                    run["verdict"].as_str().unwrap().to_owned(),
                    run["timing"]["preloaded"].as_bool().unwrap_or(false),
                )
            })
        })
        .collect()
}

#[test]
fn forked_starts_of_the_auth_service_give_the_verdicts_of_cold_ones() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["5.0.0"]"#);
    let cold = ctx.run(&["--no-cache"]);
    assert_eq!(
        cold.code, 1,
        "bcrypt 5 breaks long passwords: {}",
        cold.stdout
    );
    let cold_runs = runs(&ctx.report());
    assert!(cold_runs.iter().all(|run| !run.3), "{cold_runs:?}");

    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "profile = \"dev\"\n",
            "profile = \"dev\"\nstart = \"auto\"\n",
        )
    });
    let forked = ctx.run(&["--no-cache"]);
    assert_eq!(forked.code, 1, "{}", forked.stdout);
    let report = ctx.report();
    assert_eq!(
        report["run"]["service_start"],
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
    assert_eq!(verdict(&report, "bcrypt 5.0.0", "long-password"), "changed");
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

    let run = ctx.run(&[]);
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
    let said = report["run"]["service_start"].as_str().unwrap();
    assert!(said.starts_with("cold: scenario run `metrics`"), "{said}");
    assert!(
        runs(&report).iter().all(|run| !run.3),
        "nothing forked after the difference: {report}"
    );
    assert!(
        report["nondeterministic"].as_array().unwrap().is_empty(),
        "{report}"
    );

    // Reusing the recorded baseline keeps what its check found.
    let again = ctx.run(&[]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    let said = ctx.report()["run"]["service_start"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(said.starts_with("cold: scenario run `metrics`"), "{said}");

    // Forced, unchecked, the library's import-time read shows as a change.
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("start = \"auto\"", "start = \"preloaded\"")
    });
    let forced = ctx.run(&["--no-cache"]);
    assert_eq!(forced.code, 1, "{}", forced.stdout);
    assert_eq!(verdict(&ctx.report(), "baseline", "metrics"), "changed");
    assert!(
        forced.stdout.contains("requests_created"),
        "{}",
        forced.stdout
    );
}
