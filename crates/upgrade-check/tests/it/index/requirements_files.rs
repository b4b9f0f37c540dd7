//! Requirements files as services write them: `-r` includes, `--hash`
//! digests checked on install, and packages that must be built from source.

use crate::common::Verdict;
use crate::common::{TestContext, assert_no_service_left, cell_report, scenario_report, verdict};

const AUTH: &str = "fixtures/python-service/requirements/auth.txt";

#[test]
fn hashed_requirements_with_an_include_are_installed_hash_checked() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/hash-checked");
    ctx.set_matrix(r#"bcrypt = ["5.0.0"]"#);
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = ctx.report();
    for scenario in ["health", "login", "long-password", "register"] {
        assert_eq!(verdict(&report, "baseline", scenario), Verdict::Pass);
    }
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
    for cell in ["baseline", "bcrypt 5.0.0"] {
        let environment = cell_report(&report, cell).environment.as_ref().unwrap();
        assert!(environment.hash_checked, "{cell}: {environment:?}");
    }
    assert_no_service_left(&ctx, &report);
}

#[test]
fn a_digest_that_does_not_match_the_download_fails_the_build_naming_the_package() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/hash-checked");
    ctx.set_matrix("");
    // Keep one digest for bcrypt 3.2.0, and make it one no file of that release has.
    let forged = format!(
        "bcrypt==3.2.0 \\\n    --hash=sha256:{}\n",
        "0123456789abcdef".repeat(4)
    );
    ctx.edit(AUTH, |text| {
        crate::common::replace_requirement(&text, "bcrypt==3.2.0", &forged)
    });
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = ctx.report();
    let refused = scenario_report(&report, "baseline", "login");
    assert_eq!(refused.verdict, Verdict::BuildFailed, "{refused:?}");
    let explanation = refused.log_tail.as_deref().unwrap().to_lowercase();
    assert!(
        explanation.contains("bcrypt") && explanation.contains("hash mismatch"),
        "{explanation}"
    );
}

#[test]
fn an_unparseable_line_in_an_include_names_the_include_and_its_line() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/hash-checked");
    ctx.edit(AUTH, |text| {
        text.replacen("bcrypt==3.2.0", "bcrypt=3.2.0", 1)
    });
    let run = ctx.run(&[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("requirements/auth.txt:3:") && run.stderr.contains("bcrypt=3.2.0"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_package_built_from_source_is_listed_and_no_build_refuses_it() {
    let ctx = TestContext::new();
    ctx.set_matrix("");
    // docopt 0.6.2 was published as a source distribution only.
    ctx.edit("fixtures/python-service/requirements.txt", |text| {
        text + "docopt==0.6.2\n"
    });
    let run = ctx.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = ctx.report();
    let environment = cell_report(&report, "baseline")
        .environment
        .as_ref()
        .unwrap();
    assert_eq!(
        environment.built_from_source,
        ["docopt 0.6.2"],
        "{environment:?}"
    );
    assert!(
        run.stdout.contains("built from source") && run.stdout.contains("docopt 0.6.2"),
        "{}",
        run.stdout
    );
    let comment = std::fs::read_to_string(ctx.path("state/report/report.md")).unwrap();
    assert!(
        comment.contains("`docopt 0.6.2` was built from source"),
        "{comment}"
    );

    let run = ctx.run(&["--no-build"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = ctx.report();
    let refused = scenario_report(&report, "baseline", "login");
    assert_eq!(refused.verdict, Verdict::BuildFailed, "{refused:?}");
    assert!(
        refused.log_tail.as_deref().unwrap().contains("docopt"),
        "{refused:?}"
    );
}
