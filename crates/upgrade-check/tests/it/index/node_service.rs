//! The Node auth service (`fixtures/node-auth-service`: Express, bcryptjs,
//! jsonwebtoken, sql.js) against real packages from the npm registry: the
//! breaks seen by hand (Express 5 stops the service at start-up,
//! jsonwebtoken 9 refuses its 1,024-bit key) caught with their cause, the
//! harmless bumps green, each cell on the environment npm installed for it,
//! never on the service's own `node_modules`.

use crate::common::Verdict;
use crate::common::{Report, TestContext, cell_report, scenario_report, verdict};

fn node_service() -> TestContext {
    TestContext::from_workspace("fixtures/node-auth-service", std::path::Path::to_path_buf)
}

#[test]
fn each_real_break_of_the_node_service_is_caught_with_its_cause_and_harmless_bumps_pass() {
    let ctx = node_service();
    // A `node_modules` of the service's own that would fail every start:
    // each cell must run on its own installed packages instead.
    std::fs::create_dir_all(ctx.path("service/node_modules/express")).unwrap();
    std::fs::write(
        ctx.path("service/node_modules/express/package.json"),
        r#"{"name": "express", "version": "4.21.2", "main": "index.js"}"#,
    )
    .unwrap();
    std::fs::write(
        ctx.path("service/node_modules/express/index.js"),
        "throw new Error(\"the service's own node_modules ran\");\n",
    )
    .unwrap();

    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    crate::common::assert_readme_sample("The bundled Node service's matrix:", &run.stdout);
    let report = ctx.report();
    for scenario in ["health", "register", "login"] {
        for cell in ["baseline", "express 4.21.1", "bcryptjs 3.0.2"] {
            assert_eq!(
                verdict(&report, cell, scenario),
                Verdict::Pass,
                "{cell} {scenario}"
            );
        }
        assert_eq!(
            verdict(&report, "express 5.1.0", scenario),
            Verdict::StartupFailed,
            "{scenario}"
        );
    }
    // Express 5: its path syntax has no bare `*`, the service's catch-all.
    let express = scenario_report(&report, "express 5.1.0", "health");
    assert!(
        express
            .summary
            .as_deref()
            .is_some_and(|summary| summary.contains("Missing parameter name at index")),
        "{express:?}"
    );
    assert!(
        run.stdout.contains(
            "express 5.1.0 does not start: PathError [TypeError]: Missing parameter name at index 1: *"
        ),
        "{}",
        run.stdout
    );
    // What moved with it is shown: Express 5's router is another package.
    let moved =
        crate::common::version_change(cell_report(&report, "express 5.1.0"), "path-to-regexp");
    assert_eq!(
        (moved.before.as_deref(), moved.after.as_deref()),
        (Some("0.1.12"), Some("8.4.2"))
    );

    // jsonwebtoken 9: registering still works, signing the login's token
    // does not, and the log says why.
    assert_eq!(
        verdict(&report, "jsonwebtoken 9.0.2", "register"),
        Verdict::Pass
    );
    let login = scenario_report(&report, "jsonwebtoken 9.0.2", "login");
    assert_eq!(login.verdict, Verdict::Changed);
    assert_eq!(
        login.summary.as_deref(),
        Some(
            "step `good password` (scenarios/login.toml:14): expected status 200, got 500 Internal Server Error"
        )
    );
    assert!(
        login
            .log_tail
            .as_deref()
            .is_some_and(|log| log
                .contains("secretOrPrivateKey has a minimum key size of 2048 bits for RS256")),
        "{login:?}"
    );

    // Each environment installed by `npm ci`, every download checked
    // against the lock's integrity digests; an exact requirement moved in
    // a scratch copy of package.json, and said.
    let environment = cell_report(&report, "express 4.21.1")
        .environment
        .as_ref()
        .unwrap();
    assert!(environment.hash_checked);
    assert_eq!(
        environment.raised_requirements,
        ["express \"4.21.2\" → \"4.21.1\" in package.json"]
    );
    assert!(raised(&report, "baseline").is_empty());

    // The registry's versions: the break bisected to its first bad release.
    let bisect = ctx.run(&["bisect", "jsonwebtoken", "--to", "9.0.2"]);
    assert_eq!(bisect.code, 1, "{}\n{}", bisect.stdout, bisect.stderr);
    crate::common::assert_readme_sample(
        "`upgrade-check bisect jsonwebtoken --to 9.0.2` on the Node service:",
        &bisect.stdout,
    );
    let bisected = crate::common::bisect_report(&ctx);
    assert_eq!(bisected.first_bad.as_deref(), Some("9.0.0"), "{bisected:?}");
}

#[test]
fn a_stale_lock_or_a_refused_node_stops_the_run_at_its_line() {
    let ctx = node_service();
    ctx.edit("service/package.json", |text| {
        text.replace("\"express\": \"4.21.2\"", "\"express\": \"^5.1.0\"")
    });
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("package.json:15")
            && run.stderr.contains("dependencies.express")
            && run
                .stderr
                .contains("`express: ^5.1.0` here, the lock has `4.21.2`; run `npm install`"),
        "{}",
        run.stderr
    );

    // A service that says it needs a Node newer than the one on PATH.
    ctx.edit("service/package.json", |text| {
        text.replace("\"express\": \"^5.1.0\"", "\"express\": \"4.21.2\"")
            .replace("\"node\": \">=18\"", "\"node\": \">=99\"")
    });
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("package.json:10")
            && run.stderr.contains("engines.node")
            && run
                .stderr
                .contains("the service runs on Node >=99, and the `node` on PATH is "),
        "{}",
        run.stderr
    );
}

/// The requirements a cell raised in a scratch copy of the manifests.
fn raised<'a>(report: &'a Report, cell: &str) -> &'a [String] {
    &cell_report(report, cell)
        .environment
        .as_ref()
        .unwrap()
        .raised_requirements
}

/// Commits the service as it is now, in a repository made on first use.
fn committed(ctx: &TestContext, message: &str) {
    if !ctx.path(".git").exists() {
        std::fs::write(
            ctx.path(".gitignore"),
            "/state/\n*.snap.new\nnode_modules/\n",
        )
        .unwrap();
        crate::common::git(ctx, &["init", "--quiet"]);
    }
    crate::common::git(ctx, &["add", "."]);
    crate::common::git(ctx, &["commit", "--quiet", "-m", message]);
}

fn npm_bump(ctx: &TestContext, packages: &[&str]) {
    crate::common::npm_bump(&ctx.path("service"), packages);
}

/// A pull request as Dependabot opens it on a Node service, a harmless bump
/// of one package in `package.json` and `package-lock.json`: tried alone
/// against the base, it exits 0; and its other kind, a package no
/// package.json declares moved in the lock alone, likewise. (A grouped
/// bump's split is the pnpm test's: the same steps, with pnpm.)
#[test]
fn a_dependabot_npm_bump_that_breaks_nothing_exits_0_in_pr_mode() {
    let ctx = node_service();
    // A base whose lock holds an older `ms` than its ranges allow, as npm
    // leaves one: declared for a while, then no longer.
    npm_bump(&ctx, &["ms@2.1.2"]);
    ctx.edit("service/package.json", |text| {
        text.replace(",\n    \"ms\": \"2.1.2\"", "")
    });
    npm_bump(&ctx, &[]);
    let manifest = std::fs::read_to_string(ctx.path("service/package.json")).unwrap();
    assert_eq!(
        manifest,
        std::fs::read_to_string(
            crate::common::workspace_root().join("fixtures/node-auth-service/service/package.json")
        )
        .unwrap()
    );
    committed(&ctx, "the service");

    crate::common::git(&ctx, &["checkout", "--quiet", "-b", "bump-ms"]);
    npm_update(&ctx, "ms");
    committed(&ctx, "Bump ms from 2.1.2 to 2.1.3");
    let lock_only = ctx.run(&["--since", "main"]);
    assert_eq!(
        lock_only.code, 0,
        "{}\n{}",
        lock_only.stdout, lock_only.stderr
    );
    let report = ctx.report();
    assert_eq!(crate::common::cell_names(&report), ["baseline", "ms 2.1.3"]);
    let moved = crate::common::version_change(cell_report(&report, "ms 2.1.3"), "ms");
    // Every copy the lock holds: the one at 2.1.2 is gone.
    assert_eq!(
        (moved.before.as_deref(), moved.after.as_deref()),
        (Some("2.0.0, 2.1.2, 2.1.3"), Some("2.0.0, 2.1.3"))
    );

    crate::common::git(&ctx, &["checkout", "--quiet", "main"]);
    crate::common::git(&ctx, &["checkout", "--quiet", "-b", "bump-express"]);
    npm_bump(&ctx, &["express@4.22.1"]);
    committed(&ctx, "Bump express from 4.21.2 to 4.22.1");
    let single = ctx.run(&["--since", "main"]);
    assert_eq!(single.code, 0, "{}\n{}", single.stdout, single.stderr);
    let report = ctx.report();
    assert_eq!(
        crate::common::cell_names(&report),
        ["baseline", "express 4.22.1"]
    );
    for scenario in ["health", "register", "login"] {
        assert_eq!(
            verdict(&report, "express 4.22.1", scenario),
            Verdict::Pass,
            "{scenario}"
        );
    }
}

/// What Dependabot does to a transitive package of the npm-locked service:
/// `npm update NAME`, the lock alone.
fn npm_update(ctx: &TestContext, package: &str) {
    let status = std::process::Command::new("npm")
        .args(["update", package, "--package-lock-only", "--ignore-scripts"])
        .args([
            "--no-audit",
            "--no-fund",
            "--omit-lockfile-registry-resolved",
        ])
        .current_dir(ctx.path("service"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "npm update {package}");
}

/// What Dependabot does to a pnpm-locked service for `packages`: pnpm's
/// own edit of package.json and its lock.
fn pnpm_bump(ctx: &TestContext, packages: &[&str]) {
    let status = std::process::Command::new(crate::common::pnpm())
        .args(["add", "--lockfile-only", "--ignore-scripts", "--save-exact"])
        .args(packages)
        .current_dir(ctx.path("service"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pnpm add {packages:?}");
}

/// The Node service locked by pnpm (`fixtures/node-auth-service/pnpm`)
/// instead of npm.
fn pnpm_service() -> TestContext {
    let ctx = node_service();
    std::fs::remove_file(ctx.path("service/package-lock.json")).unwrap();
    std::fs::rename(
        ctx.path("pnpm/pnpm-lock.yaml"),
        ctx.path("service/pnpm-lock.yaml"),
    )
    .unwrap();
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "baseline = \"package-lock.json\"",
            "baseline = \"pnpm-lock.yaml\"",
        )
    });
    ctx
}

/// A pnpm-locked service in PR mode, on environments pnpm installs (the
/// harness installs pnpm itself when it is not on PATH): a grouped bump as
/// Dependabot opens it is split into each package and the whole change,
/// the break blamed on jsonwebtoken, what moved with it listed under it.
#[test]
fn a_pnpm_locked_service_s_grouped_bump_is_split_and_the_break_blamed() {
    let ctx = pnpm_service();
    // The default branch's own check, its baseline alone: the harness
    // installs pnpm when PATH has none, which the bump below then uses.
    ctx.set_matrix("");
    let main = ctx.run(&["--no-bisect"]);
    assert_eq!(main.code, 0, "{}\n{}", main.stdout, main.stderr);
    assert!(main.stderr.contains(" / pnpm "), "{}", main.stderr);
    committed(&ctx, "the service, locked by pnpm");
    crate::common::git(&ctx, &["checkout", "--quiet", "-b", "pnpm-group"]);
    pnpm_bump(&ctx, &["express@4.22.1", "jsonwebtoken@9.0.2"]);
    committed(&ctx, "Bump the npm group with 2 updates");
    let report = grouped_bump_split(&ctx);
    let login = scenario_report(&report, "jsonwebtoken 9.0.2", "login");
    assert_eq!(
        login.summary.as_deref(),
        Some(
            "step `good password` (scenarios/login.toml:14): expected status 200, got 500 Internal Server Error"
        )
    );
    for scenario in ["health", "register", "login"] {
        assert_eq!(
            verdict(&report, "express 4.22.1", scenario),
            Verdict::Pass,
            "{scenario}"
        );
    }
    // Installed by pnpm, every download checked against the integrity digests.
    let environment = cell_report(&report, "jsonwebtoken 9.0.2")
        .environment
        .as_ref()
        .unwrap();
    assert!(environment.hash_checked);
    let skipped = crate::common::skipped(&report);
    assert!(
        skipped
            .iter()
            .any(|line| line.starts_with("moved with jsonwebtoken: semver 5.7.3 → 7.8.6")),
        "{skipped:?}"
    );
}

/// The pull request at HEAD, express 4.22.1 and jsonwebtoken 9.0.2 bumped
/// together, checked against `main`: it fails, split into each package and
/// the whole change, express passing and jsonwebtoken blamed. Its report.
fn grouped_bump_split(ctx: &TestContext) -> upgrade_check_core::model::report::Report {
    let grouped = ctx.run(&["--since", "main", "--no-bisect"]);
    assert_eq!(grouped.code, 1, "{}\n{}", grouped.stdout, grouped.stderr);
    let report = ctx.report();
    let names = crate::common::cell_names(&report);
    assert_eq!(
        names[..3],
        ["baseline", "express 4.22.1", "jsonwebtoken 9.0.2"]
    );
    assert!(
        names[3].starts_with("whole change (express 4.22.1, jsonwebtoken 9.0.2"),
        "{names:?}"
    );
    assert_eq!(verdict(&report, "express 4.22.1", "login"), Verdict::Pass);
    assert!(
        grouped
            .stdout
            .contains("  - jsonwebtoken 9.0.2 breaks login"),
        "{}",
        grouped.stdout
    );
    report
}

/// The Node service locked by Yarn (`fixtures/node-auth-service/yarn/`,
/// `classic` for Yarn 1, `berry` for Yarn 4), in place of npm's lock.
fn yarn_service(flavour: &str) -> TestContext {
    let ctx = node_service();
    lay_yarn_lock(&ctx, flavour);
    ctx
}

/// The service's npm lock replaced by Yarn's (`classic` or `berry`), in
/// either fixture (`yarn/FLAVOUR/yarn.lock` beside `service/`), with the
/// flavour's `.yarnrc.yml` where it has one.
fn lay_yarn_lock(ctx: &TestContext, flavour: &str) {
    std::fs::remove_file(ctx.path("service/package-lock.json")).unwrap();
    for file in ["yarn.lock", ".yarnrc.yml"] {
        let from = ctx.path(&format!("yarn/{flavour}/{file}"));
        if from.exists() {
            std::fs::rename(from, ctx.path(&format!("service/{file}"))).unwrap();
        }
    }
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "baseline = \"package-lock.json\"",
            "baseline = \"yarn.lock\"",
        )
    });
}

/// A Yarn-locked service, Yarn 1's lock and Yarn 4's: a lock out of date
/// with package.json stops the run at the manifest's line; the matrix
/// catches Express 5 (Yarn 1) and jsonwebtoken 9 (Yarn 4) on environments Yarn installed
/// (the harness installs the Yarn the lock needs when PATH has none), a
/// direct package moved by its declaration and a transitive one by
/// `resolutions`, each download checked against the lock's digests. Yarn 4
/// installs with the service's own `.yarnrc.yml` (the package extension its
/// lock was written with), but for its `yarnPath` and Plug'n'Play.
#[test]
fn a_yarn_locked_service_s_breaks_are_caught_with_yarn_1_and_yarn_4() {
    // Each Yarn moves one declared package (Express 5 stops the service at
    // start-up, jsonwebtoken 9 breaks login) and one by `resolutions`
    // (semver 7, which only jsonwebtoken 8 needs: harmless).
    for (flavour, yarn, package, version, from) in [
        ("classic", "yarn 1.22.22", "express", "5.1.0", "4.21.2"),
        ("berry", "yarn 4.18.1", "jsonwebtoken", "9.0.2", "8.5.1"),
    ] {
        let ctx = yarn_service(flavour);
        ctx.edit("service/package.json", |text| {
            text.replace("\"express\": \"4.21.2\"", "\"express\": \"^5.1.0\"")
        });
        let stale = ctx.run(&["--no-bisect"]);
        assert_eq!(stale.code, 2, "{flavour}: {}", stale.stderr);
        assert!(
            stale.stderr.contains("package.json:15")
                && stale
                    .stderr
                    .contains("`express: ^5.1.0` here, the lock has `4.21.2`; run `yarn install`"),
            "{flavour}: {}",
            stale.stderr
        );
        ctx.edit("service/package.json", |text| {
            text.replace("\"express\": \"^5.1.0\"", "\"express\": \"4.21.2\"")
        });

        ctx.set_matrix(&format!(
            "{package} = [\"{version}\"]\nsemver = [\"7.6.3\"]"
        ));
        let run = ctx.run(&["--no-bisect"]);
        assert_eq!(run.code, 1, "{flavour}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&format!(" / {yarn}")),
            "{flavour}: {}",
            run.stderr
        );
        let report = ctx.report();
        let direct = format!("{package} {version}");
        for scenario in ["health", "register", "login"] {
            for cell in ["baseline", "semver 7.6.3"] {
                assert_eq!(
                    verdict(&report, cell, scenario),
                    Verdict::Pass,
                    "{flavour}: {cell} {scenario}"
                );
            }
        }
        match package {
            "express" => {
                assert_eq!(verdict(&report, &direct, "health"), Verdict::StartupFailed);
                let moved =
                    crate::common::version_change(cell_report(&report, &direct), "path-to-regexp");
                assert_eq!(
                    (moved.before.as_deref(), moved.after.as_deref()),
                    (Some("0.1.12"), Some("8.4.2"))
                );
            }
            _ => assert_eq!(verdict(&report, &direct, "login"), Verdict::Changed),
        }
        let semver = cell_report(&report, "semver 7.6.3");
        let moved = crate::common::version_change(semver, "semver");
        assert_eq!(
            (moved.before.as_deref(), moved.after.as_deref()),
            (Some("5.7.3"), Some("7.6.3")),
            "{flavour}"
        );
        let environment = semver.environment.as_ref().unwrap();
        assert!(environment.hash_checked, "{flavour}");
        // Not a declared dependency: overridden, no requirement raised.
        assert!(environment.raised_requirements.is_empty(), "{flavour}");
        assert_eq!(
            raised(&report, &direct),
            [format!(
                "{package} \"{from}\" → \"{version}\" in package.json"
            )],
            "{flavour}"
        );
    }
}

/// `[service] node` chooses the service's Node: a range that cannot be read
/// stops the run at its line; otherwise the newest Node 22 the registry
/// has is installed (PATH's is Node 20 here) and runs the installs, the
/// `engines` check and the service itself, which refuses to start on any
/// other Node. Its passwords hashed by `bcrypt`, a native module: built
/// from its C++ source for that Node by the install, and missing (the
/// service cannot start) when `--no-build` runs no install script.
#[test]
fn the_node_key_runs_the_service_and_its_installs_on_the_node_it_chooses() {
    let ctx = node_service();
    ctx.set_matrix("");
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "ecosystem = \"node\"\n",
            "ecosystem = \"node\"\nnode = \"22 || $(id)\"\n",
        )
    });
    let unreadable = ctx.run(&[]);
    assert_eq!(unreadable.code, 2, "{}", unreadable.stderr);
    assert!(
        unreadable.stderr.contains(
            "upgrade-check.toml:8:8: `service.node`: `22 || $(id)` is not a range of Node versions"
        ),
        "{}",
        unreadable.stderr
    );
    ctx.edit("upgrade-check.toml", |text| {
        text.replace("node = \"22 || $(id)\"", "node = \"22\"")
    });
    ctx.edit("service/package.json", |text| {
        text.replace("\"node\": \">=18\"", "\"node\": \">=22\"")
    });
    ctx.edit("service/server.js", |text| {
        format!(
            "if (!process.version.startsWith(\"v22.\")) throw new Error(`not Node 22: ${{process.version}}`);\n{}",
            text.replace("require(\"bcryptjs\")", "require(\"bcrypt\")")
        )
    });
    npm_bump(&ctx, &["bcrypt@5.1.1"]);
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("using node v22."), "{}", run.stderr);
    let report = ctx.report();
    for scenario in ["health", "register", "login"] {
        assert_eq!(verdict(&report, "baseline", scenario), Verdict::Pass);
    }

    let unbuilt = ctx.run(&["--no-bisect", "--no-build"]);
    assert_eq!(unbuilt.code, 1, "{}\n{}", unbuilt.stdout, unbuilt.stderr);
    assert_bcrypt_unbuilt(&ctx);

    // The service's own `.npmrc` is what its installs read: here one that
    // runs no install script, so bcrypt has no build again.
    std::fs::write(ctx.path("service/.npmrc"), "ignore-scripts=true\n").unwrap();
    let own_settings = ctx.run(&["--no-bisect"]);
    assert_eq!(own_settings.code, 1, "{}", own_settings.stderr);
    assert_bcrypt_unbuilt(&ctx);
    // Never kept in the cache: it may hold a registry's token.
    let left: Vec<_> = std::fs::read_dir(crate::common::shared_cache().join("envs"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|environment| environment.path().join(".npmrc"))
        .filter(|npmrc| npmrc.exists())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The last run's baseline could not start: bcrypt's native build is missing.
fn assert_bcrypt_unbuilt(ctx: &TestContext) {
    let report = ctx.report();
    let health = scenario_report(&report, "baseline", "health");
    assert_eq!(health.verdict, Verdict::StartupFailed);
    assert!(
        health
            .summary
            .as_deref()
            .is_some_and(|summary| summary.contains("bcrypt_lib.node")),
        "{health:?}"
    );
}

/// An npm workspace (`fixtures/node-workspace`): the auth service is one
/// member, signing through another (`@acme/tokens`, which needs
/// jsonwebtoken). `init` at the workspace's root finds the member that
/// starts a service and starts it. A member's package.json out of date with the lock stops
/// the run at its line; each member's package is moved in that member's
/// package.json and caught (the token library's jsonwebtoken 9 breaks
/// the service's login); the service runs its sibling member from its own
/// copy; an override npm does not apply inside a workspace is said, not
/// tried; and a Dependabot bump inside a member is tried in PR mode
/// against the base's member package.json, with the base's npm settings.
#[test]
fn a_service_in_an_npm_workspace_is_checked_with_its_members() {
    let ctx = TestContext::from_workspace("fixtures/node-workspace", std::path::Path::to_path_buf);
    // As a team runs it in its repository, which has no config yet.
    let mut init = std::process::Command::new(crate::common::binary());
    init.arg("init")
        .current_dir(ctx.path("service"))
        .env("UPGRADE_CHECK_STATE_DIR", ctx.path("init-state"))
        .env("UPGRADE_CHECK_CACHE_DIR", crate::common::shared_cache())
        .env_remove("CI");
    let init = ctx.run_command(init);
    assert_eq!(init.code, 0, "{}\n{}", init.stdout, init.stderr);
    assert!(
        init.stdout.contains(
            "an Express app started by `node server.js` (scripts.start in packages/api/package.json; the port in PORT)"
        ) && init.stdout.contains("health      GET /health answered 2xx"),
        "{}",
        init.stdout
    );
    let written = std::fs::read_to_string(ctx.path("service/upgrade-check.toml")).unwrap();
    assert!(
        written.contains("command = [\"node\", \"packages/api/server.js\"]"),
        "{written}"
    );

    ctx.edit("service/packages/tokens/package.json", |text| {
        text.replace(
            "\"jsonwebtoken\": \"8.5.1\"",
            "\"jsonwebtoken\": \"^9.0.0\"",
        )
    });
    let stale = ctx.run(&["--no-bisect"]);
    assert_eq!(stale.code, 2, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("packages/tokens/package.json:8")
            && stale
                .stderr
                .contains("`jsonwebtoken: ^9.0.0` here, the lock has `8.5.1`"),
        "{}",
        stale.stderr
    );
    ctx.edit("service/packages/tokens/package.json", |text| {
        text.replace(
            "\"jsonwebtoken\": \"^9.0.0\"",
            "\"jsonwebtoken\": \"8.5.1\"",
        )
    });

    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    for scenario in ["health", "register", "login"] {
        assert_eq!(verdict(&report, "baseline", scenario), Verdict::Pass);
        assert_eq!(
            verdict(&report, "express 5.1.0", scenario),
            Verdict::StartupFailed
        );
    }
    let login = scenario_report(&report, "jsonwebtoken 9.0.2", "login");
    assert_eq!(login.verdict, Verdict::Changed);
    // Thrown inside the sibling member, from the run copy's own source.
    assert!(
        login.diff.as_deref().is_some_and(|diff| diff
            .contains("secretOrPrivateKey has a minimum key size of 2048 bits for RS256")
            && diff.contains("[service_dir]/packages/tokens/index.js")),
        "{login:?}"
    );
    assert_eq!(
        raised(&report, "jsonwebtoken 9.0.2"),
        ["jsonwebtoken \"8.5.1\" → \"9.0.2\" in packages/tokens/package.json"]
    );
    assert_eq!(
        raised(&report, "express 5.1.0"),
        ["express \"4.21.2\" → \"5.1.0\" in packages/api/package.json"]
    );
    assert!(
        run.stdout
            .contains("semver 7.6.3 not tried: its resolution holds semver 5.7.3, not 7.6.3"),
        "{}",
        run.stdout
    );

    ctx.set_matrix("");
    committed(&ctx, "the workspace");
    crate::common::git(&ctx, &["checkout", "--quiet", "-b", "tokens-bump"]);
    npm_bump(
        &ctx,
        &["--workspace", "packages/tokens", "jsonwebtoken@9.0.2"],
    );
    // The change's own `.npmrc` is not what the check installs with (the
    // base has none): read, it would leave every environment empty.
    std::fs::write(ctx.path("service/.npmrc"), "dry-run=true\n").unwrap();
    committed(
        &ctx,
        "Bump jsonwebtoken from 8.5.1 to 9.0.2 in /packages/tokens",
    );
    let pr = ctx.run(&["--since", "main", "--no-bisect"]);
    assert_eq!(pr.code, 1, "{}\n{}", pr.stdout, pr.stderr);
    let report = ctx.report();
    assert_eq!(
        crate::common::cell_names(&report),
        ["baseline", "jsonwebtoken 9.0.2"]
    );
    assert_eq!(verdict(&report, "baseline", "login"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "jsonwebtoken 9.0.2", "login"),
        Verdict::Changed
    );
}

/// The same workspace locked by pnpm (`fixtures/node-workspace/pnpm/`: its
/// `pnpm-lock.yaml` and `pnpm-workspace.yaml`): each member's package is
/// moved with `--filter` and caught, and the override npm leaves out
/// inside a workspace is one pnpm applies, so that cell runs and passes.
#[test]
fn a_service_in_a_pnpm_workspace_is_checked_with_its_members() {
    let ctx = TestContext::from_workspace("fixtures/node-workspace", std::path::Path::to_path_buf);
    std::fs::remove_file(ctx.path("service/package-lock.json")).unwrap();
    for file in ["pnpm-lock.yaml", "pnpm-workspace.yaml"] {
        std::fs::rename(
            ctx.path(&format!("pnpm/{file}")),
            ctx.path(&format!("service/{file}")),
        )
        .unwrap();
    }
    ctx.edit("upgrade-check.toml", |text| {
        text.replace(
            "baseline = \"package-lock.json\"",
            "baseline = \"pnpm-lock.yaml\"",
        )
    });
    // The npm test moves the api member's express; here the tokens member's.
    ctx.set_matrix("jsonwebtoken = [\"9.0.2\"]\nsemver = [\"7.6.3\"]");
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    for scenario in ["health", "register", "login"] {
        for cell in ["baseline", "semver 7.6.3"] {
            assert_eq!(verdict(&report, cell, scenario), Verdict::Pass, "{cell}");
        }
    }
    assert_eq!(
        verdict(&report, "jsonwebtoken 9.0.2", "login"),
        Verdict::Changed
    );
    let moved = crate::common::version_change(cell_report(&report, "semver 7.6.3"), "semver");
    assert_eq!(
        (moved.before.as_deref(), moved.after.as_deref()),
        (Some("5.7.3"), Some("7.6.3"))
    );
    assert_eq!(
        raised(&report, "jsonwebtoken 9.0.2"),
        ["jsonwebtoken \"8.5.1\" → \"9.0.2\" in packages/tokens/package.json"]
    );
}

/// The npm workspace's fixture locked by Yarn 1
/// (`fixtures/node-workspace/yarn/classic`): the members come from the
/// root's `workspaces` (Yarn 1's lock lists none), the token library's
/// jsonwebtoken is moved in its own package.json and caught, and the
/// service runs its sibling member from its own copy. (Yarn 4's lock of
/// the same workspace is read by `yarn_lock.rs`'s unit tests; it differs
/// only in naming its members, which the install does not use.)
#[test]
fn a_service_in_a_yarn_workspace_is_checked_with_its_members() {
    let ctx = TestContext::from_workspace("fixtures/node-workspace", std::path::Path::to_path_buf);
    lay_yarn_lock(&ctx, "classic");
    ctx.set_matrix("jsonwebtoken = [\"9.0.2\"]");
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = ctx.report();
    for scenario in ["health", "register", "login"] {
        assert_eq!(verdict(&report, "baseline", scenario), Verdict::Pass);
    }
    let login = scenario_report(&report, "jsonwebtoken 9.0.2", "login");
    assert_eq!(login.verdict, Verdict::Changed);
    assert!(
        login
            .diff
            .as_deref()
            .is_some_and(|diff| diff.contains("[service_dir]/packages/tokens/index.js")),
        "{login:?}"
    );
    assert_eq!(
        raised(&report, "jsonwebtoken 9.0.2"),
        ["jsonwebtoken \"8.5.1\" → \"9.0.2\" in packages/tokens/package.json"]
    );
}
