//! The tool as others install it: `--version` names the commit, and the
//! crates are ready to publish, carrying their code and nothing of the
//! repository's test data.

use std::process::Command;

use crate::common::{binary, workspace_root};

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let output = Command::new(binary()).arg("--version").output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert_eq!(head.len(), 12, "the workspace is a git checkout");
    assert_eq!(
        printed.trim(),
        format!(
            "upgrade-check {} (commit {head})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn the_crates_are_ready_to_publish_and_carry_no_test_data() {
    let metadata: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--no-deps",
        "--offline",
        "--format-version",
        "1",
    ]))
    .unwrap();
    for name in ["upgrade-check", "upgrade-check-core"] {
        let package = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|package| package["name"] == name)
            .unwrap();
        for field in ["description", "license", "repository", "readme"] {
            assert!(
                package[field]
                    .as_str()
                    .is_some_and(|value| !value.is_empty()),
                "{name} has no {field}"
            );
        }
        assert!(package["publish"].is_null(), "{name} is publishable");
        assert!(
            package["keywords"]
                .as_array()
                .is_some_and(|k| !k.is_empty()),
            "{name} has keywords"
        );

        let listed = cargo(&[
            "package",
            "--list",
            "--allow-dirty",
            "--offline",
            "-p",
            name,
        ]);
        for file in listed.lines() {
            let kept = file.ends_with(".rs")
                || [
                    "Cargo.toml",
                    "Cargo.toml.orig",
                    "Cargo.lock",
                    "README.md",
                    ".cargo_vcs_info.json",
                ]
                .contains(&file);
            assert!(kept, "{name} would publish {file}");
            assert!(
                !file.contains("fixtures")
                    && !file.contains("snapshots")
                    && !file.starts_with("tests/"),
                "{name} would publish {file}"
            );
        }
        assert!(listed.lines().any(|file| file == "src/lib.rs"), "{listed}");
    }
    // `cargo binstall` finds the release archives from the manifest.
    let manifest =
        std::fs::read_to_string(workspace_root().join("crates/upgrade-check/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[package.metadata.binstall]"),
        "{manifest}"
    );
}
