//! The reports validate against the schemas their readers use: junit.xml
//! against the JUnit XML schema CI systems read (Jenkins' junit-10.xsd, as
//! shipped in pytest's source distribution), report.json against its own
//! published schema (`docs/report.schema.json`), checked by
//! check-jsonschema from the package index.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{TestContext, uv, workspace_root};

/// The schema, taken from pytest's source distribution on the package index.
fn junit_schema() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("junit-schema");
    let schema = dir.join("pytest-8.3.4/testing/example_scripts/junit-10.xsd");
    if schema.exists() {
        return schema;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let download = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "pytest==8.3.4",
            "-d",
        ])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(
        download.success(),
        "pip download of pytest's source distribution"
    );
    let extract = Command::new("tar")
        .arg("xzf")
        .arg(dir.join("pytest-8.3.4.tar.gz"))
        .arg("-C")
        .arg(&dir)
        .arg("pytest-8.3.4/testing/example_scripts/junit-10.xsd")
        .status()
        .unwrap();
    assert!(extract.success());
    schema
}

#[test]
fn junit_xml_and_report_json_validate_against_their_schemas() {
    let ctx = TestContext::new();
    // MarkupSafe 1.0 is a source distribution only, which --no-build refuses.
    ctx.set_matrix(
        r#"bcrypt = ["5.0.0"]
markupsafe = ["1.0"]"#,
    );
    let run = ctx.run(&["--no-build"]);
    assert_eq!(
        run.code, 1,
        "passing, changed and build-failed cases are all in the file"
    );
    let junit = ctx.path("state/report/junit.xml");
    let text = std::fs::read_to_string(&junit).unwrap();
    assert!(
        text.contains("type=\"changed\"") && text.contains("type=\"build-failed\""),
        "{text}"
    );
    let xmllint = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(junit_schema())
        .arg(&junit)
        .output()
        .expect("xmllint runs (Debian's libxml2-utils; cargo xtask test installs it)");
    assert!(
        xmllint.status.success(),
        "{}",
        String::from_utf8_lossy(&xmllint.stderr)
    );
    let report = ctx.path("state/report/report.json");
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.contains("\"changed\"") && text.contains("\"build-failed\""),
        "{text}"
    );
    let checked = Command::new(uv())
        .args([
            "tool",
            "run",
            "--from",
            "check-jsonschema==0.39.0",
            "check-jsonschema",
        ])
        .arg("--schemafile")
        .arg(workspace_root().join("docs/report.schema.json"))
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
