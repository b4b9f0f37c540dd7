//! Locates uv, or installs it into the cache's tools folder on first use.
//!
//! The bootstrap goes through the interpreter's own pip, so it reaches the
//! package index the user's pip is configured for, and nothing else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::model::setting::{Setting, SettingError};
use crate::sys::process;
use crate::sys::state;

use super::Python;

/// What the bootstrap installs when no uv is on PATH.
pub const BOOTSTRAP_REQUIREMENT: &str = "uv==0.13.9";

#[derive(Debug, Clone)]
pub struct Uv {
    pub path: PathBuf,
    /// `uv --version` as printed, part of every cache key.
    pub version: String,
}

/// `UPGRADE_CHECK_UV`, then `uv` on PATH, then a bootstrapped copy.
pub fn locate_or_bootstrap(
    tools_dir: &Path,
    python: &Python,
    offline: bool,
    say: &dyn Fn(&str),
) -> anyhow::Result<Uv> {
    if let Some(path) = std::env::var_os("UPGRADE_CHECK_UV") {
        return Uv::at(PathBuf::from(path));
    }
    if let Some(path) = find_on_path("uv") {
        return Uv::at(path);
    }
    let home = tools_dir.join("uv");
    let binary = home.join("bin").join("uv");
    let complete = home.join(".complete");
    let _lock = state::lock(&tools_dir.join("uv.lock"))?;
    if !complete.exists() && offline {
        // Installing uv would reach the package index: offline means never.
        return Err(SettingError::new(
            Setting::Offline,
            format!(
                "offline, and no uv on PATH or in {}: run once online to install it, or put uv on PATH",
                home.display()
            ),
        )
        .into());
    }
    if !complete.exists() {
        say(&format!(
            "no uv on PATH; installing {BOOTSTRAP_REQUIREMENT} into {}",
            home.display()
        ));
        if home.exists() {
            fs_err::remove_dir_all(&home)?;
        }
        let output = process::run_captured(
            duct::cmd(
                &python.path,
                [
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-input",
                    "--disable-pip-version-check",
                    "--target",
                    &home.to_string_lossy(),
                    BOOTSTRAP_REQUIREMENT,
                ],
            ),
            Duration::from_secs(600),
        )?
        .context("installing uv with pip took longer than 10 minutes")?;
        if !output.status.success() || !binary.exists() {
            bail!(
                "could not install {BOOTSTRAP_REQUIREMENT} with {} -m pip; install uv yourself and put it on PATH\n{}",
                python.path.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        state::write_atomic(&complete, BOOTSTRAP_REQUIREMENT.as_bytes())?;
    }
    Uv::at(binary)
}

impl Uv {
    fn at(path: PathBuf) -> anyhow::Result<Uv> {
        let output =
            process::run_captured(duct::cmd(&path, ["--version"]), Duration::from_secs(30))?
                .with_context(|| format!("{} --version did not answer", path.display()))?;
        if !output.status.success() {
            bail!("{} --version failed", path.display());
        }
        Ok(Uv {
            version: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            path,
        })
    }

    /// A uv command that never downloads interpreters and prints no colours.
    /// Packages are copied into environments, never hard-linked from uv's
    /// cache: a service that writes into its environment must not change
    /// the cache every later environment is made from.
    pub fn command(&self, args: Vec<std::ffi::OsString>) -> duct::Expression {
        duct::cmd(&self.path, args)
            .env("UV_LINK_MODE", "copy")
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("UV_NO_PROGRESS", "1")
            .env("NO_COLOR", "1")
            .env_remove("VIRTUAL_ENV")
            .env_remove("UV_SYSTEM_PYTHON")
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| {
            path.metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}
