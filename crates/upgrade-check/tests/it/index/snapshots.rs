//! Accepted snapshots change only through --accept, never in a plain run or in CI.

use crate::common::TestContext;

/// A matrix whose only candidate is the baseline version: the baseline cell alone.
const BASELINE_ONLY: &str = r#"bcrypt = ["3.2.0"]"#;

#[test]
fn only_accept_rewrites_an_accepted_snapshot() {
    let ctx = TestContext::new();
    ctx.set_matrix(BASELINE_ONLY);
    // The accepted snapshot disagrees with the service: a username changed.
    ctx.edit("snapshots/register.snap", |text| {
        text.replace("\"alice\"", "\"alicia\"")
    });
    let stale = std::fs::read(ctx.path("snapshots/register.snap")).unwrap();

    // Whatever insta's own switches say, a plain run writes only the pending file:
    // environment variables, or an insta.yaml a pull request might ship.
    std::fs::write(
        ctx.path("insta.yaml"),
        "behavior:\n  force_update: true\n  force_pass: true\n",
    )
    .unwrap();
    let mut command = ctx.command(&[]);

    command
        .env("INSTA_UPDATE", "always")
        .env("INSTA_FORCE_PASS", "1");
    let plain = ctx.run_command(command);
    assert_eq!(plain.code, 1);
    assert!(
        plain
            .stdout
            .contains("the baseline itself does not match its accepted snapshots (register)"),
        "{}",
        plain.stdout
    );
    assert_eq!(
        std::fs::read(ctx.path("snapshots/register.snap")).unwrap(),
        stale
    );
    let pending = std::fs::read_to_string(ctx.path("snapshots/register.snap.new")).unwrap();
    assert!(pending.contains("\"alice\""), "{pending}");
    // The pending file is an insta snapshot that cargo-insta can review.
    let parsed = insta::Snapshot::from_file(&ctx.path("snapshots/register.snap.new")).unwrap();
    assert_eq!(parsed.metadata().source(), Some("scenarios/register.toml"));

    // Not in CI, not even with --accept.
    let mut command = ctx.command(&["--accept"]);
    command.env("CI", "true");
    let in_ci = ctx.run_command(command);
    assert_eq!(in_ci.code, 2);
    assert!(
        in_ci.stderr.contains("refusing to accept snapshots in CI"),
        "{}",
        in_ci.stderr
    );
    assert_eq!(
        std::fs::read(ctx.path("snapshots/register.snap")).unwrap(),
        stale
    );

    let accept = ctx.run(&["--accept"]);
    assert_eq!(accept.code, 0);
    let accepted = std::fs::read_to_string(ctx.path("snapshots/register.snap")).unwrap();
    assert!(
        accepted.contains("\"alice\"") && !accepted.contains("alicia"),
        "{accepted}"
    );
    assert!(
        !ctx.path("snapshots/register.snap.new").exists(),
        "accepting drops the pending file"
    );

    let again = ctx.run(&[]);
    assert_eq!(again.code, 0, "the baseline now matches");
}

/// What a run leaves pending is reviewed or accepted without running
/// anything, with the commands the run's own hint names; the next run is green.
#[test]
fn pending_snapshots_are_reviewed_and_accepted_without_a_rerun() {
    let ctx = TestContext::from_workspace("fixtures/variants/hostile", std::path::Path::to_owned);
    for scenario in ["secrets", "health"] {
        std::fs::remove_file(ctx.path(&format!("scenarios/{scenario}.toml"))).unwrap();
    }
    let set_mode = |mode: &str| {
        ctx.edit("upgrade-check.toml", |text| {
            let start = text.find("HOSTILE = \"").unwrap();
            let end = start + text[start..].find('\n').unwrap();
            format!("{}HOSTILE = \"{mode}\"{}", &text[..start], &text[end..])
        })
    };
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    set_mode("admin-open");
    let changed = ctx.run(&["--no-noise-check"]);
    assert_eq!(changed.code, 1);
    assert!(
        changed.stdout.contains(
            "pending snapshot: snapshots/listing.snap.new (review with `cargo xtask upgrade-check review`, or accept it with `cargo xtask upgrade-check accept`)"
        ),
        "{}",
        changed.stdout
    );
    let review = |answers: &str| {
        let mut command = ctx.command(&["review"]);
        command.stdin(std::process::Stdio::piped());
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answers.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // Skipped: still pending. The diff is shown first.
    let skipped = review("s\n");
    assert!(
        skipped.contains("── listing (1 of 1): result of the baseline")
            && skipped.contains("-< 403 Forbidden")
            && skipped.contains("+< 200 OK")
            && skipped.contains("0 accepted, 0 rejected, 1 skipped"),
        "{skipped}"
    );
    assert!(ctx.path("snapshots/listing.snap.new").exists());
    // Accepted: the next run is green.
    assert!(review("a\n").contains("accepted snapshots/listing.snap"));
    assert!(!ctx.path("snapshots/listing.snap.new").exists());
    assert_eq!(ctx.run(&["--no-noise-check"]).code, 0);

    // The other way: `accept` takes every pending one, or the ones named.
    set_mode("");
    assert_eq!(ctx.run(&["--no-noise-check"]).code, 1);
    let unknown = ctx.run(&["accept", "nosuch"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("no pending snapshot for `nosuch`; pending: listing"),
        "{}",
        unknown.stderr
    );
    let accepted = ctx.run(&["accept"]);
    assert_eq!(accepted.code, 0);
    assert!(
        accepted
            .stdout
            .contains("accepted snapshots/listing.snap (result of the baseline"),
        "{}",
        accepted.stdout
    );
    assert_eq!(
        ctx.run(&["--no-noise-check"]).code,
        0,
        "green after accepting"
    );

    // Never in CI.
    let mut in_ci = ctx.command(&["accept"]);
    in_ci.env("CI", "true");
    assert_eq!(ctx.run_command(in_ci).code, 2);
}
