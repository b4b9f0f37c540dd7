//! `cargo xtask`: this repository's build system. It runs the test suite
//! with what its tests need, measures the harness, and forwards
//! `cargo xtask upgrade-check …` to the `upgrade-check` command, so that
//! every documented command works from a checkout without installing it.

mod bench;
mod test_tools;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use upgrade_check_core::config;
use upgrade_check_core::{self as core, Options};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// The `upgrade-check` command, as built from this checkout (`cargo xtask upgrade-check --help`)
    #[command(disable_help_flag = true)]
    UpgradeCheck {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Measure the harness: the default matrix cold and warm against its floor, the pipeline (first verdict, busy cores, a broken baseline, a larger matrix), the cost per request, planning 1,000 cells, a cargo service's builds
    Bench {
        /// The config file [default: upgrade-check.toml here or in the nearest folder above]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the runs and bench.md go [default: <cargo target dir>/upgrade-check]
        #[arg(long, env = "UPGRADE_CHECK_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Services (and environment builds) at once [default: number of cores]
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Leave out the tox and nox runs of the same matrix (they install
        /// tox and nox and take several minutes)
        #[arg(long)]
        no_peers: bool,
        /// Leave out the cargo service's matrix (it compiles its crates into
        /// an empty target folder)
        #[arg(long, conflicts_with = "rust_config")]
        no_rust: bool,
        /// Only the matrix cold and warm and the peers (what the peers
        /// are compared with): no other row about the harness, no cargo service
        #[arg(long, conflicts_with_all = ["no_peers", "rust_config"])]
        peers_only: bool,
        /// The cargo service whose matrix the Rust section measures
        /// [default: fixtures/rust-auth-service/upgrade-check.toml]
        #[arg(long)]
        rust_config: Option<PathBuf>,
        /// Leave out the Node service's matrix (npm installs each cell)
        #[arg(long, conflicts_with = "node_config")]
        no_node: bool,
        /// The Node service whose matrix the Node section measures
        /// [default: fixtures/node-auth-service/upgrade-check.toml]
        #[arg(long, conflicts_with = "peers_only")]
        node_config: Option<PathBuf>,
        /// Leave out the larger matrix (cold, into an empty cache, then
        /// warm, with the peers unless --no-peers)
        #[arg(long, conflicts_with = "larger_config")]
        no_larger: bool,
        /// The larger matrix's config [default: the config's own, each
        /// matrix list made a range from its lowest version, each minor's
        /// latest picked]
        #[arg(long)]
        larger_config: Option<PathBuf>,
        /// Build the harness with optimisations first and measure that (a
        /// debug build spends the cores the services need: the warm run
        /// takes about 1.6 times as long)
        #[arg(long)]
        release: bool,
    },
    /// Write report.json's JSON Schema, as the model makes it, to docs/report.schema.json
    Schema,
    /// Run the test suite (`cargo test ARGS`), first installing what its tests need (Chromium, chromedriver, xmllint, PostgreSQL) from Debian's packages when run as root, or naming the one command to run
    Test {
        /// Only the fast tier: unit tests, the tree's rules and the offline integration tests (no tool, no package index)
        #[arg(long, conflicts_with = "args")]
        fast: bool,
        /// Passed on to `cargo test` (e.g. `--test it postgres::`, one tier)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::UpgradeCheck { args } => {
            return upgrade_check::main_with(
                std::iter::once(OsString::from("cargo xtask upgrade-check")).chain(args),
            );
        }
        Task::Bench { release: true, .. } if cfg!(debug_assertions) => in_release_build(),
        Task::Bench {
            config,
            state_dir,
            jobs,
            no_peers,
            peers_only,
            no_rust,
            rust_config,
            no_node,
            node_config,
            no_larger,
            larger_config,
            ..
        } => {
            let rust = (!no_rust && !peers_only).then(|| {
                rust_config.unwrap_or_else(|| {
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../fixtures/rust-auth-service/upgrade-check.toml")
                })
            });
            let node = (!no_node && !peers_only).then(|| {
                node_config.unwrap_or_else(|| {
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../fixtures/node-auth-service/upgrade-check.toml")
                })
            });
            let larger = (!no_larger).then_some(larger_config);
            let sections = Chosen {
                with_peers: !no_peers,
                peers_only,
                rust,
                node,
                larger,
            };
            bench(config, state_dir, jobs, sections)
        }
        Task::Schema => write_schema(),
        Task::Test { fast: true, .. } => test_tools::run_fast(),
        Task::Test { args, .. } => test_tools::run(&args),
    };
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        Err(err) => {
            upgrade_check::errln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `cargo xtask schema`: docs/report.schema.json from the model.
fn write_schema() -> anyhow::Result<i32> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace");
    let path = root.join("docs/report.schema.json");
    let text = serde_json::to_string_pretty(&upgrade_check_core::model::report::schema())?;
    upgrade_check_core::util::write_atomic(&path, format!("{text}\n").as_bytes())?;
    upgrade_check::outln!("wrote {}", path.display());
    Ok(0)
}

/// `bench --release` from a debug build: the same command again, from an
/// optimised build of this tool (cargo builds it first); its exit code.
fn in_release_build() -> anyhow::Result<i32> {
    let args = std::env::args_os().skip(1).filter(|arg| arg != "--release");
    let status = test_tools::cargo()
        .args(["run", "--release", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .status()?;
    Ok(status.code().unwrap_or(2))
}

/// `cargo xtask bench`: the costs of the harness on the config's matrix.
/// The sections of the bench the command line chose.
struct Chosen {
    with_peers: bool,
    peers_only: bool,
    rust: Option<PathBuf>,
    node: Option<PathBuf>,
    larger: Option<Option<PathBuf>>,
}

fn bench(
    config: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    jobs: Option<usize>,
    chosen: Chosen,
) -> anyhow::Result<i32> {
    let Chosen {
        with_peers,
        peers_only,
        rust,
        node,
        larger,
    } = chosen;
    let config = match config {
        Some(path) => path,
        None => config::discover()?,
    };
    let config_dir = config.parent().unwrap_or(Path::new("")).to_owned();
    let options = Options {
        folders: core::Folders {
            state: state_dir,
            ..core::Folders::default()
        },
        ..Options::default()
    };
    let dirs = core::state_dirs(&options, &config_dir)?;
    bench::run(
        &config,
        &dirs.state,
        jobs.unwrap_or_else(core::default_jobs).max(1),
        bench::Sections {
            harness: !peers_only,
            peers: with_peers,
            rust: rust.as_deref(),
            node: node.as_deref(),
            larger: larger.as_ref().map(Option::as_deref),
        },
    )
}
