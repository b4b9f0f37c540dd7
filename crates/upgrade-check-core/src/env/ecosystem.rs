//! The seam between the harness and one ecosystem's tools: what it needs to
//! build a service's environments and list its packages' versions. Python's
//! is [`UvBuilder`](super::UvBuilder) (uv and an interpreter, in
//! `env/python/`), Rust's [`CargoBuilder`](super::CargoBuilder) (in
//! `env/cargo/`). A new ecosystem is a folder beside them that implements
//! [`Ecosystem`] and its [`Registry`], made in one place, where the session
//! sets up its tools (`session::prepare::builder`).

use std::path::Path;
use std::sync::Arc;

use super::index::Registry;
use super::{BuildError, Environment, Resolution, ResolvedSet};
use crate::input::baseline::BaselineFile;
use crate::model::cell::Pin;

/// One ecosystem's tools, set up for one service.
pub(crate) trait Ecosystem: std::fmt::Debug + Send + Sync {
    /// The pins the service declares.
    fn baseline(&self) -> &BaselineFile;

    /// What builds the environments, as a reader names it.
    fn describe(&self) -> String;

    /// What builds the environments, as recorded results key it.
    fn toolchain(&self) -> String;

    /// Resolves the baseline as the service declares it.
    fn resolve_baseline(&self) -> Result<Resolution, BuildError>;

    /// Resolves a dependency file (a pull request's) as it is, with nothing forced.
    fn resolve_file(&self, path: &Path) -> Result<Resolution, BuildError>;

    /// Resolves the baseline with `pins` forced on top.
    fn resolve_cell(&self, baseline: &ResolvedSet, pins: &[Pin]) -> Result<Resolution, BuildError>;

    /// Whether the registry offers `pin`: `Err` with the tool's answer when
    /// it has no such version, or when the version is yanked.
    fn check_exists(&self, pin: &Pin) -> Result<(), BuildError>;

    /// Whether a refusal from [`Ecosystem::check_exists`] says nothing of
    /// the version itself (the registry could not be reached), so that the
    /// version is not refused as bad input for it.
    fn says_nothing_of_the_version(&self, _refusal: &str) -> bool {
        false
    }

    /// Whether the index offers every version the baseline file pins,
    /// where the ecosystem's tools do not check that as they build.
    fn check_baseline_offered(&self) -> Result<(), BuildError> {
        Ok(())
    }

    /// The environment for `set`, built once and shared by every cell that needs it.
    fn materialise(&self, set: &ResolvedSet) -> Result<Environment, BuildError>;

    /// Where the versions of the service's packages are listed, for the
    /// service in `project`.
    fn registry(&self, project: &Path) -> anyhow::Result<Arc<dyn Registry>>;

    /// The registry as messages name it: "package index", "registry".
    fn registry_name(&self) -> &'static str;
}
