//! `cargo xtask bench` runs end to end and writes its table. The figures are
//! for people to read (README); nothing here times anything.

mod common;

use std::process::Command;

use common::TestContext;

#[test]
fn the_bench_measures_every_row_and_writes_its_table() {
    let ctx = TestContext::new();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("bench")
        .arg("--config")
        .arg(ctx.path("upgrade-check.toml"))
        .arg("--state-dir")
        .arg(ctx.path("state"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = std::fs::read_to_string(ctx.path("state/bench.md")).unwrap();
    assert_eq!(table, stdout);
    for row in [
        "| cold run (6 cells, ",
        "| warm run (0 environments built) |",
        "| floor: service start-up to healthy + requests",
        "| warm run / (floor / jobs) (target ≤ 1.5) |",
        "| harness overhead per request (target < 1 ms) |",
        "| planning a 1,000-cell matrix (target < 1 s) |",
    ] {
        let line = table
            .lines()
            .find(|line| line.starts_with(row))
            .unwrap_or_else(|| panic!("{row} in {table}"));
        let figure: f64 = line
            .rsplit('|')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(figure.is_finite() && figure >= 0.0, "{line}");
    }
    // The cold cache was a temp folder inside the state folder, and it is gone.
    let leftovers: Vec<_> = std::fs::read_dir(ctx.path("state"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("bench-cache-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
