//! `upgrade-check accept [SCENARIO…]` and `upgrade-check review`: what a
//! run left pending (`snapshots/*.snap.new`) becomes accepted, or goes, by
//! the user's explicit word, without running anything. Never in CI.

use std::io::BufRead;

use anyhow::bail;

use upgrade_check_core as core;
use upgrade_check_core::config::Config;
use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::snapshot::{self, Pending};
use upgrade_check_core::util::relative;

use crate::cli::GlobalArgs;

/// The config and its pending snapshots; refused in CI.
fn load(global: &GlobalArgs) -> anyhow::Result<(Config, Vec<Pending>)> {
    core::refuse_accepting_in_ci()?;
    let config = Config::load(&super::config_path(global)?)?;
    let pending = snapshot::pending(&config.replay.snapshots)?;
    Ok((config, pending))
}

/// `upgrade-check accept [SCENARIO…]`.
pub fn accept(global: &GlobalArgs, scenarios: &[String]) -> anyhow::Result<ExitStatus> {
    let (config, pending) = load(global)?;
    let shown = |pending: &Pending| relative(&pending.accepted, config.base_dir());
    {
        {
            let chosen = choose(pending, scenarios)?;
            if chosen.is_empty() {
                crate::outln!("no pending snapshots: nothing to accept");
            }
            for pending in chosen {
                let from = pending.description();
                pending.accept()?;
                crate::outln!("accepted {} ({from})", shown(&pending));
            }
            Ok(ExitStatus::Pass)
        }
    }
}

/// `upgrade-check review`.
pub fn review(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let (config, pending) = load(global)?;
    let shown = |pending: &Pending| relative(&pending.accepted, config.base_dir());
    {
        {
            if pending.is_empty() {
                crate::outln!("no pending snapshots: nothing to review");
                return Ok(ExitStatus::Pass);
            }
            let (mut accepted, mut rejected, mut skipped) = (0, 0, 0);
            let mut answers = std::io::stdin().lock().lines();
            let total = pending.len();
            for (index, pending) in pending.iter().enumerate() {
                crate::outln!(
                    "\n── {} ({} of {total}): {} ──\n{}",
                    pending.scenario,
                    index + 1,
                    pending.description(),
                    pending.diff().trim_end()
                );
                crate::out!("accept (a), reject (r) or skip (s)? ");
                match answers.next().transpose()?.as_deref().map(str::trim) {
                    Some("a") => {
                        pending.accept()?;
                        accepted += 1;
                        crate::outln!("accepted {}", shown(pending));
                    }
                    Some("r") => {
                        pending.reject()?;
                        rejected += 1;
                        crate::outln!("rejected: {} stays as it was", shown(pending));
                    }
                    Some(_) => skipped += 1,
                    // No more answers: the rest stay pending.
                    None => {
                        skipped += 1;
                        crate::outln!("");
                        break;
                    }
                }
            }
            crate::outln!("{accepted} accepted, {rejected} rejected, {skipped} skipped");
            Ok(ExitStatus::Pass)
        }
    }
}

/// The pending snapshots of `scenarios`, or all when none are named; a named
/// scenario with nothing pending is an error naming what is.
fn choose(pending: Vec<Pending>, scenarios: &[String]) -> anyhow::Result<Vec<Pending>> {
    if scenarios.is_empty() {
        return Ok(pending);
    }
    for scenario in scenarios {
        if !pending.iter().any(|p| &p.scenario == scenario) {
            let names: Vec<&str> = pending.iter().map(|p| p.scenario.as_str()).collect();
            bail!(
                "no pending snapshot for `{scenario}`; pending: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            );
        }
    }
    Ok(pending
        .into_iter()
        .filter(|p| scenarios.contains(&p.scenario))
        .collect())
}
