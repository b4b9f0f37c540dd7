//! The `cargo xtask` command line: parse arguments, call the library, map the outcome to an exit code.
//!
//! Exit codes: 0 every cell matches, 1 a regression, 2 the harness could not
//! do its job (bad input, no Python, a failure of its own), 130 interrupted.

use std::process::ExitCode;

use clap::Parser;
use xtask::cli::{Cli, Task};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::UpgradeCheck(args) => xtask::upgrade_check((*args).into_options()),
        Task::Bench {
            config,
            state_dir,
            jobs,
            no_peers,
        } => xtask::bench(config, state_dir, jobs, !no_peers),
        Task::Test { args } => xtask::test_tools::run(&args),
    };
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        Err(err) => {
            xtask::errln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
