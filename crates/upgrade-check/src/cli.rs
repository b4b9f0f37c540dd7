//! The command line, parsed and checked by clap: `upgrade-check [OPTIONS]
//! [COMMAND]`, also reached as `cargo xtask upgrade-check` in this
//! repository. Public so that tests can check that documented commands
//! (the CI recipes', say) parse.

use std::path::PathBuf;

use std::io::IsTerminal as _;

use clap::{Args, Parser, Subcommand};
use upgrade_check_core::config::StartMode;
use upgrade_check_core::model::setting::{Setting, SettingError};
use upgrade_check_core::{Acceptance, Action, CheckSettings, Folders, Options};

/// When to colour the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether stdout gets colours: `auto` asks for a terminal and no `NO_COLOR`.
    pub fn for_stdout(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
            }
        }
    }
}

/// How Python services start for each scenario run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartChoice {
    /// Forked from a preloaded interpreter once checked against cold starts
    Auto,
    /// A new interpreter every time
    Cold,
    /// Forked from a preloaded interpreter, unchecked
    Preloaded,
}

impl From<StartChoice> for StartMode {
    fn from(choice: StartChoice) -> StartMode {
        match choice {
            StartChoice::Auto => StartMode::Auto,
            StartChoice::Cold => StartMode::Cold,
            StartChoice::Preloaded => StartMode::Preloaded,
        }
    }
}

/// How to print a check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A summary table and each failure's diff, for people.
    #[default]
    Terminal,
    /// The whole result as JSON on stdout (also written to report.json).
    Json,
}

/// How to print a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlanFormat {
    /// One cell per line: id, name, profile.
    #[default]
    Terminal,
    /// The cells and what was skipped, as JSON.
    Json,
    /// The shards as a GitHub Actions job matrix (`strategy.matrix`).
    GithubMatrix,
}

/// Build the service against each cell of the matrix, replay the scenarios,
/// compare with the accepted snapshots.
#[derive(Parser)]
#[command(name = "upgrade-check", version = crate::VERSION)]
pub struct Cli {
    /// What to do instead of running the whole matrix
    #[command(subcommand)]
    pub action: Option<Command>,
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// What every command takes: where its files are, whether it may reach the
/// network, and how much it says.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalArgs {
    /// The config file [default: upgrade-check.toml here or in the nearest folder above]
    #[arg(global = true, help_heading = "Inputs", long)]
    pub config: Option<PathBuf>,
    /// Where reports and logs go [default: <cargo target dir>/upgrade-check]
    #[arg(
        global = true,
        help_heading = "Environments and cache",
        long,
        env = "UPGRADE_CHECK_STATE_DIR"
    )]
    pub state_dir: Option<PathBuf>,
    /// Where uv, resolutions and environments are cached [default: the state dir]
    #[arg(
        global = true,
        help_heading = "Environments and cache",
        long,
        env = "UPGRADE_CHECK_CACHE_DIR"
    )]
    pub cache_dir: Option<PathBuf>,
    /// Never reach the package index: use what is cached (uv's downloads, resolutions, environments)
    #[arg(global = true, help_heading = "Environments and cache", long)]
    pub offline: bool,
    /// No progress on stderr; the result and errors only
    #[arg(
        global = true,
        help_heading = "Output",
        long,
        short,
        conflicts_with = "verbose"
    )]
    pub quiet: bool,
    /// Every step of every cell as its own line, also on a terminal (no live display)
    #[arg(global = true, help_heading = "Output", long, short)]
    pub verbose: bool,
    /// Colour the summary: auto (when stdout is a terminal and NO_COLOR is unset), always, never
    #[arg(
        global = true,
        help_heading = "Output",
        long,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: ColorChoice,
}

/// What the whole matrix's run takes besides [`CheckArgs`].
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct RunArgs {
    /// Run the baseline only and make its results the accepted snapshots
    #[arg(help_heading = "What to check", long, conflicts_with = "overlay")]
    pub accept: bool,
    /// Pull-request mode: the baseline file (and snapshots) at this git ref are the base, and each changed pin is tried alone; with --accept, accept what the whole change answers
    #[arg(help_heading = "What to check", long, value_name = "GIT_REF")]
    pub since: Option<String>,
    /// With --accept: accept answers that are 5xx or come with a traceback
    #[arg(help_heading = "What to check", long, requires = "accept")]
    pub accept_unhealthy: bool,
    /// Run only shard K of N of the plan (cells dealt round in plan order) and write a partial result; `auto` reads K and N from the CI's parallel job (GitLab's CI_NODE_INDEX/CI_NODE_TOTAL, Buildkite's BUILDKITE_PARALLEL_JOB/_COUNT, CircleCI's CIRCLE_NODE_INDEX/_TOTAL)
    #[arg(help_heading = "What to check", long, value_name = "K/N|auto", value_parser = parse_shard, conflicts_with = "accept")]
    pub shard: Option<Shard>,
    /// Do not bisect a package whose newest candidate fails to find its newest safe version
    #[arg(help_heading = "What to check", long)]
    pub no_bisect: bool,
    /// Fail (exit 1) when a cell prints warnings the baseline does not, even if every scenario passes
    #[arg(help_heading = "What to check", long)]
    pub deny_warnings: bool,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// What every command that builds cells and replays them takes: the run
/// itself, `bisect` and `accept --cell` (which start from the working
/// tree's baseline: `--since` is the run's alone).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckArgs {
    /// Only this scenario (by its file's stem; again for more) [default: every one]
    #[arg(help_heading = "What to check", long, value_name = "NAME")]
    pub scenario: Vec<String>,
    /// Lay this folder's files over a copy of the service first (e.g. fixtures/incidents/INC-001)
    #[arg(help_heading = "What to check", long, value_name = "DIR")]
    pub overlay: Option<PathBuf>,
    /// PostgreSQL server to create throwaway databases on, instead of starting a cluster
    #[arg(
        help_heading = "What to check",
        long,
        value_name = "postgresql://user:password@host:port/db"
    )]
    pub database_url: Option<String>,
    /// Replay the baseline once instead of twice (faster; nondeterministic fields are then not found)
    #[arg(help_heading = "What to check", long)]
    pub no_noise_check: bool,
    /// Check the baseline for noise again even when its recorded run of the same inputs did (that run's finding is otherwise reused, e.g. under --no-cache)
    #[arg(
        help_heading = "What to check",
        long,
        conflicts_with = "no_noise_check"
    )]
    pub recheck_noise: bool,
    /// How Python services start, instead of the config's `service.start`
    #[arg(help_heading = "What to check", long, value_enum, value_name = "HOW")]
    pub start: Option<StartChoice>,
    /// Run every cell even when the baseline cannot be built, does not start or fails every scenario unhealthy (by default the run stops there, since nothing can be compared with it)
    #[arg(help_heading = "What to check", long)]
    pub keep_going: bool,
    /// Services (and environment builds) at once [default: number of cores]
    #[arg(help_heading = "Environments and cache", long, short, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Run no package code at install: wheels only, never a source distribution (Python); `npm ci --ignore-scripts` (Node). Use on PRs from forks
    #[arg(help_heading = "Environments and cache", long)]
    pub no_build: bool,
    /// Run every cell, even those whose recorded result's inputs are all unchanged
    #[arg(help_heading = "Environments and cache", long)]
    pub no_cache: bool,
    /// How to print the result
    #[arg(help_heading = "Output", long, value_enum, default_value = "terminal")]
    pub format: Format,
    /// Also write every run event as one JSON object per line to FILE
    #[arg(help_heading = "Output", long, value_name = "FILE")]
    pub events: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Set up a service folder: find its baseline file, how it starts and takes its port, and a health path (by starting it once), then write a commented upgrade-check.toml and scenarios/health.toml; never overwrites a file
    Init {
        /// The service's folder [default: the current folder]
        dir: Option<PathBuf>,
        /// Install wheels only, never build a source distribution
        #[arg(long)]
        no_build: bool,
    },
    /// Record a scenario: start the service on its baseline behind a recording proxy on 127.0.0.1, send requests through it (a browser, curl, a frontend, a test suite), then Ctrl-C writes scenarios/NAME.toml
    Record {
        /// The scenario's name: scenarios/NAME.toml
        name: String,
        /// Where the proxy listens; loopback only (port 0 takes a free one)
        #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Stop after this long without a request (e.g. 30s), as well as on Ctrl-C
        #[arg(long, value_parser = humantime::parse_duration)]
        idle: Option<std::time::Duration>,
        /// Accept what the baseline answers to the new scenario, rather than leave it pending
        #[arg(long)]
        accept: bool,
        /// Install wheels only, never build a source distribution
        #[arg(long)]
        no_build: bool,
    },
    /// Turn recorded traffic into a scenario: a HAR file (a browser's "Save all as HAR", mitmproxy's HAR dump), or a Postman collection
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Print the plan (its cells, with matrix ranges expanded from the index) and stop before building anything
    Plan {
        /// With --format github-matrix: how many shards to split the cells into
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        shards: u16,
        /// How to print the plan
        #[arg(long, value_enum, default_value = "terminal")]
        format: PlanFormat,
        /// Pull-request mode: the cells of the change since this git ref
        #[arg(long, value_name = "GIT_REF")]
        since: Option<String>,
        /// Lay this folder's files over a copy of the service first
        #[arg(long, value_name = "DIR")]
        overlay: Option<PathBuf>,
    },
    /// Keep the cache bounded: remove environments unused for longer than --max-age, then the least recently used above --max-size
    Gc {
        /// Remove what no run has used for this long
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        max_age: std::time::Duration,
        /// Then remove least recently used environments until the rest fits (e.g. 20GiB, 500MiB)
        #[arg(long, default_value = "20GiB", value_parser = parse_size)]
        max_size: u64,
        /// Say what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Accept the pending snapshots the last run left (all, or those of SCENARIO…), without running anything; with --cell, run that cell and accept its output of SCENARIO as an alternative to the baseline's, for that package's compatible versions from there up
    Accept {
        /// The cell, as the report names it: `PACKAGE VERSION` (e.g. "mime_guess 2.0.5")
        #[arg(long, value_name = "PACKAGE VERSION", requires = "scenarios")]
        cell: Option<String>,
        /// The scenarios (as the report's columns name them) to accept [default without --cell: every pending one]
        scenarios: Vec<String>,
        /// With --cell: accept answers that are 5xx or come with a traceback
        #[arg(long, requires = "cell")]
        accept_unhealthy: bool,
        /// With --cell: how the cell is built and run
        #[command(flatten)]
        check: CheckArgs,
    },
    /// Walk the pending snapshots one by one: the diff, then accept (a), reject (r) or skip (s)
    Review,
    /// Compare two cells of the last run with each other (not with the baseline), scenario by scenario: exit 0 when they answer alike, 1 when they differ
    Diff {
        /// A cell, as the report names it (e.g. "bcrypt 4.1.2", or baseline)
        cell_a: String,
        /// Another cell of the same run (e.g. "bcrypt 5.0.0")
        cell_b: String,
    },
    /// Work on written results
    Report {
        #[command(subcommand)]
        action: ReportAction,
    },
    /// Look for breaks no scenario asks for: every cell answers variants of the recorded steps (a field at 72 or 73 bytes, of another type, left out; the token missing or malformed…), judged against the baseline's answers; each difference is written as scenarios/explored/NAME.toml, pending review
    Explore {
        /// Requests per cell the variants are chosen within [default: the config's explore.budget, else 200]
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        budget: Option<u32>,
        /// Chooses and orders the variants: the same seed tries the same ones [default: explore.seed, else 0]
        #[arg(long)]
        seed: Option<u64>,
        /// Vary only the steps of this name (repeatable) [default: the config's explore.steps, else every step]
        #[arg(long = "step", value_name = "NAME")]
        steps: Vec<String>,
        /// Pull-request mode: explore the cells of the change since this git ref
        #[arg(long, value_name = "GIT_REF")]
        since: Option<String>,
        #[command(flatten)]
        check: CheckArgs,
    },
    /// Find the first version of PACKAGE that breaks what its newest (or --to) version breaks, by binary search over the index's versions
    Bisect {
        /// The package to bisect, as the baseline file names it
        package: String,
        /// A version that passes [default: the baseline's pin]
        #[arg(long, value_name = "VERSION")]
        from: Option<String>,
        /// A version that fails [default: the newest on the index]
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Include pre-releases among the versions searched
        #[arg(long)]
        pre: bool,
        #[command(flatten)]
        check: CheckArgs,
    },
}

#[derive(Subcommand)]
pub enum ImportSource {
    /// A HAR 1.2 file: the requests to the service become the steps of scenarios/NAME.toml (requests to other origins and static files are left out and listed)
    Har {
        /// The HAR file
        file: PathBuf,
        /// The scenario's name [default: the file's stem]
        #[arg(long)]
        name: Option<String>,
        /// The service's origin in the recording, e.g. http://127.0.0.1:5000 [default: the one most requests went to]
        #[arg(long)]
        origin: Option<String>,
    },
    /// A Postman collection (format v2.1): one scenario per top-level folder, `{{variables}}` kept, the captures its test scripts set translated, the rest listed
    Postman {
        /// The collection file (File > Export > Collection v2.1)
        collection: PathBuf,
        /// An environment file whose values the variables take
        #[arg(long, value_name = "ENV.json")]
        environment: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ReportAction {
    /// Merge the partial results of `--shard K/N` runs (their report folders) into one report
    Merge {
        /// Report folders (or the state folders holding them), one per shard
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged report goes [default: the state dir's report folder]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// How to print the merged result
        #[arg(long, value_enum, default_value = "terminal")]
        format: Format,
    },
}

/// A size like `20GiB`, `500MiB`, `10G` or a number of bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "`{text}`: the unit is one of B, KiB, MiB, GiB, TiB"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(factor))
        .ok_or_else(|| format!("`{text}` is not a size like 20GiB"))
}

/// At least one: `--jobs 0` would run nothing, so it is refused rather than taken as 1.
fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("at least 1 service at once".to_owned()),
        Ok(jobs) => Ok(jobs),
        Err(_) => Err(format!("`{text}` is not a number of services")),
    }
}

/// `--shard`: as given, or read from the CI's parallel job when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shard {
    Given(usize, usize),
    Auto,
}

impl Shard {
    /// `(K, N)`, 1-based; for `auto`, from the CI's variables (read by `var`).
    pub fn resolve(self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<(usize, usize)> {
        if let Shard::Given(k, n) = self {
            return Ok((k, n));
        }
        let number = |name: &str| var(name).and_then(|value| value.trim().parse::<usize>().ok());
        // (index variable, count variable, whether the index counts from 0)
        const VENDORS: [(&str, &str, bool); 3] = [
            ("CI_NODE_INDEX", "CI_NODE_TOTAL", false),
            (
                "BUILDKITE_PARALLEL_JOB",
                "BUILDKITE_PARALLEL_JOB_COUNT",
                true,
            ),
            ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", true),
        ];
        for (index, count, from_zero) in VENDORS {
            if let (Some(k), Some(n)) = (number(index), number(count)) {
                let k = k + usize::from(from_zero);
                anyhow::ensure!(
                    1 <= k && k <= n && n <= 256,
                    "--shard auto: {index} and {count} make shard {k}/{n}, not one of 1 <= K <= N <= 256"
                );
                return Ok((k, n));
            }
        }
        anyhow::bail!(
            "--shard auto: this job is no CI parallel job (none of CI_NODE_INDEX/CI_NODE_TOTAL, \
             BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT, CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL \
             is set); on GitHub Actions pass the matrix's shard from `plan --format github-matrix`"
        )
    }
}

/// `K/N` with 1 <= K <= N, or `auto`.
fn parse_shard(text: &str) -> Result<Shard, String> {
    if text == "auto" {
        return Ok(Shard::Auto);
    }
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
    match parsed {
        Some((k, n)) if 1 <= k && k <= n && n <= 256 => Ok(Shard::Given(k, n)),
        _ => Err(format!(
            "`{text}` is not a shard like 2/3 (1 <= K <= N <= 256) or `auto`"
        )),
    }
}

impl Cli {
    /// Parses `args` as clap does, then refuses what clap's rules cannot
    /// say: the whole run's options given with a command (the global ones
    /// aside, which go anywhere), and the run options of `accept` without
    /// `--cell`.
    pub fn try_parse_checked<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::CommandFactory as _;
        let cli = Cli::try_parse_from(args)?;
        let refuse = |message: String| {
            Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message))
        };
        if let Some(action) = &cli.action
            && cli.run != RunArgs::default()
        {
            let name = action.name();
            return refuse(format!(
                "an option of the whole matrix's run was given with `{name}`; the options `{name}` takes come after it (`upgrade-check {name} --help` lists them)"
            ));
        }
        if let Some(Command::Accept {
            cell: None, check, ..
        }) = &cli.action
            && *check != CheckArgs::default()
        {
            return refuse(
                "`accept` without --cell runs nothing: its run options take effect with --cell"
                    .to_owned(),
            );
        }
        Ok(cli)
    }
}

impl Command {
    /// The command as it is typed.
    fn name(&self) -> &'static str {
        match self {
            Command::Init { .. } => "init",
            Command::Record { .. } => "record",
            Command::Import { .. } => "import",
            Command::Plan { .. } => "plan",
            Command::Gc { .. } => "gc",
            Command::Accept { .. } => "accept",
            Command::Review => "review",
            Command::Diff { .. } => "diff",
            Command::Report { .. } => "report",
            Command::Bisect { .. } => "bisect",
            Command::Explore { .. } => "explore",
        }
    }
}

impl GlobalArgs {
    /// The library's options for `action`, with nothing but these set.
    pub fn options(&self, action: Action) -> Options {
        Options {
            invoked_as: crate::invoked_as(),
            action,
            folders: Folders {
                config: self.config.clone(),
                state: self.state_dir.clone(),
                cache: self.cache_dir.clone(),
            },
            offline: self.offline,
            ..Options::default()
        }
    }
}

impl CheckArgs {
    /// The library's check settings these ask for.
    pub fn settings(&self) -> CheckSettings {
        CheckSettings {
            scenarios: self.scenario.clone(),
            overlay: self.overlay.clone(),
            database_url: self.database_url.clone(),
            no_noise_check: self.no_noise_check,
            recheck_noise: self.recheck_noise,
            start: self.start.map(StartMode::from),
            jobs: self.jobs,
            no_build: self.no_build,
            no_cache: self.no_cache,
            keep_going: self.keep_going,
        }
    }
}

impl RunArgs {
    /// `options` with these and their [`CheckArgs`] set; the shard is
    /// resolved apart (`auto` reads the CI's variables).
    pub fn apply(&self, options: Options) -> Options {
        Options {
            accept: self.accept.then_some(Acceptance {
                unhealthy: self.accept_unhealthy,
            }),
            since: self.since.clone(),
            no_bisect: self.no_bisect,
            deny_warnings: self.deny_warnings,
            check: self.check.settings(),
            ..options
        }
    }
}

/// The option that sets what a library error blames, if it blames one: the
/// library says which setting in words and knows no flags.
pub fn flag_blamed(err: &anyhow::Error) -> Option<&'static str> {
    let blamed = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<SettingError>())?;
    Some(match blamed.setting {
        Setting::Config => "--config",
        Setting::DatabaseUrl => "--database-url",
        Setting::Listen => "--listen",
        Setting::BisectFrom => "--from",
        Setting::BisectTo => "--to",
        Setting::Offline => "--offline",
        Setting::Since => "--since",
        Setting::Cell => "--cell",
        Setting::AcceptUnhealthy => "--accept-unhealthy",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["upgrade-check"].iter().chain(args))
    }

    #[test]
    fn shard_auto_is_read_from_each_ci_s_parallel_job() {
        let auto = parse(&["--shard", "auto"]).unwrap().run.shard.unwrap();
        let given = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect();
            move |name: &str| {
                vars.iter()
                    .find(|(known, _)| known == name)
                    .map(|(_, value)| value.clone())
            }
        };
        // GitLab counts from 1, Buildkite and CircleCI from 0.
        let gitlab = given(&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")]);
        assert_eq!(auto.resolve(gitlab).unwrap(), (2, 3));
        let buildkite = given(&[
            ("BUILDKITE_PARALLEL_JOB", "0"),
            ("BUILDKITE_PARALLEL_JOB_COUNT", "4"),
        ]);
        assert_eq!(auto.resolve(buildkite).unwrap(), (1, 4));
        let circle = given(&[("CIRCLE_NODE_INDEX", "2"), ("CIRCLE_NODE_TOTAL", "3")]);
        assert_eq!(auto.resolve(circle).unwrap(), (3, 3));
        let outside = auto.resolve(given(&[])).unwrap_err().to_string();
        assert!(outside.contains("no CI parallel job"), "{outside}");
        let wrong = given(&[("CI_NODE_INDEX", "4"), ("CI_NODE_TOTAL", "3")]);
        assert!(auto.resolve(wrong).is_err());
        assert_eq!(
            parse(&["--shard", "2/3"]).unwrap().run.shard,
            Some(Shard::Given(2, 3))
        );
        assert!(parse(&["--shard", "4/3"]).is_err());
    }

    #[test]
    fn each_command_takes_its_own_options_and_the_global_ones_anywhere() {
        let plan = parse(&[
            "plan",
            "--format",
            "github-matrix",
            "--since",
            "origin/main",
        ])
        .unwrap();
        assert!(matches!(
            plan.action,
            Some(Command::Plan {
                format: PlanFormat::GithubMatrix,
                ..
            })
        ));
        assert!(parse(&["gc", "--max-age", "1d", "--cache-dir", "/tmp/x", "-q"]).is_ok());
        assert!(parse(&["--offline", "bisect", "bcrypt", "--jobs", "2", "--no-build"]).is_ok());
        // What a command does not take is a usage error, not ignored.
        for refused in [
            &["gc", "--dry-run", "--since", "no-such-ref"][..],
            &["gc", "--start", "cold"],
            &["plan", "--jobs", "2"],
            &["--accept", "plan"],
            &["bisect", "bcrypt", "--since", "origin/main"],
            &["bisect", "bcrypt", "--accept"],
            &["diff", "a", "b", "--shard", "1/2"],
            &["--format", "github-matrix"],
            &["--accept", "--shard", "1/2"],
            &["--accept", "--overlay", "fixtures/incidents/INC-001"],
            &["--accept-unhealthy"],
        ] {
            let err = Cli::try_parse_checked(["upgrade-check"].iter().chain(refused));
            assert!(err.is_err(), "{refused:?} parsed");
            assert_eq!(err.err().unwrap().exit_code(), 2, "{refused:?}");
        }
        // `accept` runs a cell only with --cell; its run options need it.
        let err = Cli::try_parse_checked(["upgrade-check", "accept", "login", "--jobs", "2"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("take effect with --cell"), "{err}");
        assert!(
            Cli::try_parse_checked([
                "upgrade-check",
                "accept",
                "--cell",
                "mime_guess 2.0.5",
                "download",
                "--jobs",
                "2",
                "--accept-unhealthy"
            ])
            .is_ok()
        );
    }

    #[test]
    fn a_command_s_help_lists_its_own_options_and_the_global_ones_alone() {
        use clap::CommandFactory;
        let mut command = Cli::command();
        command.build();
        let gc = command
            .find_subcommand_mut("gc")
            .unwrap()
            .render_help()
            .to_string();
        for own in ["--max-age", "--dry-run", "--config", "--offline", "--quiet"] {
            assert!(gc.contains(own), "{own}\n{gc}");
        }
        for other in [
            "--since",
            "--jobs",
            "--shard",
            "--accept",
            "--overlay",
            "--format",
        ] {
            assert!(!gc.contains(other), "{other}\n{gc}");
        }
    }

    #[test]
    fn help_groups_the_options_under_headings() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        for heading in [
            "Inputs:",
            "What to check:",
            "Output:",
            "Environments and cache:",
        ] {
            assert!(help.contains(heading), "{heading}\n{help}");
        }
        let output = help.split("Output:").nth(1).unwrap();
        assert!(
            output.contains("--quiet") && output.contains("--color"),
            "{help}"
        );
    }

    #[test]
    fn no_jobs_is_refused() {
        let err = parse(&["--jobs", "0"]).err().unwrap().to_string();
        assert!(err.contains("at least 1 service at once"), "{err}");
    }

    #[test]
    fn every_setting_the_library_blames_is_named_by_an_option_the_command_line_has() {
        use clap::CommandFactory;
        let command = Cli::command();
        let mut longs: Vec<String> = Vec::new();
        let mut commands = vec![&command];
        while let Some(next) = commands.pop() {
            longs.extend(
                next.get_arguments()
                    .filter_map(|arg| arg.get_long())
                    .map(|long| format!("--{long}")),
            );
            commands.extend(next.get_subcommands());
        }
        let settings = [
            Setting::Config,
            Setting::DatabaseUrl,
            Setting::Listen,
            Setting::BisectFrom,
            Setting::BisectTo,
            Setting::Offline,
            Setting::Since,
            Setting::Cell,
            Setting::AcceptUnhealthy,
        ];
        for setting in settings {
            let err = anyhow::Error::new(SettingError::new(setting, "offline, and no cache"))
                .context("loading the baseline");
            let flag = flag_blamed(&err).unwrap();
            assert!(longs.iter().any(|long| long == flag), "{setting:?}: {flag}");
        }
        assert_eq!(flag_blamed(&anyhow::anyhow!("any other error")), None);
    }
}
