//! Versions from the package index: matrix ranges and bisection, against the
//! real index.

mod common;

use common::TestContext;

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
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx.path("state/report/bisect.json")).unwrap())
            .unwrap();
    assert_eq!(report["versions_between"], 10, "{report}");
    assert_eq!(report["first_bad"], "5.0.0", "{report}");
    assert_eq!(report["last_good"], "4.3.0", "{report}");
    assert_eq!(report["scenarios"], serde_json::json!(["long-password"]));
    let builds = report["probes"].as_array().unwrap().len() - 1;
    assert!(builds <= 5, "{builds} builds: {report}");
    assert!(
        run.stdout
            .contains("first bad: bcrypt 5.0.0 (breaks long-password)")
            && run.stdout.contains("-< 201 Created"),
        "{}",
        run.stdout
    );
}
