//! Python environments: resolve a cell's pins with uv, install the resolved set.
//!
//! Resolutions are cached by their inputs and environments by their resolved
//! set, both under the cache folder; an environment is trusted only once its
//! `complete` marker exists, which is written last.

mod index;
mod index_config;
pub mod interpreter;
pub mod uv;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::index::Registry;
use super::{
    BuildError, Environment, PythonEnvironment, Resolution, ResolvedSet, hash, os_args, run_step,
};
use crate::input::baseline::{BaselineFile, DeclaredHashes};
use crate::model::cell::Pin;
use crate::model::package::PackageName;
use crate::sys::process;
use crate::sys::state::{self, StateDirs};
pub(crate) use index::PackageIndex;
pub use interpreter::{Python, find};
pub(crate) use uv::Uv;

/// How far released packages may move in a resolution.
enum Nearness<'a> {
    /// Newest-first, nothing preferred: a file resolved as it is.
    None,
    /// Newest-first, preferring the versions of this set.
    Preferences(&'a ResolvedSet),
    /// Lowest-first within these `name>=version` / `name==version` bounds.
    LowestWithin(&'a str),
}

/// Resolves and installs Python environments for one service.
#[derive(Debug, Clone)]
pub struct UvBuilder {
    pub python: Python,
    pub uv: Uv,
    pub dirs: StateDirs,
    pub baseline: BaselineFile,
    /// Digests the service's files declare; when any exist, every install is
    /// hash-checked.
    pub hashes: DeclaredHashes,
    pub timeout: Duration,
    /// Refuse source distributions: installing runs no package's build code.
    pub no_build: bool,
    /// Never reach the package index: use what uv and the harness have cached.
    pub offline: bool,
}

impl UvBuilder {
    /// Resolves the baseline file as the service declares it.
    pub fn resolve_baseline(&self) -> Result<Resolution, BuildError> {
        // A lock's other packages are held exactly where it has them.
        let baseline = &self.baseline;
        self.resolve(
            &baseline.requirement_lines(),
            &baseline.constraint_lines(),
            &Nearness::None,
        )
    }

    /// Resolves a requirements file (or pyproject.toml) as it is, with nothing forced.
    pub fn resolve_file(&self, path: &Path) -> Result<Resolution, BuildError> {
        let file =
            BaselineFile::load_with(path, &self.baseline.groups).map_err(anyhow::Error::from)?;
        self.resolve(
            &file.requirement_lines(),
            &file.constraint_lines(),
            &Nearness::None,
        )
    }

    /// Whether the index offers `pin` for installing here: `Err` with uv's
    /// answer when it has no such version, or when the version is yanked.
    pub fn check_exists(&self, pin: &Pin) -> Result<(), BuildError> {
        self.check_offered(
            &format!("{}=={}\n", pin.package, pin.version),
            &pin.to_string(),
        )
    }

    /// Whether the index offers every version the baseline file pins, in
    /// one look-up: `Err` with uv's answer naming the first version it has
    /// no such release of, or each one it has yanked.
    pub fn check_baseline_offered(&self) -> Result<(), BuildError> {
        let baseline = &self.baseline;
        let pinned: String = baseline
            .requirements
            .iter()
            .chain(&baseline.constraints)
            .filter(|declared| declared.pinned_version().is_some())
            .map(|declared| format!("{}\n", declared.requirement))
            .collect();
        if pinned.is_empty() {
            return Ok(());
        }
        self.check_offered(&pinned, "the baseline's pins")
    }

    /// Looks `requirements` (exact pins, one per line) up without their
    /// dependencies.
    fn check_offered(&self, requirements: &str, what: &str) -> Result<(), BuildError> {
        let scratch = state::temp_dir()?;
        let input = scratch.path().join("pins.in");
        fs_err::write(&input, requirements)?;
        // Not --quiet: uv says "is yanked" as a warning on a successful resolution.
        let mut args = os_args(&["pip", "compile", "--no-deps", "--no-header", "--python"]);
        args.push(self.python.path.clone().into());
        args.push(input.into());
        if self.offline {
            args.push("--offline".into());
        }
        // Reading a source distribution's metadata may mean building it:
        // under --no-build, a look-up runs no package code either.
        if self.no_build {
            args.push("--no-build".into());
        }
        let output =
            process::run_captured(self.uv.command(args), self.timeout)?.with_context(|| {
                format!(
                    "looking {what} up did not finish within {}",
                    humantime::format_duration(self.timeout)
                )
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(BuildError::Refused(stderr.trim().to_owned()).offline_aware(self.offline));
        }
        let yanked: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("is yanked"))
            .map(|line| line.trim_start_matches("warning: "))
            .collect();
        if yanked.is_empty() {
            Ok(())
        } else {
            Err(BuildError::Refused(yanked.join("\n")))
        }
    }

    /// Resolves the baseline with `pins` forced on top.
    ///
    /// The baseline's root requirements stay pinned; packages that some other
    /// package requires are released and move only as far as the pins make
    /// them: to the lowest version at or above the baseline's that fits.
    ///
    /// Two resolutions. The first, newest-first with the baseline's versions
    /// as preferences, finds a solution; where it had to move a released
    /// package it takes that package's newest release, which may drag a third
    /// one across a major version (Flask 2.3 releases Werkzeug, and the newest
    /// Werkzeug is 3.x although 2.3.7 fits). The second resolves lowest-first
    /// with the first's moves as bounds: a package the first moved up may go
    /// no lower than the baseline's version, one it moved down stays where it
    /// went, a new one stays at the version it got. The first's solution
    /// meets every bound, so the second always has one; it is the nearest.
    pub fn resolve_cell(
        &self,
        baseline: &ResolvedSet,
        pins: &[Pin],
    ) -> Result<Resolution, BuildError> {
        let pinned = |name: &PackageName| pins.iter().any(|pin| &pin.package == name);
        let mut input = String::new();
        for declared in &self.baseline.requirements {
            let name = declared.package();
            if pinned(&name) || !baseline.is_transitive(&name) {
                input.push_str(&format!("{}\n", declared.requirement));
            }
        }
        let overrides: String = pins
            .iter()
            .map(|pin| format!("{}=={}\n", pin.package, pin.version))
            .collect();
        let newest = self.resolve(&input, &overrides, &Nearness::Preferences(baseline))?;
        let moved_up = newest.set.packages.iter().any(|(name, resolved)| {
            !pinned(name)
                && baseline
                    .packages
                    .get(name)
                    .is_some_and(|before| resolved.version > before.version)
        });
        if !moved_up {
            return Ok(newest);
        }
        let mut bounds = String::new();
        for (name, resolved) in newest.set.packages.iter().filter(|(name, _)| !pinned(name)) {
            let bound = match baseline.packages.get(name) {
                Some(before) if resolved.version >= before.version => {
                    format!("{name}>={}", before.version)
                }
                _ => format!("{name}=={}", resolved.version),
            };
            bounds.push_str(&bound);
            bounds.push('\n');
        }
        // The lowest-first search may need an old release of a package the
        // newest solution did not have at all (greenlet 0.1, from SQLAlchemy
        // 1.4) that does not build: its floor goes up a major version and the
        // search runs again, so the rest still moves no further than it must.
        let mut unbuildable: Vec<String> = Vec::new();
        loop {
            let refused: String;
            match self.resolve(&input, &overrides, &Nearness::LowestWithin(&bounds)) {
                Err(BuildError::Refused(why)) => refused = why,
                // Resolved is not installed: an old release may resolve from
                // its metadata and still not build (greenlet 1.0 on Python
                // 3.11). The nearest set is built here, and what fails to
                // build is stepped over the same way.
                Ok(nearest) => match self.materialise(&nearest.set) {
                    Ok(environment) => {
                        let stepped = (!unbuildable.is_empty()).then(|| {
                            format!(
                                "releases that do not build were stepped over: {}",
                                unbuildable.join(", ")
                            )
                        });
                        return Ok(Resolution {
                            moves_not_held: stepped,
                            built: Some(environment),
                            ..nearest
                        });
                    }
                    Err(BuildError::Refused(why)) => refused = why,
                    Err(err) => return Err(err),
                },
                Err(err) => return Err(err),
            }
            let raised = failed_release(&refused)
                .filter(|_| unbuildable.len() < FLOOR_RAISES)
                .and_then(|(name, version)| {
                    let major: u64 = version.split('.').next()?.parse().ok()?;
                    Some((
                        format!("{name}=={version}"),
                        format!("{name}>={}", major + 1),
                    ))
                })
                .filter(|(release, _)| !unbuildable.contains(release));
            let Some((release, floor)) = raised else {
                // The newest solution stands, and the cell says so.
                return Ok(Resolution {
                    moves_not_held: Some(format!(
                        "the nearest versions could not be resolved or built ({}); the newest that fit were used",
                        refused
                            .lines()
                            .map(str::trim)
                            .find(|line| !line.is_empty())
                            .unwrap_or("no reason given")
                    )),
                    ..newest
                });
            };
            bounds.push_str(&format!("{floor}\n"));
            unbuildable.push(release);
        }
    }

    fn resolve(
        &self,
        input: &str,
        overrides: &str,
        nearness: &Nearness<'_>,
    ) -> Result<Resolution, BuildError> {
        let (preferences, bounds) = match nearness {
            Nearness::None => (String::new(), ""),
            Nearness::Preferences(baseline) => (baseline.to_preferences(), ""),
            Nearness::LowestWithin(bounds) => (String::new(), *bounds),
        };
        let key = hash(&[
            "resolve-v3",
            if self.no_build {
                "no-build"
            } else {
                "may-build"
            },
            if self.hashes.is_empty() {
                "no-hashes"
            } else {
                "hashes"
            },
            &self.python.path.to_string_lossy(),
            &self.python.version,
            &self.uv.version,
            input,
            overrides,
            &preferences,
            bounds,
        ]);
        let cached = self.dirs.resolutions_dir().join(format!("{key}.txt"));
        if let Ok(text) = fs_err::read_to_string(&cached) {
            return Ok(Resolution {
                set: self.with_declared_hashes(ResolvedSet::parse(&text)?),
                reused: true,
                moves_not_held: None,
                built: None,
            });
        }
        let scratch = state::temp_dir()?;
        let input_path = scratch.path().join("requirements.in");
        let output_path = scratch.path().join("requirements.txt");
        fs_err::write(&input_path, input)?;
        // An existing output file is uv's way of saying "prefer these versions".
        fs_err::write(&output_path, &preferences)?;
        let mut args = os_args(&[
            "pip",
            "compile",
            "--quiet",
            "--no-header",
            "--annotation-style",
            "line",
        ]);
        args.extend([OsString::from("--python"), self.python.path.clone().into()]);
        if self.no_build {
            args.push("--no-build".into());
        }
        if !self.hashes.is_empty() {
            args.push("--generate-hashes".into());
        }
        args.extend([OsString::from("--output-file"), output_path.clone().into()]);
        if !overrides.is_empty() {
            let overrides_path = scratch.path().join("overrides.txt");
            fs_err::write(&overrides_path, overrides)?;
            args.extend([OsString::from("--override"), overrides_path.into()]);
        }
        if !bounds.is_empty() {
            let bounds_path = scratch.path().join("bounds.txt");
            fs_err::write(&bounds_path, bounds)?;
            args.extend([OsString::from("--constraint"), bounds_path.into()]);
            args.extend([OsString::from("--resolution"), "lowest".into()]);
        }
        args.push(input_path.into());
        self.run_uv(args, "resolving")?;
        let text = fs_err::read_to_string(&output_path)?;
        let set = self.with_declared_hashes(ResolvedSet::parse(&text)?);
        state::write_atomic(&cached, text.as_bytes())?;
        Ok(Resolution {
            set,
            reused: false,
            moves_not_held: None,
            built: None,
        })
    }

    /// The index's digests for `set`, replaced by the files' own where they
    /// declare the same pin.
    fn with_declared_hashes(&self, mut set: ResolvedSet) -> ResolvedSet {
        set.use_declared_hashes(&self.hashes);
        set
    }

    /// The environment for `set`, installed once and shared by every cell that needs it.
    pub fn materialise(&self, set: &ResolvedSet) -> Result<Environment, BuildError> {
        let requirements = set.to_requirements();
        let key = hash(&[
            // v2: environments hold compiled bytecode.
            "env-v2",
            &self.python.path.to_string_lossy(),
            &self.python.version,
            &requirements,
            &local_sources_digest(set)?,
        ]);
        let id = key[..16].to_owned();
        let envs = self.dirs.envs_dir();
        let dir = envs.join(&id);
        let venv = dir.join("venv");
        let python = venv.join("bin").join("python");
        let complete = dir.join("complete");
        let built_list = dir.join("built-from-source.txt");
        let hash_checked = set.is_hash_checked();
        let _lock = state::lock(&self.dirs.env_lock(&id))?;
        let in_use = std::sync::Arc::new(state::lock_shared(&self.dirs.env_use(&id))?);
        // When a run last used it: what `gc` goes by.
        let _ = std::fs::write(dir.join(crate::sys::gc::USED_FILE), b"");
        let contents = dir.join("contents");
        let environment = |reused, built_from_source, rebuilt| Environment {
            id: id.clone(),
            dir: dir.clone(),
            bin: venv.join("bin"),
            python: Some(PythonEnvironment {
                interpreter: python.clone(),
                venv: venv.clone(),
            }),
            node_modules: None,
            local_packages: Vec::new(),
            reused,
            hash_checked,
            built_from_source,
            raised_requirements: Vec::new(),
            rebuilt,
            _in_use: std::sync::Arc::clone(&in_use),
        };
        // A complete environment whose interpreter is gone (removed by hand,
        // or its base Python uninstalled) is damaged, not the service's fault:
        // it is rebuilt like a half-built one. One whose files changed since
        // it was built (a service wrote into it) would carry that change into
        // every later run with the same resolved set: rebuilt, and said.
        let mut rebuilt = None;
        if complete.exists() && python.exists() {
            match state::changed_since(&venv, &contents) {
                None => {
                    let built = fs_err::read_to_string(&built_list).unwrap_or_default();
                    let built = built.lines().map(str::to_owned).collect();
                    return Ok(environment(true, built, None));
                }
                Some(changed) => {
                    rebuilt = Some(format!("{changed} changed since it was built"));
                }
            }
        }
        // Whatever is here was left by an interrupted build, or changed
        // since it was built, and is not trusted.
        if dir.exists() {
            rebuilt = super::clear_for_rebuild(&dir, &in_use, &id, self.timeout, rebuilt)?;
        }
        fs_err::create_dir_all(&dir)?;
        let requirements_path = dir.join("requirements.txt");
        fs_err::write(&requirements_path, &requirements)?;
        let mut venv_args = os_args(&["venv", "--quiet", "--python"]);
        venv_args.extend([self.python.path.clone().into(), venv.clone().into()]);
        self.run_uv(venv_args, "creating the environment")?;
        // Services run with PYTHONDONTWRITEBYTECODE (a shared environment stays
        // as built), so bytecode compiled now saves compiling every import at
        // every service start: start-up drops from about 0.9 s to 0.35 s for
        // the bundled Flask service.
        let mut sync_args = os_args(&["pip", "sync", "--quiet", "--compile-bytecode"]);
        if self.no_build {
            sync_args.push("--no-build".into());
        }
        // A lock's path, git and URL packages have no digests to require:
        // then every digest there is is still verified.
        if hash_checked && set.direct.is_empty() {
            sync_args.push("--require-hashes".into());
        } else if hash_checked {
            sync_args.push("--verify-hashes".into());
        }
        sync_args.push("--python".into());
        sync_args.extend([python.clone().into(), requirements_path.into()]);
        self.run_uv(sync_args, "installing")?;
        let built_from_source = built_from_source(&venv)?;
        let listed: String = built_from_source.iter().map(|b| format!("{b}\n")).collect();
        fs_err::write(&built_list, listed)?;
        state::record_listing(&venv, &contents)?;
        state::write_atomic(&complete, requirements.as_bytes())?;
        Ok(environment(false, built_from_source, rebuilt))
    }

    fn run_uv(&self, mut args: Vec<OsString>, doing: &str) -> Result<(), BuildError> {
        if self.offline {
            args.push("--offline".into());
        }
        run_step(self.uv.command(args), self.timeout, doing, |output| {
            String::from_utf8_lossy(&output.stderr).trim().to_owned()
        })
        .map_err(|err| err.offline_aware(self.offline))?;
        Ok(())
    }
}

/// Packages of `venv` that uv built from a source distribution: uv leaves a
/// `uv_build.json` record in the `.dist-info` of every wheel it built, whether
/// it built it now or took it from its own cache.
fn built_from_source(venv: &Path) -> anyhow::Result<Vec<String>> {
    let mut built = Vec::new();
    for lib in fs_err::read_dir(venv.join("lib"))? {
        let site_packages = lib?.path().join("site-packages");
        let Ok(entries) = fs_err::read_dir(&site_packages) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if let Some(stem) = name.strip_suffix(".dist-info")
                && path.join("uv_build.json").exists()
                && let Some((package, version)) = stem.split_once('-')
            {
                built.push(format!("{package} {version}"));
            }
        }
    }
    built.sort();
    Ok(built)
}

/// A digest of the files of each local folder or file the set installs
/// from (a lock's path packages): an edit there makes a new environment
/// instead of reusing one built from the old files.
fn local_sources_digest(set: &ResolvedSet) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for requirement in set.direct.values() {
        if let Some((_, place)) = requirement.split_once(" @ file://") {
            let place = Path::new(place);
            hasher.update(place.as_os_str().as_encoded_bytes());
            if place.is_file() {
                hasher.update(fs_err::read(place)?);
            } else {
                state::hash_tree(place, &mut hasher, |_| true)?;
            }
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// How many unbuildable releases a nearest resolution steps over before it
/// gives up and keeps the newest solution.
const FLOOR_RAISES: usize = 4;

/// `(name, version)` of the release uv says it failed to build, from its
/// error: ``Failed to build `greenlet==0.1` `` (or "to download and build").
fn failed_release(said: &str) -> Option<(&str, &str)> {
    let (_, rest) = said.split_once("build `")?;
    let (release, _) = rest.split_once('`')?;
    release.split_once("==")
}

/// Python's ecosystem: uv resolves and installs, the interpreter decides
/// `Requires-Python`, the package index lists versions.
impl super::Ecosystem for UvBuilder {
    fn baseline(&self) -> &BaselineFile {
        &self.baseline
    }

    fn describe(&self) -> String {
        format!("{} and Python {}", self.uv.version, self.python.version)
    }

    fn toolchain(&self) -> String {
        format!("{} {}", self.python.path.display(), self.python.version)
    }

    fn resolve_baseline(&self) -> Result<Resolution, BuildError> {
        UvBuilder::resolve_baseline(self)
    }

    fn resolve_file(&self, path: &Path) -> Result<Resolution, BuildError> {
        UvBuilder::resolve_file(self, path)
    }

    fn resolve_cell(&self, baseline: &ResolvedSet, pins: &[Pin]) -> Result<Resolution, BuildError> {
        UvBuilder::resolve_cell(self, baseline, pins)
    }

    fn check_exists(&self, pin: &Pin) -> Result<(), BuildError> {
        UvBuilder::check_exists(self, pin)
    }

    /// uv's refusal says the index has no such version, or has yanked it,
    /// or else that the index could not be reached.
    fn says_nothing_of_the_version(&self, refusal: &str) -> bool {
        !(refusal.contains("no version of") || refusal.contains("yanked"))
    }

    fn check_baseline_offered(&self) -> Result<(), BuildError> {
        UvBuilder::check_baseline_offered(self)
    }

    fn materialise(&self, set: &ResolvedSet) -> Result<Environment, BuildError> {
        UvBuilder::materialise(self, set)
    }

    fn registry(&self, project: &Path) -> anyhow::Result<Arc<dyn Registry>> {
        Ok(Arc::new(PackageIndex::new(
            self.python.clone(),
            project.to_owned(),
        )))
    }

    fn registry_name(&self) -> &'static str {
        "package index"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_that_failed_to_build_is_read_from_what_uv_says() {
        assert_eq!(
            failed_release(
                "error: Failed to build `greenlet==1.0.0`\n  cause: The build backend returned an error"
            ),
            Some(("greenlet", "1.0.0"))
        );
        assert_eq!(
            failed_release("  × Failed to download and build `greenlet==0.1`"),
            Some(("greenlet", "0.1"))
        );
        assert_eq!(failed_release("error: No solution found"), None);
    }
}
