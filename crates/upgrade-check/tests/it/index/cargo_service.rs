//! A cargo service end to end: its Cargo.lock is the baseline, each cell
//! moves crates with `cargo update --precise` and is built for real, and a
//! pull request's lock diff is split, validated and attributed.
//!
//! The fixture (`fixtures/rust-service`) serves files with the content type
//! mime_guess gives them: 2.0.5 answers `.js` with `text/javascript` where
//! the locked 2.0.4 said `application/javascript`.

use crate::common::Verdict;
use crate::common::{
    TestContext, assert_no_service_left, cargo, cell_names, cell_report, git, verdict,
    version_change,
};

#[test]
fn each_crate_version_is_built_and_the_one_that_changes_a_response_is_named() {
    let ctx = TestContext::cargo();
    // 1.8.2 is outside the manifest's `mime_guess = "2.0.4"`: the cell
    // raises the requirement, as a pull request moving it would, and then
    // the old crate's build script no longer compiles against what cargo
    // resolves for it today.
    ctx.set_matrix("mime_guess = [\"2.0.5\", \"1.8.2\"]\nhttparse = [\"1.10.1\"]");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("mime_guess 2.0.5 breaks files"),
        "{}",
        run.stdout
    );
    let report = ctx.report();
    assert_eq!(
        cell_names(&report),
        [
            "baseline",
            "httparse 1.10.1",
            "mime_guess 2.0.5",
            "mime_guess 1.8.2"
        ]
    );
    assert_eq!(verdict(&report, "baseline", "files"), Verdict::Pass);
    assert_eq!(verdict(&report, "httparse 1.10.1", "files"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "mime_guess 2.0.5", "health"),
        Verdict::Pass
    );

    let changed = crate::common::scenario_report(&report, "mime_guess 2.0.5", "files");
    assert_eq!(changed.verdict, Verdict::Changed);
    let diff = changed.diff.as_deref().unwrap();
    assert!(
        diff.contains("-< content-type: application/javascript")
            && diff.contains("+< content-type: text/javascript"),
        "{diff}"
    );
    // No status changed: the summary names the first difference instead.
    assert_eq!(
        changed.summary.as_deref(),
        Some("step `a script`: content-type application/javascript → text/javascript")
    );
    let moved = version_change(cell_report(&report, "mime_guess 2.0.5"), "mime_guess");
    assert_eq!(
        (moved.before.as_deref(), moved.after.as_deref()),
        (Some("2.0.4"), Some("2.0.5"))
    );

    let refused = crate::common::scenario_report(&report, "mime_guess 1.8.2", "files");
    assert_eq!(refused.verdict, Verdict::BuildFailed);
    let summary = refused.summary.as_deref().unwrap();
    assert!(
        summary.starts_with(
            "cargo build with mime_guess \"2.0.4\" → \"=1.8.2\" in Cargo.toml: error[E0277]"
        ) && summary.ends_with("(in the dependency mime_guess-1.8.2: src/gen_mime_types.rs:35:21)"),
        "{refused:?}"
    );
    // Two cells with the same lock as the baseline share nothing; each lock
    // built once, each binary kept in its own environment.
    let ids: std::collections::BTreeSet<&str> = report
        .cells
        .iter()
        .filter_map(|cell| Some(cell.environment.as_ref()?.id.as_str()))
        .collect();
    assert_eq!(ids.len(), 3, "baseline, mime_guess 2.0.5, httparse 1.10.1");
    assert_no_service_left(&ctx, &report);
}

/// Each cell builds in a scratch copy of its own, where incremental state
/// could never be used again: none is written (it cost a third of a
/// cell's build of the auth service).
#[test]
fn a_cell_s_build_writes_no_incremental_state() {
    let ctx = TestContext::cargo();
    ctx.set_matrix("httparse = [\"1.10.1\"]");
    // A cache of its own: the target folder holds this run's builds only.
    let cache = ctx.path("cache");
    let output = ctx
        .command(&["--no-bisect"])
        .env("UPGRADE_CHECK_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let built = cache.join("cargo-target/debug");
    assert!(built.join("files-service").is_file(), "{stderr}");
    let incremental: Vec<_> = std::fs::read_dir(built.join("incremental"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert!(incremental.is_empty(), "{incremental:?}");
}

#[test]
fn a_crate_range_is_filled_from_the_registry_index_and_the_break_bisected() {
    let ctx = TestContext::cargo();
    ctx.set_matrix(
        r#"mime_guess = { range = ">=2.0.4, <3", pick = "latest" }
httparse = { range = "^1.8", pick = "latest-per-minor" }"#,
    );
    let plan = ctx.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    // The registry's own yanked flags: httparse 1.9.0 to 1.9.2 were pulled.
    for line in [
        "httparse ^1.8 (latest-per-minor): 3 of ",
        "1.8.0, 1.9.5, 1.10.1",
        "mime_guess >=2.0.4, <3 (latest): 1 of ",
        "httparse ^1.8: left out 1.9.0 (yanked), 1.9.1 (yanked), 1.9.2 (yanked)",
    ] {
        assert!(plan.stderr.contains(line), "{line}: {}", plan.stderr);
    }
    assert!(
        plan.stdout.contains("mime_guess-2.0.5\t")
            && plan.stdout.contains("httparse-1.10.1\t")
            && plan.stdout.contains("httparse-1.9.5\t"),
        "{}",
        plan.stdout
    );
    // Offline, the cached answer serves.
    let offline = ctx.run(&["--offline", "plan"]);
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert!(
        offline
            .stderr
            .contains("versions, index answer cached: 2.0.5"),
        "{}",
        offline.stderr
    );

    let bisect = ctx.run(&["bisect", "mime_guess", "--to", "2.0.5"]);
    assert_eq!(bisect.code, 1, "{}", bisect.stderr);
    assert!(
        bisect
            .stdout
            .contains("first bad: mime_guess 2.0.5 (breaks files)")
            && bisect.stdout.contains("last good: mime_guess 2.0.4"),
        "{}",
        bisect.stdout
    );
    let yanked = ctx.run(&["bisect", "httparse", "--to", "1.9.1"]);
    assert_eq!(yanked.code, 2, "{}", yanked.stderr);
    assert!(
        yanked
            .stderr
            .contains("httparse 1.9.1 is not an installable version on")
            && yanked.stderr.contains("(yanked)"),
        "{}",
        yanked.stderr
    );
}

/// A repository whose one commit is the fixture.
fn repository() -> TestContext {
    let ctx = TestContext::cargo();
    std::fs::write(ctx.path(".gitignore"), "/state/\n*.snap.new\ntarget/\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(&ctx, &["commit", "--quiet", "-m", "the service as it is"]);
    ctx
}

/// The fixture's repository with a second commit that moves crates in its
/// lock with `cargo update --precise`, as Dependabot does.
fn repository_with_lock_bump(bumps: &[(&str, &str)]) -> TestContext {
    let ctx = repository();
    for (package, version) in bumps {
        cargo(
            &ctx,
            &["update", "--quiet", "-p", package, "--precise", version],
        );
    }
    git(&ctx, &["commit", "--quiet", "-am", "bump crates"]);
    ctx
}

const WHOLE_CHANGE: &str = "whole change (httparse 1.10.1, mime_guess 2.0.5)";

/// Runs `--since HEAD~1` on a change that moves httparse to 1.10.1 and
/// mime_guess to 2.0.5, and checks each is tried alone on the base's lock
/// and the changed response is mime_guess's.
fn run_split_and_attributed(ctx: &TestContext) -> (crate::common::Run, crate::common::Report) {
    let run = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("2 pins changed: httparse 1.8.0 → 1.10.1, mime_guess 2.0.4 → 2.0.5"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("mime_guess 2.0.5 breaks files"),
        "{}",
        run.stdout
    );
    let report = ctx.report();
    assert_eq!(
        cell_names(&report),
        [
            "baseline",
            "httparse 1.10.1",
            "mime_guess 2.0.5",
            WHOLE_CHANGE
        ]
    );
    // The working tree holds the new lock: the baseline is built from the base's.
    assert_eq!(verdict(&report, "baseline", "files"), Verdict::Pass);
    assert_eq!(verdict(&report, "httparse 1.10.1", "files"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "mime_guess 2.0.5", "files"),
        Verdict::Changed
    );
    assert_eq!(verdict(&report, WHOLE_CHANGE, "files"), Verdict::Changed);
    (run, report)
}

#[test]
fn a_grouped_lock_bump_is_split_and_the_change_is_attributed_to_its_crate() {
    let ctx = repository_with_lock_bump(&[("mime_guess", "2.0.5"), ("httparse", "1.10.1")]);
    let (_, report) = run_split_and_attributed(&ctx);
    let moved = version_change(cell_report(&report, WHOLE_CHANGE), "httparse");
    assert_eq!(
        (moved.before.as_deref(), moved.after.as_deref()),
        (Some("1.8.0"), Some("1.10.1"))
    );
}

#[test]
fn a_bump_that_raises_a_manifest_requirement_is_split_on_the_old_manifest() {
    // Dependabot raises the requirement with the lock: `mime_guess = "2.0.5"`.
    // Built on the new manifest, the baseline and the httparse cell would
    // both move mime_guess too, and the change would be blamed on httparse.
    let ctx = repository();
    ctx.edit("service/Cargo.toml", |text| {
        text.replace("mime_guess = \"2.0.4\"", "mime_guess = \"2.0.5\"")
    });
    cargo(
        &ctx,
        &[
            "update",
            "--quiet",
            "-p",
            "mime_guess",
            "--precise",
            "2.0.5",
        ],
    );
    cargo(
        &ctx,
        &["update", "--quiet", "-p", "httparse", "--precise", "1.10.1"],
    );
    git(&ctx, &["commit", "--quiet", "-am", "bump crates"]);
    let (run, report) = run_split_and_attributed(&ctx);
    assert!(
        run.stderr
            .contains("Cargo.toml changed; the baseline is built with the old one"),
        "{}",
        run.stderr
    );
    assert!(
        cell_report(&report, "httparse 1.10.1")
            .changes
            .iter()
            .all(|change| change.package != "mime_guess"),
        "mime_guess stays locked in the httparse cell"
    );
}

/// Writes `to` in place of `from` in the working lock, commits it, and
/// checks `--since HEAD~1` refuses it before anything runs, naming the line.
fn assert_lock_rejected(from: &str, to: &str, key: &str, reason: &str) {
    let ctx = repository();
    ctx.edit("service/Cargo.lock", |text| {
        assert!(text.contains(from), "{from} in the lock");
        text.replacen(from, to, 1)
    });
    git(&ctx, &["commit", "--quiet", "-am", "edit the lock"]);
    let line = std::fs::read_to_string(ctx.path("service/Cargo.lock"))
        .unwrap()
        .lines()
        .position(|text| text == to.lines().last().unwrap())
        .unwrap()
        + 1;
    let run = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("Cargo.lock:{line}:")),
        "line {line}: {}",
        run.stderr
    );
    assert!(run.stderr.contains(key), "{key}: {}", run.stderr);
    assert!(run.stderr.contains(reason), "{reason}: {}", run.stderr);
    assert!(!ctx.path("state/report").exists(), "nothing ran");
}

#[test]
fn shell_text_in_a_locked_version_is_rejected_with_its_line() {
    assert_lock_rejected(
        "version = \"2.0.4\"",
        "version = \"2.0.5; rm -rf /\"",
        "package[",
        "is not a semver version",
    );
}

#[test]
fn a_crate_name_that_is_not_one_is_rejected_with_its_line() {
    assert_lock_rejected(
        "name = \"mime_guess\"",
        "name = \"mime_guess$(id)\"",
        "package[",
        "is not a crate name",
    );
}

#[test]
fn a_version_the_registry_does_not_have_is_rejected_with_its_line() {
    assert_lock_rejected(
        "name = \"mime_guess\"\nversion = \"2.0.4\"",
        "name = \"mime_guess\"\nversion = \"2.0.99\"",
        "`mime_guess`",
        "mime_guess 2.0.99 cannot be installed from the registry:\nno such version, or a yanked one",
    );
}

#[test]
fn a_yanked_version_is_rejected_with_its_line() {
    // httparse 1.9.0 to 1.9.2 are yanked on the registry.
    assert_lock_rejected(
        "name = \"httparse\"\nversion = \"1.8.0\"",
        "name = \"httparse\"\nversion = \"1.9.1\"",
        "`httparse`",
        "httparse 1.9.1 cannot be installed from the registry:\nno such version, or a yanked one",
    );
}

#[test]
fn a_crate_the_registry_does_not_have_is_rejected_with_its_line() {
    assert_lock_rejected(
        "name = \"mime_guess\"\nversion = \"2.0.4\"",
        "name = \"upgrade-check-no-such-crate\"\nversion = \"2.0.4\"",
        "`upgrade-check-no-such-crate`",
        "upgrade-check-no-such-crate 2.0.4 cannot be installed from the registry",
    );
}

/// Processes whose command line mentions `path`.
fn processes_mentioning(path: &std::path::Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&needle))
        .collect()
}

#[test]
fn sigint_during_a_cargo_build_leaves_no_cargo_and_no_temp_folder() {
    interrupt_a_cargo_build(&[nix::sys::signal::Signal::SIGINT]);
}

#[test]
fn a_second_signal_during_a_cargo_build_quits_at_once_and_still_leaves_nothing() {
    // Two different signals: the kernel would merge two of the same kind.
    use nix::sys::signal::Signal;
    interrupt_a_cargo_build(&[Signal::SIGTERM, Signal::SIGINT]);
}

/// Starts the cargo fixture on an empty cache, sends `signals` once cargo
/// builds, and checks the harness stops with no cargo and no temp folder left.
fn interrupt_a_cargo_build(signals: &[nix::sys::signal::Signal]) {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    let ctx = TestContext::cargo();
    // A cache of its own: nothing is built yet, so cargo is at work when the signal comes.
    let (temp, cache) = (ctx.path("system-tmp"), ctx.path("cache"));
    std::fs::create_dir_all(&temp).unwrap();
    let mut command = ctx.command(&[]);
    command
        .env("TMPDIR", &temp)
        .env("UPGRADE_CHECK_CACHE_DIR", &cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut harness = command.spawn().unwrap();
    let stderr = harness.stderr.take().unwrap();
    let printed = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .inspect(|line| eprintln!("{line}"))
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while processes_mentioning(&cache.join("cargo-target")).is_empty() {
        assert!(Instant::now() < deadline, "cargo build never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::fs::read_dir(&temp).unwrap().next().is_some(),
        "the build works in a temp folder"
    );
    for signal in signals {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(harness.id() as i32), *signal).unwrap();
    }
    let status = harness.wait().unwrap();
    let printed = printed.join().unwrap();
    assert_eq!(status.code(), Some(130), "{printed:?}");
    // A process SIGKILLed a moment ago may still be tearing down.
    let killed_by = Instant::now() + Duration::from_secs(5);
    while !processes_mentioning(&cache).is_empty() && Instant::now() < killed_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        processes_mentioning(&cache).is_empty(),
        "cargo outlived the harness: {:?}",
        processes_mentioning(&cache)
    );
    let left: Vec<_> = std::fs::read_dir(&temp)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    assert!(left.is_empty(), "temp folders left behind: {left:?}");
}

/// mime_guess 2.0.5's `text/javascript` is a harmless change: accepted for
/// that cell, it passes there (and for later 2.x), while the baseline's
/// snapshot stays the reference for everything else.
#[test]
fn a_harmless_change_is_accepted_for_its_cell_and_the_baseline_snapshot_stays() {
    let ctx = TestContext::cargo();
    ctx.set_matrix("mime_guess = [\"2.0.5\"]");
    let before = std::fs::read_to_string(ctx.path("snapshots/files.snap")).unwrap();
    let changed = ctx.run(&["--no-noise-check"]);
    assert_eq!(changed.code, 1, "changed before");
    crate::common::assert_readme_sample("can still change what users see:", &changed.stdout);

    let accept = ctx.run(&["accept", "--cell", "mime_guess 2.0.5", "files"]);
    assert_eq!(accept.code, 0, "{}", accept.stderr);
    crate::common::assert_readme_sample("accept --cell \"mime_guess 2.0.5\" files", &accept.stdout);
    let alternative = ctx.path("snapshots/alternatives/files/mime_guess-2.0.5.snap");
    assert!(
        accept.stdout.contains(
            "accepted alternative: snapshots/alternatives/files/mime_guess-2.0.5.snap (for mime_guess >=2.0.5, <3)"
        ),
        "{}",
        accept.stdout
    );
    let text = std::fs::read_to_string(&alternative).unwrap();
    assert!(text.contains("text/javascript"), "{text}");
    assert_eq!(
        std::fs::read_to_string(ctx.path("snapshots/files.snap")).unwrap(),
        before,
        "the baseline's snapshot is untouched"
    );

    let run = ctx.run(&["--no-noise-check"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    crate::common::assert_readme_sample("and every report says so:", &run.stdout);
    let report = ctx.report();
    let files = crate::common::scenario_report(&report, "mime_guess 2.0.5", "files");
    assert_eq!(files.verdict, Verdict::Pass);
    assert_eq!(
        files.alternative.as_deref(),
        Some("mime_guess >=2.0.5, <3 (snapshots/alternatives/files/mime_guess-2.0.5.snap)")
    );
    assert!(
        run.stdout.contains("↳ mime_guess 2.0.5 · files: matches the alternative accepted for mime_guess >=2.0.5, <3"),
        "{}",
        run.stdout
    );
    // The baseline is still judged by its own snapshot: its output did not move.
    assert_eq!(verdict(&report, "baseline", "files"), Verdict::Pass);

    // A scenario that does not exist, or a cell that is not `PACKAGE VERSION`: exit 2, nothing written.
    let bad = ctx.run(&["accept", "--cell", "mime_guess 2.0.5", "nosuch"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("no scenario `nosuch`"),
        "{}",
        bad.stderr
    );
    let bad = ctx.run(&["accept", "--cell", "mime_guess", "files"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("PACKAGE VERSION"), "{}", bad.stderr);
}

/// The accept-in-the-pull-request loop on a lock bump: the check fails on
/// the change, the maintainer accepts on the branch what the whole change
/// answers, commits it, and the check passes, saying what the change
/// accepts. A snapshot edit no cell answers as fails, naming the file.
#[test]
fn a_change_accepted_in_the_pull_request_turns_its_check_green() {
    let ctx = repository_with_lock_bump(&[("mime_guess", "2.0.5"), ("httparse", "1.10.1")]);
    run_split_and_attributed(&ctx);
    let pending = std::fs::read_to_string(ctx.path("snapshots/files.snap.new")).unwrap();
    assert!(
        pending.contains("result of cell `mime_guess 2.0.5`"),
        "{pending}"
    );
    let report_md = std::fs::read_to_string(ctx.path("state/report/report.md")).unwrap();
    assert!(
        report_md.contains(
            "To accept what changed: run `cargo xtask upgrade-check --accept --since HEAD~1` on this branch and commit `snapshots/files.snap`."
        ),
        "{report_md}"
    );

    // The maintainer accepts on the branch: the whole change's answers.
    let accepted = ctx.run(&["--accept", "--since", "HEAD~1"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    crate::common::assert_readme_sample(
        "### Accepting a change inside the pull request",
        &accepted.stdout,
    );
    assert!(
        accepted.stdout.contains(&format!(
            "accepted snapshot: snapshots/files.snap (from {WHOLE_CHANGE})"
        )),
        "{}",
        accepted.stdout
    );
    let snapshot = std::fs::read_to_string(ctx.path("snapshots/files.snap")).unwrap();
    assert!(
        snapshot.contains("text/javascript")
            && snapshot.contains(&format!("accepted from cell `{WHOLE_CHANGE}`")),
        "{snapshot}"
    );
    git(
        &ctx,
        &[
            "commit",
            "--quiet",
            "-am",
            "accept what mime_guess 2.0.5 answers",
        ],
    );

    // The pull request's check, from its base: green, saying what it accepts.
    let green = ctx.run(&["--since", "HEAD~2"]);
    assert_eq!(green.code, 0, "{}\n{}", green.stdout, green.stderr);
    crate::common::assert_readme_sample("and says what the pull request accepts", &green.stdout);
    let report = ctx.report();
    assert_eq!(
        verdict(&report, "baseline", "files"),
        Verdict::Pass,
        "the base's own snapshot"
    );
    assert_eq!(
        verdict(&report, "httparse 1.10.1", "files"),
        Verdict::Pass,
        "answers as before"
    );
    assert_eq!(
        verdict(&report, "mime_guess 2.0.5", "files"),
        Verdict::Accepted
    );
    assert_eq!(verdict(&report, WHOLE_CHANGE, "files"), Verdict::Accepted);
    let headline: Vec<&str> = green.stdout.lines().take(3).collect();
    assert_eq!(
        headline,
        [
            "✓ 2 cells change what the service answers, accepted in this change:",
            "  - mime_guess 2.0.5 changes files, accepted in this change",
            &format!("  - {WHOLE_CHANGE} changes files, accepted in this change"),
        ],
        "{}",
        green.stdout
    );
    assert!(
        green
            .stdout
            .contains("── mime_guess 2.0.5 · files: accepted in this change ──")
            && green.stdout.contains("+< content-type: text/javascript"),
        "the reviewer sees the accepted diff: {}",
        green.stdout
    );
    let report_md = std::fs::read_to_string(ctx.path("state/report/report.md")).unwrap();
    assert!(
        report_md.contains(
            "<details open><summary><b>mime_guess 2.0.5 · files</b>: accepted in this change"
        ) && report_md.contains("✅ accepted"),
        "{report_md}"
    );
    let junit = std::fs::read_to_string(ctx.path("state/report/junit.xml")).unwrap();
    assert!(!junit.contains("<failure"), "{junit}");
    assert!(junit.contains("accepted in this change:"), "{junit}");

    // A snapshot edited to what no cell answers fails, naming the file.
    ctx.edit("snapshots/files.snap", |text| {
        text.replace("text/javascript", "text/plain")
    });
    git(&ctx, &["commit", "--quiet", "-am", "a wrong edit"]);
    let wrong = ctx.run(&["--since", "HEAD~3"]);
    assert_eq!(wrong.code, 1, "{}", wrong.stdout);
    assert!(
        wrong.stdout.starts_with(&format!(
            "✗ snapshots/files.snap is changed in this change, but `{WHOLE_CHANGE}` answers neither as this change's snapshot says nor as the base's"
        )),
        "{}",
        wrong.stdout
    );

    // A pull request that only edits a snapshot explains nothing.
    git(
        &ctx,
        &["checkout", "--quiet", "-b", "snapshot-only", "HEAD~3"],
    );
    ctx.edit("snapshots/files.snap", |text| {
        text.replace("application/javascript", "text/plain")
    });
    git(&ctx, &["commit", "--quiet", "-am", "edit a snapshot"]);
    let alone = ctx.run(&["--since", "HEAD~1"]);
    assert_eq!(alone.code, 1, "{}", alone.stdout);
    assert!(
        alone.stdout.contains(
            "✗ snapshots/files.snap is changed in this change, but no pin changed: nothing here answers that way"
        ),
        "{}",
        alone.stdout
    );
}
