//! Which package manager locks a Node service (npm, pnpm or Yarn, by its
//! lock's file name), and how each one's lock is read and checked.

use std::path::Path;

use super::declared::NodeLock;
use super::{npm_lock, pnpm_lock, yarn_lock};
use crate::input::source::{InputError, Source};

/// The package manager whose lock a Node service's baseline is: npm's
/// (`npm_lock.rs`), pnpm's (`pnpm_lock.rs`) or Yarn's, 1 or later
/// (`yarn_lock.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Manager {
    Npm,
    Pnpm,
    Yarn,
}

impl Manager {
    /// The manager whose lock `path` names.
    pub(crate) fn of(path: &Path) -> Option<Manager> {
        if npm_lock::is_lock(path) {
            Some(Manager::Npm)
        } else if pnpm_lock::is_lock(path) {
            Some(Manager::Pnpm)
        } else if yarn_lock::is_lock(path) {
            Some(Manager::Yarn)
        } else {
            None
        }
    }

    /// Its program.
    pub(crate) fn program(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::Yarn => "yarn",
        }
    }

    /// Its lock's file name.
    pub(crate) fn lock_name(self) -> &'static str {
        match self {
            Manager::Npm => "package-lock.json",
            Manager::Pnpm => "pnpm-lock.yaml",
            Manager::Yarn => "yarn.lock",
        }
    }

    pub(crate) fn parse(self, source: &Source) -> Result<NodeLock, InputError> {
        match self {
            Manager::Npm => npm_lock::parse(source),
            Manager::Pnpm => pnpm_lock::parse(source),
            Manager::Yarn => yarn_lock::parse(source),
        }
    }

    /// A workspace's members (and an npm `file:` folder), relative to the
    /// lock's folder: npm's and pnpm's locks list them, Yarn's root names
    /// them in `workspaces` (its `package.json`, in `manifest`).
    pub(crate) fn members(
        self,
        lock: &Source,
        manifest: &Source,
    ) -> Result<Vec<std::path::PathBuf>, InputError> {
        match self {
            Manager::Yarn => npm_lock::workspace_folders(manifest),
            Manager::Npm | Manager::Pnpm => Ok(self.parse(lock)?.members),
        }
    }

    /// Refuses a lock out of date with the service's `package.json` (in
    /// `manifest`) or a workspace member's (its folder, its `package.json`).
    pub(crate) fn check_in_sync(
        self,
        lock: &Source,
        manifest: &Source,
        members: &[(std::path::PathBuf, Source)],
    ) -> Result<(), InputError> {
        match self {
            Manager::Npm => npm_lock::check_in_sync(lock, manifest, members),
            Manager::Pnpm => pnpm_lock::check_in_sync(lock, manifest, members),
            Manager::Yarn => yarn_lock::check_in_sync(lock, manifest, members),
        }
    }
}
