//! Pending snapshots are insta's own: `cargo insta`, the review tool Rust
//! teams already use, lists and accepts them, and what it accepts turns the
//! pull request's check green.
//!
//! cargo-insta looks for pending snapshots inside Cargo packages only, so
//! the service here is the cargo fixture with its snapshots kept in its
//! crate (`service/snapshots`), as a Rust team lays them out.

use crate::common::Verdict;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::common::{TestContext, git, shared_cache, verdict};

/// The cargo-insta release of the insta this workspace locks: they are
/// released together.
fn cargo_insta_version() -> String {
    let lockfile =
        std::fs::read_to_string(crate::common::workspace_root().join("Cargo.lock")).unwrap();
    let entry = "\nname = \"insta\"\nversion = \"";
    let at = lockfile.find(entry).unwrap() + entry.len();
    lockfile[at..].split('"').next().unwrap().to_owned()
}

/// The folder `bin/cargo-insta` is installed under: `cargo xtask test`
/// starts building it there (at low priority) as the suite starts, so this
/// waits for that build; run alone, the test builds it itself.
fn cargo_insta_bin() -> PathBuf {
    let root = shared_cache().join("tools/cargo-insta");
    std::fs::create_dir_all(shared_cache().join("tools")).unwrap();
    let lock = std::fs::File::create(shared_cache().join("tools/cargo-insta.lock")).unwrap();
    lock.lock().unwrap();
    if !root.join("bin/cargo-insta").is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["install", "--quiet", "--locked", "--debug", "cargo-insta"])
            .args(["--version", &cargo_insta_version(), "--root"])
            .arg(&root)
            .arg("--target-dir")
            .arg(root.join("build"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cargo install cargo-insta: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let _ = std::fs::remove_dir_all(root.join("build"));
    }
    root.join("bin")
}

/// Runs `cargo insta ARGS` in the repository, with cargo-insta on PATH.
fn cargo_insta(ctx: &TestContext, args: &[&str]) -> String {
    let mut path = vec![cargo_insta_bin()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("insta")
        .args(args)
        .args(["--manifest-path", "service/Cargo.toml"])
        .current_dir(ctx.path(""))
        .env("PATH", std::env::join_paths(path).unwrap())
        .env_remove("CI")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "cargo insta {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_pending_snapshot_accepted_with_cargo_insta_turns_the_check_green() {
    let ctx = TestContext::cargo();
    std::fs::rename(ctx.path("snapshots"), ctx.path("service/snapshots")).unwrap();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "snapshots = \"snapshots\"",
            "snapshots = \"service/snapshots\"",
        )
    });
    std::fs::write(ctx.path(".gitignore"), "/state/\ntarget/\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(&ctx, &["commit", "--quiet", "-m", "the service as it is"]);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let bumped = Command::new(cargo)
        .args([
            "update",
            "--quiet",
            "-p",
            "mime_guess",
            "--precise",
            "2.0.5",
        ])
        .current_dir(ctx.path("service"))
        .status()
        .unwrap();
    assert!(bumped.success());
    git(&ctx, &["commit", "--quiet", "-am", "bump mime_guess"]);

    let failing = ctx.run(&["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(failing.code, 1, "{}\n{}", failing.stdout, failing.stderr);
    let pending = ctx.path("service/snapshots/files.snap.new");
    let text = std::fs::read_to_string(&pending).unwrap();
    assert!(text.contains("result of cell `mime_guess 2.0.5`"), "{text}");

    // cargo-insta reads the pending file as its own, and accepts it.
    let listed = cargo_insta(&ctx, &["pending-snapshots"]);
    assert!(listed.contains("files.snap"), "{listed}");
    cargo_insta(&ctx, &["accept"]);
    assert!(!pending.exists());
    let accepted = std::fs::read_to_string(ctx.path("service/snapshots/files.snap")).unwrap();
    assert!(accepted.contains("text/javascript"), "{accepted}");
    git(
        &ctx,
        &[
            "commit",
            "--quiet",
            "-am",
            "accept what mime_guess 2.0.5 answers",
        ],
    );

    let green = ctx.run(&["--since", "HEAD~2", "--no-bisect"]);
    assert_eq!(green.code, 0, "{}\n{}", green.stdout, green.stderr);
    let report = ctx.report();
    assert_eq!(verdict(&report, "baseline", "files"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "mime_guess 2.0.5", "files"),
        Verdict::Accepted
    );
    assert!(
        green
            .stdout
            .starts_with("✓ mime_guess 2.0.5 changes files, accepted in this change"),
        "{}",
        green.stdout
    );
}
