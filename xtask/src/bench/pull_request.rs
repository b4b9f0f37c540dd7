//! The run a pull request waits for: one pin moved in the baseline file,
//! with the default branch's cache restored, so that its baseline's
//! recorded result is reused and only the moved pin runs.
//!
//! The service, its config, scenarios and snapshots are copied into a git
//! repository of their own; the default branch's run records its baseline's
//! result over the bench's warm environment cache; the pull request's
//! commit moves one pin to a version no run has tried, and `--since` runs
//! it with a copy of that result, as CI restores it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use upgrade_check_core::config::Config;
use upgrade_check_core::util::copy_tree;

use super::run_harness;

/// The pull request's run, end to end.
pub struct PullRequest {
    /// `package old → new`, as the commit moves it.
    pub moved: String,
    pub wall: Duration,
    pub cells_run: usize,
}

/// Measures a pull request that moves `pin` (`package==version`) in the
/// baseline file of `config`, with environments from `cache`.
pub fn measure(
    config: &Config,
    pin: &str,
    cache: &Path,
    dir: &Path,
    jobs: usize,
) -> anyhow::Result<PullRequest> {
    let repository = dir.join("service");
    let copied_config = copy_service(config, &repository)?;
    git(&repository, &["init", "--quiet"])?;
    fs_err::write(repository.join(".gitignore"), "*.snap.new\n")?;
    git(&repository, &["add", "."])?;
    git(&repository, &["commit", "--quiet", "-m", "the service"])?;

    // Its baseline only: a matrix that listed the moved version would
    // record that cell too, and the pull request would run nothing.
    eprintln!("bench: the default branch's baseline, recording its result…");
    let default_branch = dir.join("default-branch-state");
    run_harness(
        &copied_config,
        &default_branch,
        cache,
        jobs,
        &["--since", "HEAD"],
    )?;

    let (package, version) = pin
        .split_once("==")
        .with_context(|| format!("`{pin}` is not a pin"))?;
    let baseline = repository.join(
        config
            .service
            .baseline
            .strip_prefix(config.base_dir())
            .context("the baseline file is outside the config's folder")?,
    );
    let old = move_pin(&baseline, package, version)?;
    git(
        &repository,
        &["commit", "--quiet", "-am", "bump a dependency"],
    )?;

    eprintln!("bench: a pull request moving {package} {old} → {version}…");
    let restored = dir.join("pull-request-state");
    // What CI restores from its cache: every file of the folder, as it is.
    copy_every_file(&default_branch.join("results"), &restored.join("results"))?;
    let (wall, report) = run_harness(
        &copied_config,
        &restored,
        cache,
        jobs,
        &["--since", "HEAD~1"],
    )?;
    let baseline_reused = report
        .cells
        .iter()
        .any(|cell| cell.baseline && cell.result_reused);
    if !baseline_reused {
        bail!("the pull request's run did not reuse the default branch's baseline");
    }
    Ok(PullRequest {
        moved: format!("{package} {old} → {version}"),
        wall,
        cells_run: report
            .cells
            .iter()
            .filter(|cell| !cell.result_reused)
            .count(),
    })
}

/// The config, the service's folder, scenarios and snapshots, at the same
/// places relative to each other under `to`; the copied config's path.
fn copy_service(config: &Config, to: &Path) -> anyhow::Result<PathBuf> {
    let base = config.base_dir();
    for folder in [
        &config.service.root,
        &config.replay.scenarios,
        &config.replay.snapshots,
    ] {
        let relative = folder.strip_prefix(base).with_context(|| {
            format!(
                "{} is outside the config's folder {}",
                folder.display(),
                base.display()
            )
        })?;
        copy_tree(folder, &to.join(relative))?;
    }
    let copied = to.join(config.path.file_name().context("the config's name")?);
    fs_err::copy(&config.path, &copied)?;
    Ok(copied)
}

/// Copies every file under `from` into `to`. Not a source copy: recorded
/// results are not source, and a source copy inside a repository leaves
/// out what git ignores (a state folder in `target/` is).
fn copy_every_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs_err::create_dir_all(to)?;
    for entry in fs_err::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_every_file(&source, &target)?;
        } else {
            fs_err::copy(&source, &target)?;
        }
    }
    Ok(())
}

/// Sets `package`'s `==` pin in a requirements file to `version`; the version it had.
fn move_pin(requirements: &Path, package: &str, version: &str) -> anyhow::Result<String> {
    let text = fs_err::read_to_string(requirements)?;
    let mut old = None;
    let moved: Vec<String> = text
        .lines()
        .map(|line| match line.split_once("==") {
            Some((name, pinned)) if old.is_none() && name.trim().eq_ignore_ascii_case(package) => {
                old = Some(pinned.trim().to_owned());
                format!("{}=={version}", name.trim())
            }
            _ => line.to_owned(),
        })
        .collect();
    let old = old.with_context(|| {
        format!(
            "{} pins no `{package}==`: the pull request row needs a requirements file",
            requirements.display()
        )
    })?;
    fs_err::write(requirements, moved.join("\n") + "\n")?;
    Ok(old)
}

fn git(repository: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=upgrade-check bench",
            "-c",
            "user.email=bench@localhost",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(repository)
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("git {} failed ({status})", args.join(" "));
    }
    Ok(())
}
