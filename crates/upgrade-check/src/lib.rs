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

use upgrade_check_core::model::report::ExitStatus;

/// The version `--version` prints.
pub const VERSION: &str = match env!("UPGRADE_CHECK_COMMIT").as_bytes() {
    [] => env!("CARGO_PKG_VERSION"),
    _ => concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("UPGRADE_CHECK_COMMIT"),
        ")"
    ),
};

/// The command that runs this tool as the user typed it: `cargo xtask
/// upgrade-check` when a repository's xtask runs it, else `upgrade-check`.
fn invoked_as() -> String {
    INVOKED_AS
        .get()
        .cloned()
        .unwrap_or_else(|| "upgrade-check".to_owned())
}

static INVOKED_AS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Runs `upgrade-check` with `args` and says how it ended. The first
/// argument names the program as hints should name it (`upgrade-check`, or
/// `cargo xtask upgrade-check` from a repository's xtask); a path counts as
/// `upgrade-check`.
pub fn main_with(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let program = args
        .first()
        .and_then(|first| first.to_str())
        .filter(|first| first.ends_with(" upgrade-check"))
        .unwrap_or("upgrade-check")
        .to_owned();
    if let Some(first) = args.first_mut() {
        *first = OsString::from("upgrade-check");
    }
    let _ = INVOKED_AS.set(program);
    let cli = cli::Cli::try_parse_checked(args).unwrap_or_else(|err| err.exit());
    let status = match commands::run(&cli) {
        Ok(status) => status,
        Err(err) => {
            errln!("error: {err:#}");
            if let Some(flag) = cli::flag_blamed(&err) {
                errln!("note: see {flag}");
            }
            ExitStatus::HarnessFailed
        }
    };
    ExitCode::from(status.code())
}
