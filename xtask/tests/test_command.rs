//! `cargo xtask test`, the README's test command, as a newcomer meets it.

use std::path::Path;

/// `.ci/run` runs the README's test command, and that command refuses to
/// run the suite without the tools its tests need, naming the one command.
#[test]
fn the_readme_test_command_is_what_ci_runs_and_it_names_what_is_missing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("cargo xtask test               # the test suite (what .ci/run runs)"),
        "the README's test command"
    );
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|line| line.trim() == "cargo xtask test"),
        "{ci}"
    );
    // With nothing on PATH (no browser, no xmllint, no apt-get): it stops at once.
    let empty = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("test")
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the tests need chromium")
            && stderr.contains("run: sudo apt-get install chromium"),
        "{stderr}"
    );
}
