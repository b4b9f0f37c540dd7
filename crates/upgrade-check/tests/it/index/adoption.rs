//! A team adopts the tool in its own repository: no Cargo files, no
//! upgrade-check files, only its service. The binary runs from the
//! repository's folder as the team would run it (no `--config`, the state
//! in the repository's `target/`); environments come from the tests' cache.

use std::path::Path;
use std::process::Command;

use crate::common::{Run, TestContext, binary, shared_cache, workspace_root};

/// A git repository holding only `folder` of this workspace, at its top.
fn repository_of(folder: &str) -> TestContext {
    let ctx = TestContext::from_workspace(folder, Path::to_path_buf);
    std::fs::write(ctx.path(".gitignore"), "/target/\n*.snap.new\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(&ctx, &["commit", "--quiet", "-m", "the service"]);
    ctx
}

fn git(ctx: &TestContext, args: &[&str]) {
    crate::common::git(ctx, args);
}

/// `upgrade-check ARGS` in the repository, as its team types it.
fn upgrade_check(ctx: &TestContext, args: &[&str]) -> Run {
    let mut command = Command::new(binary());
    command
        .args(args)
        .current_dir(ctx.path(""))
        .env("UPGRADE_CHECK_CACHE_DIR", shared_cache())
        .env_remove("UPGRADE_CHECK_STATE_DIR")
        .env_remove("CI");
    ctx.run_command(command)
}

#[test]
fn a_python_repository_adopts_it_with_init_accept_and_a_pull_request_check() {
    let ctx = repository_of("fixtures/python-service");
    assert!(!ctx.path("Cargo.toml").exists());

    let init = upgrade_check(&ctx, &["init"]);
    assert_eq!(init.code, 0, "{}\n{}", init.stdout, init.stderr);
    assert!(
        init.stdout.contains("starts as   {python} -m app")
            && init.stdout.contains("env         PORT = {port}")
            && init
                .stdout
                .contains("health      GET /health answered 2xx when the service was started once"),
        "{}",
        init.stdout
    );
    crate::common::assert_readme_sample(
        "On this repository's auth service, laid out",
        &init.stdout,
    );
    let config = std::fs::read_to_string(ctx.path("upgrade-check.toml")).unwrap();
    assert!(
        config.contains("baseline = \"requirements.txt\"")
            && config.contains("command = [\"{python}\", \"-m\", \"app\"]")
            && config.contains("health = { path = \"/health\" }"),
        "{config}"
    );
    // The variables only the staging configuration needs are left to the team.
    assert!(
        init.stdout.contains(
            "TODO: DB_HOST, DB_NAME, DB_PASS, DB_PORT, DB_USER are read without a default"
        ),
        "{}",
        init.stdout
    );

    // The team's first scenario of its own, then the baseline accepted.
    std::fs::copy(
        workspace_root().join("scenarios/long-password.toml"),
        ctx.path("scenarios/long-password.toml"),
    )
    .unwrap();
    // From any folder of the repository: the config is found upwards.
    let mut from_below = Command::new(binary());
    from_below
        .arg("plan")
        .current_dir(ctx.path("app/routes"))
        .env("UPGRADE_CHECK_CACHE_DIR", shared_cache())
        .env_remove("UPGRADE_CHECK_STATE_DIR");
    let planned = ctx.run_command(from_below);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    assert!(planned.stdout.contains("baseline"), "{}", planned.stdout);
    let accepted = upgrade_check(&ctx, &["--accept"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    assert!(ctx.path("snapshots/health.snap").is_file());
    assert!(
        ctx.path("target/upgrade-check/report/report.json")
            .is_file()
    );
    git(&ctx, &["add", "."]);
    git(
        &ctx,
        &["commit", "--quiet", "-m", "check dependency upgrades"],
    );

    // Dependabot's pull request.
    ctx.edit("requirements.txt", |text| {
        text.replace("bcrypt==3.2.0", "bcrypt==5.0.0")
    });
    git(
        &ctx,
        &[
            "commit",
            "--quiet",
            "-am",
            "Bump bcrypt from 3.2.0 to 5.0.0",
        ],
    );
    let check = upgrade_check(&ctx, &["--since", "HEAD~1", "--no-bisect"]);
    assert_eq!(check.code, 1, "{}\n{}", check.stdout, check.stderr);
    assert!(
        check
            .stdout
            .starts_with("✗ bcrypt 5.0.0 breaks long-password"),
        "{}",
        check.stdout
    );

    // The same check through the GitHub Action's own steps.
    let summary = action_check(&ctx, "--no-bisect");
    assert!(
        summary.contains("bcrypt 5.0.0") && summary.contains("long-password"),
        "{summary}"
    );
}

/// The GitHub Action's check and summary steps on the pull request at
/// `HEAD` (against `HEAD~1`), run as a runner runs them (the binary already
/// on PATH, as its install step leaves it), with `args`: asserts the check
/// fails the job with exit code 1 and returns the job summary.
fn action_check(ctx: &TestContext, args: &str) -> String {
    let output = ctx.path("target/github-output");
    let summary = ctx.path("target/github-summary.md");
    let step = |name: &str| {
        let mut bin_dir = vec![binary().parent().unwrap().to_path_buf()];
        bin_dir.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut command = Command::new("bash");
        command
            .args([
                "--noprofile",
                "--norc",
                "-eo",
                "pipefail",
                "-c",
                &action_step(name),
            ])
            .current_dir(ctx.path(""))
            .env("PATH", std::env::join_paths(bin_dir).unwrap())
            .env("CI", "true")
            .env("CONFIG", "upgrade-check.toml")
            .env("SINCE", "HEAD~1")
            .env("ARGS", args)
            .env("STATE", "target/upgrade-check")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("UPGRADE_CHECK_CACHE_DIR", shared_cache())
            .env_remove("UPGRADE_CHECK_STATE_DIR");
        ctx.run_command(command)
    };
    let check = step("Check");
    assert_eq!(
        check.code, 1,
        "a regression fails the job: {}\n{}",
        check.stdout, check.stderr
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "exit-code=1\n");
    assert_eq!(step("The report in the job summary").code, 0);
    std::fs::read_to_string(&summary).unwrap()
}

/// The `run` script of the step of action.yml named `name`.
fn action_step(name: &str) -> String {
    let text = std::fs::read_to_string(workspace_root().join("action.yml")).unwrap();
    let action = yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap()
        .remove(0);
    action["runs"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|step| step["name"].as_str() == Some(name))
        .and_then(|step| step["run"].as_str())
        .unwrap_or_else(|| panic!("action.yml runs a step named {name}"))
        .to_owned()
}

#[test]
fn init_sets_up_a_starlette_and_a_django_service_that_run_green() {
    for (folder, starts, health) in [
        (
            "fixtures/init/starlette-service",
            "{python} -m uvicorn app.main:app --host 127.0.0.1 --port {port}",
            "/healthz",
        ),
        (
            "fixtures/init/django-service",
            "{python} manage.py runserver --noreload 127.0.0.1:{port}",
            "/health/",
        ),
    ] {
        let ctx = repository_of(folder);
        // A .gitignore that keeps the state out but not pending snapshots.
        std::fs::write(ctx.path(".gitignore"), "/target/\n").unwrap();
        let init = upgrade_check(&ctx, &["init"]);
        assert_eq!(init.code, 0, "{folder}: {}\n{}", init.stdout, init.stderr);
        assert!(
            init.stdout.contains("note: add *.snap.new to .gitignore")
                && !init.stdout.contains("add /target/ to .gitignore"),
            "{folder}: {}",
            init.stdout
        );
        assert!(
            init.stdout.contains(&format!("starts as   {starts}"))
                && init
                    .stdout
                    .contains(&format!("health      GET {health} answered 2xx")),
            "{folder}: {}",
            init.stdout
        );
        let scenario = std::fs::read_to_string(ctx.path("scenarios/health.toml")).unwrap();
        assert!(
            scenario.contains(&format!("path = \"{health}\"")),
            "{scenario}"
        );
        let accepted = upgrade_check(&ctx, &["--accept"]);
        assert_eq!(accepted.code, 0, "{folder}: {}", accepted.stderr);
        upgrade_check(&ctx, &[]).assert_green();
    }
}

/// A Flask app made by a factory in `conduit/app.py`, exposed in
/// `autoapp.py`, served by gunicorn from a Procfile and locked by Pipenv:
/// `init` starts it as the Procfile does, on the harness's port, finds a
/// route it declares for the health check, and asks for no WSGI key.
#[test]
fn init_on_a_flask_factory_started_by_a_procfile_runs_green() {
    let ctx = TestContext::from_workspace("fixtures/init/flask-factory", Path::to_path_buf);
    crate::common::ensure_uv(&ctx);
    crate::common::packaging_tool(&ctx, "", crate::common::PIPENV, &["pipenv", "lock"]);
    std::fs::write(ctx.path(".gitignore"), "/target/\n*.snap.new\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(&ctx, &["commit", "--quiet", "-m", "the conduit api"]);

    let init = upgrade_check(&ctx, &["init"]);
    assert_eq!(init.code, 0, "{}\n{}", init.stdout, init.stderr);
    assert!(
        init.stdout.contains("  baseline    Pipfile.lock\n")
            && init
                .stdout
                .contains("starts as   {python} -m gunicorn autoapp:app --bind 127.0.0.1:{port}\n")
            && init
                .stdout
                .contains("health      GET /api/tags answered 2xx")
            && !init.stdout.contains("HTTP_AUTHORIZATION")
            && !init.stdout.contains("CONDUIT_SECRET"),
        "{}",
        init.stdout
    );
    let config = std::fs::read_to_string(ctx.path("upgrade-check.toml")).unwrap();
    assert!(
        config.contains("baseline = \"Pipfile.lock\"")
            && config.contains(
                "command = [\"{python}\", \"-m\", \"gunicorn\", \"autoapp:app\", \"--bind\", \"127.0.0.1:{port}\"]"
            )
            && config.contains("health = { path = \"/api/tags\" }")
            && !config.contains("[service.env]"),
        "{config}"
    );
    let accepted = upgrade_check(&ctx, &["--accept"]);
    assert_eq!(accepted.code, 0, "{}\n{}", accepted.stdout, accepted.stderr);
    assert!(
        std::fs::read_to_string(ctx.path("snapshots/health.snap"))
            .unwrap()
            .contains("\"dragons\""),
    );
    // An ignored `.env` beside it (never copied: unit-tested in
    // `sys::source_tree`); a symlink out of the service's folder is left
    // out of its copies, and said.
    std::fs::write(ctx.path(".gitignore"), "/target/\n*.snap.new\n.env\n").unwrap();
    std::fs::write(ctx.path(".env"), "CONDUIT_SECRET=mine\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", ctx.path("host.txt")).unwrap();
    let green = upgrade_check(&ctx, &[]);
    green.assert_green();
    assert!(
        green.stderr.contains(
            "left out of the service's copies: host.txt (a symlink to /etc/hostname, outside the service's folder)"
        ),
        "{}",
        green.stderr
    );
}

/// At the top of a repository whose cargo service lives in `service/`,
/// `init` finds it there and writes a config rooted in it.
/// An Express app in a repository of its own: `init` finds npm's lock, the
/// start script, the port it reads from `process.env.PORT` and the health
/// route its source declares, and the config it writes runs green on the
/// environment npm installs, with no hand repair.
#[test]
fn init_on_an_express_app_writes_a_config_that_runs_green() {
    let ctx = repository_of("fixtures/node-auth-service/service");
    let init = upgrade_check(&ctx, &["init"]);
    assert_eq!(init.code, 0, "{}\n{}", init.stdout, init.stderr);
    assert!(
        init.stdout.contains("starts as   node server.js")
            && init
                .stdout
                .contains("an Express app started by `node server.js` (scripts.start in package.json; the port in PORT)")
            && init.stdout.contains("health      GET /health answered 2xx"),
        "{}",
        init.stdout
    );
    let config = std::fs::read_to_string(ctx.path("upgrade-check.toml")).unwrap();
    assert!(
        config.contains("ecosystem = \"node\"")
            && config.contains("baseline = \"package-lock.json\"")
            && config.contains("command = [\"node\", \"server.js\"]")
            && config.contains("PORT = \"{port}\""),
        "{config}"
    );
    // The team's own scenario beside the one `init` wrote.
    std::fs::copy(
        workspace_root().join("fixtures/node-auth-service/scenarios/login.toml"),
        ctx.path("scenarios/login.toml"),
    )
    .unwrap();
    let accepted = upgrade_check(&ctx, &["--accept"]);
    assert_eq!(accepted.code, 0, "{}\n{}", accepted.stdout, accepted.stderr);
    upgrade_check(&ctx, &[]).assert_green();
    git(&ctx, &["add", "."]);
    git(
        &ctx,
        &["commit", "--quiet", "-m", "check dependency upgrades"],
    );

    // Dependabot's pull request, checked by the GitHub Action's own steps
    // with the CI recipe's `--no-build` (`npm ci --ignore-scripts`).
    crate::common::npm_bump(&ctx.path(""), &["jsonwebtoken@9.0.2"]);
    git(
        &ctx,
        &[
            "commit",
            "--quiet",
            "-am",
            "Bump jsonwebtoken from 8.5.1 to 9.0.2",
        ],
    );
    let summary = action_check(&ctx, "--no-build --no-bisect");
    assert!(
        summary.contains("jsonwebtoken 9.0.2") && summary.contains("login"),
        "{summary}"
    );
}

#[test]
fn init_on_a_cargo_service_finds_its_folder_binary_and_lock() {
    let ctx = TestContext::from_workspace("fixtures/rust-service/service", |path| {
        Path::new("service").join(path)
    });
    std::fs::write(ctx.path(".gitignore"), "/target/\n*.snap.new\n").unwrap();
    git(&ctx, &["init", "--quiet"]);
    git(&ctx, &["add", "."]);
    git(
        &ctx,
        &["commit", "--quiet", "-m", "the service in its folder"],
    );
    let init = upgrade_check(&ctx, &["init"]);
    assert_eq!(init.code, 0, "{}\n{}", init.stdout, init.stderr);
    assert!(
        init.stdout.contains("  service in  service/\n"),
        "{}",
        init.stdout
    );
    let config = std::fs::read_to_string(ctx.path("upgrade-check.toml")).unwrap();
    assert!(
        config.contains("root = \"service\"")
            && config.contains("ecosystem = \"cargo\"")
            && config.contains("baseline = \"Cargo.lock\"")
            && config.contains("command = [\"{bin}/files-service\"]")
            && config.contains("health = { path = \"/health\" }"),
        "{config}"
    );
}

#[test]
fn init_on_a_cargo_workspace_picks_the_member_that_serves_and_runs_green() {
    let ctx = repository_of("fixtures/init/cargo-workspace");
    let init = upgrade_check(&ctx, &["init"]);
    assert_eq!(init.code, 0, "{}\n{}", init.stdout, init.stderr);
    assert!(
        init.stdout.contains("starts as   {bin}/orders-api\n")
            && init.stdout.contains(
                "the workspace member `orders-api`'s binary `orders-api` (the port in PORT)"
            ),
        "{}",
        init.stdout
    );
    crate::common::assert_readme_sample(
        "`fixtures/init/cargo-workspace` (a service, a library and an admin tool):",
        &init.stdout,
    );
    let config = std::fs::read_to_string(ctx.path("upgrade-check.toml")).unwrap();
    assert!(
        config.contains("baseline = \"Cargo.lock\"")
            && config.contains("command = [\"{bin}/orders-api\"]")
            && config.contains("health = { path = \"/healthz\" }")
            && config.contains("API_TOKEN = \"{secret}\"")
            && !config.contains("GREETING"),
        "{config}"
    );
    // `{bin}` names the serving program of the workspace's build: the
    // baseline runs and is accepted, then passes as it is.
    let accepted = upgrade_check(&ctx, &["--accept"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let green = upgrade_check(&ctx, &[]);
    assert_eq!(green.code, 0, "{}\n{}", green.stdout, green.stderr);
    assert!(
        std::fs::read_to_string(ctx.path("snapshots/health.snap"))
            .unwrap()
            .contains("\"status\": \"ok\""),
    );

    // Run from a member's folder, init names the workspace to run it in.
    let member = Command::new(binary())
        .arg("init")
        .current_dir(ctx.path("crates/admin"))
        .env("UPGRADE_CHECK_CACHE_DIR", shared_cache())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&member.stdout);
    assert_eq!(member.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("this crate is a member of the workspace at")
            && stdout.contains("run `upgrade-check init` there"),
        "{stdout}"
    );
}

#[test]
fn init_never_overwrites_a_file_and_says_what_it_cannot_tell() {
    let ctx = repository_of("fixtures/init/starlette-service");
    std::fs::create_dir_all(ctx.path("scenarios")).unwrap();
    std::fs::write(ctx.path("scenarios/health.toml"), "# ours\n").unwrap();
    let refused = upgrade_check(&ctx, &["init"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("scenarios/health.toml")
            && refused.stderr.contains("never overwrites"),
        "{}",
        refused.stderr
    );
    assert!(
        !ctx.path("upgrade-check.toml").exists(),
        "nothing is written"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.path("scenarios/health.toml")).unwrap(),
        "# ours\n"
    );

    // A folder with no service it can recognise: the files, with TODOs, exit 1.
    std::fs::remove_dir_all(ctx.path("scenarios")).unwrap();
    std::fs::remove_dir_all(ctx.path("app")).unwrap();
    std::fs::remove_file(ctx.path("requirements.txt")).unwrap();
    std::fs::write(ctx.path("worker.py"), "print('a batch job')\n").unwrap();
    let unknown = upgrade_check(&ctx, &["init"]);
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown.stdout.contains("TODO: no baseline file")
            && unknown.stdout.contains("TODO: how the service starts"),
        "{}",
        unknown.stdout
    );
    let config = std::fs::read_to_string(ctx.path("upgrade-check.toml")).unwrap();
    assert!(
        config.contains("# TODO: how the service starts"),
        "{config}"
    );
}

/// A scenario that asks paths the service does not serve (an imported
/// collection that lost its `/api` base path) answers the framework's own
/// 404 page at every step. `--accept` refuses it as it refuses a 500,
/// naming the step and the path; a step that expects its 404 is no doubt.
#[test]
fn a_baseline_that_asks_paths_the_service_does_not_serve_is_not_accepted() {
    let ctx = TestContext::new();
    std::fs::write(
        ctx.path("scenarios/users.toml"),
        "description = \"the users, asked without the API's base path\"\n\n\
         [[steps]]\nname = \"list users\"\nmethod = \"GET\"\npath = \"/users\"\n",
    )
    .unwrap();
    let refused = ctx.run(&["--accept"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the baseline is unhealthy")
            && refused.stderr.contains(
                "step `list users` answered 404 Not Found: a path the service does not serve (GET /users)"
            ),
        "{}",
        refused.stderr
    );
    assert!(
        !ctx.path("snapshots/users.snap").exists(),
        "nothing accepted"
    );

    ctx.edit("scenarios/users.toml", |text| {
        format!("{text}expect = {{ status = 404 }}\n")
    });
    let accepted = ctx.run(&["--accept"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    assert!(ctx.path("snapshots/users.snap").exists());
}

/// A collection written as the RealWorld (Conduit) spec's is: URLs under
/// `{{APIURL}}`, whose environment value carries `/api`; captures through
/// `JSON.parse(responseBody)`, an alias of a part of the body and
/// `pm.globals`; a second folder using the first one's token. Imported, every
/// step reaches the API, the flow replays green, and the import says where
/// the second folder's token comes from.
#[test]
fn a_postman_collection_whose_base_url_carries_a_path_replays_green() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    let fixtures = workspace_root().join("fixtures/postman");
    let imported = ctx.run(&[
        "import",
        "postman",
        fixtures
            .join("conduit-style.postman_collection.json")
            .to_str()
            .unwrap(),
        "--environment",
        fixtures
            .join("conduit-style.postman_environment.json")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let auth = std::fs::read_to_string(ctx.path("scenarios/auth.toml")).unwrap();
    for said in [
        "path = \"/api/auth/register\"",
        "path = \"/api/auth/login\"",
        "token = { json = \"/access_token\" }",
        "user_id = { json = \"/user/id\" }",
    ] {
        assert!(auth.contains(said), "{said} in:\n{auth}");
    }
    assert!(
        imported.stdout.contains(
            "`{{token}}` is set by folder `Auth` (step `Login`), not in `Profile`: each scenario starts on a fresh service"
        ),
        "{}",
        imported.stdout
    );
    std::fs::remove_file(ctx.path("scenarios/profile.toml")).unwrap();

    let accepted = ctx.run(&["--accept"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let snapshot = std::fs::read_to_string(ctx.path("snapshots/auth.snap")).unwrap();
    let statuses: Vec<&str> = snapshot
        .lines()
        .filter(|line| {
            line.starts_with("< ") && line[2..].starts_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    assert_eq!(
        statuses,
        ["< 201 Created", "< 200 OK", "< 200 OK"],
        "{snapshot}"
    );
    let green = ctx.run(&[]);
    assert_eq!(green.code, 0, "{}\n{}", green.stdout, green.stderr);
}
