//! Accepted snapshots change only through --accept, never in a plain run or in CI.

mod common;

use common::TestContext;

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
