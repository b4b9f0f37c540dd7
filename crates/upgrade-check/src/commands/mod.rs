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

use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::session::{self, Action};
use upgrade_check_core::sys::state::StateDirs;

use crate::cli::{Cli, Command, ImportSource, ReportAction};

pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    match &cli.action {
        None => check::run(cli, Action::Run),
        Some(Command::Plan { shards }) => check::plan(cli, usize::from(*shards)),
        Some(Command::Bisect { .. }) => {
            let request = cli.bisect_request().expect("the command is bisect");
            check::run(cli, Action::Bisect(request))
        }
        Some(Command::Accept {
            cell: Some(cell),
            scenarios,
        }) => check::run(
            cli,
            Action::AcceptAlternative {
                cell: cell.clone(),
                scenarios: scenarios.clone(),
            },
        ),
        Some(Command::Accept {
            cell: None,
            scenarios,
        }) => review::accept(cli, scenarios),
        Some(Command::Review) => review::review(cli),
        Some(Command::Gc {
            max_age,
            max_size,
            dry_run,
        }) => gc::run(
            cli,
            upgrade_check_core::sys::gc::Policy {
                max_age: *max_age,
                max_bytes: *max_size,
                dry_run: *dry_run,
            },
        ),
        Some(Command::Report {
            action: ReportAction::Merge { dirs, out },
        }) => merge::run(cli, dirs, out.as_deref()),
        Some(Command::Diff { cell_a, cell_b }) => diff::run(cli, cell_a, cell_b),
        Some(Command::Init { dir }) => init::run(cli, dir.as_deref()),
        Some(Command::Record { name, listen, idle }) => record::run(cli, name, *listen, *idle),
        Some(Command::Import {
            source: ImportSource::Har { file, name, origin },
        }) => import::har(cli, file, name.as_deref(), origin.as_deref()),
        Some(Command::Import {
            source:
                ImportSource::Postman {
                    collection,
                    environment,
                },
        }) => import::postman(cli, collection, environment.as_deref()),
    }
}

/// The config file: `--config`, else the one found from here upwards.
fn config_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    cli.options(Action::Run).config_path()
}

/// The state folders for the config in `config_dir`.
fn state_dirs(cli: &Cli, config_dir: &Path) -> anyhow::Result<StateDirs> {
    session::state_dirs(&cli.options(Action::Run), config_dir)
}

/// `1 step`, `3 steps`.
fn steps(count: usize) -> String {
    match count {
        1 => "1 step".to_owned(),
        n => format!("{n} steps"),
    }
}
