//! `upgrade-check diff CELL_A CELL_B`: two cells of the last run compared
//! with each other rather than with the baseline, scenario by scenario, for a
//! release engineer choosing between two candidate versions.
//!
//! Reads the normalised exchanges every run keeps (`report/exchanges.json`);
//! runs nothing and prints nothing itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::bail;

/// The rendered scenario runs of each cell of a run, by cell name, then scenario.
pub type Exchanges = BTreeMap<String, BTreeMap<String, String>>;

/// Where a run keeps its cells' rendered scenario runs.
pub const FILE: &str = "exchanges.json";

/// The text of the comparison, and whether the two cells differ.
pub fn compare(report_dir: &Path, a: &str, b: &str) -> anyhow::Result<(String, bool)> {
    let path = report_dir.join(FILE);
    let Ok(text) = fs_err::read_to_string(&path) else {
        bail!(
            "no recorded run at {}: run the matrix first (`upgrade-check`), then compare two of its cells",
            path.display()
        );
    };
    let exchanges: Exchanges = serde_json::from_str(&text)?;
    let cell = |name: &str| {
        exchanges.get(name).ok_or_else(|| {
            let known: Vec<&str> = exchanges.keys().map(String::as_str).collect();
            anyhow::anyhow!(
                "no cell `{name}` in the last run; its cells are: {}",
                known.join(", ")
            )
        })
    };
    let (left, right) = (cell(a)?, cell(b)?);
    let mut out = String::new();
    let mut differ = false;
    let scenarios: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for scenario in scenarios {
        match (left.get(scenario), right.get(scenario)) {
            (Some(old), Some(new)) if old == new => {
                let _ = writeln!(out, "{scenario}: the same");
            }
            (Some(old), Some(new)) => {
                differ = true;
                let diff = similar::TextDiff::from_lines(old, new)
                    .unified_diff()
                    .context_radius(3)
                    .header(a, b)
                    .to_string();
                let _ = writeln!(out, "\n── {scenario}: {a} → {b} ──\n{}", diff.trim_end());
            }
            (old, _) => {
                differ = true;
                let (has, lacks) = if old.is_some() { (a, b) } else { (b, a) };
                let _ = writeln!(
                    out,
                    "{scenario}: only `{has}` has a result (`{lacks}` did not get to replay it)"
                );
            }
        }
    }
    Ok((out, differ))
}
