//! Bad input stops the harness before anything runs: exit 2, naming file, line and key.

use crate::common::Verdict;
use crate::common::{TestContext, scenario_report};

/// Runs and checks the exit code, that the message points at `file:line`, and that nothing ran.
fn assert_rejected(ctx: &TestContext, file: &str, line: usize, needles: &[&str]) {
    let run = ctx.run(&[]);
    assert_eq!(run.code, 2, "bad input exits 2");
    let location = format!("{file}:{line}:");
    assert!(
        run.stderr.contains(&location),
        "expected {location} in: {}",
        run.stderr
    );
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "expected {needle:?} in: {}",
            run.stderr
        );
    }
    assert!(
        !ctx.path("state/report").exists(),
        "nothing ran, no report was written"
    );
    assert!(!run.stderr.contains("resolving"), "nothing was resolved");
}

/// 1-based line of the first line of `file` that starts with `prefix`.
fn line_of(ctx: &TestContext, file: &str, prefix: &str) -> usize {
    let text = std::fs::read_to_string(ctx.path(file)).unwrap();
    text.lines()
        .position(|line| line.starts_with(prefix))
        .unwrap()
        + 1
}

#[test]
fn unknown_key_in_config() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("[service]\n", "[service]\ncolour = \"blue\"\n")
    });
    let line = line_of(&ctx, "upgrade-check.toml", "colour");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &["`service.colour`", "unknown field `colour`"],
    );
}

#[test]
fn wrong_type_in_config() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            r#"command = ["{python}", "-m", "app"]"#,
            r#"command = "python -m app""#,
        )
    });
    let line = line_of(&ctx, "upgrade-check.toml", "command");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &["`service.command`", "invalid type"],
    );
}

#[test]
fn malformed_version_in_matrix() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["3.2.0", "5.0.x"]"#);
    let line = line_of(&ctx, "upgrade-check.toml", "bcrypt");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &[
            "`matrix.packages.bcrypt[1]`",
            "`5.0.x` is not an exact PEP 440 version",
        ],
    );
}

#[test]
fn shell_text_in_a_version_is_not_a_version() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2; rm -rf /"]"#);
    let line = line_of(&ctx, "upgrade-check.toml", "bcrypt");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &["`matrix.packages.bcrypt[0]`"],
    );
}

#[test]
fn unknown_placeholder_in_command() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("\"{port}\"", "\"{prot}\"")
    });
    let line = line_of(&ctx, "upgrade-check.toml", "PORT");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &["`service.env.PORT`", "unknown placeholder `{prot}`"],
    );
}

#[test]
fn scenario_using_an_undefined_variable() {
    let ctx = TestContext::new();
    std::fs::write(
        ctx.path("scenarios/broken.toml"),
        "description = \"uses a token nobody captured\"\n\n[[steps]]\nname = \"me\"\nmethod = \"GET\"\npath = \"/api/auth/me\"\nheaders = { Authorization = \"Bearer {{token}}\" }\n",
    )
    .unwrap();
    assert_rejected(
        &ctx,
        "broken.toml",
        3,
        &["`steps[0].headers`", "`{{token}}` is not a var"],
    );
}

#[test]
fn no_python_says_what_to_do() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "[service]\n",
            "[service]\npython = \"python-that-does-not-exist\"\n",
        )
    });
    let run = ctx.run(&[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no Python 3.9 or newer found"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("python-that-does-not-exist: not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_matrix_version_the_index_does_not_have_is_refused_before_anything_runs() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2", "99.0.0"]"#);
    let line = line_of(&ctx, "upgrade-check.toml", "bcrypt = ");
    let run = ctx.run(&[]);
    assert_eq!(run.code, 2, "bad input, not a regression: {}", run.stderr);
    assert!(
        run.stderr.contains(&format!("upgrade-check.toml:{line}:1: `matrix.packages.bcrypt[1]`: bcrypt 99.0.0 cannot be installed from the package index"))
            && run.stderr.contains("no version of bcrypt==99.0.0"),
        "{}",
        run.stderr
    );
    assert!(
        !ctx.path("state/report/report.json").exists(),
        "nothing ran"
    );
}

/// A package the service does not install (`requests` here) would make a
/// cell that changes nothing and fails late: refused with its line, by
/// `plan` and by a run, before any cell is built.
#[test]
fn a_matrix_package_the_service_does_not_install_is_refused_before_anything_runs() {
    let ctx = TestContext::new();
    ctx.set_matrix(
        r#"bcrypt = ["4.1.2"]
requests = ["2.31.0"]"#,
    );
    let line = line_of(&ctx, "upgrade-check.toml", "requests = ");
    for args in [&["plan"][..], &[]] {
        let run = ctx.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "upgrade-check.toml:{line}:1: `matrix.packages.requests`: requests is not installed by the service: its baseline (fixtures/python-service/requirements.txt) resolves no such package"
            )),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(
        !ctx.path("state/report/report.json").exists(),
        "nothing ran"
    );
}

/// A service never told its port (a hard-coded one in its code) would fail
/// to start in every cell: a config error at the command's line instead.
#[test]
fn a_service_never_told_its_port_is_a_config_error() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("PORT = \"{port}\"\n", "")
    });
    let line = line_of(&ctx, "upgrade-check.toml", "command = ");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &[
            "`service.command`",
            "the service is never told the port to listen on",
            "PORT = \"{port}\" in [service.env]",
        ],
    );
}

#[test]
fn a_path_that_leaves_the_tree_is_refused() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("scenarios = \"scenarios\"", "scenarios = \"../scenarios\"")
    });
    let line = line_of(&ctx, "upgrade-check.toml", "scenarios =");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &["`replay.scenarios`", "no absolute paths, no `..`"],
    );
}

#[test]
fn a_symlink_out_of_the_tree_is_refused() {
    let ctx = TestContext::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::copy(
        ctx.path("scenarios/health.toml"),
        outside.path().join("health.toml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), ctx.path("linked-scenarios")).unwrap();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "scenarios = \"scenarios\"",
            "scenarios = \"linked-scenarios\"",
        )
    });
    let line = line_of(&ctx, "upgrade-check.toml", "scenarios =");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &["`replay.scenarios`", "through a symlink"],
    );
}

#[test]
fn a_service_listening_on_every_interface_is_refused() {
    let ctx = TestContext::new();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("[service.env]\n", "[service.env]\nHOST = \"0.0.0.0\"\n")
    });
    let line = line_of(&ctx, "upgrade-check.toml", "HOST");
    assert_rejected(
        &ctx,
        "upgrade-check.toml",
        line,
        &["`service.env.HOST`", "must bind 127.0.0.1"],
    );
}

#[test]
fn a_scenario_that_is_not_utf8_is_refused_with_its_position() {
    let ctx = TestContext::new();
    std::fs::write(
        ctx.path("scenarios/binary.toml"),
        b"description = \"caf\xe9\"\n",
    )
    .unwrap();
    assert_rejected(&ctx, "binary.toml", 1, &["not valid UTF-8"]);
}

#[test]
fn two_steps_with_one_name_are_refused() {
    let ctx = TestContext::new();
    ctx.edit("scenarios/register.toml", |text| {
        text.replace("name = \"duplicate user\"", "name = \"new user\"")
    });
    let line = line_of(&ctx, "scenarios/register.toml", "name = \"new user\"");
    let second = std::fs::read_to_string(ctx.path("scenarios/register.toml"))
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, text)| text.starts_with("[[steps]]"))
        .map(|(index, _)| index + 1)
        .nth(1)
        .unwrap();
    assert!(second > line);
    assert_rejected(
        &ctx,
        "register.toml",
        second,
        &[
            "`steps[1].name`",
            "another step is already named `new user`",
        ],
    );
}

#[test]
fn an_oversized_scenario_file_is_refused() {
    let ctx = TestContext::new();
    let huge = format!("description = \"{}\"\n", "x".repeat(2 << 20));
    std::fs::write(ctx.path("scenarios/huge.toml"), huge).unwrap();
    assert_rejected(&ctx, "huge.toml", 1, &["larger than 1 MiB"]);
}

#[test]
fn no_build_refuses_a_source_distribution() {
    let ctx = TestContext::new();
    // MarkupSafe 1.0 was published as a source distribution only.
    ctx.set_matrix(r#"markupsafe = ["1.0"]"#);
    let run = ctx.run(&["--no-build"]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    assert_eq!(
        scenario_report(&report, "baseline", "login").verdict,
        Verdict::Pass,
        "wheels install as usual"
    );
    let refused = scenario_report(&report, "markupsafe 1.0", "login");
    assert_eq!(refused.verdict, Verdict::BuildFailed);
    let explanation = refused.log_tail.as_deref().unwrap();
    assert!(
        explanation.contains("markupsafe") && explanation.contains("build"),
        "{explanation}"
    );
}

#[test]
fn a_malformed_range_entry_names_its_key() {
    for (entry, needles) in [
        (
            r#"bcrypt = { range = ">=3.2,<6;id", pick = "all" }"#,
            &[
                "`matrix.packages.bcrypt.range`",
                "is not a PEP 440 version range",
            ][..],
        ),
        (
            r#"bcrypt = { range = ">=3.2", pick = "newest" }"#,
            &["`matrix.packages.bcrypt.pick`", "unknown variant `newest`"][..],
        ),
        (
            r#"bcrypt = { range = ">=3.2", pick = "all", index = "http://127.0.0.1:9" }"#,
            &["`matrix.packages.bcrypt.index`", "unknown field `index`"][..],
        ),
        (
            r#"bcrypt = "5.0.0""#,
            &["`matrix.packages.bcrypt`", "a list of versions, or a table"][..],
        ),
    ] {
        let ctx = TestContext::new();
        ctx.set_matrix(entry);
        let line = line_of(&ctx, "upgrade-check.toml", "bcrypt");
        assert_rejected(&ctx, "upgrade-check.toml", line, needles);
    }
}
