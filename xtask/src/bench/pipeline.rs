//! The pipeline's measures, on cold runs: how busy the cores are while
//! environments build and services run, how soon a broken baseline stops
//! the run, and the matrix cold and warm on a larger matrix (by default the
//! config's own with each list made a range from its lowest version).
//!
//! A variant of the config is written to a temp folder, with copies of the
//! service, its scenarios and snapshots at the same relative paths, so that
//! no run here writes a pending snapshot into the service's own folders.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::{Measured, whole_run};

/// The cores' time, busy and in all, since boot (`/proc/stat`'s first line).
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// Now; none where the platform has no `/proc/stat`.
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<CpuTimes> {
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .filter_map(|field| field.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guests are in user).
        let idle = ticks.get(3)? + ticks.get(4)?;
        let total: u64 = ticks.iter().take(8).sum();
        Some(CpuTimes {
            busy: total - idle,
            total,
        })
    }

    /// The share of the cores' time that was busy from `self` to `later`.
    pub fn busy_share_until(self, later: CpuTimes) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let busy = later.busy.checked_sub(self.busy)?;
        (total > 0).then(|| busy as f64 / total as f64)
    }
}

/// A cold run whose baseline does not start: when the run stopped, and how
/// many other environments were ready by then.
pub struct BrokenBaseline {
    pub wall: Duration,
    pub baseline_environment_ready: Option<Duration>,
    pub stopped: Option<Duration>,
    pub others_ready_before: usize,
    pub others: usize,
}

/// The larger matrix, cold and warm (every cell replayed), and its peers.
pub struct Larger {
    pub cold: Measured,
    pub warm: Measured,
    pub peers: Vec<super::peers::PeerTimes>,
}

/// The matrix cold, into an empty cache, with every start failing as a
/// service's does when a setting is missing.
pub fn broken_baseline(config: &Path, state: &Path, jobs: usize) -> anyhow::Result<BrokenBaseline> {
    let variant = Variant::of(config, |table| {
        let service = table
            .get_mut("service")
            .and_then(toml::Value::as_table_mut)
            .context("the config has no [service]")?;
        let fails = "echo 'KeyError: DATABASE_URL: the service cannot start' >&2; exit 1";
        service.insert(
            "command".to_owned(),
            toml::Value::Array(["sh", "-c", fails].map(toml::Value::from).to_vec()),
        );
        Ok(())
    })?;
    let cache = tempfile::Builder::new()
        .prefix("bench-cache-broken-")
        .tempdir_in(state)
        .context("a cold cache folder for the broken baseline")?;
    eprintln!("bench: the default matrix with a baseline that does not start, cold…");
    let run = whole_run(
        &variant.config,
        &state.join("bench-broken-baseline"),
        cache.path(),
        jobs,
        true,
        &[],
    )?;
    Ok(BrokenBaseline {
        wall: run.wall,
        baseline_environment_ready: run.moments.baseline_environment_ready,
        stopped: run.moments.stopped_after_baseline,
        others_ready_before: run.moments.environments_ready_before_the_stop,
        others: run.cells.saturating_sub(1),
    })
}

/// `larger` (a config of its own), or `config` with every matrix list made
/// a range from its lowest version, each minor's latest picked; cold into
/// an empty cache and warm, and the peers on the same cells when asked.
pub fn larger_matrix(
    config: &Path,
    larger: Option<&Path>,
    state: &Path,
    jobs: usize,
    with_peers: bool,
) -> anyhow::Result<Larger> {
    // A derived config's temp folder lives as long as `derived`.
    let derived;
    let config = match larger {
        Some(larger) => larger,
        None => {
            derived = Variant::of(config, ranges_from_lists)?;
            &derived.config
        }
    };
    let cache = tempfile::Builder::new()
        .prefix("bench-cache-larger-")
        .tempdir_in(state)
        .context("a cold cache folder for the larger matrix")?;
    let runs = state.join("bench-larger");
    eprintln!("bench: the larger matrix, cold…");
    let cold = whole_run(config, &runs, cache.path(), jobs, true, &[])?;
    eprintln!("bench: the larger matrix, warm…");
    let warm = whole_run(config, &runs, cache.path(), jobs, true, &[])?;
    let peers = match with_peers {
        true => {
            let loaded = upgrade_check_core::config::Config::load(config)?;
            super::run_peers(&loaded, state, cache.path(), jobs, &warm)?
        }
        false => Vec::new(),
    };
    Ok(Larger { cold, warm, peers })
}

/// The cold run's moments and busy share, below its wall time.
pub fn write_cold_rows(table: &mut String, label: &str, cold: &Measured) {
    let moments = &cold.moments;
    if let (Some(ready), Some(judged)) =
        (moments.baseline_environment_ready, moments.baseline_judged)
    {
        let first = moments
            .first_cell_verdict
            .map_or("none".to_owned(), |at| format!("{:.1} s", secs(at)));
        let _ = writeln!(
            table,
            "| {label}: the baseline's environment ready / the baseline judged / the first verdict on an upgrade | {:.1} s / {:.1} s / {first} |",
            secs(ready),
            secs(judged),
        );
    }
    if let Some(share) = cold.busy_share {
        let _ = writeln!(
            table,
            "| {label}: the cores' busy share | {:.0} % |",
            share * 100.0
        );
    }
}

/// The broken baseline's rows.
pub fn write_broken_rows(table: &mut String, broken: &BrokenBaseline) {
    let at = |moment: Option<Duration>| {
        moment.map_or("never".to_owned(), |at| format!("{:.1} s", secs(at)))
    };
    let _ = writeln!(
        table,
        "| a baseline that does not start, cold: its environment ready / the run stopped / the run's end ({} of {} other environments ready before the stop) | {} / {} / {:.1} s |",
        broken.others_ready_before,
        broken.others,
        at(broken.baseline_environment_ready),
        at(broken.stopped),
        secs(broken.wall)
    );
}

/// The larger matrix's rows, its peers' beside it.
pub fn write_larger_rows(table: &mut String, larger: &Larger) {
    let Larger { cold, warm, peers } = larger;
    let _ = writeln!(
        table,
        "| larger matrix ({} cells, {} scenario runs, {} environments built): cold / warm, every cell replayed | {:.1} s / {:.1} s |",
        cold.cells,
        cold.scenario_runs,
        cold.environments_built,
        secs(cold.wall),
        secs(warm.wall)
    );
    if let Some(built) = cold.moments.last_environment_ready {
        let _ = writeln!(
            table,
            "| larger matrix, cold: the last environment ready | {:.1} s |",
            secs(built)
        );
    }
    write_cold_rows(table, "larger matrix, cold", cold);
    for peer in peers {
        let _ = writeln!(
            table,
            "| larger matrix: {}, {} at once: cold / warm | {:.1} s / {:.1} s |",
            peer.label,
            peer.parallel,
            secs(peer.cold),
            secs(peer.warm)
        );
    }
    write_ratios(table, "larger matrix: ", peers, cold, warm);
}

/// The fastest peer against the harness, cold and warm.
pub fn write_ratios(
    table: &mut String,
    prefix: &str,
    peers: &[super::peers::PeerTimes],
    cold: &Measured,
    warm: &Measured,
) {
    type Took = fn(&super::peers::PeerTimes) -> Duration;
    let sides: [(&str, Took, Duration, &str); 2] = [
        ("cold", |peer| peer.cold, cold.wall, "cold (target ≥ 1.5)"),
        (
            "warm",
            |peer| peer.warm,
            warm.wall,
            "warm, every cell replayed (target ≥ 2)",
        ),
    ];
    for (side, took, harness, label) in sides {
        if let Some(fastest) = peers.iter().min_by_key(|peer| took(peer)) {
            let _ = writeln!(
                table,
                "| {prefix}fastest peer {side} ({}) / harness {label} | {:.2} |",
                fastest.label,
                secs(took(fastest)) / secs(harness).max(f64::EPSILON)
            );
        }
    }
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// `[matrix.packages]`'s lists made ranges: `bcrypt = ["3.2.0", "5.0.0"]`
/// becomes `{ range = ">=3.2.0", pick = "latest-per-minor" }`.
fn ranges_from_lists(table: &mut toml::Table) -> anyhow::Result<()> {
    let packages = table
        .get_mut("matrix")
        .and_then(toml::Value::as_table_mut)
        .and_then(|matrix| matrix.get_mut("packages"))
        .and_then(toml::Value::as_table_mut)
        .context("the config has no [matrix.packages]")?;
    for (package, entry) in packages.iter_mut() {
        let Some(versions) = entry.as_array() else {
            continue;
        };
        let lowest = versions
            .iter()
            .filter_map(toml::Value::as_str)
            .min_by(|a, b| compare_versions(a, b))
            .with_context(|| format!("matrix.packages.{package} lists no version"))?;
        let mut range = toml::Table::new();
        range.insert("range".to_owned(), format!(">={lowest}").into());
        range.insert("pick".to_owned(), "latest-per-minor".into());
        *entry = toml::Value::Table(range);
    }
    Ok(())
}

/// Dotted versions compared by their numbers (`4.10` after `4.9`).
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let numbers = |version: &str| -> Vec<u64> {
        version
            .split('.')
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    };
    numbers(a).cmp(&numbers(b))
}

/// A copy of a config in a temp folder, edited.
pub(super) struct Variant {
    _dir: tempfile::TempDir,
    pub(super) config: PathBuf,
}

impl Variant {
    /// `config` edited by `edit`, beside copies of the service's root, its
    /// scenarios and its snapshots (the paths the config names, relative to
    /// its folder as they must be).
    pub(super) fn of(
        config: &Path,
        edit: impl FnOnce(&mut toml::Table) -> anyhow::Result<()>,
    ) -> anyhow::Result<Variant> {
        let config = std::path::absolute(config)?;
        let folder = config.parent().context("a config file is in a folder")?;
        let mut table: toml::Table = fs_err::read_to_string(&config)?
            .parse()
            .with_context(|| format!("{} is not TOML", config.display()))?;
        let dir = tempfile::Builder::new().prefix("bench-config-").tempdir()?;
        let named = |section: &str, key: &str| {
            table
                .get(section)
                .and_then(|section| section.get(key))
                .and_then(toml::Value::as_str)
                .map(PathBuf::from)
        };
        let mut folders: Vec<PathBuf> = [
            named("service", "root"),
            named("replay", "scenarios"),
            named("replay", "snapshots"),
        ]
        .into_iter()
        .map(|path| path.unwrap_or_else(|| PathBuf::from(".")))
        .collect();
        // A folder inside another is copied with it.
        folders.sort_by_key(|path| path.components().count());
        let mut copied: Vec<PathBuf> = Vec::new();
        for path in folders {
            let path = path.components().collect::<PathBuf>();
            if copied.iter().any(|done| path.starts_with(done)) {
                continue;
            }
            let from = folder.join(&path);
            if from.is_dir() {
                upgrade_check_core::util::copy_tree(&from, &dir.path().join(&path))?;
            }
            copied.push(path);
        }
        edit(&mut table)?;
        let written = dir.path().join("upgrade-check.toml");
        fs_err::write(&written, toml::to_string(&table)?)?;
        Ok(Variant {
            _dir: dir,
            config: written,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_becomes_a_range_from_its_lowest_version() {
        let mut table: toml::Table = r#"
            [matrix.packages]
            bcrypt = ["4.1.2", "3.2.0", "5.0.0"]
            pyjwt = ["1.10.1", "1.7.1"]
            flask = { range = ">=2.2", pick = "latest" }
        "#
        .parse()
        .unwrap();
        ranges_from_lists(&mut table).unwrap();
        let packages = &table["matrix"]["packages"];
        assert_eq!(packages["bcrypt"]["range"].as_str(), Some(">=3.2.0"));
        assert_eq!(packages["pyjwt"]["range"].as_str(), Some(">=1.7.1"));
        assert_eq!(packages["pyjwt"]["pick"].as_str(), Some("latest-per-minor"));
        assert_eq!(packages["flask"]["pick"].as_str(), Some("latest"));
    }

    #[test]
    fn the_busy_share_counts_idle_and_waiting_as_not_busy() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let before = CpuTimes::parse("cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 1 2 3\n").unwrap();
        let after = CpuTimes::parse("cpu  160 0 70 820 60 0 0 0 90 0\n").unwrap();
        // 80 ticks busy of 110.
        let share = before.busy_share_until(after).unwrap();
        assert!((share - 80.0 / 110.0).abs() < 1e-9, "{share}");
        assert!(after.busy_share_until(after).is_none(), "no time passed");
        assert!(CpuTimes::now().is_some(), "Linux has /proc/stat");
    }
}
