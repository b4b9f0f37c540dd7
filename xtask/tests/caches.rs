//! The environment cache under interruption and under two runs at once.
//!
//! Each test uses a cache of its own, so that it sees the builds it causes.

mod common;

use common::TestContext;

/// The baseline cell alone, with a private cache folder.
fn baseline_only(ctx: &TestContext) -> std::path::PathBuf {
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    ctx.path("cache")
}

#[test]
fn an_environment_without_its_complete_marker_is_rebuilt() {
    let ctx = TestContext::new();
    let cache = baseline_only(&ctx);
    let mut first = ctx.command(&[]);
    first.arg("--cache-dir").arg(&cache);
    assert_eq!(ctx.run_command(first).code, 0);
    let id = ctx.report()["cells"][0]["environment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = cache.join("envs").join(&id);

    // What an install cut short leaves: files, but no marker, and a package missing.
    std::fs::remove_file(env.join("complete")).unwrap();
    let site = std::fs::read_dir(env.join("venv/lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    std::fs::remove_dir_all(site.join("flask")).unwrap();

    let mut second = ctx.command(&[]);
    second.arg("--cache-dir").arg(&cache);
    let run = ctx.run_command(second);
    assert_eq!(run.code, 0, "the rebuilt environment works");
    let environment = &ctx.report()["cells"][0]["environment"];
    assert_eq!(
        environment["build_reused"], false,
        "the half-built environment was not trusted"
    );
    assert_eq!(environment["resolution_reused"], true);
    assert!(env.join("complete").exists() && site.join("flask").exists());
}

#[test]
fn two_runs_at_once_share_the_cache_and_both_finish_correct() {
    let ctx = TestContext::new();
    let cache = baseline_only(&ctx);
    let start = |state: &str| {
        let mut command = ctx.command(&[]);
        command
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--state-dir")
            .arg(ctx.path(state));
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command.spawn().unwrap()
    };
    let (mut one, mut two) = (start("state-one"), start("state-two"));
    assert_eq!(one.wait().unwrap().code(), Some(0));
    assert_eq!(two.wait().unwrap().code(), Some(0));
    let report = |state: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(ctx.path(state).join("report/report.json")).unwrap(),
        )
        .unwrap()
    };
    let (one, two) = (report("state-one"), report("state-two"));
    let env = |report: &serde_json::Value| report["cells"][0]["environment"].clone();
    assert_eq!(
        env(&one)["id"],
        env(&two)["id"],
        "one environment for one resolved set"
    );
    let built = [&one, &two]
        .iter()
        .filter(|report| env(report)["build_reused"] == false)
        .count();
    assert_eq!(
        built, 1,
        "the lock let exactly one run build it, the other reused it"
    );
    let envs: Vec<_> = std::fs::read_dir(cache.join("envs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .collect();
    assert_eq!(envs.len(), 1);
}
