//! Records the commit the binary is built from, for `--version`:
//! `UPGRADE_CHECK_BUILD_COMMIT` when the build says (the GitHub Action
//! builds from a copy without git), else git when built in a checkout
//! (`cargo install --git` builds in one), else the `.cargo_vcs_info.json`
//! cargo writes into a packaged crate.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=UPGRADE_CHECK_BUILD_COMMIT");
    let given = std::env::var("UPGRADE_CHECK_BUILD_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty());
    let commit = given
        .or_else(from_git)
        .or_else(from_package)
        .unwrap_or_default();
    println!("cargo:rustc-env=UPGRADE_CHECK_COMMIT={commit}");
}

fn from_git() -> Option<String> {
    let git = |args: &[&str]| {
        let output = Command::new("git").args(args).output().ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let git_dir = git(&["rev-parse", "--absolute-git-dir"])?;
    // A new commit or checkout moves HEAD or the branch it points at.
    println!("cargo:rerun-if-changed={git_dir}/HEAD");
    if let Some(branch) = std::fs::read_to_string(Path::new(&git_dir).join("HEAD"))
        .ok()
        .and_then(|head| head.strip_prefix("ref: ").map(|r| r.trim().to_owned()))
    {
        println!("cargo:rerun-if-changed={git_dir}/{branch}");
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn from_package() -> Option<String> {
    let info = std::fs::read_to_string(".cargo_vcs_info.json").ok()?;
    let at = info.find("\"sha1\"")?;
    let sha = info[at..].split('"').nth(3)?;
    Some(sha.chars().take(12).collect())
}
