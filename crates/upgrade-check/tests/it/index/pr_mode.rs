//! Pull-request mode: `--since REF` takes the baseline file at REF as the
//! baseline and tries each changed pin alone, on a real git repository.

use crate::common::Verdict;
use crate::common::{TestContext, cell_names, cell_report, git, verdict};

/// A repository whose first commit is the fixture, and whose second commit
/// edits the baseline file with `edit`.
fn repository_with_change(
    overlay: Option<&str>,
    edit: impl FnOnce(String) -> String,
) -> TestContext {
    repository_with_change_in(overlay, "fixtures/python-service/requirements.txt", edit)
}

/// The same, with the change in `file`.
fn repository_with_change_in(
    overlay: Option<&str>,
    file: &str,
    edit: impl FnOnce(String) -> String,
) -> TestContext {
    let ctx = TestContext::new();
    if let Some(overlay) = overlay {
        ctx.overlay(overlay);
    }
    std::fs::write(ctx.path(".gitignore"), "/state/\n*.snap.new\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(&ctx, &["commit", "--quiet", "-m", "the service as it is"]);
    ctx.edit(file, edit);
    git(&ctx, &["commit", "--quiet", "-am", "bump dependencies"]);
    ctx
}

#[test]
fn a_grouped_bump_is_split_and_each_failure_is_attributed() {
    // The service still calls .decode() on PyJWT's token, so PyJWT 2 breaks login;
    // bcrypt 5 breaks long passwords. One pull request bumps both.
    let ctx = repository_with_change(Some("fixtures/variants/pyjwt-bytes-token"), |text| {
        text.replace("bcrypt==3.2.0", "bcrypt==5.0.0")
            .replace("PyJWT==1.7.1", "PyJWT==2.8.0")
    });
    let run = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("2 pins changed: bcrypt 3.2.0 → 5.0.0, pyjwt 1.7.1 → 2.8.0"),
        "{}",
        run.stderr
    );
    crate::common::assert_readme_sample("## Checking a pull request", &run.stdout);
    let report = ctx.report();
    assert_eq!(
        cell_names(&report),
        [
            "baseline",
            "bcrypt 5.0.0",
            "pyjwt 2.8.0",
            "whole change (bcrypt 5.0.0, pyjwt 2.8.0)"
        ]
    );
    for scenario in ["health", "login", "long-password", "register"] {
        assert_eq!(
            verdict(&report, "baseline", scenario),
            Verdict::Pass,
            "the old pins are the baseline"
        );
    }
    // Each failure lands on the package that causes it.
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "login"),
        Verdict::Pass,
        "bcrypt 5 does not break login"
    );
    assert_eq!(verdict(&report, "pyjwt 2.8.0", "login"), Verdict::Changed);
    assert_eq!(
        verdict(&report, "pyjwt 2.8.0", "register"),
        Verdict::Pass,
        "registering issues no token"
    );
    let whole = "whole change (bcrypt 5.0.0, pyjwt 2.8.0)";
    assert_eq!(verdict(&report, whole, "login"), Verdict::Changed);
    let changes = &cell_report(&report, whole).changes;
    let moved = |package: &str| changes.iter().any(|change| change.package == package);
    assert!(moved("bcrypt") && moved("pyjwt"), "{changes:?}");
    assert!(
        run.stdout.contains("bcrypt 5.0.0 breaks long-password"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("pyjwt 2.8.0 breaks login"),
        "{}",
        run.stdout
    );
}

/// Runs `--since HEAD~1` on a change that writes `line` into the baseline
/// file, and checks it is refused before anything runs, naming that line.
fn assert_rejected(line: &str, reason: &str) {
    let ctx = repository_with_change(None, |text| text.replace("bcrypt==3.2.0", line));
    let line_number = std::fs::read_to_string(ctx.path("fixtures/python-service/requirements.txt"))
        .unwrap()
        .lines()
        .position(|text| text == line)
        .unwrap()
        + 1;
    let run = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains(&format!("requirements.txt:{line_number}:")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(reason), "{}", run.stderr);
    assert!(!ctx.path("state/report").exists(), "nothing ran");
}

#[test]
fn shell_text_in_a_changed_line_is_rejected_with_its_line() {
    assert_rejected("bcrypt==4.1.2; rm -rf /", "is not a PEP 508 requirement");
}

#[test]
fn an_option_smuggled_into_a_changed_line_is_rejected() {
    assert_rejected(
        "--extra-index-url http://127.0.0.1:9/simple",
        "index and install options belong in uv's own configuration",
    );
}

#[test]
fn an_include_that_leaves_the_service_is_rejected() {
    assert_rejected("-r /etc/passwd", "an include must stay inside");
    assert_rejected("-r ../../../etc/passwd", "an include must stay inside");
}

#[test]
fn a_version_the_index_does_not_have_is_rejected_with_its_line() {
    assert_rejected(
        "bcrypt==99.0.0",
        "bcrypt 99.0.0 cannot be installed from the package index",
    );
}

#[test]
fn a_package_the_index_does_not_have_is_rejected_with_its_line() {
    assert_rejected(
        "upgrade-check-no-such-package==1.0.0",
        "cannot be installed from the package index",
    );
}

#[test]
fn a_ref_that_looks_like_an_option_is_refused() {
    let ctx = repository_with_change(None, |text| text.replace("bcrypt==3.2.0", "bcrypt==4.1.2"));
    let run = ctx.run(&["--since=--output=/tmp/x"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("is not a git ref") && run.stderr.contains("note: see --since"),
        "{}",
        run.stderr
    );
}

/// A pull request's branch cloned fresh, as CI checks it out: its default
/// branch is there only as the remote's, and the error says which ref to
/// pass; that ref then works.
#[test]
fn a_default_branch_known_only_as_the_remote_s_is_named_in_the_error() {
    let ctx = repository_with_change(None, |text| text.replace("bcrypt==3.2.0", "bcrypt==4.1.2"));
    git(&ctx, &["branch", "-M", "bump"]);
    git(&ctx, &["branch", "main", "HEAD~1"]);
    let clone = TestContext {
        dir: tempfile::tempdir().unwrap(),
    };
    git(
        &clone,
        &["clone", "--quiet", ctx.dir.path().to_str().unwrap(), "."],
    );

    let run = clone.run(&["--since", "main"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "`main` is not a commit in this repository, but `origin/main` is: pass `--since origin/main`"
        ),
        "{}",
        run.stderr
    );
    let run = clone.run(&["--since", "origin/main"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(cell_names(&clone.report()), ["baseline", "bcrypt 4.1.2"]);
}

#[test]
fn command_substitution_and_ifs_tricks_are_not_versions() {
    assert_rejected("bcrypt==$(id)", "is not a PEP 508 requirement");
    assert_rejected(
        "bcrypt==4.1.2${IFS}-r${IFS}/etc/passwd",
        "is not a PEP 508 requirement",
    );
}

#[test]
fn a_url_or_a_local_path_in_place_of_a_version_is_rejected() {
    assert_rejected(
        "bcrypt @ http://127.0.0.1:9/bcrypt-4.1.2.tar.gz",
        "URL requirements are not supported",
    );
    assert_rejected("./vendor/bcrypt", "is not a PEP 508 requirement");
}

#[test]
fn a_yanked_version_is_rejected_with_its_line() {
    // bcrypt 4.1.0 was yanked ("Incompatibility with assumptions made by passlib").
    assert_rejected("bcrypt==4.1.0", "is yanked");
}

#[test]
fn a_pyproject_toml_baseline_is_read_and_diffed() {
    let ctx = TestContext::new();
    // The same pins, declared as [project] dependencies instead of lines.
    let requirements =
        std::fs::read_to_string(ctx.path("fixtures/python-service/requirements.txt")).unwrap();
    let pins: Vec<String> = requirements
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| format!("    \"{line}\","))
        .collect();
    let pyproject = format!(
        "[project]\nname = \"auth-service\"\nversion = \"1.0.0\"\ndependencies = [\n{}\n]\n",
        pins.join("\n")
    );
    std::fs::write(
        ctx.path("fixtures/python-service/pyproject.toml"),
        pyproject,
    )
    .unwrap();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "baseline = \"requirements.txt\"",
            "baseline = \"pyproject.toml\"",
        )
    });
    std::fs::write(ctx.path(".gitignore"), "/state/\n*.snap.new\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(&ctx, &["commit", "--quiet", "-m", "pins in pyproject.toml"]);
    ctx.edit("fixtures/python-service/pyproject.toml", |text| {
        text.replace("bcrypt==3.2.0", "bcrypt==5.0.0")
    });
    git(&ctx, &["commit", "--quiet", "-am", "bump bcrypt"]);

    let run = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("1 pin changed: bcrypt 3.2.0 → 5.0.0"),
        "{}",
        run.stderr
    );
    let report = ctx.report();
    assert_eq!(verdict(&report, "baseline", "long-password"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
    assert_eq!(verdict(&report, "bcrypt 5.0.0", "login"), Verdict::Pass);
}

#[test]
fn a_bump_inside_an_included_hashed_file_is_found_and_tried() {
    // Renovate rewrites the pin and drops the old digests; the new version is
    // checked against the index's.
    let ctx = repository_with_change_in(
        Some("fixtures/variants/hash-checked"),
        "fixtures/python-service/requirements/auth.txt",
        |text| crate::common::replace_requirement(&text, "bcrypt==3.2.0", "bcrypt==5.0.0\n"),
    );
    let run = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("1 pin changed: bcrypt 3.2.0 → 5.0.0"),
        "{}",
        run.stderr
    );
    let report = ctx.report();
    assert_eq!(verdict(&report, "baseline", "long-password"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
    assert!(
        cell_report(&report, "baseline")
            .environment
            .as_ref()
            .unwrap()
            .hash_checked
    );
}

#[test]
fn a_yanked_version_in_an_include_is_rejected_naming_the_include() {
    let ctx = repository_with_change_in(
        Some("fixtures/variants/hash-checked"),
        "fixtures/python-service/requirements/auth.txt",
        |text| crate::common::replace_requirement(&text, "bcrypt==3.2.0", "bcrypt==4.1.0\n"),
    );
    let run = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("requirements/auth.txt:3:") && run.stderr.contains("is yanked"),
        "{}",
        run.stderr
    );
    assert!(!ctx.path("state/report").exists(), "nothing ran");
}

#[test]
fn a_pull_request_reuses_the_recorded_baseline_of_its_base_and_runs_only_its_change() {
    // The default branch ran the check (as the CI recipe's push run does),
    // recording the baseline; the pull request bumps PyJWT.
    let ctx = TestContext::new();
    ctx.set_matrix("");
    std::fs::write(ctx.path(".gitignore"), "/state/\n*.snap.new\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(&ctx, &["commit", "--quiet", "-m", "the service as it is"]);
    let base = ctx.run(&["--no-bisect"]);
    assert_eq!(base.code, 0, "{}", base.stderr);

    ctx.edit("fixtures/python-service/requirements.txt", |text| {
        text.replace("PyJWT==1.7.1", "PyJWT==2.8.0")
    });
    git(&ctx, &["commit", "--quiet", "-am", "bump PyJWT"]);
    let pr = ctx.run(&["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(pr.code, 0, "{}", pr.stderr);
    let report = ctx.report();
    let reused: Vec<(&str, bool)> = report
        .cells
        .iter()
        .map(|cell| (cell.name.as_str(), cell.result_reused))
        .collect();
    assert_eq!(reused, [("baseline", true), ("pyjwt 2.8.0", false)]);
    assert!(
        pr.stdout.contains("results: 1 of 2 cells reused"),
        "{}",
        pr.stdout
    );
}

/// The same loop on a requirements file, accepting through `review`: the
/// pending snapshot names the cell it came from, the maintainer accepts it,
/// commits, and the pull request's check passes with the change accepted.
#[test]
fn a_pending_snapshot_reviewed_on_the_branch_turns_the_check_green() {
    let ctx = repository_with_change(None, |text| text.replace("bcrypt==3.2.0", "bcrypt==5.0.0"));
    let failing = ctx.run(&["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(failing.code, 1, "{}", failing.stderr);
    let pending = std::fs::read_to_string(ctx.path("snapshots/long-password.snap.new")).unwrap();
    assert!(
        pending.contains("result of cell `bcrypt 5.0.0`"),
        "{pending}"
    );

    let mut review = ctx.command(&["review"]);
    review.stdin(std::process::Stdio::piped());
    let mut child = review.stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"a\n").unwrap();
    let reviewed = child.wait_with_output().unwrap();
    assert!(reviewed.status.success());
    assert!(
        String::from_utf8_lossy(&reviewed.stdout).contains("1 accepted, 0 rejected, 0 skipped"),
        "{}",
        String::from_utf8_lossy(&reviewed.stdout)
    );
    git(
        &ctx,
        &[
            "commit",
            "--quiet",
            "-am",
            "accept what bcrypt 5.0.0 answers",
        ],
    );

    let green = ctx.run(&["--since", "HEAD~2", "--no-bisect"]);
    assert_eq!(green.code, 0, "{}\n{}", green.stdout, green.stderr);
    let report = ctx.report();
    assert_eq!(verdict(&report, "baseline", "long-password"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Accepted
    );
    assert!(
        green
            .stdout
            .starts_with("✓ bcrypt 5.0.0 changes long-password, accepted in this change"),
        "{}",
        green.stdout
    );
}
