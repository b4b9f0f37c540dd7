//! Python lockfiles as the baseline, written by the real tools: the fixture
//! service as a uv project (`uv lock`).

use crate::common::Verdict;
use std::process::Command;

use crate::common::{PIPENV, TestContext, cell_names, ensure_uv, git, packaging_tool, uv, verdict};

/// The fixture service as a uv project: its direct dependencies in
/// `pyproject.toml`, the rest held where requirements.txt has them by
/// constraints, locked by `uv lock`; the config's baseline is `uv.lock`.
fn uv_project(bcrypt: &str) -> TestContext {
    let ctx = TestContext::new();
    ensure_uv(&ctx);
    std::fs::remove_file(ctx.path("fixtures/python-service/requirements.txt")).unwrap();
    write_pyproject(&ctx, bcrypt);
    lock(&ctx, &[]);
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("baseline = \"requirements.txt\"", "baseline = \"uv.lock\"")
    });
    ctx
}

/// `fixtures/variants/uv-project`'s pyproject.toml beside the service's
/// code, bcrypt required at `bcrypt`.
fn write_pyproject(ctx: &TestContext, bcrypt: &str) {
    let project =
        crate::common::workspace_root().join("fixtures/variants/uv-project/pyproject.toml");
    let text = std::fs::read_to_string(project).unwrap();
    assert!(text.contains("\"bcrypt==3.2.0\""));
    std::fs::write(
        ctx.path("fixtures/python-service/pyproject.toml"),
        text.replace("\"bcrypt==3.2.0\"", &format!("\"bcrypt=={bcrypt}\"")),
    )
    .unwrap();
}

fn lock(ctx: &TestContext, args: &[&str]) {
    lock_in(ctx, "fixtures/python-service", args);
}

#[test]
fn a_uv_lock_is_the_baseline_and_bcrypt_5_is_caught() {
    let ctx = uv_project("3.2.0");
    ctx.set_matrix(r#"bcrypt = ["5.0.0"]"#);
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    assert_eq!(verdict(&report, "baseline", "long-password"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
    assert_eq!(verdict(&report, "bcrypt 5.0.0", "login"), Verdict::Pass);
    // The lock's digests check every download.
    assert!(report.cells[0].environment.as_ref().unwrap().hash_checked);
    // Transitive packages stay at the lock's versions unless the pin moves them.
    let changes = &report.cells[1].changes;
    let moved = |package: &str| changes.iter().any(|change| change.package == package);
    assert!(moved("bcrypt"), "{changes:?}");
    assert!(!moved("jinja2"), "{changes:?}");
}

#[test]
fn a_lock_bump_made_by_uv_is_split_and_attributed() {
    let ctx = uv_project("3.2.0");
    std::fs::write(ctx.path(".gitignore"), "/state/\n*.snap.new\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(&ctx, &["commit", "--quiet", "-m", "the service as it is"]);
    // As Dependabot's uv ecosystem does: the requirement raised, the lock redone.
    write_pyproject(&ctx, "5.0.0");
    lock(&ctx, &["--upgrade-package", "bcrypt==5.0.0"]);
    git(&ctx, &["commit", "--quiet", "-am", "bump bcrypt"]);
    let run = ctx.run(&["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("bcrypt 3.2.0 → 5.0.0"),
        "{}",
        run.stderr
    );
    let report = ctx.report();
    let names = cell_names(&report);
    assert!(names.contains(&"bcrypt 5.0.0"), "{names:?}");
    assert_eq!(verdict(&report, "baseline", "long-password"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
    assert!(
        run.stdout.contains("bcrypt 5.0.0 breaks long-password"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_lock_out_of_date_with_its_pyproject_is_refused_naming_the_file() {
    let ctx = uv_project("3.2.0");
    ctx.edit("fixtures/python-service/pyproject.toml", |text| {
        text.replace(
            "\"psycopg2-binary==2.9.10\",",
            "\"psycopg2-binary==2.9.10\",\n    \"requests==2.32.3\",",
        )
    });
    let run = ctx.run(&["plan"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("pyproject.toml:")
            && run.stderr.contains("requests is declared but")
            && run.stderr.contains("run `uv lock`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_lock_pinning_a_yanked_or_missing_version_is_refused_naming_its_line() {
    // uv locks an exact pin on a yanked release (PEP 592 allows it) and only
    // warns: bcrypt 4.1.0 was yanked ("Incompatibility with assumptions made
    // by passlib").
    let ctx = uv_project("4.1.0");
    let line_of = |version: &str| {
        let lock = std::fs::read_to_string(ctx.path("fixtures/python-service/uv.lock")).unwrap();
        let at = lock.find("[[package]]\nname = \"bcrypt\"\n").unwrap();
        assert!(lock[at..].contains(&format!("version = \"{version}\"")));
        // The line of the entry's name.
        lock[..at].lines().count() + 2
    };
    let refused = |needle: &str, line: usize| {
        let run = ctx.run(&["--no-bisect"]);
        assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&format!("uv.lock:{line}:"))
                && run.stderr.contains("bcrypt")
                && run.stderr.contains(needle)
                && run.stderr.contains("update the lock"),
            "{}",
            run.stderr
        );
        // Refused before anything was built or run.
        assert!(!ctx.path("state/report").exists(), "{}", run.stderr);
    };
    refused("is yanked", line_of("4.1.0"));
    // A version the index does not have (never released, or taken down).
    ctx.edit("fixtures/python-service/uv.lock", |text| {
        text.replace("version = \"4.1.0\"", "version = \"4.1.99\"")
    });
    refused("no version of bcrypt==4.1.99", line_of("4.1.99"));
}

#[test]
fn a_path_package_of_the_lock_is_installed_as_it_has_it_and_never_pinned() {
    // A monorepo's own library beside the service, required through
    // `[tool.uv.sources]`; it needs six, which only the lock pins.
    let ctx = uv_project("3.2.0");
    let library = ctx.path("fixtures/python-service/libs/greeting");
    std::fs::create_dir_all(library.join("src/greeting")).unwrap();
    std::fs::write(
        library.join("pyproject.toml"),
        "[project]\nname = \"greeting\"\nversion = \"0.1.0\"\ndependencies = [\"six\"]\n\n\
         [build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
    )
    .unwrap();
    let module = library.join("src/greeting/__init__.py");
    std::fs::write(&module, "import six\n\nWORD = \"hello\"\n").unwrap();
    ctx.edit("fixtures/python-service/pyproject.toml", |text| {
        text.replace(
            "\"psycopg2-binary==2.9.10\",",
            "\"psycopg2-binary==2.9.10\",\n    \"greeting\",",
        ) + "\n[tool.uv.sources]\ngreeting = { path = \"libs/greeting\" }\n"
    });
    lock(&ctx, &[]);
    // The service cannot start without it.
    ctx.edit("fixtures/python-service/app/__init__.py", |text| {
        text.replace(
            "import datetime\n",
            "import datetime\n\nimport greeting  # noqa: F401\n",
        )
    });
    // Every cell installs it (or the service would not start), and every
    // package from the index is still checked against the lock's digests.
    bcrypt_5_is_caught_on(&ctx);
    let report = ctx.report();
    assert!(
        report
            .skipped
            .iter()
            .any(|line| line
                .contains("greeting (path libs/greeting) is installed as the lock has it")),
        "{:?}",
        report.skipped
    );
    let built = report.cells[0].environment.as_ref().unwrap().id.clone();
    // An edit to the library makes a new environment, not a stale one reused.
    std::fs::write(&module, "import six\n\nWORD = \"hi\"\n").unwrap();
    let run = ctx.run(&["--accept", "--no-noise-check"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_ne!(
        ctx.report().cells[0].environment.as_ref().unwrap().id,
        built
    );
}

/// The fixture service with `manifest` written beside its code and locked
/// by `from`'s `lock`; the config's baseline is `lock_file`.
fn locked_by(from: &str, manifest: (&str, &str), lock_file: &str) -> TestContext {
    let ctx = TestContext::new();
    ensure_uv(&ctx);
    std::fs::remove_file(ctx.path("fixtures/python-service/requirements.txt")).unwrap();
    std::fs::write(
        ctx.path("fixtures/python-service").join(manifest.0),
        manifest.1,
    )
    .unwrap();
    packaging_tool(
        &ctx,
        "fixtures/python-service",
        from,
        &[from.split("==").next().unwrap(), "lock"],
    );
    assert!(
        ctx.path("fixtures/python-service")
            .join(lock_file)
            .is_file()
    );
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "baseline = \"requirements.txt\"",
            &format!("baseline = \"{lock_file}\""),
        )
    });
    ctx
}

/// A lock's runtime set holds the baseline; bcrypt 5.0.0 on top of it is caught.
fn bcrypt_5_is_caught_on(ctx: &TestContext) {
    ctx.set_matrix(r#"bcrypt = ["5.0.0"]"#);
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    assert_eq!(
        verdict(&report, "baseline", "long-password"),
        Verdict::Pass,
        "{}",
        run.stdout
    );
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
    assert_eq!(verdict(&report, "bcrypt 5.0.0", "login"), Verdict::Pass);
    assert!(report.cells[0].environment.as_ref().unwrap().hash_checked);
}

/// The fixture as a Poetry project, bcrypt required as `bcrypt`.
fn poetry_pyproject(bcrypt: &str) -> String {
    format!(
        r#"[project]
name = "auth-service"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = [
    "Flask==2.2.5",
    "Werkzeug==2.2.3",
    "bcrypt{bcrypt}",
    "PyJWT==1.7.1",
    "psycopg2-binary==2.9.10",
]

[tool.poetry]
package-mode = false
"#
    )
}

/// The fixture as a Pipenv project, bcrypt required as `bcrypt`.
fn pipfile(bcrypt: &str) -> String {
    format!(
        r#"[packages]
flask = "==2.2.5"
werkzeug = "==2.2.3"
bcrypt = "{bcrypt}"
pyjwt = "==1.7.1"
psycopg2-binary = "==2.9.10"

[requires]
python_version = "3.11"
"#
    )
}

const POETRY: &str = "poetry==2.1.3";

#[test]
fn a_poetry_lock_is_the_baseline_and_bcrypt_5_is_caught() {
    let ctx = locked_by(
        POETRY,
        ("pyproject.toml", &poetry_pyproject("==3.2.0")),
        "poetry.lock",
    );
    bcrypt_5_is_caught_on(&ctx);
}

#[test]
fn a_pipfile_lock_is_the_baseline_and_bcrypt_5_is_caught() {
    let ctx = locked_by(PIPENV, ("Pipfile", &pipfile("==3.2.0")), "Pipfile.lock");
    bcrypt_5_is_caught_on(&ctx);
}

/// A repository whose first commit is `ctx` as it is.
fn committed(ctx: &TestContext) {
    std::fs::write(ctx.path(".gitignore"), "/state/\n*.snap.new\n").unwrap();
    git(ctx, &["init", "--quiet"]);
    git(ctx, &["add", "."]);
    git(ctx, &["commit", "--quiet", "-m", "the service as it is"]);
}

#[test]
fn a_grouped_bump_made_by_uv_is_split_into_each_package_and_the_whole_change() {
    let ctx = uv_project("3.2.0");
    committed(&ctx);
    ctx.edit("fixtures/python-service/pyproject.toml", |text| {
        text.replace("\"bcrypt==3.2.0\"", "\"bcrypt==5.0.0\"")
            .replace("\"PyJWT==1.7.1\"", "\"PyJWT==2.8.0\"")
    });
    lock(&ctx, &[]);
    git(&ctx, &["commit", "--quiet", "-am", "bump bcrypt and pyjwt"]);
    let run = ctx.run(&["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    let names = cell_names(&report);
    let whole = names
        .iter()
        .find(|name| name.starts_with("whole change ("))
        .unwrap_or_else(|| panic!("a whole-change cell: {names:?}"));
    assert!(
        names.contains(&"bcrypt 5.0.0") && names.contains(&"pyjwt 2.8.0"),
        "{names:?}"
    );
    assert_eq!(
        verdict(&report, "bcrypt 5.0.0", "long-password"),
        Verdict::Changed
    );
    assert_eq!(
        verdict(&report, "pyjwt 2.8.0", "long-password"),
        Verdict::Pass
    );
    assert_eq!(verdict(&report, whole, "long-password"), Verdict::Changed);
}

/// As a maintainer (or Dependabot) does: bcrypt's constraint raised in
/// `manifest`, the lock redone by the tool with `relock`, committed; the
/// pull request's check attributes long-password's break to bcrypt.
fn a_relock_is_split_and_attributed(
    ctx: &TestContext,
    manifest: (&str, &str),
    relock: (&str, &[&str]),
) {
    committed(ctx);
    std::fs::write(
        ctx.path("fixtures/python-service").join(manifest.0),
        manifest.1,
    )
    .unwrap();
    packaging_tool(ctx, "fixtures/python-service", relock.0, relock.1);
    git(ctx, &["commit", "--quiet", "-am", "bump bcrypt"]);
    let run = ctx.run(&["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("bcrypt 3.2.0 → 5."), "{}", run.stderr);
    assert!(
        run.stdout.contains("breaks long-password"),
        "{}",
        run.stdout
    );
    assert_eq!(
        verdict(&ctx.report(), "baseline", "long-password"),
        Verdict::Pass
    );
}

#[test]
fn a_poetry_update_after_raising_the_constraint_is_split_and_attributed() {
    let ctx = locked_by(
        POETRY,
        ("pyproject.toml", &poetry_pyproject("==3.2.0")),
        "poetry.lock",
    );
    a_relock_is_split_and_attributed(
        &ctx,
        ("pyproject.toml", &poetry_pyproject(">=5,<6")),
        (POETRY, &["poetry", "update", "bcrypt"]),
    );
}

#[test]
fn a_pipenv_relock_after_raising_the_constraint_is_split_and_attributed() {
    let ctx = locked_by(PIPENV, ("Pipfile", &pipfile("==3.2.0")), "Pipfile.lock");
    a_relock_is_split_and_attributed(
        &ctx,
        ("Pipfile", &pipfile(">=5,<6")),
        (PIPENV, &["pipenv", "lock"]),
    );
}

/// `uv lock ARGS` in `folder` of the context.
fn lock_in(ctx: &TestContext, folder: &str, args: &[&str]) {
    let output = Command::new(uv())
        .arg("lock")
        .args(args)
        .current_dir(ctx.path(folder))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "uv lock: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Renovate-style grouped bump of a FastAPI service (`fixtures/variants/
/// fastapi-pydantic`): fastapi 0.95.2 → 0.100.0 with pydantic 1.10.13 →
/// 2.5.3 in one uv.lock. pydantic 2 alone breaks what fastapi 0.95.2
/// declares: not tried, never a regression. The whole change answers 422s
/// in pydantic 2's shape; accepted in the pull request, the check turns green.
#[test]
fn a_grouped_framework_bump_accepted_in_the_pull_request_turns_green() {
    let ctx =
        TestContext::from_workspace("fixtures/variants/fastapi-pydantic", |path| path.to_owned());
    ensure_uv(&ctx);
    lock_in(&ctx, "service", &[]);
    std::fs::write(ctx.path(".gitignore"), "/state/\n*.snap.new\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    assert_eq!(ctx.run(&["--accept"]).code, 0);
    git(&ctx, &["add", "."]);
    git(
        &ctx,
        &["commit", "--quiet", "-m", "the service on pydantic 1"],
    );
    ctx.edit("service/pyproject.toml", |text| {
        text.replace("fastapi==0.95.2", "fastapi==0.100.0")
            .replace("pydantic==1.10.13", "pydantic==2.5.3")
    });
    lock_in(&ctx, "service", &[]);
    git(
        &ctx,
        &[
            "commit",
            "--quiet",
            "-am",
            "bump fastapi and pydantic together",
        ],
    );

    let run = ctx.run(&["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let whole = "whole change (fastapi 0.100.0, pydantic 2.5.3, 2 packages moved with them)";
    let report = ctx.report();
    assert_eq!(
        cell_names(&report),
        ["baseline", "fastapi 0.100.0", "pydantic 2.5.3", whole]
    );
    assert_eq!(verdict(&report, "fastapi 0.100.0", "items"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "pydantic 2.5.3", "items"),
        Verdict::NotTried
    );
    assert_eq!(verdict(&report, whole, "items"), Verdict::Changed);
    assert!(
        run.stdout.contains(&format!("✗ {whole} breaks items: step `refused`"))
            && run.stdout.contains(
                "  – pydantic 2.5.3 not tried: not installable alone (fastapi 0.95.2 requires pydantic>=1.6.2"
            ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("skipped: moved with pydantic: annotated-types (none) →")
            && run.stdout.contains("pydantic-core (none) → 2.14.6"),
        "{}",
        run.stdout
    );

    crate::common::assert_readme_sample("whose 422 answers take\npydantic 2's shape:", &run.stdout);

    // The reviewer accepts what the whole change answers, in the pull request.
    std::fs::remove_file(ctx.path("snapshots/items.snap.new")).unwrap();
    assert_eq!(ctx.run(&["--accept", "--since", "HEAD~1"]).code, 0);
    git(
        &ctx,
        &[
            "commit",
            "--quiet",
            "-am",
            "accept pydantic 2's 422 answers",
        ],
    );
    let green = ctx.run(&["--since", "HEAD~2", "--no-bisect"]);
    assert_eq!(green.code, 0, "{}\n{}", green.stdout, green.stderr);
    assert!(
        green
            .stdout
            .starts_with(&format!("✓ {whole} changes items, accepted in this change")),
        "{}",
        green.stdout
    );
}
