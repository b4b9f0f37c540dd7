//! Merges the partial results of `--shard K/N` runs into the report one
//! machine would have written for the whole plan.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::Report;
use crate::plan;

/// Reads `report.json` from each folder (a report folder, or a state folder
/// holding one).
pub fn read_parts(dirs: &[PathBuf]) -> anyhow::Result<Vec<Report>> {
    dirs.iter()
        .map(|dir| {
            let path = [
                dir.join("report.json"),
                dir.join("report").join("report.json"),
            ]
            .into_iter()
            .find(|path| path.is_file())
            .with_context(|| format!("no report.json in {}", dir.display()))?;
            let text = fs_err::read_to_string(&path)?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a report", path.display()))
        })
        .collect()
}

/// One report from every shard's part: each cell from the shard it belongs
/// to, in plan order; the baseline and what it found from shard 1.
pub fn merge(mut parts: Vec<Report>) -> anyhow::Result<Report> {
    parts.sort_by_key(|part| part.shard.as_ref().map_or(0, |shard| shard.index));
    let Some(first) = parts.first().cloned() else {
        bail!("nothing to merge");
    };
    let Some(shape) = first.shard.clone() else {
        bail!("{} is a whole report, not a shard's part", first.config);
    };
    let indexes: Vec<usize> = parts
        .iter()
        .map(|part| part.shard.as_ref().map_or(0, |shard| shard.index))
        .collect();
    if indexes != (1..=shape.count).collect::<Vec<_>>() {
        bail!(
            "the parts are shards {indexes:?}; merging needs each of 1..={} exactly once",
            shape.count
        );
    }
    for part in &parts {
        let same = part
            .shard
            .as_ref()
            .is_some_and(|shard| shard.count == shape.count && shard.plan == shape.plan)
            && part.scenarios == first.scenarios
            && part.schema_version == first.schema_version;
        if !same {
            bail!("the parts come from different plans or scenarios; run every shard of one plan");
        }
    }
    let mut cells = Vec::new();
    let mut position = 0;
    for id in &shape.plan {
        let owner = if id == "baseline" {
            0
        } else {
            position += 1;
            plan::shard_of(position - 1, shape.count)
        };
        if let Some(cell) = parts[owner].cells.iter().find(|cell| &cell.id == id) {
            cells.push(cell.clone());
        }
    }
    let mut pending: Vec<String> = parts
        .iter()
        .flat_map(|part| part.pending_snapshots.iter().cloned())
        .collect();
    pending.sort();
    pending.dedup();
    let cancelled: Vec<String> = parts
        .iter()
        .filter_map(|part| {
            let shard = part.shard.as_ref()?;
            Some(format!(
                "{} (shard {}/{})",
                part.cancelled.as_ref()?,
                shard.index,
                shard.count
            ))
        })
        .collect();
    Ok(Report {
        cells,
        pending_snapshots: pending,
        accepted_snapshots: Vec::new(),
        cancelled: (!cancelled.is_empty()).then(|| cancelled.join(", ")),
        planned_cells: shape.plan.len(),
        duration_ms: parts.iter().map(|part| part.duration_ms).max().unwrap_or(0),
        shard: None,
        ..first
    })
}
