//! The `upgrade-check` command: parses the command line, runs the command
//! with the library (`upgrade_check_core`), and prints what it returns and
//! the events it emits. Nothing here decides a verdict.
//!
//! Exit codes: 0 every cell matches, 1 a regression, 2 the harness could not
//! do its job (bad input, no Python, a failure of its own), 130 interrupted.

pub mod cli;
mod commands;
mod events_log;
pub mod output;
mod progress;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use upgrade_check_core::model::report::ExitStatus;

/// The version `--version` prints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs `upgrade-check` with `args` (the program name first) and says how it ended.
pub fn main_with(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let cli = cli::Cli::parse_from(args);
    let status = match commands::run(&cli) {
        Ok(status) => status,
        Err(err) => {
            errln!("error: {err:#}");
            ExitStatus::HarnessFailed
        }
    };
    ExitCode::from(status.code())
}
