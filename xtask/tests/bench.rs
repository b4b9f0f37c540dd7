//! `cargo xtask bench` runs end to end and writes its table. The figures are
//! for people to read (README); nothing here times anything.

#[path = "../../crates/upgrade-check/tests/it/common.rs"]
#[allow(
    dead_code,
    reason = "the bench's tests use a part of the shared test context"
)]
mod common;

use std::process::Command;

use common::TestContext;

/// Runs `cargo xtask bench` on the context's config; its table.
fn bench(ctx: &TestContext, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("bench")
        .arg("--config")
        .arg(ctx.path("upgrade-check.toml"))
        .arg("--state-dir")
        .arg(ctx.path("state"))
        .args(["--jobs", "2"])
        .args(extra)
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
    // The cold cache and the peers' folder were temp folders inside the
    // state folder, and they are gone.
    let leftovers: Vec<_> = std::fs::read_dir(ctx.path("state"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("bench-cache-") || name.starts_with("bench-peers-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    table
}

/// Each row is in the table with a finite figure.
fn assert_rows(table: &str, rows: &[&str]) {
    for row in rows {
        let line = table
            .lines()
            .find(|line| line.starts_with(row))
            .unwrap_or_else(|| panic!("{row} in {table}"));
        let figure = figure(line);
        assert!(figure.is_finite() && figure >= 0.0, "{line}");
    }
}

/// A row's (first) figure.
fn figure(line: &str) -> f64 {
    line.rsplit('|')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no figure in {line}"))
}

/// The warm run's phases are each there and add up to its wall time: no
/// phase counted twice (the slots' idle time would be short of zero), none
/// left out.
fn assert_phases_add_up(table: &str) {
    let wall = figure(
        table
            .lines()
            .find(|line| {
                line.starts_with("| warm run, every cell replayed (0 environments built) |")
            })
            .unwrap(),
    );
    let phases: Vec<f64> = table
        .lines()
        .filter(|line| line.starts_with("| warm run by phase: "))
        .map(figure)
        .collect();
    assert_eq!(phases.len(), 12, "{table}");
    let sum: f64 = phases.iter().sum();
    // Each phase is printed to 0.01 s, the wall time to 0.1 s.
    assert!(
        (sum - wall).abs() <= 0.15,
        "phases add up to {sum:.2} s of {wall} s: {table}"
    );
    for row in [
        "| warm run by phase: the services' own start-up and requests / jobs |",
        "| warm run by phase: stopping the service, the leak check / jobs |",
    ] {
        let line = table.lines().find(|line| line.starts_with(row)).unwrap();
        assert!(figure(line) > 0.0, "{line}");
    }
    // The warm run replays the baseline once, its noise check the cold
    // run's; asked to check again, it replays the baseline twice.
    let row = |start: &str| table.lines().find(|line| line.starts_with(start)).unwrap();
    let check = row(
        "| warm run by phase: the baseline's check replays (noise, forked against cold) / jobs |",
    );
    assert_eq!(figure(check), 0.0, "{check}");
    let rechecked = row(
        "| warm run, every cell replayed, the baseline's noise checked again (`--recheck-noise`) / its check replays per job |",
    );
    let check_replays: f64 = rechecked
        .rsplit('|')
        .nth(1)
        .and_then(|figures| figures.split(" / ").nth(1))
        .and_then(|figure| figure.trim().trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("{rechecked}"));
    assert!(check_replays > 0.0, "{rechecked}");
}

#[test]
fn the_bench_measures_every_row_and_writes_its_table() {
    let ctx = TestContext::new();
    // Two cells: every row, at a fraction of the default matrix's runs.
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    // The Rust section on the small cargo fixture: the same measures as on
    // the auth service (README's figures), at a fraction of the compiling.
    let rust_config = common::workspace_root().join("fixtures/rust-service/upgrade-check.toml");
    // The Node section on the Node fixture with one upgrade cell.
    let node =
        TestContext::from_workspace("fixtures/node-auth-service", std::path::Path::to_path_buf);
    node.set_matrix(r#"express = ["4.21.1"]"#);
    let node_config = node.path("upgrade-check.toml");
    // The larger matrix's rows on the same two cells: what is checked is
    // that each is measured, not how large it is.
    let config = ctx.path("upgrade-check.toml");
    let table = bench(
        &ctx,
        &[
            "--no-peers",
            "--rust-config",
            rust_config.to_str().unwrap(),
            "--node-config",
            node_config.to_str().unwrap(),
            "--larger-config",
            config.to_str().unwrap(),
        ],
    );
    assert_rows(
        &table,
        &[
            "| cold run (2 cells, ",
            "| cold run: the baseline judged / the last environment ready |",
            "| cold run: the baseline's environment ready / the baseline judged / the first verdict on an upgrade |",
            "| cold run: the cores' busy share |",
            "| a baseline that does not start, cold: its environment ready / the run stopped / the run's end (",
            "| larger matrix (2 cells, ",
            "| larger matrix, cold: the baseline's environment ready / the baseline judged / the first verdict on an upgrade |",
            "| larger matrix, cold: the cores' busy share |",
            "| warm run, every cell replayed (0 environments built) |",
            "| warm run, every cell replayed, every service started cold |",
            "| warm run, every cell replayed, the baseline's noise checked again (`--recheck-noise`) / its check replays per job |",
            "| warm run, nothing changed (2 of 2 results reused) |",
            "| pull request moving bcrypt 3.2.0 → 4.1.2, the default branch's baseline result restored (1 of its cells run) |",
            "| floor: cold service start-up to healthy + requests",
            "| warm run / (floor / jobs) (target ≤ 1.0) |",
            "| the warm run's own floor (forked starts + requests) / jobs",
            "| start-up to healthy per scenario run: cold (",
            "| a run's wait for its fresh PostgreSQL database: made when asked (",
            "| harness overhead per request (target < 1 ms) |",
            "| planning a 1,000-cell matrix (target < 1 s) |",
            "| explore, warm: ",
            "| explore: variants answered per second per core |",
            "| resolving on requirements.txt / on uv.lock: the baseline |",
            "| resolving on requirements.txt / on uv.lock: per cell, 1 cell |",
            "| cargo service `rust-service`: cold matrix (3 cells, 3 locks built into an empty target folder) |",
            "| cargo service `rust-service`: warm matrix, every cell replayed (0 locks built) |",
            "| cargo service `rust-service`: per cell, its lock resolved, built and linked on compiled crates (3 cells) |",
        ],
    );
    // The Node section, named by the config's folder (a temp folder here).
    let node_rows: Vec<&str> = table
        .lines()
        .filter(|line| line.starts_with("| Node service `"))
        .collect();
    for (row, measure) in node_rows.iter().zip([
        ": cold matrix (2 cells, 2 environments installed by npm ci into an empty cache) |",
        ": warm matrix, every cell replayed (0 environments installed) |",
        ": per cell, its lock resolved and installed from npm's cache (2 cells) |",
    ]) {
        assert!(row.contains(measure), "{row}");
        assert!(figure(row).is_finite() && figure(row) >= 0.0, "{row}");
    }
    assert_eq!(node_rows.len(), 3, "{table}");
    assert_phases_add_up(&table);
    assert!(!table.contains("tox"), "--no-peers leaves the peers out");
    // The broken baseline stopped the run: every moment of it is known.
    let broken = table
        .lines()
        .find(|line| line.starts_with("| a baseline that does not start"))
        .unwrap();
    assert!(!broken.contains("never"), "{broken}");
}

/// The same matrix the way teams run it today, on a smaller matrix (one
/// upgrade cell): each peer's client reported every scenario run of every
/// cell, or the bench failed.
#[test]
fn the_peers_run_the_same_matrix_through_tox_and_nox() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    // Two scenarios of the seven: what is checked is that each peer runs
    // every scenario of every cell, whatever their number.
    for scenario in ["jwt-secret", "long-password", "register", "staging"] {
        std::fs::remove_file(ctx.path(&format!("scenarios/{scenario}.toml"))).unwrap();
    }
    // The rows about the harness alone are the other test's.
    let table = bench(&ctx, &["--peers-only", "--no-larger"]);
    assert_rows(
        &table,
        &[
            "| cold run (2 cells, ",
            "| warm run, every cell replayed (0 environments built) |",
            "| tox + pip, 2 cells at once: cold / warm |",
            "| tox + uv (tox-uv), 2 cells at once: cold / warm |",
            "| nox + pip (virtualenv), one cell at once: cold / warm |",
            "| nox + uv, one cell at once: cold / warm |",
            "| fastest peer cold (",
            "| fastest peer warm (",
        ],
    );
    for left_out in ["floor", "planning", "cargo service"] {
        assert!(!table.contains(left_out), "{left_out}: {table}");
    }
}
