//! What a baseline file declares, as its readers (requirements files,
//! Python locks, `Cargo.lock`) hand it to the baseline: pins and
//! requirements with the file and line they came from, and the dependency
//! graph a lock records. Its own file so that the readers and the baseline
//! depend on it, never on each other.

use std::path::{Path, PathBuf};

use pep508_rs::{Requirement, VerbatimUrl};

use super::source::{InputError, Source};
use crate::model::package::{PackageName, Version};

/// A package at one exact version, and where the file says so.
#[derive(Debug, Clone)]
pub struct DeclaredPin {
    pub package: PackageName,
    pub version: Version,
    pub path: PathBuf,
    /// 1-based line of the requirement (of the `version` key in a lock).
    pub line: usize,
}

/// One requirement, where it was written, and the digests it was declared with.
#[derive(Debug, Clone)]
pub struct Declared {
    pub requirement: Requirement<VerbatimUrl>,
    /// The file that holds it: the top file or an include.
    pub path: PathBuf,
    /// 1-based line where the requirement starts.
    pub line: usize,
    /// `algorithm:hex` digests from `--hash` options; empty when none.
    pub hashes: Vec<String>,
}

/// Reads an include, named by its path relative to the top file's folder
/// (already checked to stay inside it).
pub(crate) type ReadInclude<'a> = &'a dyn Fn(&Path) -> Result<Source, InputError>;

/// Package names the service itself depends on.
pub(crate) type Direct = std::collections::BTreeSet<PackageName>;

/// Package names, each with the names it depends on.
pub(crate) type Requires =
    std::collections::BTreeMap<PackageName, std::collections::BTreeSet<PackageName>>;

/// What a Node service's lock (npm's, pnpm's, Yarn's) says, read once.
#[derive(Debug)]
pub(crate) struct NodeLock {
    /// Registry packages, in file order of their entries.
    pub pins: Vec<DeclaredPin>,
    /// What each registry package needs, by name.
    pub requires: Requires,
    /// What the service's own package needs.
    pub direct: Direct,
    /// Registry packages without an `integrity` digest: npm cannot check
    /// what it downloads for them.
    pub unchecked: Vec<String>,
    /// The local packages npm installs from the service's own folders (a
    /// workspace's members, `packages/api`; a `file:` folder), relative to
    /// the lock's, each a plain relative path inside it.
    pub members: Vec<std::path::PathBuf>,
}
