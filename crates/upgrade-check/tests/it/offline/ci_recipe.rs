//! The CI recipe in docs/ci/ stays true to the CLI and to its promises.

use yaml_rust2::{Yaml, YamlLoader};

fn load(name: &str) -> Yaml {
    let text = std::fs::read_to_string(crate::common::workspace_root().join("docs/ci").join(name))
        .unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// Every `run:` of every step of every job.
fn run_lines(workflow: &Yaml) -> Vec<String> {
    let mut lines = Vec::new();
    for (_, job) in workflow["jobs"].as_hash().unwrap() {
        for step in job["steps"].as_vec().unwrap() {
            if let Some(run) = step["run"].as_str() {
                lines.push(run.to_owned());
            }
        }
    }
    lines
}

/// A shell-ish split that is enough for the recipe's simple lines.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// The action's own definition, at the repository's root.
fn action() -> Yaml {
    let text = std::fs::read_to_string(crate::common::workspace_root().join("action.yml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// The steps of every job that use the upgrade-check action.
fn action_steps(workflow: &Yaml) -> Vec<Yaml> {
    let mut steps = Vec::new();
    for (_, job) in workflow["jobs"].as_hash().unwrap() {
        for step in job["steps"].as_vec().unwrap() {
            if step["uses"]
                .as_str()
                .is_some_and(|uses| uses.starts_with("upgrade-check/upgrade-check@"))
            {
                steps.push(step.clone());
            }
        }
    }
    steps
}

/// The `upgrade-check` (or `cargo xtask upgrade-check`) commands of `runs`,
/// one per line, with the recipes' expressions filled in.
fn commands_in(runs: &[String]) -> Vec<Vec<String>> {
    runs.iter()
        .flat_map(|run| run.lines().map(str::to_owned).collect::<Vec<_>>())
        .map(|line| line.trim().to_owned())
        .filter(|line| line.starts_with("upgrade-check ") || line.starts_with("cargo xtask "))
        .map(|line| {
            // Shell plumbing after the command is not the CLI's.
            let command = line
                .split(" > ")
                .next()
                .unwrap()
                .split(" || ")
                .next()
                .unwrap();
            words(
                &command
                    .replace("${{ github.base_ref }}", "main")
                    .replace("${{ matrix.shard }}", "2/3"),
            )
        })
        .collect()
}

#[test]
fn every_upgrade_check_command_in_the_workflows_and_the_action_parses() {
    for name in ["upgrade-check.yml", "upgrade-check-sharded.yml"] {
        let workflow = load(name);
        let mut commands = commands_in(&run_lines(&workflow));
        // What the action runs with each step's arguments.
        for step in action_steps(&workflow) {
            if let Some(args) = step["with"]["args"].as_str() {
                let mut command = vec![
                    "upgrade-check".to_owned(),
                    "--since".to_owned(),
                    "main".to_owned(),
                ];
                command.extend(words(args));
                commands.push(command);
            }
        }
        assert!(!commands.is_empty(), "{name} runs upgrade-check");
        check_commands_parse(commands);
    }
    // The action's own command line, its shell variables filled in as its inputs would.
    let runs: Vec<String> = action()["runs"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|step| step["run"].as_str())
        .map(|run| {
            run.replace("\"$CONFIG\"", "upgrade-check.toml")
                .replace("\"$STATE\"", "target/upgrade-check")
                .replace("\"${since[@]}\"", "--since main")
                .replace("$ARGS", "--no-build --jobs 4")
        })
        .collect();
    let commands = commands_in(&runs);
    assert_eq!(commands.len(), 1, "the action runs one check: {commands:?}");
    check_commands_parse(commands);
}

fn check_commands_parse(commands: Vec<Vec<String>>) {
    for command in commands {
        // `cargo xtask upgrade-check` runs the binary; clap sees the rest.
        let skip = match command[..] {
            [ref cargo, ref xtask, ref name, ..]
                if cargo == "cargo" && xtask == "xtask" && name == "upgrade-check" =>
            {
                3
            }
            [ref name, ..] if name == "upgrade-check" => 1,
            _ => panic!("not an upgrade-check command: {command:?}"),
        };
        let args =
            std::iter::once("upgrade-check".to_owned()).chain(command.into_iter().skip(skip));
        let parsed = upgrade_check::cli::Cli::try_parse_checked(args.clone()).map_err(|err| {
            // `--version` and `--help` answer and stop: they parsed.
            match err.kind() {
                clap::error::ErrorKind::DisplayVersion | clap::error::ErrorKind::DisplayHelp => {
                    None
                }
                _ => Some(err),
            }
        });
        let parsed = match parsed {
            Err(None) => continue,
            parsed => parsed,
        };
        assert!(
            parsed.is_ok(),
            "{:?}: {}",
            args.collect::<Vec<_>>(),
            parsed.err().unwrap().unwrap()
        );
    }
}

/// GitLab CI's `parallel:` and Buildkite's `parallelism` give each job its
/// shard: every upgrade-check command of their recipes parses, the shard
/// step takes `--shard auto`, and a merge joins the parts.
#[test]
fn the_gitlab_and_buildkite_recipes_shard_by_their_own_parallel_jobs() {
    let gitlab = load("gitlab-ci.yml");
    let gitlab_runs: Vec<String> = ["upgrade-check", "upgrade-check-report"]
        .iter()
        .flat_map(|job| gitlab[*job]["script"].as_vec().unwrap().clone())
        .filter_map(|line| line.as_str().map(str::to_owned))
        .collect();
    assert_eq!(gitlab["upgrade-check"]["parallel"].as_i64(), Some(3));
    let buildkite = load("buildkite.yml");
    let buildkite_runs: Vec<String> = buildkite["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|step| step["command"].as_vec().unwrap().clone())
        .filter_map(|line| line.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        buildkite["steps"][0]["parallelism"].as_i64(),
        Some(3),
        "{buildkite:?}"
    );
    for runs in [gitlab_runs, buildkite_runs] {
        let commands = commands_in(&runs);
        assert!(
            commands
                .iter()
                .any(|command| command.windows(2).any(|pair| pair == ["--shard", "auto"])),
            "{commands:?}"
        );
        assert!(
            commands.iter().any(
                |command| command.get(1..3) == Some(&["report".to_owned(), "merge".to_owned()])
            ),
            "{commands:?}"
        );
        check_commands_parse(commands);
    }
}

#[test]
fn the_action_checks_against_the_base_and_keeps_what_the_comment_posts() {
    let action = action();
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    for input in ["config", "since", "args", "state-dir", "check"] {
        assert!(!action["inputs"][input].is_badvalue(), "input {input}");
    }
    // A pull request is compared with its base commit; a push runs the matrix.
    assert_eq!(
        action["inputs"]["since"]["default"].as_str(),
        Some("${{ github.event.pull_request.base.sha }}")
    );
    let steps = action["runs"]["steps"].as_vec().unwrap();
    let uploads: Vec<(&str, &str)> = steps
        .iter()
        .filter(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|uses| uses.starts_with("actions/upload-artifact@"))
        })
        .map(|step| {
            (
                step["with"]["name"].as_str().unwrap(),
                step["with"]["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        uploads.contains(&("upgrade-check-report", "${{ inputs.state-dir }}/report/")),
        "{uploads:?}"
    );
    assert!(
        uploads.contains(&("upgrade-check-pending-snapshots", "**/*.snap.new")),
        "{uploads:?}"
    );
    // The comment workflow posts the report the action uploads.
    let comment = load("upgrade-check-comment.yml");
    let downloaded: Vec<&str> = comment["jobs"]["comment"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|step| step["with"]["name"].as_str())
        .collect();
    assert!(
        downloaded.contains(&"upgrade-check-report"),
        "{downloaded:?}"
    );
    // The binary is built from the action's own source and cached by version.
    let runs: String = steps
        .iter()
        .filter_map(|step| step["run"].as_str())
        .collect();
    assert!(
        runs.contains(
            "cargo install --locked --root \"$ROOT\" --path \"$ACTION_PATH/crates/upgrade-check\""
        ),
        "{runs}"
    );
    assert!(
        runs.contains("cat \"$STATE/report/report.md\" >> \"$GITHUB_STEP_SUMMARY\""),
        "{runs}"
    );
    assert!(steps.iter().any(|step| {
        step["uses"]
            .as_str()
            .is_some_and(|uses| uses.starts_with("actions/cache@"))
    }));
    // Every recipe installs through the action.
    for name in ["upgrade-check.yml", "upgrade-check-sharded.yml"] {
        assert!(
            !action_steps(&load(name)).is_empty(),
            "{name} uses the action"
        );
    }
}

#[test]
fn the_sharded_check_plans_runs_shards_and_merges() {
    let workflow = load("upgrade-check-sharded.yml");
    assert!(workflow["on"]["pull_request"].as_hash().is_some());
    assert!(workflow["on"]["pull_request_target"].is_badvalue());
    assert_eq!(workflow["permissions"]["contents"].as_str(), Some("read"));
    let jobs = &workflow["jobs"];
    assert!(
        jobs["check"]["strategy"]["matrix"]
            .as_str()
            .is_some_and(|matrix| matrix.contains("needs.plan.outputs.matrix")),
        "the shards come from the plan job's github-matrix output"
    );
    let runs = run_lines(&workflow).join("\n");
    for needed in [
        "plan --since \"origin/${{ github.base_ref }}\" --format github-matrix",
        "--shard \"${{ matrix.shard }}\"",
        "report merge shards/*",
    ] {
        assert!(runs.contains(needed), "{needed} in {runs}");
    }
}

#[test]
fn the_check_runs_on_pull_request_with_a_read_only_token() {
    let workflow = load("upgrade-check.yml");
    let on = workflow["on"].as_hash().unwrap();
    assert!(on.contains_key(&Yaml::String("pull_request".into())));
    assert!(
        !on.contains_key(&Yaml::String("pull_request_target".into())),
        "never pull_request_target"
    );
    assert_eq!(workflow["permissions"]["contents"].as_str(), Some("read"));
    for (_, job) in workflow["jobs"].as_hash().unwrap() {
        assert!(
            job["permissions"].is_badvalue(),
            "no job of the check asks for more"
        );
    }
    // The action compares with the base; the recipe adds --no-build.
    let check = &action_steps(&workflow)[0];
    assert!(
        check["with"]["args"]
            .as_str()
            .is_some_and(|args| args.contains("--no-build")),
        "{check:?}"
    );
    // Pull requests that edit only a lock run the check too.
    let filters: Vec<&str> = workflow["on"]["pull_request"]["paths"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    for lock in [
        "**/uv.lock",
        "**/poetry.lock",
        "**/Pipfile.lock",
        "**/Cargo.lock",
    ] {
        assert!(filters.contains(&lock), "{lock} in {filters:?}");
    }
    // The default branch's runs fill the cache that pull requests restore:
    // environments and recorded results, where the harness keeps them.
    assert_eq!(workflow["on"]["push"]["branches"][0].as_str(), Some("main"));
    let steps = workflow["jobs"]["check"]["steps"].as_vec().unwrap();
    let cache = steps
        .iter()
        .find(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|uses| uses.starts_with("actions/cache@"))
        })
        .expect("a cache step");
    let paths = cache["with"]["path"].as_str().unwrap();
    let state = std::path::PathBuf::from("target/upgrade-check");
    let dirs = upgrade_check_core::StateDirs {
        state: state.clone(),
        cache: state,
    };
    for kept in [
        dirs.envs_dir(),
        dirs.results_dir(),
        dirs.resolutions_dir(),
        dirs.tools_dir(),
    ] {
        assert!(
            paths
                .lines()
                .any(|line| std::path::Path::new(line.trim()) == kept),
            "{} in {paths}",
            kept.display()
        );
    }
}

#[test]
fn the_comment_is_posted_by_a_separate_workflow_that_runs_no_pr_code() {
    let comment = load("upgrade-check-comment.yml");
    assert!(comment["on"]["workflow_run"].as_hash().is_some());
    assert_eq!(
        comment["permissions"]["pull-requests"].as_str(),
        Some("write")
    );
    let steps = comment["jobs"]["comment"]["steps"].as_vec().unwrap();
    let uses: Vec<&str> = steps
        .iter()
        .filter_map(|step| step["uses"].as_str())
        .collect();
    assert!(
        !uses
            .iter()
            .any(|action| action.starts_with("actions/checkout")),
        "no checkout of the PR: {uses:?}"
    );
    assert!(
        steps
            .iter()
            .any(|step| step["with"]["path"].as_str() == Some("report.md"))
    );
}

#[test]
fn dependabot_and_renovate_settings_parse() {
    let dependabot = load("dependabot.yml");
    // Each update watches a fixture folder that holds its ecosystem's pins.
    let mut ecosystems = Vec::new();
    for update in dependabot["updates"].as_vec().unwrap() {
        let ecosystem = update["package-ecosystem"].as_str().unwrap();
        let folder = update["directory"]
            .as_str()
            .unwrap()
            .trim_start_matches('/');
        let pins = match ecosystem {
            "pip" => "requirements.txt",
            "cargo" => "Cargo.lock",
            "npm" => "package-lock.json",
            other => panic!("an ecosystem the harness does not read: {other}"),
        };
        let path = crate::common::workspace_root().join(folder).join(pins);
        assert!(path.is_file(), "{} for {ecosystem}", path.display());
        ecosystems.push(ecosystem);
    }
    assert_eq!(ecosystems, ["pip", "cargo", "npm"]);
    let renovate: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::common::workspace_root().join("docs/ci/renovate.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(renovate["packageRules"].is_array());
}

/// Every `cargo xtask upgrade-check …` command the README shows, in a code
/// block or inline, is one the command line takes.
#[test]
fn every_command_in_the_readme_parses() {
    let readme =
        std::fs::read_to_string(crate::common::workspace_root().join("README.md")).unwrap();
    let mut commands = Vec::new();
    for line in readme.lines() {
        // In a shell block: the whole line, less its comment.
        for program in ["cargo xtask upgrade-check", "upgrade-check "] {
            if let Some(command) = line.strip_prefix(program) {
                let command = command.split(" #").next().unwrap();
                commands.push(format!("{program}{command}"));
            }
        }
        // Inline: `cargo xtask upgrade-check …` or `upgrade-check …`,
        // unless it is a placeholder.
        for (index, part) in line.split('`').enumerate() {
            if index % 2 == 1
                && (part.starts_with("cargo xtask upgrade-check")
                    || part.starts_with("upgrade-check "))
                && !part.contains('…')
            {
                commands.push(part.to_owned());
            }
        }
    }
    assert!(commands.len() > 15, "{commands:?}");
    check_commands_parse(commands.iter().map(|command| words(command)).collect());
}
