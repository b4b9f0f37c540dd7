//! Builds a cell's environment: resolve its pins, build or install the
//! resolved set, with each ecosystem's own tools: uv (`python/`), cargo
//! (`cargo/`) or npm (`node/`), each behind the [`Ecosystem`] seam.
//!
//! Resolutions are cached by their inputs and environments by their resolved
//! set, both under the cache folder; an environment is trusted only once its
//! `complete` marker exists, which is written last. This module never starts
//! the service.

pub(crate) mod cargo;
pub(crate) mod ecosystem;
pub(crate) mod index;
pub(crate) mod moves;
pub(crate) mod node;
pub mod python;
pub(crate) mod resolved;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::sys::process;

pub(crate) use cargo::CargoBuilder;
pub(crate) use ecosystem::Ecosystem;
pub(crate) use node::NpmBuilder;
pub(crate) use python::Python;
pub use python::{UvBuilder, uv};
pub(crate) use resolved::{LockInputs, ResolvedSet};

/// Resolves and builds environments for one service: its ecosystem's
/// tools, shared by every cell.
#[derive(Debug, Clone)]
pub(crate) struct Builder(std::sync::Arc<dyn Ecosystem>);

impl Builder {
    pub(crate) fn new(ecosystem: impl Ecosystem + 'static) -> Builder {
        Builder(std::sync::Arc::new(ecosystem))
    }
}

impl std::ops::Deref for Builder {
    type Target = dyn Ecosystem;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// A resolved set, and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub set: ResolvedSet,
    pub reused: bool,
    /// Why the nearest moves of released packages could not be held, when
    /// the newest versions that fit were used instead.
    pub moves_not_held: Option<String>,
    /// The environment, when resolving had to build it to know that the
    /// nearest versions install (Python); otherwise it is built next.
    pub built: Option<Environment>,
}

/// A built environment a service can run in.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Short content hash of what built it and of the resolved set.
    pub id: String,
    pub dir: PathBuf,
    /// The programs of the environment, first on the service's `PATH`:
    /// the venv's `bin`, or the binaries cargo built.
    pub bin: PathBuf,
    /// A Python environment's interpreter and venv.
    pub python: Option<PythonEnvironment>,
    /// A Node environment's installed packages: linked into each run copy
    /// of the service as its `node_modules`.
    pub node_modules: Option<PathBuf>,
    /// The folders (relative to the service's) of the local packages npm
    /// installs from the service's own source, a workspace's members or
    /// `file:` folders: each gets its own installed `node_modules`, and the
    /// links the install made to them lead to the run copy's folders, not
    /// to the environment's copies of their `package.json`.
    pub local_packages: Vec<PathBuf>,
    pub reused: bool,
    /// Installed only after checking each download against its digests.
    pub hash_checked: bool,
    /// `name version` of each package built from a source distribution, which
    /// ran that package's build code on this machine.
    pub built_from_source: Vec<String>,
    /// Requirements raised in a scratch copy of the manifests so that a
    /// major bump could be built (cargo).
    pub raised_requirements: Vec<String>,
    /// Why a cached environment was built again: what had changed in it
    /// since it was built (a service that wrote into it).
    pub rebuilt: Option<String>,
    /// Its use lock, held shared while this value (or a clone) lives: `gc`
    /// leaves an environment alone while a run's services may use it.
    pub(crate) _in_use: std::sync::Arc<std::fs::File>,
}

impl Environment {
    /// Puts what the environment lends a run copy of the service into it:
    /// a Node environment's packages as its `node_modules` (the copy never
    /// has its own: the source copy leaves every `node_modules` out).
    pub(crate) fn lay_into(&self, service_dir: &std::path::Path) -> std::io::Result<()> {
        let Some(modules) = &self.node_modules else {
            return Ok(());
        };
        if self.local_packages.is_empty() {
            return std::os::unix::fs::symlink(modules, service_dir.join("node_modules"));
        }
        // Node follows links to their real place and resolves from there:
        // a member linked to the environment's folder would be only its
        // package.json. So the copy's `node_modules` is a folder of links,
        // each to the environment's package, but the install's own relative
        // links (to the members) copied as they are, leading to the copy's.
        lay_links(modules, &service_dir.join("node_modules"))?;
        for member in &self.local_packages {
            let own = self.dir.join(member).join("node_modules");
            let copy = service_dir.join(member);
            // pnpm's links lead from a member's folder to the root's
            // `.pnpm` store and to the other members: kept relative too.
            if own.is_dir() && copy.is_dir() {
                lay_links(&own, &copy.join("node_modules"))?;
            }
        }
        Ok(())
    }
}

/// `into`, a folder of links to each entry of `from` (a scope's folder,
/// `@scope`, is a folder of links itself); a relative link in `from` is
/// copied as it is, so that it leads to the copy's own folders.
fn lay_links(from: &std::path::Path, into: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(into)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let (source, target) = (entry.path(), into.join(&name));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            let link = std::fs::read_link(&source)?;
            if link.is_relative() {
                std::os::unix::fs::symlink(link, target)?;
                continue;
            }
        }
        if kind.is_dir() && name.to_string_lossy().starts_with('@') {
            lay_links(&source, &target)?;
            continue;
        }
        std::os::unix::fs::symlink(source, target)?;
    }
    Ok(())
}

/// Removes an environment's folder `dir` (left by an interrupted build, or
/// changed since it was built: `why`) to build it again, once no other run
/// uses it; `why` with the wait added when there was one.
pub(crate) fn clear_for_rebuild(
    dir: &std::path::Path,
    in_use: &std::fs::File,
    id: &str,
    patience: Duration,
    why: Option<String>,
) -> Result<Option<String>, BuildError> {
    let waited = wait_for_other_users(in_use, id, patience)?;
    fs_err::remove_dir_all(dir)?;
    Ok(rebuilt_after(why, waited))
}

/// Waits until no other run holds environment `id`'s use lock before its
/// folder is removed to be built again: their services may be running from
/// it, and pulling its packages from under them would fail their cells for
/// no fault of the versions. `in_use`, this run's own shared hold, is made
/// exclusive for that (new runs wait on the build lock, held by the caller
/// throughout) and shared again once it is won. Gives up after `patience`,
/// as an error of the harness's own, never a verdict on the versions.
/// Returns how long it waited, when it had to.
fn wait_for_other_users(
    in_use: &std::fs::File,
    id: &str,
    patience: Duration,
) -> Result<Option<Duration>, BuildError> {
    let waiting = std::time::Instant::now();
    loop {
        // A refused conversion gives up the shared hold too (flock):
        // harmless, since the build lock keeps every other run out.
        match in_use.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(anyhow::Error::new(err)
                    .context(format!("cannot lock environment {id}"))
                    .into());
            }
        }
        if waiting.elapsed() >= patience {
            return Err(BuildError::Harness(anyhow::anyhow!(
                "environment {id} must be built again, and another run still uses it after {}",
                humantime::format_duration(patience)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    in_use
        .lock_shared()
        .with_context(|| format!("cannot lock environment {id}"))?;
    let waited = waiting.elapsed();
    Ok((waited >= Duration::from_millis(100)).then_some(waited))
}

/// Why an environment was built again, with the wait for other runs to
/// finish with it when there was one.
fn rebuilt_after(why: Option<String>, waited: Option<Duration>) -> Option<String> {
    match (why, waited) {
        (Some(why), Some(waited)) => Some(format!(
            "{why}; built again once the other runs using it had finished ({} later)",
            humantime::format_duration(Duration::from_secs(waited.as_secs().max(1)))
        )),
        (why, _) => why,
    }
}

#[derive(Debug, Clone)]
pub struct PythonEnvironment {
    pub interpreter: PathBuf,
    pub venv: PathBuf,
}

/// Why a cell's environment could not be made: the cell's versions were
/// refused (its verdict is `build-failed`), or the harness failed on its own
/// (its verdict is `error`, and it runs again next time).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// In the words of the tool that refused (a resolver conflict, a compile error).
    #[error("{0}")]
    Refused(String),
    /// Under `--offline`, something the cell needs is not in the cache: the
    /// versions are not to blame and nothing is known about them.
    #[error(
        "{0}\nnot in the cache, and the check runs offline, which forbids fetching it: run once online to fill the cache"
    )]
    Unavailable(String),
    /// The resolution does not hold the version the cell is named for: the
    /// cell would not be what it says, so it is not tried.
    #[error("{0}")]
    NotHeld(String),
    #[error(transparent)]
    Harness(#[from] anyhow::Error),
}

impl BuildError {
    /// A refusal that only says the network was needed, under `--offline`,
    /// is `Unavailable`: uv's "the network was disabled", cargo's "--offline
    /// was specified".
    pub fn offline_aware(self, offline: bool) -> BuildError {
        match self {
            BuildError::Refused(said)
                if offline
                    && (said.contains("network was disabled")
                        || said.contains("--offline was specified")) =>
            {
                BuildError::Unavailable(said)
            }
            other => other,
        }
    }
}

impl From<std::io::Error> for BuildError {
    fn from(err: std::io::Error) -> BuildError {
        BuildError::Harness(err.into())
    }
}

/// Runs one step of a build (uv or cargo): `Err(..)` when the step
/// failed, saying so in `failed`'s reading of its output, or timed out.
fn run_step(
    command: duct::Expression,
    timeout: Duration,
    doing: &str,
    failed: impl FnOnce(&Output) -> String,
) -> Result<Output, BuildError> {
    let output =
        process::run_captured(command, timeout).with_context(|| format!("cannot start {doing}"))?;
    let Some(output) = output else {
        return Err(BuildError::Refused(format!(
            "{doing} did not finish within {}",
            humantime::format_duration(timeout)
        )));
    };
    if output.status.success() {
        Ok(output)
    } else {
        Err(BuildError::Refused(failed(&output)))
    }
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Hex SHA-256 of the parts, each length-prefixed so that no two lists collide.
pub(crate) fn hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}
