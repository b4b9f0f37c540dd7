//! `upgrade-check.toml`: what the service is, how to start it, what to try.
//!
//! Parsing is strict (unknown keys, wrong types, malformed versions and
//! unknown placeholders are errors naming file, line and key); the result is
//! a validated [`Config`] that no later stage needs to second-guess.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::input::source::{InputError, Source};
pub use crate::model::package::Ecosystem;
pub use crate::model::package::Requirement;
use crate::model::package::{PackageName, Version};
use crate::model::setting::{Setting, SettingError};

/// Placeholders the harness fills in `service.command` and environment values.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("python", "the cell environment's Python interpreter"),
    ("venv", "the cell environment's directory"),
    (
        "bin",
        "the cell environment's programs: the venv's bin folder, or the binaries cargo built",
    ),
    ("port", "the loopback port the service must listen on"),
    (
        "sqlite_path",
        "a fresh SQLite database file (database = \"sqlite\")",
    ),
    (
        "database_url",
        "the fresh database as a URL (sqlite:///… or postgresql://…)",
    ),
    (
        "db_host",
        "PostgreSQL host: the harness cluster's socket folder (database = \"postgres\")",
    ),
    ("db_port", "PostgreSQL port"),
    ("db_user", "PostgreSQL user"),
    ("db_password", "PostgreSQL password, redacted everywhere"),
    ("db_name", "a fresh PostgreSQL database for this run"),
    (
        "secret",
        "a random secret made for this run, redacted everywhere",
    ),
    (
        "service_dir",
        "the private copy of the service the cell runs",
    ),
];

/// Placeholders that only a database of one kind can fill.
const SQLITE_ONLY: &[&str] = &["sqlite_path"];
const POSTGRES_ONLY: &[&str] = &["db_host", "db_port", "db_user", "db_password", "db_name"];
/// Placeholders only a Python environment can fill.
const PYTHON_ONLY: &[&str] = &["python", "venv"];

/// Where a service keeps its data; each scenario run gets a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// A named set of environment variables the service runs with.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub database: DatabaseKind,
    /// `service.env`, then the profile's own (and its parents'), minus `unset`.
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The config file itself; relative paths in it are relative to its folder.
    pub path: PathBuf,
    pub service: Service,
    pub replay: Replay,
    pub matrix: Matrix,
    pub timeouts: Timeouts,
    pub redactions: Vec<Redaction>,
    /// Every profile; the baseline's is `service.profile`.
    pub profiles: Vec<Profile>,
    pub explore: Explore,
}

/// `[explore]`: what `upgrade-check explore` tries unless told otherwise.
#[derive(Debug, Clone)]
pub struct Explore {
    /// Requests per cell the variants are chosen within.
    pub budget: usize,
    /// Chooses and orders the variants: the same seed tries the same ones.
    pub seed: u64,
    /// The scenarios whose steps are varied (by name); empty: every one.
    pub scenarios: Vec<String>,
    /// 1-based line of `scenarios`, for an unknown name.
    pub scenarios_line: usize,
    /// The steps varied (by name, in any of those scenarios); empty: every one.
    pub steps: Vec<String>,
    /// 1-based line of `steps`, for an unknown name.
    pub steps_line: usize,
    /// Whether a finding fails the check (exit 1) or is reported only.
    pub findings: FindingsCount,
    /// Every run (a pull request's too) explores its cells after the check.
    pub in_every_run: bool,
}

/// How `explore`'s findings count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingsCount {
    #[default]
    Fail,
    Warn,
}

/// The requests per cell `explore` spends unless told otherwise: enough
/// for every field of a few recorded scenarios at its most telling lengths.
pub const DEFAULT_EXPLORE_BUDGET: usize = 200;

#[derive(Debug, Clone)]
pub struct Service {
    /// Folder of the service's source, copied privately for every cell.
    pub root: PathBuf,
    pub ecosystem: Ecosystem,
    /// The file holding the baseline pins, inside `root`: a requirements
    /// file or `pyproject.toml` (Python), `Cargo.lock` (cargo).
    pub baseline: PathBuf,
    /// Interpreter to build environments with; found on PATH when absent.
    pub python: Option<String>,
    /// A Node service's Node, as an npm range of its versions (`22`,
    /// `^20.11`): the one on PATH when it is in the range, else the newest
    /// release in it, installed from the registry.
    pub node: Option<String>,
    pub command: Vec<String>,
    pub health_path: String,
    /// The profile of the baseline cell.
    pub profile: String,
    /// Variables of the harness's own environment the service also receives
    /// (`pass-env`), besides `service::PASSED_THROUGH`.
    pub pass_env: Vec<String>,
    /// Argv lists run in order before every start of the service (tables,
    /// migrations, seed data), with its environment and placeholders.
    pub setup: Vec<Vec<String>>,
    /// With a Python lock as the baseline: dependency groups or extras the
    /// runtime also needs, besides the project's dependencies.
    pub groups: Vec<String>,
    /// How a Python service starts for each scenario run.
    pub start: StartMode,
}

/// How a Python service starts for each scenario run (`[service] start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartMode {
    /// Forked from a preloaded interpreter once the baseline's double
    /// replay (one copy cold, one forked) found no difference; cold from
    /// the first difference on. The default: it is never assumed.
    #[default]
    Auto,
    /// Forked from a preloaded interpreter, unchecked.
    Preloaded,
    /// A new interpreter every time.
    Cold,
}

#[derive(Debug, Clone)]
pub struct Replay {
    pub scenarios: PathBuf,
    pub snapshots: PathBuf,
    /// Response headers recorded in snapshots (lower case); all others are dropped.
    pub keep_headers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The baseline, and each candidate alone.
    OneAtATime,
    /// Every pair of (package, version) values in at least one cell.
    Pairwise,
    /// Every combination.
    Full,
    /// The baseline, and every package at its newest candidate in one cell.
    Latest,
}

#[derive(Debug, Clone)]
pub struct Matrix {
    pub strategy: Strategy,
    /// Line of `matrix.strategy` (of `[matrix]` when absent), for errors about the plan.
    pub strategy_line: usize,
    /// Above this many cells a plan is refused rather than run.
    pub max_cells: usize,
    /// Candidate versions per package, in the order the config lists them.
    pub packages: Vec<(PackageName, Candidates)>,
    /// Profiles tried besides the baseline's, each with the baseline pins.
    pub profiles: Vec<String>,
    /// Each listed version with where it is written, for errors about it.
    pub listed: Vec<Listed>,
}

/// A version the matrix lists, and its place in the config.
#[derive(Debug, Clone)]
pub struct Listed {
    pub package: PackageName,
    pub version: Version,
    pub line: usize,
    /// `matrix.packages.bcrypt[2]`
    pub key: String,
}

/// A package's candidates: listed, or a range the package index fills in.
#[derive(Debug, Clone)]
pub enum Candidates {
    Versions(Vec<Version>),
    Range(Range),
}

impl Candidates {
    /// The versions to try; a range's are known once it is expanded.
    pub fn versions(&self) -> &[Version] {
        match self {
            Candidates::Versions(versions) => versions,
            Candidates::Range(range) => &range.expanded,
        }
    }
}

/// `{ range = ">=3.2,<6", pick = "latest-per-minor", pre = false }`.
#[derive(Debug, Clone)]
pub struct Range {
    pub specifiers: Requirement,
    pub pick: Pick,
    /// Pre-releases count as candidates.
    pub pre: bool,
    /// Where the entry is, for errors about its expansion.
    pub line: usize,
    /// The index's versions this range picked; empty until expanded.
    pub expanded: Vec<Version>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    All,
    Latest,
    LatestPerMinor,
    LatestPerMajor,
}

impl Range {
    /// The versions of `available` (oldest first) this range picks, oldest first.
    pub fn pick_from(&self, available: &[Version]) -> Vec<Version> {
        let inside: Vec<&Version> = available
            .iter()
            .filter(|version| self.specifiers.contains(version))
            .filter(|version| self.pre || !version.is_prerelease())
            .collect();
        let group = |version: &Version| -> Vec<u64> {
            let release = version.release();
            let width = match self.pick {
                Pick::All => release.len(),
                Pick::Latest => 0,
                Pick::LatestPerMinor => 2,
                Pick::LatestPerMajor => 1,
            };
            (0..width)
                .map(|index| release.get(index).copied().unwrap_or(0))
                .collect()
        };
        let mut picked: Vec<Version> = Vec::new();
        for (index, version) in inside.iter().enumerate() {
            let last_of_group = inside
                .get(index + 1)
                .is_none_or(|next| group(next) != group(version));
            if self.pick == Pick::All || last_of_group {
                picked.push((*version).clone());
            }
        }
        picked
    }
}

impl std::fmt::Display for Pick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pick::All => "all",
            Pick::Latest => "latest",
            Pick::LatestPerMinor => "latest-per-minor",
            Pick::LatestPerMajor => "latest-per-major",
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Resolving and installing one environment.
    pub build: Duration,
    /// From spawn to the first healthy answer.
    pub startup: Duration,
    /// One HTTP request of a scenario.
    pub request: Duration,
    /// Between SIGTERM and SIGKILL when stopping a service.
    pub shutdown_grace: Duration,
}

/// A user-defined normalisation, applied after the built-in ones.
#[derive(Debug, Clone)]
pub enum Redaction {
    /// Every JSON value under this object key becomes `[placeholder]`.
    JsonKey { key: String, placeholder: String },
    /// Every match of this pattern, in any text, becomes `[placeholder]`.
    Pattern {
        pattern: regex::Regex,
        placeholder: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    service: RawService,
    #[serde(default)]
    replay: RawReplay,
    /// None: the baseline alone, or a pull request's changes with `--since`.
    #[serde(default)]
    matrix: RawMatrix,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    redactions: Vec<RawRedaction>,
    #[serde(default)]
    profiles: BTreeMap<String, Spanned<RawProfile>>,
    #[serde(default)]
    explore: RawExplore,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawExplore {
    budget: Option<Spanned<usize>>,
    seed: Option<u64>,
    scenarios: Option<Spanned<Vec<String>>>,
    steps: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    findings: FindingsCount,
    #[serde(default)]
    in_every_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProfile {
    extends: Option<Spanned<String>>,
    database: Option<DatabaseKind>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    unset: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawService {
    root: Spanned<String>,
    #[serde(default = "default_ecosystem")]
    ecosystem: Ecosystem,
    baseline: Spanned<String>,
    python: Option<String>,
    node: Option<Spanned<String>>,
    command: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    health: RawHealth,
    #[serde(default = "default_database")]
    database: DatabaseKind,
    profile: Option<Spanned<String>>,
    #[serde(default)]
    allow_public_bind: bool,
    /// Variables of the harness's environment to pass on, beyond the few it always does.
    #[serde(default)]
    pass_env: Vec<Spanned<String>>,
    /// Commands run before each start of the service, on its fresh database.
    #[serde(default)]
    setup: Vec<Spanned<Vec<Spanned<String>>>>,
    /// A lock's groups or extras the runtime also needs.
    #[serde(default)]
    groups: Vec<String>,
    /// Forked from a preloaded interpreter, or started cold.
    #[serde(default)]
    start: StartMode,
}

/// `[service] node`: a Node service's range of Node versions, as npm
/// writes ranges.
fn node_range(
    source: &Source,
    ecosystem: Ecosystem,
    range: Spanned<String>,
) -> Result<String, InputError> {
    let span = Some(range.span());
    let range = range.into_inner();
    if ecosystem != Ecosystem::Node {
        return Err(source.error_at(
            span,
            "service.node",
            "`node` chooses a Node service's Node: it needs ecosystem = \"node\"",
        ));
    }
    let readable = range
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " .^~<>=|*-".contains(c))
        && crate::model::npm_range::node_range_accepts(&range, &semver::Version::new(0, 0, 0))
            .is_some();
    if !readable || range.trim().is_empty() {
        return Err(source.error_at(
            span,
            "service.node",
            &format!("`{range}` is not a range of Node versions (`22`, `^20.11`, `>=18 <21`)"),
        ));
    }
    Ok(range)
}

/// Python unless the config says otherwise.
fn default_ecosystem() -> Ecosystem {
    Ecosystem::Python
}

fn default_database() -> DatabaseKind {
    DatabaseKind::Sqlite
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHealth {
    path: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawReplay {
    #[serde(default = "default_scenarios")]
    scenarios: Spanned<String>,
    #[serde(default = "default_snapshots")]
    snapshots: Spanned<String>,
    #[serde(default = "default_keep_headers")]
    keep_headers: Vec<String>,
}

impl Default for RawReplay {
    fn default() -> Self {
        RawReplay {
            scenarios: default_scenarios(),
            snapshots: default_snapshots(),
            keep_headers: default_keep_headers(),
        }
    }
}

fn default_scenarios() -> Spanned<String> {
    Spanned::new(0..0, "scenarios".to_owned())
}

fn default_snapshots() -> Spanned<String> {
    Spanned::new(0..0, "snapshots".to_owned())
}

fn default_keep_headers() -> Vec<String> {
    vec!["content-type".to_owned()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMatrix {
    #[serde(default = "default_strategy")]
    strategy: Spanned<Strategy>,
    #[serde(default = "default_max_cells")]
    max_cells: usize,
    #[serde(default)]
    packages: BTreeMap<String, Spanned<RawCandidates>>,
    #[serde(default)]
    profiles: Vec<Spanned<String>>,
}

impl Default for RawMatrix {
    fn default() -> Self {
        RawMatrix {
            strategy: default_strategy(),
            max_cells: default_max_cells(),
            packages: BTreeMap::new(),
            profiles: Vec::new(),
        }
    }
}

/// A list of versions or a range table; told apart by shape, keeping the
/// toml deserializer underneath so that spans and precise errors survive.
enum RawCandidates {
    Versions(Vec<Spanned<String>>),
    Range(RawRange),
}

impl<'de> Deserialize<'de> for RawCandidates {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};

        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = RawCandidates;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a list of versions, or a table like { range = \">=3.2,<6\", pick = \"latest-per-minor\" }",
                )
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(RawCandidates::Versions)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                RawRange::deserialize(MapAccessDeserializer::new(map)).map(RawCandidates::Range)
            }
        }
        deserializer.deserialize_any(Shape)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    range: Spanned<String>,
    pick: Pick,
    #[serde(default)]
    pre: bool,
}

fn default_strategy() -> Spanned<Strategy> {
    Spanned::new(0..0, Strategy::OneAtATime)
}

fn default_max_cells() -> usize {
    256
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTimeouts {
    build: Option<Spanned<String>>,
    startup: Option<Spanned<String>>,
    request: Option<Spanned<String>>,
    shutdown_grace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRedaction {
    json_key: Option<String>,
    pattern: Option<Spanned<String>>,
    placeholder: Spanned<String>,
}

/// The file name a config has when none is named.
pub const FILE_NAME: &str = "upgrade-check.toml";

/// The config a command reads when none is named: `upgrade-check.toml` in
/// the current folder, else in the nearest folder above it (so that the
/// tool works from anywhere inside a repository).
pub fn discover() -> anyhow::Result<PathBuf> {
    let here = PathBuf::from(FILE_NAME);
    if here.is_file() {
        return Ok(here);
    }
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .map(|folder| folder.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            SettingError::new(
                Setting::Config,
                format!(
                    "no {FILE_NAME} in {} or any folder above it: say where it is, or write one with `upgrade-check init` in the service's folder",
                    cwd.display()
                ),
            )
            .into()
        })
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, InputError> {
        let source = Source::read(path)?;
        let raw: RawConfig = source.parse()?;
        let base = path.parent().unwrap_or(Path::new("."));
        check_loopback(&source, &raw)?;
        let profiles = profiles(&source, &raw.service, raw.profiles)?;
        let ecosystem = raw.service.ecosystem;

        let config = Config {
            path: path.to_owned(),
            service: service(&source, base, raw.service, &profiles)?,
            replay: replay(&source, base, raw.replay)?,
            matrix: matrix(&source, raw.matrix, ecosystem, &profiles)?,
            timeouts: timeouts(&source, raw.timeouts)?,
            redactions: redactions(&source, raw.redactions)?,
            profiles,
            explore: explore(&source, raw.explore)?,
        };
        Ok(config)
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|profile| profile.name == name)
    }

    /// Folder relative paths of the config are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

fn service(
    source: &Source,
    base: &Path,
    raw: RawService,
    profiles: &[Profile],
) -> Result<Service, InputError> {
    let root = service_root(source, base, &raw.root)?;
    let baseline = within(source, &root, &raw.baseline, "service.baseline")?;
    if !baseline.is_file() {
        return Err(source.error_at(
            Some(raw.baseline.span()),
            "service.baseline",
            &format!("no baseline file at {}", baseline.display()),
        ));
    }
    if raw.command.get_ref().is_empty() {
        return Err(source.error_at(
            Some(raw.command.span()),
            "service.command",
            "the command needs at least a program",
        ));
    }
    let is_lock = crate::input::cargo_lock::is_lock(&baseline);
    if (raw.ecosystem == Ecosystem::Cargo) != is_lock {
        let message = if is_lock {
            "a Cargo.lock baseline needs ecosystem = \"cargo\" in [service]"
        } else {
            "a cargo service's baseline is its Cargo.lock"
        };
        return Err(source.error_at(Some(raw.baseline.span()), "service.baseline", message));
    }
    let node_lock = crate::input::node_lock::Manager::of(&baseline);
    if (raw.ecosystem == Ecosystem::Node) != node_lock.is_some() {
        let message = match node_lock {
            Some(manager) => &format!(
                "a {} baseline needs ecosystem = \"node\" in [service]",
                manager.lock_name()
            ),
            None => {
                "a Node service's baseline is its package-lock.json (npm's lockfile version 2 or 3), pnpm-lock.yaml (version 9) or yarn.lock (Yarn 1 or later)"
            }
        };
        return Err(source.error_at(Some(raw.baseline.span()), "service.baseline", message));
    }
    // Each run gets a free port of its own: a service never told it would
    // listen on one port in every run, and every cell would fail to start.
    let command_span = raw.command.span();
    let told_port = |profile: &Profile| {
        raw.command
            .get_ref()
            .iter()
            .any(|arg| arg.get_ref().contains("{port}"))
            || profile.env.values().any(|value| value.contains("{port}"))
    };
    let portless = profiles
        .iter()
        .find(|profile| !told_port(profile))
        .map(|profile| profile.name.clone());
    let mut command = Vec::new();
    for (index, arg) in raw.command.into_inner().into_iter().enumerate() {
        let key = format!("service.command[{index}]");
        check_argument(source, &arg, &key, profiles)?;
        if raw.ecosystem != Ecosystem::Python
            && let Some(name) = PYTHON_ONLY
                .iter()
                .find(|name| arg.get_ref().contains(&format!("{{{name}}}")))
        {
            return Err(source.error_at(
                Some(arg.span()),
                &key,
                &format!(
                    "`{{{name}}}` needs a Python service; a {} service's programs are in `{{bin}}`",
                    raw.ecosystem.name()
                ),
            ));
        }
        command.push(arg.into_inner());
    }
    // After each argument's own checks: they say more precisely what is wrong.
    if let Some(profile) = portless {
        return Err(source.error_at(
            Some(command_span),
            "service.command",
            &format!(
                "the service is never told the port to listen on (profile `{profile}`): each run gets a free one, so put `{{port}}` in the command (\"--port\", \"{{port}}\") or in an environment variable (PORT = \"{{port}}\" in [service.env])"
            ),
        ));
    }
    let profile = match raw.profile {
        None => DEFAULT_PROFILE.to_owned(),
        Some(name)
            if profiles
                .iter()
                .any(|profile| &profile.name == name.get_ref()) =>
        {
            name.into_inner()
        }
        Some(name) => {
            return Err(source.error_at(
                Some(name.span()),
                "service.profile",
                &format!("no profile named `{}` under [profiles]", name.get_ref()),
            ));
        }
    };
    let mut setup = Vec::new();
    for (index, command) in raw.setup.into_iter().enumerate() {
        let key = format!("service.setup[{index}]");
        if command.get_ref().is_empty() {
            return Err(source.error_at(
                Some(command.span()),
                &key,
                "a setup command needs at least a program",
            ));
        }
        let mut argv = Vec::new();
        for (position, arg) in command.into_inner().into_iter().enumerate() {
            let key = format!("{key}[{position}]");
            check_argument(source, &arg, &key, profiles)?;
            argv.push(arg.into_inner());
        }
        setup.push(argv);
    }
    let mut pass_env = Vec::new();
    for (index, name) in raw.pass_env.iter().enumerate() {
        let valid = !name.get_ref().is_empty()
            && !name.get_ref().starts_with(|c: char| c.is_ascii_digit())
            && name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(source.error_at(
                Some(name.span()),
                &format!("service.pass-env[{index}]"),
                "a variable name is letters, digits and `_`, not starting with a digit",
            ));
        }
        pass_env.push(name.get_ref().clone());
    }
    let health_path = raw.health.path.get_ref().clone();
    if !health_path.starts_with('/') {
        return Err(source.error_at(
            Some(raw.health.path.span()),
            "service.health.path",
            "the health path must start with `/`",
        ));
    }
    let node = match raw.node {
        Some(range) => Some(node_range(source, raw.ecosystem, range)?),
        None => None,
    };
    Ok(Service {
        root,
        ecosystem: raw.ecosystem,
        baseline,
        python: raw.python,
        node,
        command,
        health_path,
        profile,
        pass_env,
        setup,
        groups: raw.groups,
        start: raw.start,
    })
}

/// An argument of the service's command or a setup command: its placeholders
/// must be known, and fillable under every profile (it runs under each).
fn check_argument(
    source: &Source,
    arg: &Spanned<String>,
    key: &str,
    profiles: &[Profile],
) -> Result<(), InputError> {
    check_placeholders(source, arg, key, None)?;
    for profile in profiles {
        check_placeholders(source, arg, key, Some(profile))?;
    }
    Ok(())
}

/// Rejects `{name}` placeholders the harness does not know, or that the
/// profile's database cannot fill.
fn check_placeholders(
    source: &Source,
    value: &Spanned<String>,
    key: &str,
    profile: Option<&Profile>,
) -> Result<(), InputError> {
    let database = profile.map(|profile| profile.database);
    let mut rest = value.get_ref().as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.iter().any(|(known, _)| *known == name) {
            let known: Vec<_> = PLACEHOLDERS.iter().map(|(known, _)| *known).collect();
            return Err(source.error_at(
                Some(value.span()),
                key,
                &format!(
                    "unknown placeholder `{{{name}}}`; known: {}",
                    known.join(", ")
                ),
            ));
        }
        let needs = if SQLITE_ONLY.contains(&name) {
            Some(DatabaseKind::Sqlite)
        } else if POSTGRES_ONLY.contains(&name) {
            Some(DatabaseKind::Postgres)
        } else {
            None
        };
        if let (Some(needs), Some(database)) = (needs, database)
            && needs != database
        {
            let wanted = if needs == DatabaseKind::Postgres {
                "postgres"
            } else {
                "sqlite"
            };
            let profile = profile.map_or(String::new(), |profile| profile.name.clone());
            return Err(source.error_at(
                Some(value.span()),
                key,
                &format!(
                    "`{{{name}}}` needs database = \"{wanted}\", and profile `{profile}` \
                     (which uses this value) has another database"
                ),
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// The profile used when the config defines none.
pub const DEFAULT_PROFILE: &str = "default";

/// Resolves `extends` chains, then checks every value's placeholders against
/// the database of each profile that ends up with it: a value inherited by a
/// profile with another database is checked again there.
fn profiles(
    source: &Source,
    service: &RawService,
    raw: BTreeMap<String, Spanned<RawProfile>>,
) -> Result<Vec<Profile>, InputError> {
    /// Where each variable of a resolved profile was written: key path and value.
    type Origins = BTreeMap<String, (String, Spanned<String>)>;
    let service_origins: Origins = service
        .env
        .iter()
        .map(|(key, value)| (key.clone(), (format!("service.env.{key}"), value.clone())))
        .collect();
    let mut resolved: Vec<(Profile, Origins)> = vec![(
        Profile {
            name: DEFAULT_PROFILE.to_owned(),
            database: service.database,
            env: BTreeMap::new(),
        },
        service_origins.clone(),
    )];
    let mut pending: Vec<(String, Spanned<RawProfile>)> = raw.into_iter().collect();
    if let Some((_, profile)) = pending.iter().find(|(name, _)| name == DEFAULT_PROFILE) {
        return Err(source.error_at(
            Some(profile.span()),
            "profiles.default",
            "`default` is the implicit profile; pick another name",
        ));
    }
    // Parents before children; a cycle or a missing parent leaves some unresolved.
    while !pending.is_empty() {
        let before = pending.len();
        let mut index = 0;
        while index < pending.len() {
            let parent = match &pending[index].1.get_ref().extends {
                None => None,
                Some(parent) => {
                    match resolved
                        .iter()
                        .find(|(profile, _)| &profile.name == parent.get_ref())
                    {
                        Some(found) => Some(found.clone()),
                        None => {
                            index += 1;
                            continue;
                        }
                    }
                }
            };
            let (name, raw) = pending.remove(index);
            let span = raw.span();
            let raw = raw.into_inner();
            let database = raw
                .database
                .or(parent.as_ref().map(|(parent, _)| parent.database))
                .unwrap_or(service.database);
            let mut origins = match parent {
                Some((_, origins)) => origins,
                None => service_origins.clone(),
            };
            for (key, value) in &raw.env {
                origins.insert(
                    key.clone(),
                    (format!("profiles.{name}.env.{key}"), value.clone()),
                );
            }
            for key in &raw.unset {
                if origins.remove(key).is_none() {
                    return Err(source.error_at(
                        Some(span.clone()),
                        &format!("profiles.{name}.unset"),
                        &format!("`{key}` is not set by this profile or what it extends"),
                    ));
                }
            }
            let profile = Profile {
                name,
                database,
                env: BTreeMap::new(),
            };
            resolved.push((profile, origins));
        }
        if pending.len() == before {
            let (name, raw) = &pending[0];
            let parent = raw.get_ref().extends.as_ref().expect("only children wait");
            return Err(source.error_at(
                Some(parent.span()),
                &format!("profiles.{name}.extends"),
                &format!(
                    "no profile `{}` to extend (or the chain loops)",
                    parent.get_ref()
                ),
            ));
        }
    }
    let mut profiles = Vec::new();
    for (mut profile, origins) in resolved {
        for (key, (path, value)) in origins {
            check_placeholders(source, &value, &path, Some(&profile))?;
            profile.env.insert(key, value.into_inner());
        }
        profiles.push(profile);
    }
    Ok(profiles)
}

fn replay(source: &Source, base: &Path, raw: RawReplay) -> Result<Replay, InputError> {
    Ok(Replay {
        // Missing until the first scenario is written or recorded; a check
        // says so when it loads them.
        scenarios: within(source, base, &raw.scenarios, "replay.scenarios")?,
        // The snapshots folder may not exist before the first accept.
        snapshots: within(source, base, &raw.snapshots, "replay.snapshots")?,
        keep_headers: raw
            .keep_headers
            .into_iter()
            .map(|name| name.to_ascii_lowercase())
            .collect(),
    })
}

/// Refuses a command or environment value (the service's or any profile's)
/// that would have the service listen on every interface, unless allowed.
fn check_loopback(source: &Source, raw: &RawConfig) -> Result<(), InputError> {
    if raw.service.allow_public_bind {
        return Ok(());
    }
    let command = raw
        .service
        .command
        .get_ref()
        .iter()
        .map(|arg| ("service.command".to_owned(), arg));
    let env = raw
        .service
        .env
        .iter()
        .map(|(name, value)| (format!("service.env.{name}"), value));
    let profiles = raw.profiles.iter().flat_map(|(profile, raw)| {
        raw.get_ref()
            .env
            .iter()
            .map(move |(name, value)| (format!("profiles.{profile}.env.{name}"), value))
    });
    for (key, value) in command.chain(env).chain(profiles) {
        if value.get_ref().contains("0.0.0.0") {
            return Err(source.error_at(
                Some(value.span()),
                &key,
                "the service would listen on every interface; it must bind 127.0.0.1 \
                 (set service.allow-public-bind = true if you really mean it)",
            ));
        }
    }
    Ok(())
}

/// `base/value`, refusing paths that leave `base` (absolute, `..`, or a symlink out).
///
/// Everything the harness reads or writes for a service stays under the
/// config's folder, so a config or PR cannot point it at other files.
fn within(
    source: &Source,
    base: &Path,
    value: &Spanned<String>,
    key: &str,
) -> Result<PathBuf, InputError> {
    let relative = Path::new(value.get_ref());
    let escapes = |message: &str| source.error_at(Some(value.span()), key, message);
    if relative.is_absolute()
        || relative
            .components()
            .any(|part| matches!(part, std::path::Component::ParentDir))
    {
        return Err(escapes(
            "the path must stay inside the config's folder: no absolute paths, no `..`",
        ));
    }
    let path = base.join(relative);
    // A path that exists must also resolve inside: no symlink out of the tree.
    let base_dir = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    if let (Ok(real), Ok(real_base)) = (path.canonicalize(), base_dir.canonicalize())
        && !real.starts_with(&real_base)
    {
        return Err(escapes(&format!(
            "the path leads outside the config's folder through a symlink (to {})",
            real.display()
        )));
    }
    Ok(path)
}

/// `service.root`: inside the config's folder, or (with `..`) anywhere in the
/// git repository that holds the config, so that the config, scenarios and
/// snapshots may live beside the service rather than inside it. Never outside
/// that repository.
fn service_root(
    source: &Source,
    base: &Path,
    value: &Spanned<String>,
) -> Result<PathBuf, InputError> {
    const KEY: &str = "service.root";
    let relative = Path::new(value.get_ref());
    let leaves = relative
        .components()
        .any(|part| matches!(part, std::path::Component::ParentDir));
    if !leaves || relative.is_absolute() {
        return existing_dir(source, base, value, KEY);
    }
    let error = |message: &str| source.error_at(Some(value.span()), KEY, message);
    let base_dir = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let real_base = base_dir
        .canonicalize()
        .map_err(|err| error(&format!("cannot resolve the config's folder: {err}")))?;
    let Some(repository) = real_base.ancestors().find(|dir| dir.join(".git").exists()) else {
        return Err(error(
            "a root outside the config's folder must be inside the git repository that \
             holds the config, and no repository holds it",
        ));
    };
    let path = base.join(relative);
    let real = path
        .canonicalize()
        .map_err(|_| error(&format!("no folder at {}", path.display())))?;
    if !real.starts_with(repository) {
        return Err(error(&format!(
            "the service root must stay inside the git repository at {} (it leads to {})",
            repository.display(),
            real.display()
        )));
    }
    if !real.is_dir() {
        return Err(error(&format!("no folder at {}", path.display())));
    }
    Ok(path)
}

fn existing_dir(
    source: &Source,
    base: &Path,
    value: &Spanned<String>,
    key: &str,
) -> Result<PathBuf, InputError> {
    let dir = within(source, base, value, key)?;
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(source.error_at(
            Some(value.span()),
            key,
            &format!("no folder at {}", dir.display()),
        ))
    }
}

fn matrix(
    source: &Source,
    raw: RawMatrix,
    ecosystem: Ecosystem,
    profiles: &[Profile],
) -> Result<Matrix, InputError> {
    let mut packages = Vec::new();
    let mut listed = Vec::new();
    for (name, versions) in raw.packages {
        let key = format!("matrix.packages.{name}");
        let package = PackageName::parse(ecosystem, &name).map_err(|err| {
            source.error_at(
                Some(versions.span()),
                &key,
                &format!("invalid package name: {err}"),
            )
        })?;
        if packages.iter().any(|(known, _)| *known == package) {
            return Err(source.error_at(
                Some(versions.span()),
                &key,
                &format!("`{package}` is listed twice (names are compared normalised)"),
            ));
        }
        let span = versions.span();
        let parsed = match versions.into_inner() {
            RawCandidates::Versions(list) if list.is_empty() => {
                return Err(source.error_at(Some(span), &key, "list at least one version"));
            }
            RawCandidates::Versions(list) => {
                let mut parsed = Vec::new();
                for (index, version) in list.iter().enumerate() {
                    let key = format!("{key}[{index}]");
                    let exact = exact_version(source, ecosystem, version, &key)?;
                    listed.push(Listed {
                        package: package.clone(),
                        version: exact.clone(),
                        line: source.line_of(version.span().start),
                        key,
                    });
                    parsed.push(exact);
                }
                Candidates::Versions(parsed)
            }
            RawCandidates::Range(raw) => {
                let text = raw.range.get_ref();
                let specifiers = Requirement::parse(ecosystem, text).map_err(|err| {
                    source.error_at(Some(raw.range.span()), &format!("{key}.range"), &err)
                })?;
                Candidates::Range(Range {
                    specifiers,
                    pick: raw.pick,
                    pre: raw.pre,
                    line: source.line_of(span.start),
                    expanded: Vec::new(),
                })
            }
        };
        packages.push((package, parsed));
    }
    let mut matrix_profiles = Vec::new();
    for (index, name) in raw.profiles.into_iter().enumerate() {
        if !profiles
            .iter()
            .any(|profile| &profile.name == name.get_ref())
        {
            return Err(source.error_at(
                Some(name.span()),
                &format!("matrix.profiles[{index}]"),
                &format!("no profile named `{}` under [profiles]", name.get_ref()),
            ));
        }
        matrix_profiles.push(name.into_inner());
    }
    Ok(Matrix {
        strategy_line: source.line_of(raw.strategy.span().start),
        strategy: raw.strategy.into_inner(),
        max_cells: raw.max_cells,
        packages,
        profiles: matrix_profiles,
        listed,
    })
}

/// A candidate must be one exact version (PEP 440 or semver): no ranges, no
/// wildcards, no URLs.
fn exact_version(
    source: &Source,
    ecosystem: Ecosystem,
    value: &Spanned<String>,
    key: &str,
) -> Result<Version, InputError> {
    let text = value.get_ref();
    Version::parse(ecosystem, text).map_err(|err| {
        source.error_at(
            Some(value.span()),
            key,
            &format!(
                "`{text}` is not an exact {} version: {err}",
                ecosystem.version_rules()
            ),
        )
    })
}

fn timeouts(source: &Source, raw: RawTimeouts) -> Result<Timeouts, InputError> {
    let parse = |value: Option<Spanned<String>>, key: &str, default: Duration| match value {
        None => Ok(default),
        Some(value) => humantime::parse_duration(value.get_ref()).map_err(|err| {
            source.error_at(
                Some(value.span()),
                key,
                &format!(
                    "`{}` is not a duration like \"30s\" or \"2m\": {err}",
                    value.get_ref()
                ),
            )
        }),
    };
    Ok(Timeouts {
        build: parse(raw.build, "timeouts.build", Duration::from_secs(600))?,
        startup: parse(raw.startup, "timeouts.startup", Duration::from_secs(30))?,
        request: parse(raw.request, "timeouts.request", Duration::from_secs(10))?,
        shutdown_grace: parse(
            raw.shutdown_grace,
            "timeouts.shutdown-grace",
            Duration::from_secs(5),
        )?,
    })
}

fn explore(source: &Source, raw: RawExplore) -> Result<Explore, InputError> {
    let budget = match raw.budget {
        None => DEFAULT_EXPLORE_BUDGET,
        Some(budget) if *budget.get_ref() == 0 => {
            return Err(source.error_at(
                Some(budget.span()),
                "explore.budget",
                "a budget of requests per cell is at least 1",
            ));
        }
        Some(budget) => budget.into_inner(),
    };
    Ok(Explore {
        budget,
        seed: raw.seed.unwrap_or(0),
        scenarios_line: raw
            .scenarios
            .as_ref()
            .map_or(1, |scenarios| source.line_of(scenarios.span().start)),
        scenarios: raw.scenarios.map(Spanned::into_inner).unwrap_or_default(),
        steps_line: raw
            .steps
            .as_ref()
            .map_or(1, |steps| source.line_of(steps.span().start)),
        steps: raw.steps.map(Spanned::into_inner).unwrap_or_default(),
        findings: raw.findings,
        in_every_run: raw.in_every_run,
    })
}

fn redactions(source: &Source, raw: Vec<RawRedaction>) -> Result<Vec<Redaction>, InputError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let key = format!("redactions[{index}]");
            let placeholder = raw.placeholder.get_ref().clone();
            match (raw.json_key, raw.pattern) {
                (Some(key), None) => Ok(Redaction::JsonKey { key, placeholder }),
                (None, Some(pattern)) => regex::Regex::new(pattern.get_ref())
                    .map(|pattern| Redaction::Pattern {
                        pattern,
                        placeholder,
                    })
                    .map_err(|err| {
                        source.error_at(
                            Some(pattern.span()),
                            &format!("{key}.pattern"),
                            &format!("invalid regular expression: {err}"),
                        )
                    }),
                _ => Err(source.error_at(
                    Some(raw.placeholder.span()),
                    &key,
                    "give exactly one of `json-key` or `pattern`",
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str, pick: Pick, pre: bool) -> Range {
        Range {
            specifiers: Requirement::parse(Ecosystem::Python, text).unwrap(),
            pick,
            pre,
            line: 1,
            expanded: Vec::new(),
        }
    }

    fn versions(texts: &[&str]) -> Vec<Version> {
        texts
            .iter()
            .map(|text| Version::python(text).unwrap())
            .collect()
    }

    #[test]
    fn a_cargo_requirement_picks_crate_versions_and_pre_releases_only_when_asked() {
        let available: Vec<Version> = ["0.7.3", "0.8.0", "0.8.5", "0.9.0-rc.1", "0.9.0", "1.0.0"]
            .iter()
            .map(|text| Version::parse(Ecosystem::Cargo, text).unwrap())
            .collect();
        let picked = |text: &str, pick, pre| {
            Range {
                specifiers: Requirement::Semver(semver::VersionReq::parse(text).unwrap()),
                pick,
                pre,
                line: 1,
                expanded: Vec::new(),
            }
            .pick_from(&available)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
        };
        assert_eq!(
            picked(">=0.8, <1", Pick::LatestPerMinor, false),
            ["0.8.5", "0.9.0"]
        );
        assert_eq!(
            picked(">=0.8, <1", Pick::All, true),
            ["0.8.0", "0.8.5", "0.9.0-rc.1", "0.9.0"]
        );
        assert_eq!(picked("^0.8", Pick::All, false), ["0.8.0", "0.8.5"]);
    }

    #[test]
    fn ranges_pick_the_newest_of_each_group_inside_them() {
        let available = versions(&[
            "3.1.7", "3.2.0", "3.2.2", "4.0.0", "4.0.1", "4.1.3", "5.0.0rc1", "5.0.0", "6.0.0",
        ]);
        let picked = |text, pick, pre| {
            range(text, pick, pre)
                .pick_from(&available)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            picked(">=3.2,<6", Pick::LatestPerMinor, false),
            ["3.2.2", "4.0.1", "4.1.3", "5.0.0"]
        );
        assert_eq!(
            picked(">=3.2,<6", Pick::LatestPerMajor, false),
            ["3.2.2", "4.1.3", "5.0.0"]
        );
        assert_eq!(picked(">=3.2,<6", Pick::Latest, false), ["5.0.0"]);
        assert_eq!(
            picked(">=4.1,<6", Pick::All, true),
            ["4.1.3", "5.0.0rc1", "5.0.0"]
        );
        assert_eq!(picked(">=4.1,<6", Pick::All, false), ["4.1.3", "5.0.0"]);
    }
}

#[cfg(test)]
mod defaults {
    use super::*;

    #[test]
    fn a_config_with_only_a_service_is_python_with_an_empty_matrix() {
        let config = load_python("command = [\"{python}\", \"-m\", \"app\"]", "").unwrap();
        assert_eq!(config.service.ecosystem, Ecosystem::Python);
        assert!(config.matrix.packages.is_empty());
        assert_eq!(config.matrix.strategy, Strategy::OneAtATime);
    }

    /// A Python service's config: `[service]` extra lines, then `rest`.
    fn load_python(service: &str, rest: &str) -> Result<Config, InputError> {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("service")).unwrap();
        fs_err::create_dir_all(dir.path().join("scenarios")).unwrap();
        fs_err::write(
            dir.path().join("service/requirements.txt"),
            "flask==3.0.3\n",
        )
        .unwrap();
        let path = dir.path().join("upgrade-check.toml");
        fs_err::write(
            &path,
            format!(
                "[service]\nroot = \"service\"\nbaseline = \"requirements.txt\"\n\
                 health = {{ path = \"/health\" }}\nenv = {{ PORT = \"{{port}}\" }}\n{service}\n{rest}"
            ),
        )
        .unwrap();
        Config::load(&path)
    }

    #[test]
    fn a_node_version_is_only_chosen_for_a_node_service() {
        let err = load_python(
            "command = [\"{python}\", \"-m\", \"app\"]\nnode = \"22\"",
            "",
        )
        .unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (7, "service.node"), "{err}");
        assert!(
            err.to_string().contains("needs ecosystem = \"node\""),
            "{err}"
        );
    }

    #[test]
    fn a_value_inherited_by_a_profile_with_another_database_is_checked_there() {
        let err = load_python(
            "command = [\"{python}\", \"-m\", \"app\"]",
            "[profiles.staging]\ndatabase = \"postgres\"\nenv = { DB_PASS = \"{db_password}\" }\n\
             [profiles.local]\nextends = \"staging\"\ndatabase = \"sqlite\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("upgrade-check.toml:")
                && err.contains("profiles.staging.env.DB_PASS")
                && err.contains("profile `local`"),
            "{err}"
        );
    }

    #[test]
    fn the_command_is_checked_against_every_profile_database() {
        let err = load_python(
            "command = [\"{python}\", \"-m\", \"app\", \"--db\", \"{sqlite_path}\"]",
            "[profiles.staging]\ndatabase = \"postgres\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("service.command[4]") && err.contains("profile `staging`"),
            "{err}"
        );
    }

    #[test]
    fn the_service_root_may_leave_the_config_folder_but_not_the_repository() {
        let repo = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(repo.path().join(".git")).unwrap();
        fs_err::create_dir_all(repo.path().join("app")).unwrap();
        fs_err::create_dir_all(repo.path().join("ci/scenarios")).unwrap();
        fs_err::write(repo.path().join("app/requirements.txt"), "flask==3.0.3\n").unwrap();
        let config = |root: &str| {
            let path = repo.path().join("ci/upgrade-check.toml");
            fs_err::write(
                &path,
                format!(
                    "[service]\nroot = \"{root}\"\nbaseline = \"requirements.txt\"\n\
                     command = [\"{{python}}\", \"-m\", \"app\", \"--port\", \"{{port}}\"]\nhealth = {{ path = \"/health\" }}\n"
                ),
            )
            .unwrap();
            Config::load(&path)
        };
        let loaded = config("../app").unwrap();
        assert!(loaded.service.root.ends_with("ci/../app"));
        let outside = tempfile::tempdir_in(repo.path().parent().unwrap()).unwrap();
        let name = outside.path().file_name().unwrap().to_string_lossy();
        let err = config(&format!("../../{name}")).unwrap_err().to_string();
        assert!(
            err.contains("upgrade-check.toml:2")
                && err.contains("service.root")
                && err.contains("inside the git repository"),
            "{err}"
        );
    }

    /// A cargo service's config with `command`, `baseline` and `packages` lines.
    fn load_cargo(command: &str, baseline: &str, packages: &str) -> Result<Config, InputError> {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("service")).unwrap();
        fs_err::create_dir_all(dir.path().join("scenarios")).unwrap();
        fs_err::write(dir.path().join("service/Cargo.lock"), "version = 4\n").unwrap();
        fs_err::write(dir.path().join("service/requirements.txt"), "").unwrap();
        let path = dir.path().join("upgrade-check.toml");
        fs_err::write(
            &path,
            format!(
                "[service]\nroot = \"service\"\necosystem = \"cargo\"\nbaseline = \"{baseline}\"\n\
                 command = {command}\nhealth = {{ path = \"/health\" }}\n\
                 [matrix.packages]\n{packages}\n"
            ),
        )
        .unwrap();
        Config::load(&path)
    }

    #[test]
    fn a_cargo_service_keeps_crate_names_and_reads_semver_versions() {
        let config = load_cargo(
            "[\"{bin}/server\", \"--port\", \"{port}\"]",
            "Cargo.lock",
            "serde_json = [\"1.0.100\", \"1.0.0-alpha.1\"]",
        )
        .unwrap();
        let (package, candidates) = &config.matrix.packages[0];
        assert_eq!(package.as_str(), "serde_json");
        let versions: Vec<String> = candidates
            .versions()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(versions, ["1.0.100", "1.0.0-alpha.1"]);
    }

    #[test]
    fn what_only_python_has_is_refused_for_a_cargo_service_with_its_line() {
        let bin = "[\"{bin}/server\", \"--port\", \"{port}\"]";
        for (command, baseline, packages, line, key, message) in [
            (
                "[\"{python}\", \"-m\", \"app\"]",
                "Cargo.lock",
                "",
                5,
                "service.command[0]",
                "`{python}` needs a Python service",
            ),
            (
                bin,
                "requirements.txt",
                "",
                4,
                "service.baseline",
                "a cargo service's baseline is its Cargo.lock",
            ),
            (
                bin,
                "Cargo.lock",
                "mime_guess = { range = \">=2, !=2.0.3\", pick = \"latest\" }",
                8,
                "matrix.packages.mime_guess.range",
                "`>=2, !=2.0.3` is not a cargo version requirement",
            ),
            (
                bin,
                "Cargo.lock",
                "mime_guess = [\"2.0\"]",
                8,
                "matrix.packages.mime_guess[0]",
                "`2.0` is not an exact semver version",
            ),
            (
                bin,
                "Cargo.lock",
                "\"mime guess\" = [\"2.0.5\"]",
                8,
                "matrix.packages.mime guess",
                "is not a crate name",
            ),
        ] {
            let err = load_cargo(command, baseline, packages).unwrap_err();
            assert_eq!((err.line, err.key.as_str()), (line, key), "{err}");
            assert!(err.message.contains(message), "{err}");
        }
    }
}
