//! One module per command; each returns the [`ExitStatus`] the process ends with.

mod check;
mod diff;
mod gc;
mod import;
mod init;
mod merge;
mod record;
mod review;

use std::path::{Path, PathBuf};

use upgrade_check_core::StateDirs;
use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::{self as core, Acceptance, Action, CheckSettings, Options};
use upgrade_check_core::{BisectRequest, ExploreRequest};

use crate::cli::{Cli, Command, GlobalArgs, ImportSource, ReportAction};

pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    let global = &cli.global;
    match &cli.action {
        None => {
            let options = cli.run.apply(global.options(Action::Run));
            check::run(global, &cli.run.check, options, cli.run.shard)
        }
        Some(Command::Plan {
            shards,
            format,
            since,
            overlay,
        }) => {
            let options = Options {
                since: since.clone(),
                check: CheckSettings {
                    overlay: overlay.clone(),
                    ..CheckSettings::default()
                },
                ..global.options(Action::Plan)
            };
            check::plan(global, options, *format, usize::from(*shards))
        }
        Some(Command::Bisect {
            package,
            from,
            to,
            pre,
            check,
        }) => {
            let request = BisectRequest {
                package: package.clone(),
                from: from.clone(),
                to: to.clone(),
                pre: *pre,
            };
            let options = Options {
                check: check.settings(),
                ..global.options(Action::Bisect(request))
            };
            check::run(global, check, options, None)
        }
        Some(Command::Explore {
            budget,
            seed,
            steps,
            since,
            check,
        }) => {
            let request = ExploreRequest {
                budget: budget.map(|budget| budget as usize),
                seed: *seed,
                steps: steps.clone(),
            };
            let options = Options {
                since: since.clone(),
                check: check.settings(),
                ..global.options(Action::Explore(request))
            };
            check::run(global, check, options, None)
        }
        Some(Command::Accept {
            cell: Some(cell),
            scenarios,
            accept_unhealthy,
            check,
        }) => {
            let action = Action::AcceptAlternative {
                cell: cell.clone(),
                scenarios: scenarios.clone(),
                acceptance: Acceptance {
                    unhealthy: *accept_unhealthy,
                },
            };
            let options = Options {
                check: check.settings(),
                ..global.options(action)
            };
            check::run(global, check, options, None)
        }
        Some(Command::Accept {
            cell: None,
            scenarios,
            ..
        }) => review::accept(global, scenarios),
        Some(Command::Review) => review::review(global),
        Some(Command::Gc {
            max_age,
            max_size,
            dry_run,
        }) => gc::run(
            global,
            upgrade_check_core::gc::Policy {
                max_age: *max_age,
                max_bytes: *max_size,
                dry_run: *dry_run,
            },
        ),
        Some(Command::Report {
            action: ReportAction::Merge { dirs, out, format },
        }) => merge::run(global, dirs, out.as_deref(), *format),
        Some(Command::Diff { cell_a, cell_b }) => diff::run(global, cell_a, cell_b),
        Some(Command::Init { dir, no_build }) => init::run(
            global,
            dir.as_deref(),
            Options {
                check: CheckSettings {
                    no_build: *no_build,
                    ..CheckSettings::default()
                },
                ..global.options(Action::Run)
            },
        ),
        Some(Command::Record {
            name,
            listen,
            idle,
            accept,
            no_build,
        }) => {
            let recording = upgrade_check_core::record::Recording {
                name: name.clone(),
                listen: *listen,
                idle: *idle,
                accept: *accept,
            };
            let options = Options {
                check: CheckSettings {
                    no_build: *no_build,
                    ..CheckSettings::default()
                },
                ..global.options(Action::Run)
            };
            record::run(global, &recording, &options)
        }
        Some(Command::Import {
            source: ImportSource::Har { file, name, origin },
        }) => import::har(global, file, name.as_deref(), origin.as_deref()),
        Some(Command::Import {
            source:
                ImportSource::Postman {
                    collection,
                    environment,
                },
        }) => import::postman(global, collection, environment.as_deref()),
    }
}

/// The config file: `--config`, else the one found from here upwards.
fn config_path(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    global.options(Action::Run).config_path()
}

/// The state folders for the config in `config_dir`.
fn state_dirs(global: &GlobalArgs, config_dir: &Path) -> anyhow::Result<StateDirs> {
    core::state_dirs(&global.options(Action::Run), config_dir)
}

/// `1 step`, `3 steps`.
fn steps(count: usize) -> String {
    match count {
        1 => "1 step".to_owned(),
        n => format!("{n} steps"),
    }
}
