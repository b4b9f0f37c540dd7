//! The Rust auth service (`fixtures/rust-auth-service`: axum, bcrypt,
//! jsonwebtoken, SQLite) against real crates from the registry: a major that
//! stops the build, a major that answers differently, a major that panics
//! in a handler, a patch that passes; the build break bisected to its first
//! bad version; a harmless lock bump whose crate moves others along green.
//! (Bisecting a break at run time on crates is `cargo_service.rs`'s.)

use crate::common::Verdict;
use crate::common::{TestContext, cell_report, scenario_report, verdict};

fn auth_service() -> TestContext {
    TestContext::from_workspace("fixtures/rust-auth-service", std::path::Path::to_path_buf)
}

/// Commits the service as it is now, in a repository made on first use,
/// for `--since`.
fn committed(ctx: &TestContext, message: &str) {
    if !ctx.path(".git").exists() {
        std::fs::write(ctx.path(".gitignore"), "/state/\n*.snap.new\ntarget/\n").unwrap();
        crate::common::git(ctx, &["init", "--quiet"]);
    }
    crate::common::git(ctx, &["add", "."]);
    crate::common::git(ctx, &["commit", "--quiet", "-m", message]);
}

#[test]
fn each_real_break_of_the_rust_auth_service_is_caught_explained_and_bisected() {
    let ctx = auth_service();
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    crate::common::assert_readme_sample("The auth fixture's matrix (`--no-bisect`):", &run.stdout);
    let report = ctx.report();
    for scenario in ["health", "login", "register", "missing-config@no-secrets"] {
        assert_eq!(
            verdict(&report, "baseline", scenario),
            Verdict::Pass,
            "{scenario}"
        );
        assert_eq!(
            verdict(&report, "bcrypt 0.15.1", scenario),
            Verdict::Pass,
            "{scenario}"
        );
        assert_eq!(
            verdict(&report, "axum 0.8.9", scenario),
            Verdict::BuildFailed
        );
    }
    // A patch inside the requirement raises nothing.
    assert!(
        cell_report(&report, "bcrypt 0.15.1")
            .environment
            .as_ref()
            .unwrap()
            .raised_requirements
            .is_empty()
    );

    // The build break: the requirement raised, then the compiler's first
    // error, in the service's own code.
    let build = scenario_report(&report, "axum 0.8.9", "health");
    assert_eq!(
        build.summary.as_deref(),
        Some(
            "cargo build with axum \"0.7.5\" → \"=0.8.9\" in Cargo.toml: error[E0433]: cannot find `async_trait` in `axum` (in the service's code: src/main.rs:152:9)"
        )
    );

    // A cell that did not build is in the footer of raised requirements too.
    assert!(
        run.stdout.contains(
            "requirement raised to allow the version (in a scratch copy): axum \"0.7.5\" → \"=0.8.9\" in Cargo.toml, for axum 0.8.9"
        ),
        "{}",
        run.stdout
    );

    // The behaviour change: 9.0 rejects a token naming an audience.
    assert_eq!(
        verdict(&report, "jsonwebtoken 9.3.1", "login"),
        Verdict::Changed
    );
    assert_eq!(
        scenario_report(&report, "jsonwebtoken 9.3.1", "login")
            .summary
            .as_deref(),
        Some("step `me with the token`: 200 OK → 401 Unauthorized")
    );
    assert_eq!(
        cell_report(&report, "jsonwebtoken 9.3.1")
            .environment
            .as_ref()
            .unwrap()
            .raised_requirements,
        ["jsonwebtoken \"8.3.0\" → \"=9.3.1\" in Cargo.toml"]
    );

    // The panic: 10.0 without a crypto backend feature panics on the first
    // token it signs; the client gets no answer, the log says why.
    let panicked = scenario_report(&report, "jsonwebtoken 10.4.0", "login");
    assert_eq!(panicked.verdict, Verdict::Changed);
    let summary = panicked.summary.as_deref().unwrap();
    assert!(
        summary.starts_with("step `good password` (scenarios/login.toml:17): no response")
            && summary.contains(
                "the service panicked: Could not automatically determine the process-level CryptoProvider from jsonwebtoken crate features. (in the dependency jsonwebtoken-10.4.0: src/crypto/mod.rs:"
            ),
        "{summary}"
    );
    assert_eq!(
        verdict(&report, "jsonwebtoken 10.4.0", "register"),
        Verdict::Pass
    );

    // The build break bisected over the registry's versions, each probe
    // with its requirement raised.
    let bisect = ctx.run(&["bisect", "axum", "--from", "0.7.9", "--to", "0.8.1"]);
    assert_eq!(bisect.code, 1, "{}", bisect.stderr);
    crate::common::assert_readme_sample(
        "`upgrade-check bisect axum --from 0.7.9 --to 0.8.1`:",
        &bisect.stdout,
    );
}

/// `cargo update -p tokio --precise 1.54.1` from 1.38.0 moves mio across a
/// major, socket2 and tokio-macros, and removes 28 crates: only tokio is a
/// cell (mio alone on the base lock cannot even be selected), what moved
/// with it is listed under it, the cell is the lock as the change made it,
/// and the harmless bump exits 0.
#[test]
fn a_lock_bump_of_tokio_alone_is_one_cell_and_green() {
    let ctx = auth_service();
    crate::common::cargo(
        &ctx,
        &["update", "--quiet", "-p", "tokio", "--precise", "1.38.0"],
    );
    committed(&ctx, "the service on tokio 1.38");
    crate::common::cargo(
        &ctx,
        &["update", "--quiet", "-p", "tokio", "--precise", "1.54.1"],
    );
    committed(&ctx, "bump tokio");

    let run = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    crate::common::assert_readme_sample("removes 28 crates, is one cell and exits 0:", &run.stdout);
    let report = ctx.report();
    assert_eq!(
        crate::common::cell_names(&report),
        ["baseline", "tokio 1.54.1"]
    );
    for scenario in ["health", "login", "register", "missing-config@no-secrets"] {
        assert_eq!(
            verdict(&report, "tokio 1.54.1", scenario),
            Verdict::Pass,
            "{scenario}"
        );
    }
    let mio = crate::common::version_change(cell_report(&report, "tokio 1.54.1"), "mio");
    assert_eq!(
        (mio.before.as_deref(), mio.after.as_deref()),
        (Some("0.8.11"), Some("1.2.5"))
    );
    let skipped = crate::common::skipped(&report);
    assert!(
        skipped.iter().any(
            |line| line.starts_with("moved with tokio: mio 0.8.11 → 1.2.5")
                && line.contains("28 removed; tried with it, never alone")
        ),
        "{skipped:?}"
    );
    // The lock as the change made it: the whole change is this one cell.
    assert_eq!(cell_report(&report, "tokio 1.54.1").id, "tokio-1.54.1");
    assert!(
        !skipped.iter().any(|line| line.contains("whole change")),
        "{skipped:?}"
    );
    assert!(
        run.stdout
            .contains("skipped: moved with tokio: mio 0.8.11 → 1.2.5"),
        "{}",
        run.stdout
    );
}

/// jsonwebtoken after 8.3.0: 9.0 refuses a token naming an audience (`/me`
/// answers 401), 10.0–10.2 and 12.0 do not build, 10.3 panics on the first
/// token it signs. No newer version passes every scenario, so the newest
/// safe one is the baseline's; and a bisection to 10.4.0 names both breaks,
/// each with its own first bad version, stepping over the versions that do
/// not build with their first error.
#[test]
fn no_failing_jsonwebtoken_is_called_safe_and_its_two_breaks_are_bisected_apart() {
    let ctx = auth_service();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("bcrypt = [\"0.15.1\"]", "")
            .replace("axum = [\"0.8.9\"]", "")
            .replace(
                "jsonwebtoken = [\"9.3.1\", \"10.4.0\"]",
                "jsonwebtoken = [\"9.3.1\", \"10.4.0\", \"12.0.0\"]",
            )
    });
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = ctx.report();
    assert_eq!(
        verdict(&report, "jsonwebtoken 12.0.0", "login"),
        Verdict::BuildFailed
    );
    let safe = report
        .newest_safe
        .iter()
        .find(|safe| safe.package == "jsonwebtoken")
        .unwrap_or_else(|| panic!("{:?}", report.newest_safe));
    // 9.3.1 and 10.4.0 build and change answers, 12.0.0 does not build:
    // the newest version that builds is no safe one.
    assert_eq!(safe.newest_tried, "12.0.0", "{safe:?}");
    assert_eq!(safe.newest_safe, "8.3.0", "{safe:?}");
    assert_eq!(safe.first_bad.as_deref(), Some("10.0.0"), "{safe:?}");
    assert!(
        run.stdout.contains(
            "↳ jsonwebtoken: newest safe version 8.3.0; first bad 10.0.0 (breaks the build;"
        ),
        "{}",
        run.stdout
    );

    let bisect = ctx.run(&["bisect", "jsonwebtoken", "--to", "10.4.0"]);
    assert_eq!(bisect.code, 1, "{}", bisect.stderr);
    crate::common::assert_readme_sample(
        "`upgrade-check bisect jsonwebtoken --to 10.4.0`:",
        &bisect.stdout,
    );
    let bisected = crate::common::bisect_report(&ctx);
    let breaks = &bisected.breaks;
    let answers: Vec<(&str, Option<&str>)> = breaks
        .iter()
        .map(|found| (found.last_good.as_str(), found.first_bad.as_deref()))
        .collect();
    assert_eq!(
        answers,
        [("8.3.0", Some("9.0.0")), ("9.3.1", Some("10.3.0"))],
        "{bisected:?}"
    );
    assert_eq!(
        breaks[0].failures,
        ["login: step `me with the token`: 200 OK → 401 Unauthorized"]
    );
    let panicked = breaks[1].failures[0].as_str();
    assert!(
        panicked.starts_with("login: step `good password`")
            && panicked.contains("the service panicked"),
        "{panicked}"
    );
    assert_eq!(breaks[1].unknown_between, ["10.0.0", "10.1.0", "10.2.0"]);
    for reason in &breaks[1].not_built {
        assert!(
            reason.contains(
                "error: at least one of the features \"rust_crypto\" or \"aws_lc_rs\" must be enabled"
            ),
            "{reason}"
        );
    }
    // The earliest break stays where scripts read it.
    assert_eq!(bisected.first_bad.as_deref(), Some("9.0.0"));
}

/// A pull request raising jsonwebtoken's requirement from 8 to 10 in
/// `Cargo.toml` moves base64, pem, ring and more with it. The cell is the
/// bump the change asked for, blamed for what it breaks; the crates that
/// moved because of it are listed under it and never tried alone.
#[test]
fn a_cargo_toml_bump_of_jsonwebtoken_is_blamed_on_jsonwebtoken_not_what_moved_with_it() {
    let ctx = auth_service();
    committed(&ctx, "the service on jsonwebtoken 8");
    ctx.edit("service/Cargo.toml", |text| {
        text.replace(
            "jsonwebtoken = { version = \"8.3.0\"",
            "jsonwebtoken = { version = \"10.4.0\"",
        )
    });
    crate::common::cargo(&ctx, &["update", "--quiet", "-p", "jsonwebtoken"]);
    committed(&ctx, "bump jsonwebtoken to 10");

    let run = ctx.run(&["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    crate::common::assert_readme_sample(
        "jsonwebtoken's, with what moved along listed under it:",
        &run.stdout,
    );
    let report = ctx.report();
    assert_eq!(
        crate::common::cell_names(&report),
        ["baseline", "jsonwebtoken 10.4.0"]
    );
    assert_eq!(
        verdict(&report, "jsonwebtoken 10.4.0", "login"),
        Verdict::Changed
    );
    assert_eq!(
        verdict(&report, "jsonwebtoken 10.4.0", "register"),
        Verdict::Pass
    );
    let cell = cell_report(&report, "jsonwebtoken 10.4.0");
    let base64 = crate::common::version_change(cell, "base64");
    assert_eq!(
        base64.after.as_deref(),
        Some("0.21.7, 0.22.1"),
        "{base64:?}"
    );
    assert!(
        run.stdout
            .contains("jsonwebtoken 10.4.0 breaks login: the service panicked"),
        "{}",
        run.stdout
    );
    let skipped = crate::common::skipped(&report);
    assert!(
        skipped
            .iter()
            .any(|line| line.starts_with("moved with jsonwebtoken: ") && line.contains("base64")),
        "{skipped:?}"
    );
    for follower in ["base64", "pem", "ring", "simple_asn1"] {
        assert!(
            !run.stdout.contains(&format!("✗ {follower} "))
                && !run.stdout.contains(&format!("- {follower} ")),
            "{follower} is blamed:\n{}",
            run.stdout
        );
    }
}
