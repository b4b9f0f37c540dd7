//! The ways a team installs the tool: `cargo install --path`, and, the way
//! Python teams get uv and ruff, a wheel that maturin builds with `bin`
//! bindings, run with `uvx` (uv's `tool run`) or installed with pip, whose
//! `upgrade-check` entry point is the binary.
//!
//! `cargo xtask test` installs the binary and builds the wheel before the
//! suite, reusing its build (a test cannot build in the target folder cargo
//! holds while tests run). What it made is used only when it is of this
//! very source (the same `--version`, commit included); otherwise, as when
//! the test runs alone, the test installs or builds it itself, into a
//! target folder of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{TestContext, binary, ensure_uv, uv, workspace_root};

fn target() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn version_line(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// What `program --version` prints.
fn version_of(program: &Path) -> String {
    version_line(&Command::new(program).arg("--version").output().unwrap())
}

/// `uvx --from WHEEL upgrade-check --version`, never from uv's cache.
fn version_through_uvx(wheel: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(uv())
        .args(["--no-cache", "tool", "run", "--from"])
        .arg(wheel)
        .args(["upgrade-check", "--version"])
        .env("UV_TOOL_DIR", scratch.path().join("tools"))
        .output()
        .unwrap();
    version_line(&output)
}

fn wheel_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
    })
}

/// The wheel of this source: the one `cargo xtask test` built, or one built now.
fn wheel(expected: &str) -> PathBuf {
    if let Some(wheel) = wheel_in(&target().join("../wheels"))
        && version_through_uvx(&wheel) == expected
    {
        return wheel;
    }
    let out = target().join("wheel-test");
    let _ = std::fs::remove_dir_all(out.join("wheels"));
    let status = Command::new(uv())
        .args([
            "tool",
            "run",
            "--from",
            "maturin==1.16.0",
            "maturin",
            "build",
        ])
        .args(["--quiet", "--profile", "dev", "--manifest-path"])
        .arg(workspace_root().join("crates/upgrade-check/Cargo.toml"))
        .arg("--out")
        .arg(out.join("wheels"))
        .env("CARGO_TARGET_DIR", out.join("target"))
        .status()
        .unwrap();
    assert!(status.success(), "maturin build");
    wheel_in(&out.join("wheels")).unwrap()
}

#[test]
fn the_wheel_runs_with_uvx_and_installs_with_pip() {
    ensure_uv(&TestContext::new());
    let expected = version_of(&binary());
    assert!(expected.contains("(commit "), "{expected}");
    let wheel = wheel(&expected);
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!(
            "upgrade_check-{}-py3-none-",
            env!("CARGO_PKG_VERSION")
        )),
        "{name}"
    );

    // `uvx --from WHEEL upgrade-check`: the entry point is the binary.
    assert_eq!(version_through_uvx(&wheel), expected);

    // pip into a virtual environment, as pipx does.
    let scratch = tempfile::tempdir().unwrap();
    let venv = scratch.path().join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(made.success());
    let installed = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
        ])
        .arg(&wheel)
        .status()
        .unwrap();
    assert!(installed.success());
    assert_eq!(version_of(&venv.join("bin/upgrade-check")), expected);
    // The installed binary is the tool: its commands are there.
    let help = Command::new(venv.join("bin/upgrade-check"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("init"));
}

#[test]
fn cargo_install_from_the_crate_gives_the_same_binary() {
    let expected = version_of(&binary());
    let prebuilt = target().join("installed/bin/upgrade-check");
    let installed = if prebuilt.is_file() && version_of(&prebuilt) == expected {
        prebuilt
    } else {
        let root = target().join("installed-by-test");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "install", "--quiet", "--locked", "--debug", "--force", "--path",
            ])
            .arg(workspace_root().join("crates/upgrade-check"))
            .arg("--root")
            .arg(&root)
            .arg("--target-dir")
            .arg(target().join("install-target"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo install --path");
        root.join("bin/upgrade-check")
    };
    // Installed, not the build's own file, and the same tool.
    assert_ne!(installed, binary());
    assert_eq!(version_of(&installed), expected);
}
