//! `upgrade-check explore` on the bench's matrix with a warm cache, on
//! copies of the service's scenarios (it writes what it finds beside them):
//! how many variants it answers per second on each core.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// One exploration, as its report tells it.
pub struct Explored {
    pub wall: Duration,
    pub variants: usize,
    pub requests: usize,
    pub cells: usize,
    /// Every scenario run: each variant on the baseline twice (its noise
    /// check) and on every other cell once.
    pub scenario_runs: usize,
    pub findings: usize,
}

impl Explored {
    /// Variants answered per second on each core the machine has.
    pub fn per_second_per_core(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        self.scenario_runs as f64 / self.wall.as_secs_f64().max(f64::EPSILON) / cores as f64
    }
}

pub fn measure(config: &Path, state: &Path, cache: &Path, jobs: usize) -> anyhow::Result<Explored> {
    let copy = super::pipeline::Variant::of(config, |_| Ok(()))?;
    eprintln!("bench: explore, warm…");
    let (wall, report) = super::harness_report(
        &["explore"],
        &copy.config,
        &state.join("bench-explore"),
        cache,
        jobs,
    )?;
    let exploration = report
        .exploration
        .as_ref()
        .context("an exploration's report has its findings")?;
    Ok(Explored {
        wall,
        variants: exploration.variants,
        requests: exploration.requests,
        cells: report.cells.len(),
        // Each baseline run is its two replays: the reference and its check.
        scenario_runs: report
            .cells
            .iter()
            .map(|cell| cell.scenarios.len() * if cell.baseline { 2 } else { 1 })
            .sum(),
        findings: exploration.findings.len(),
    })
}
