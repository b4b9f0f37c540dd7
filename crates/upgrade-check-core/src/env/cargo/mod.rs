//! Cargo environments: a cell's pins applied to the baseline `Cargo.lock`
//! with `cargo update --precise`, the service built once per resolved set.
//!
//! Resolutions (the lock a cell ends with) are cached by their inputs;
//! builds share one target folder, so a crate compiles once for all cells
//! that link it at the same version, and each environment keeps a copy of
//! the service's binaries, trusted once its `complete` marker exists.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sha2::Digest;

mod index;
pub(crate) mod manifest;

use std::sync::Arc;

use self::manifest::Raised;
use super::index::Registry;
use super::{BuildError, Environment, LockInputs, Resolution, ResolvedSet, hash, run_step};
use crate::input::baseline::BaselineFile;
use crate::input::cargo_lock;
use crate::input::source::Source;
use crate::model::cell::Pin;
use crate::model::package::Version;
use crate::sys::process;
use crate::sys::state::{self, StateDirs};
pub(crate) use index::RegistryIndex;

/// The cargo that builds the service, and what it and rustc say they are.
#[derive(Debug, Clone)]
pub(crate) struct Cargo {
    pub path: PathBuf,
    /// `cargo -V` and `rustc -V`: part of every cache key.
    pub version: String,
}

impl Cargo {
    /// The cargo running the harness (`CARGO`), else the one on `PATH`.
    pub(crate) fn find() -> anyhow::Result<Cargo> {
        let path = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
        let ask = |program: &Path| -> anyhow::Result<String> {
            // As a name, not a path: duct would look for `./cargo`.
            let output = process::run_checked(
                duct::cmd(program.as_os_str(), ["-V"]),
                Duration::from_secs(30),
                &format!("{} -V", program.display()),
            )?;
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        let rustc = std::env::var_os("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from);
        let version = format!("{} / {}", ask(&path)?, ask(&rustc)?);
        Ok(Cargo { path, version })
    }

    /// The toolchain's Rust version, which a crate's `rust-version` must not exceed.
    pub(crate) fn rust_version(&self) -> anyhow::Result<semver::Version> {
        let rustc = self
            .version
            .split(" / ")
            .find_map(|part| part.strip_prefix("rustc "))
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("no rustc version in `{}`", self.version))?;
        let version = semver::Version::parse(rustc)?;
        // A nightly's or beta's pre-release tag does not lower what it can build.
        Ok(semver::Version::new(
            version.major,
            version.minor,
            version.patch,
        ))
    }

    /// `cargo ARGS` in `dir`, with none of the harness's own build settings.
    fn command(&self, dir: &Path, args: Vec<OsString>, target_dir: &Path) -> duct::Expression {
        duct::cmd(self.path.as_os_str(), args)
            .dir(dir)
            .env("CARGO_TARGET_DIR", target_dir)
            // Each build is of a scratch copy of its own: incremental state
            // is never used again, and writing it cost a third of a cell's
            // build (2.2 s against 1.4 s for the auth service's crate).
            .env("CARGO_INCREMENTAL", "0")
            .env("CARGO_TERM_COLOR", "never")
            .stdin_null()
    }
}

/// `Cargo.toml` texts laid over the service's, by path relative to its folder.
type Manifests = Vec<(PathBuf, String)>;

/// Resolves and builds cargo environments for one service.
#[derive(Debug, Clone)]
pub(crate) struct CargoBuilder {
    pub cargo: Cargo,
    pub dirs: StateDirs,
    /// The service's source: its manifests, code and lock.
    pub root: PathBuf,
    /// Where the lock sits inside `root`.
    pub lock_path: PathBuf,
    /// Digest of the service's files other than its lock (what a build
    /// compiles), taken once: part of every resolution's and build's key.
    pub source_digest: String,
    /// The baseline lock (at the pull request's base in PR mode); builds
    /// start from its text.
    pub baseline: BaselineFile,
    /// In PR mode, the base's `Cargo.toml` files where the change edits
    /// them, by path relative to `root`: the baseline is built with them.
    pub base_manifests: Vec<(PathBuf, String)>,
    pub timeout: Duration,
    /// Never reach the registry: use what cargo has downloaded.
    pub offline: bool,
}

impl CargoBuilder {
    /// The baseline lock, with the baseline's manifests.
    pub(crate) fn resolve_baseline(&self) -> Result<Resolution, BuildError> {
        self.resolve(&self.baseline.text, &[], &self.base_manifests, &[])
    }

    /// A lock (a pull request's) as it is, with the working tree's manifests.
    pub(crate) fn resolve_file(&self, path: &Path) -> Result<Resolution, BuildError> {
        self.resolve(&fs_err::read_to_string(path)?, &[], &[], &[])
    }

    /// The baseline lock with each pin moved by `cargo update -p NAME@OLD
    /// --precise NEW`: what the pin requires moves with it, nothing else.
    ///
    /// A pull request that also raises requirements in `Cargo.toml` would
    /// move other crates with them: the pins go on the base's manifests, and
    /// only when those refuse a pin (a major bump the change allows by
    /// editing its requirement) on the working tree's.
    pub(crate) fn resolve_cell(
        &self,
        baseline: &ResolvedSet,
        pins: &[Pin],
    ) -> Result<Resolution, BuildError> {
        let mut updates = Vec::new();
        for pin in pins {
            let Some(resolved) = baseline.packages.get(&pin.package) else {
                return Err(BuildError::Refused(format!(
                    "{} is not in the baseline's Cargo.lock: cargo can only move a locked package",
                    pin.package
                )));
            };
            let locked: Vec<&Version> = resolved.others.iter().chain([&resolved.version]).collect();
            let from = updated_version(&locked, &pin.version);
            updates.push((format!("{}@{from}", pin.package), pin.version.to_string()));
        }
        let (manifests, raised) = self.raise_requirements(pins)?;
        if !raised.is_empty() {
            return self.resolve(&self.baseline.text, &updates, &manifests, &raised);
        }
        match self.resolve(&self.baseline.text, &updates, &self.base_manifests, &[]) {
            Err(BuildError::Refused(_)) if !self.base_manifests.is_empty() => {
                self.resolve(&self.baseline.text, &updates, &[], &[])
            }
            on_base => on_base,
        }
    }

    /// The manifests a cell builds with when a pin is outside what the
    /// service's `Cargo.toml` files allow: each requirement on it raised to
    /// the pin (on the base's manifests in a pull request), and what was raised.
    fn raise_requirements(&self, pins: &[Pin]) -> Result<(Manifests, Vec<Raised>), BuildError> {
        let mut manifests = self.base_manifests.clone();
        let mut raised = Vec::new();
        for path in manifest::manifests(&self.root)? {
            let mut text = match manifests.iter().find(|(laid, _)| *laid == path) {
                Some((_, text)) => text.clone(),
                None => fs_err::read_to_string(self.root.join(&path))?,
            };
            let mut changed = false;
            for pin in pins {
                let Version::Semver(version) = &pin.version else {
                    continue;
                };
                let raise = manifest::raise(&text, &pin.package, version)
                    .with_context(|| format!("reading {}", path.display()))?;
                if let Some(edited) = raise {
                    text = edited.text;
                    changed = true;
                    raised.extend(edited.raised.into_iter().map(|(from, to)| Raised {
                        manifest: path.clone(),
                        package: pin.package.to_string(),
                        from,
                        to,
                    }));
                }
            }
            if changed {
                manifests.retain(|(laid, _)| *laid != path);
                manifests.push((path, text));
            }
        }
        Ok((manifests, raised))
    }

    /// Whether the registry offers `pin`: `cargo info` (run outside any
    /// project) finds neither a version that does not exist nor a yanked one.
    pub(crate) fn check_exists(&self, pin: &Pin) -> Result<(), BuildError> {
        let outside = state::temp_dir()?;
        let mut args = vec![
            OsString::from("info"),
            format!("{}@{}", pin.package, pin.version).into(),
        ];
        if self.offline {
            args.push("--offline".into());
        }
        let command = self
            .cargo
            .command(outside.path(), args, &outside.path().join("target"));
        let output = process::run_captured(command, self.timeout)?.with_context(|| {
            format!(
                "looking {pin} up did not finish within {}",
                humantime::format_duration(self.timeout)
            )
        })?;
        if output.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&output.stderr);
        if self.offline && said.contains("--offline was specified") {
            return Err(BuildError::Unavailable(said.trim().to_owned()));
        }
        Err(BuildError::Refused(format!(
            "no such version, or a yanked one (cargo finds neither): {}",
            said.lines()
                .find(|line| line.starts_with("error"))
                .unwrap_or(said.trim())
        )))
    }

    /// Starts from `lock` with `manifests` laid over the service's, runs each
    /// `(spec, version)` update, then lets cargo fetch what the lock names
    /// (settling a lock the manifests outgrew).
    fn resolve(
        &self,
        lock: &str,
        updates: &[(String, String)],
        manifests: &[(PathBuf, String)],
        raised: &[Raised],
    ) -> Result<Resolution, BuildError> {
        let listed: Vec<String> = updates
            .iter()
            .map(|(spec, version)| format!("{spec} {version}"))
            .collect();
        let inputs = LockInputs {
            lock: lock.to_owned(),
            manifests: manifests.to_vec(),
            raised: raised.to_vec(),
        };
        let key = hash(&[
            "cargo-resolve-v1",
            &self.cargo.version,
            &self.source_digest,
            &inputs.manifests_text(),
            lock,
            &listed.join("\n"),
        ]);
        let cached = self.dirs.resolutions_dir().join(format!("{key}.lock"));
        if let Ok(text) = fs_err::read_to_string(&cached) {
            let inputs = LockInputs {
                lock: text,
                ..inputs
            };
            return Ok(Resolution {
                set: resolved_set(&cached, inputs)?,
                reused: true,
                moves_not_held: None,
                built: None,
            });
        }
        let scratch = state::temp_dir()?;
        let source = self.copy_source(scratch.path(), &inputs)?;
        let target_dir = scratch.path().join("target");
        for (spec, version) in updates {
            let mut args = vec![OsString::from("update"), "--package".into()];
            args.extend([spec.into(), "--precise".into(), version.into()]);
            let doing = format!("cargo update {spec} --precise {version}");
            self.run(&source, args, &target_dir, &doing)?;
        }
        self.run(&source, vec!["fetch".into()], &target_dir, "cargo fetch")?;
        let text = fs_err::read_to_string(source.join(&self.lock_path))?;
        state::write_atomic(&cached, text.as_bytes())?;
        let inputs = LockInputs {
            lock: text,
            ..inputs
        };
        Ok(Resolution {
            set: resolved_set(&cached, inputs)?,
            reused: false,
            moves_not_held: None,
            built: None,
        })
    }

    /// The service's binaries built against `set`'s lock, kept under
    /// `<cache>/envs/<id>/bin`.
    pub(crate) fn materialise(&self, set: &ResolvedSet) -> Result<Environment, BuildError> {
        let inputs = set
            .locked
            .as_ref()
            .context("a cargo resolved set carries its lock")?;
        let key = hash(&[
            "cargo-env-v1",
            &self.cargo.version,
            &self.source_digest,
            &inputs.manifests_text(),
            &inputs.lock,
        ]);
        let id = key[..16].to_owned();
        let dir = self.dirs.envs_dir().join(&id);
        let bin = dir.join("bin");
        let complete = dir.join("complete");
        let contents = dir.join("contents");
        let _lock = state::lock(&self.dirs.env_lock(&id))?;
        let in_use = std::sync::Arc::new(state::lock_shared(&self.dirs.env_use(&id))?);
        let _ = std::fs::write(dir.join(crate::sys::gc::USED_FILE), b"");
        let environment = |reused, rebuilt| Environment {
            id: id.clone(),
            dir: dir.clone(),
            bin: bin.clone(),
            python: None,
            node_modules: None,
            local_packages: Vec::new(),
            reused,
            hash_checked: false,
            built_from_source: Vec::new(),
            raised_requirements: inputs.raised.iter().map(ToString::to_string).collect(),
            rebuilt,
            _in_use: std::sync::Arc::clone(&in_use),
        };
        // Binaries a service overwrote are built again, and that is said.
        let mut rebuilt = None;
        if complete.exists() {
            match state::changed_since(&bin, &contents) {
                None => return Ok(environment(true, None)),
                Some(changed) => rebuilt = Some(format!("{changed} changed since it was built")),
            }
        }
        if dir.exists() {
            rebuilt = super::clear_for_rebuild(&dir, &in_use, &id, self.timeout, rebuilt)?;
        }
        fs_err::create_dir_all(&bin)?;
        let scratch = state::temp_dir()?;
        let source = self.copy_source(scratch.path(), inputs)?;
        let target_dir = self.dirs.cargo_target_dir();
        let mut args = vec![OsString::from("build"), "--locked".into()];
        args.extend(["--message-format".into(), "json-render-diagnostics".into()]);
        // One build at a time in the shared target folder: its binaries are
        // overwritten by the next build and must be copied out first.
        let _target = state::lock(&target_dir.with_extension("lock"))?;
        let doing = match inputs.raised.is_empty() {
            true => "cargo build".to_owned(),
            false => format!("cargo build with {}", raised_list(&inputs.raised)),
        };
        let output = self.output(&source, args, &target_dir, &doing)?;
        let mut copied = 0;
        for message in cargo_metadata::Message::parse_stream(&output.stdout[..]) {
            if let cargo_metadata::Message::CompilerArtifact(artifact) = message?
                && let Some(executable) = artifact.executable
                && artifact.target.is_kind(cargo_metadata::TargetKind::Bin)
            {
                let name = executable.file_name().context("a binary has a file name")?;
                fs_err::copy(executable.as_std_path(), bin.join(name))?;
                copied += 1;
            }
        }
        if copied == 0 {
            return Err(BuildError::Refused(
                "cargo build produced no binary: the service needs a [[bin]] target".to_owned(),
            ));
        }
        state::record_listing(&bin, &contents)?;
        state::write_atomic(&complete, inputs.lock.as_bytes())?;
        Ok(environment(false, rebuilt))
    }

    /// A private copy of the service with the inputs' lock and manifests in
    /// place of its own.
    fn copy_source(&self, scratch: &Path, inputs: &LockInputs) -> anyhow::Result<PathBuf> {
        let source = scratch.join("service");
        state::copy_tree(&self.root, &source)?;
        fs_err::write(source.join(&self.lock_path), &inputs.lock)?;
        for (path, manifest) in &inputs.manifests {
            fs_err::write(source.join(path), manifest)?;
        }
        Ok(source)
    }

    fn run(
        &self,
        dir: &Path,
        args: Vec<OsString>,
        target_dir: &Path,
        doing: &str,
    ) -> Result<(), BuildError> {
        self.output(dir, args, target_dir, doing)?;
        Ok(())
    }

    fn output(
        &self,
        dir: &Path,
        mut args: Vec<OsString>,
        target_dir: &Path,
        doing: &str,
    ) -> Result<std::process::Output, BuildError> {
        if self.offline {
            args.push("--offline".into());
        }
        let command = self.cargo.command(dir, args, target_dir);
        run_step(command, self.timeout, doing, |output| {
            // The private copy's path means nothing to a reader; cargo's first
            // error line, last, is what the report's summary shows.
            let said = String::from_utf8_lossy(&output.stderr)
                .replace(&*dir.to_string_lossy(), "<service>");
            format!(
                "{}\n{doing}: {}",
                crate::sys::log::tail(said.trim(), 40),
                first_error(&said)
            )
        })
        .map_err(|err| err.offline_aware(self.offline))
    }
}

fn raised_list(raised: &[Raised]) -> String {
    raised
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cargo's first error line, with where the compiler found it: in the
/// service's own code, or in a dependency (a registry or git checkout).
fn first_error(said: &str) -> String {
    let lines: Vec<&str> = said.lines().collect();
    let Some(at) = lines.iter().position(|line| line.starts_with("error")) else {
        return "cargo printed no error line".to_owned();
    };
    let location = lines[at + 1..]
        .iter()
        .take_while(|line| !line.starts_with("error") && !line.starts_with("warning"))
        .find_map(|line| line.trim_start().strip_prefix("--> "));
    let Some(location) = location else {
        return lines[at].to_owned();
    };
    format!("{} ({})", lines[at], place_of(location))
}

/// Where a compiler error or a panic is: `in the service's code: src/main.rs:3:5`
/// or `in the dependency jsonwebtoken-10.4.0: src/crypto/mod.rs:124:40`.
pub(crate) fn place_of(location: &str) -> String {
    let location = location.trim().trim_start_matches("<service>/");
    match dependency_of(location) {
        Some((krate, inside)) => format!("in the dependency {krate}: {inside}"),
        None => format!("in the service's code: {location}"),
    }
}

/// `(crate-version, path inside it)` when `location` is inside a crate cargo
/// downloaded: `~/.cargo/registry/src/<index>/<crate>-<version>/…` or a git checkout.
fn dependency_of(location: &str) -> Option<(&str, &str)> {
    let path = Path::new(location);
    if !path.is_absolute() {
        return None;
    }
    let mut parts = location.split('/');
    parts.find(|part| *part == "registry" || *part == "git")?;
    let after = match parts.next()? {
        // registry/src/<index>/<crate>-<version>/…, git/checkouts/<repo>/<rev>/…
        "src" | "checkouts" => {
            parts.next()?;
            parts.next()?
        }
        _ => return None,
    };
    let inside = location.split_once(&format!("/{after}/"))?.1;
    Some((after, inside))
}

/// Digest of the files under `root` other than `lock`.
pub(crate) fn source_digest(root: &Path, lock: &Path) -> anyhow::Result<String> {
    let mut hasher = sha2::Sha256::new();
    state::hash_tree(root, &mut hasher, |path| path != lock)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The set a lock holds, read back from where it was cached.
fn resolved_set(path: &Path, inputs: LockInputs) -> anyhow::Result<ResolvedSet> {
    let source = Source {
        path: path.to_owned(),
        text: inputs.lock.clone(),
    };
    let pins = cargo_lock::parse(&source)?;
    Ok(ResolvedSet::from_lock(&pins, inputs))
}

/// Which of a crate's locked versions a pin replaces: the one semver-compatible
/// with it (a lock holds at most one per compatibility range), else the newest.
fn updated_version<'a>(locked: &[&'a Version], pin: &Version) -> &'a Version {
    locked
        .iter()
        .copied()
        .find(|version| version.is_compatible_with(pin))
        .unwrap_or_else(|| locked.last().expect("a locked package has a version"))
}

/// Rust's ecosystem: cargo moves pins in the lock and builds, the toolchain
/// decides `rust-version`, the registry index lists versions.
impl super::Ecosystem for CargoBuilder {
    fn baseline(&self) -> &BaselineFile {
        &self.baseline
    }

    fn describe(&self) -> String {
        self.cargo.version.replace('\n', ", ")
    }

    fn toolchain(&self) -> String {
        self.cargo.version.clone()
    }

    fn resolve_baseline(&self) -> Result<Resolution, BuildError> {
        CargoBuilder::resolve_baseline(self)
    }

    fn resolve_file(&self, path: &Path) -> Result<Resolution, BuildError> {
        CargoBuilder::resolve_file(self, path)
    }

    fn resolve_cell(&self, baseline: &ResolvedSet, pins: &[Pin]) -> Result<Resolution, BuildError> {
        CargoBuilder::resolve_cell(self, baseline, pins)
    }

    fn check_exists(&self, pin: &Pin) -> Result<(), BuildError> {
        CargoBuilder::check_exists(self, pin)
    }

    fn materialise(&self, set: &ResolvedSet) -> Result<Environment, BuildError> {
        CargoBuilder::materialise(self, set)
    }

    fn registry(&self, project: &Path) -> anyhow::Result<Arc<dyn Registry>> {
        Ok(Arc::new(RegistryIndex {
            rust: self.cargo.rust_version()?,
            project: project.to_owned(),
        }))
    }

    fn registry_name(&self) -> &'static str {
        "registry"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::package::Ecosystem;

    #[test]
    fn the_first_error_says_whether_it_is_in_the_service_or_a_dependency() {
        let ours = "   Compiling auth-service v0.1.0 (<service>)
error[E0433]: cannot find `async_trait` in `axum`
   --> src/main.rs:152:9
    |
152 | #[axum::async_trait]
error: could not compile `auth-service` (bin \"auth-service\") due to 1 previous error";
        assert_eq!(
            first_error(ours),
            "error[E0433]: cannot find `async_trait` in `axum` (in the service's code: src/main.rs:152:9)"
        );
        let theirs = "error[E0599]: no method named `foo` found
  --> /root/.cargo/registry/src/index.mirror-1949cf8c6b5b557f/tower-0.4.13/src/util.rs:10:5
   |";
        assert_eq!(
            first_error(theirs),
            "error[E0599]: no method named `foo` found (in the dependency tower-0.4.13: src/util.rs:10:5)"
        );
        assert_eq!(
            first_error("error: failed to select a version for the requirement `x = \"^1\"`"),
            "error: failed to select a version for the requirement `x = \"^1\"`"
        );
    }

    #[test]
    fn a_pin_replaces_the_locked_version_it_is_compatible_with() {
        let v = |text| Version::parse(Ecosystem::Cargo, text).unwrap();
        let (old, new) = (v("1.0.109"), v("2.0.50"));
        let locked = [&old, &new];
        assert_eq!(updated_version(&locked, &v("2.0.60")), &new);
        assert_eq!(updated_version(&locked, &v("1.0.110")), &old);
        let (zero_one, zero_two) = (v("0.1.4"), v("0.2.1"));
        let locked = [&zero_one, &zero_two];
        assert_eq!(updated_version(&locked, &v("0.1.9")), &zero_one);
        // A major bump of a crate locked once replaces it.
        assert_eq!(updated_version(&[&old], &v("3.0.0")), &old);
    }
}
