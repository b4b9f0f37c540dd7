//! `upgrade-check diff CELL_A CELL_B`: two cells of the last run compared
//! with each other; exit 1 when they answer differently.

use std::path::Path;

use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::render::cell_diff;

use crate::cli::GlobalArgs;

pub fn run(global: &GlobalArgs, a: &str, b: &str) -> anyhow::Result<ExitStatus> {
    let config = super::config_path(global)?;
    let config_dir = config.parent().unwrap_or(Path::new(""));
    let (text, differ) =
        cell_diff::compare(&super::state_dirs(global, config_dir)?.report_dir(), a, b)?;
    crate::out!("{text}");
    Ok(if differ {
        ExitStatus::Regression
    } else {
        ExitStatus::Pass
    })
}
