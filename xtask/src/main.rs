//! The `cargo xtask` command line: parse arguments, call the library, map the outcome to an exit code.
//!
//! Exit codes: 0 every cell matches, 1 a regression, 2 the harness could not
//! do its job (bad input, no Python, a failure of its own), 130 interrupted.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{Format, Options};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tasks", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the service against each cell of the matrix, replay the scenarios, compare with the accepted snapshots.
    UpgradeCheck(UpgradeCheckArgs),
}

#[derive(clap::Args)]
struct UpgradeCheckArgs {
    /// The config file [default: ./upgrade-check.toml, else the workspace root's]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run the baseline only and make its results the accepted snapshots
    #[arg(long)]
    accept: bool,
    /// How to print the result
    #[arg(long, value_enum, default_value = "terminal")]
    format: Format,
    /// Cells built and run at once [default: number of cores]
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Where reports and logs go [default: <cargo target dir>/upgrade-check]
    #[arg(long, env = "UPGRADE_CHECK_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Where uv, resolutions and environments are cached [default: the state dir]
    #[arg(long, env = "UPGRADE_CHECK_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// PostgreSQL server to create throwaway databases on, instead of starting a cluster
    #[arg(long, value_name = "postgresql://user:password@host:port/db")]
    database_url: Option<String>,
    /// Lay this folder's files over a copy of the service first (e.g. fixtures/incidents/INC-001)
    #[arg(long, value_name = "DIR")]
    overlay: Option<PathBuf>,
    /// Install wheels only, never build a source distribution (no package code runs at install; use on PRs from forks)
    #[arg(long)]
    no_build: bool,
    /// Never reach the package index: use what is cached (uv's downloads, resolutions, environments)
    #[arg(long)]
    offline: bool,
    /// Pull-request mode: the baseline file at this git ref is the baseline, and each changed pin is tried alone
    #[arg(long, value_name = "GIT_REF", conflicts_with = "accept")]
    since: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::UpgradeCheck(args) => xtask::upgrade_check(Options {
            config: args.config,
            accept: args.accept,
            format: args.format,
            jobs: args.jobs,
            state_dir: args.state_dir,
            cache_dir: args.cache_dir,
            database_url: args.database_url,
            overlay: args.overlay,
            no_build: args.no_build,
            offline: args.offline,
            since: args.since,
        }),
    };
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
