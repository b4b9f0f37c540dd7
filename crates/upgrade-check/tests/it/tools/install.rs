//! The ways a team installs the tool: `cargo install --path`, and, the way
//! Python teams get uv and ruff, a wheel that maturin builds with `bin`
//! bindings, run with `uvx` (uv's `tool run`) or installed with pip, whose
//! `upgrade-check` entry point is the binary.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{shared_cache, workspace_root};

/// The wheel `cargo xtask test` built into `target/wheels/` before the
/// suite; run alone, the test builds it (into a target folder of its own,
/// since cargo holds the workspace's while tests run).
fn wheel() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("..");
    let built = |dir: &std::path::Path| {
        std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        })
    };
    if let Some(wheel) = built(&target.join("wheels")) {
        return wheel;
    }
    let out = target.join("tmp/wheel-test");
    if let Some(wheel) = built(&out.join("wheels")) {
        return wheel;
    }
    let uv = uv();
    let status = Command::new(&uv)
        .args([
            "tool",
            "run",
            "--from",
            "maturin==1.16.0",
            "maturin",
            "build",
            "--quiet",
        ])
        .args(["--profile", "dev", "--manifest-path"])
        .arg(workspace_root().join("crates/upgrade-check/Cargo.toml"))
        .arg("--out")
        .arg(out.join("wheels"))
        .env("CARGO_TARGET_DIR", out.join("target"))
        .status()
        .unwrap();
    assert!(status.success(), "maturin build");
    built(&out.join("wheels")).unwrap()
}

/// uv as the harness installs it when none is on PATH.
fn uv() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("uv"))
            .find(|uv| uv.is_file())
    });
    on_path.unwrap_or_else(|| shared_cache().join("tools/uv/bin/uv"))
}

fn version_line(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn the_wheel_runs_with_uvx_and_installs_with_pip() {
    let wheel = wheel();
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!(
            "upgrade_check-{}-py3-none-",
            env!("CARGO_PKG_VERSION")
        )),
        "{name}"
    );
    let expected = {
        let output = Command::new(crate::common::binary())
            .arg("--version")
            .output()
            .unwrap();
        version_line(&output)
    };
    assert!(expected.contains("(commit "), "{expected}");

    // `uvx --from WHEEL upgrade-check`: the entry point is the binary.
    if !uv().is_file() {
        // The harness installs uv on its first run when none is on PATH.
        let ctx = crate::common::TestContext::new();
        assert_eq!(ctx.run(&["plan"]).code, 0);
    }
    let scratch = tempfile::tempdir().unwrap();
    let uvx = Command::new(uv())
        .args(["tool", "run", "--from"])
        .arg(&wheel)
        .args(["upgrade-check", "--version"])
        .env("UV_TOOL_DIR", scratch.path().join("tools"))
        .output()
        .unwrap();
    assert_eq!(version_line(&uvx), expected);

    // pip into a virtual environment, as pipx does.
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
    let entry_point = Command::new(venv.join("bin/upgrade-check"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(version_line(&entry_point), expected);
    // The installed binary is the tool: its commands are there.
    let help = Command::new(venv.join("bin/upgrade-check"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("init"));
}

#[test]
fn cargo_install_from_the_crate_gives_the_same_binary() {
    // `cargo xtask test` installs it before the suite, reusing the suite's
    // build; run alone, the test installs it with a target folder of its own.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut root = target.join("installed");
    if !root.join("bin/upgrade-check").is_file() {
        root = target.join("installed-by-test");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "install", "--quiet", "--locked", "--debug", "--force", "--path",
            ])
            .arg(workspace_root().join("crates/upgrade-check"))
            .arg("--root")
            .arg(&root)
            .arg("--target-dir")
            .arg(target.join("install-target"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo install --path");
    }
    let installed = Command::new(root.join("bin/upgrade-check"))
        .arg("--version")
        .output()
        .unwrap();
    let built = Command::new(crate::common::binary())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(version_line(&installed), version_line(&built));
}
