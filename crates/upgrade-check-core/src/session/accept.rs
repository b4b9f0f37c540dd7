//! Snapshots written by a check: the baseline's results accepted, an
//! alternative accepted for one cell's versions, pending ones for review.

use anyhow::{Context, bail};

use crate::input::config;
use crate::judge::snapshot;
use crate::model::cell::Pin;
use crate::model::package;
use crate::model::report::Verdict;
use crate::model::setting::{Setting, SettingError};
use crate::run::{self, CellOutcome, RunContext};
use crate::sys::state::relative;

/// Writes the results of the plan's one cell as the accepted snapshots: the
/// baseline's, or on a pull request's branch the whole change's (what the
/// branch runs once merged), each file saying which.
pub(super) fn baseline(
    ctx: &RunContext,
    outcomes: &[CellOutcome],
    accept_unhealthy: bool,
) -> anyhow::Result<Vec<String>> {
    let baseline = outcomes.first().context("the plan has no cell")?;
    let who = if baseline.report.baseline {
        "the baseline".to_owned()
    } else {
        format!("`{}`", baseline.report.name)
    };
    let taken_from = if baseline.report.baseline {
        "accepted from the baseline".to_owned()
    } else {
        format!(
            "accepted from cell `{}`, this change's versions",
            baseline.report.name
        )
    };
    if let Some(broken) = baseline.report.scenarios.iter().find(|s| {
        matches!(
            s.verdict,
            Verdict::BuildFailed | Verdict::StartupFailed | Verdict::Error
        )
    }) {
        bail!(
            "cannot accept: {who} is {} on `{}`: {}",
            broken.verdict.label(),
            broken.scenario,
            broken.summary.as_deref().unwrap_or("")
        );
    }
    let unhealthy: Vec<String> = baseline
        .report
        .scenarios
        .iter()
        .filter(|s| !s.unhealthy.is_empty())
        .map(|s| format!("{}: {}", s.scenario, s.unhealthy.join("; ")))
        .collect();
    if !unhealthy.is_empty() && !accept_unhealthy {
        return Err(SettingError::new(
            Setting::AcceptUnhealthy,
            format!(
                "cannot accept: {who} is unhealthy ({}); fix the service, or accept \
                 this behaviour as it is, unhealthy",
                unhealthy.join(" | ")
            ),
        )
        .into());
    }
    let mut accepted = Vec::new();
    for run in run::scenario_runs(
        &ctx.settings.scenarios,
        &ctx.settings.config.service.profile,
    ) {
        let Some(contents) = baseline.contents.get(&run.key) else {
            continue;
        };
        let path = snapshot::accepted_path(&ctx.settings.config.replay.snapshots, &run.key);
        snapshot::accept(&path, &header(ctx, &run, &taken_from), contents)?;
        let path = relative(&path, ctx.settings.config.base_dir());
        accepted.push(if baseline.report.baseline {
            path
        } else {
            format!("{path} (from {})", baseline.report.name)
        });
    }
    Ok(accepted)
}

/// `PACKAGE VERSION` and scenario keys, checked before anything runs.
pub(super) fn alternative_request(
    ecosystem: config::Ecosystem,
    known: &[String],
    cell: &str,
    scenarios: &[String],
) -> anyhow::Result<(Pin, Vec<String>)> {
    let Some((package, version)) = cell.trim().split_once(' ') else {
        return Err(SettingError::new(
            Setting::Cell,
            format!("cell `{cell}`: name it as the report does, `PACKAGE VERSION`"),
        )
        .into());
    };
    let pin = Pin {
        package: package::PackageName::parse(ecosystem, package.trim())
            .map_err(|err| SettingError::new(Setting::Cell, format!("cell `{cell}`: {err}")))?,
        version: package::Version::parse(ecosystem, version.trim())
            .map_err(|err| SettingError::new(Setting::Cell, format!("cell `{cell}`: {err}")))?,
    };
    for scenario in scenarios {
        if !known.contains(scenario) {
            bail!(
                "no scenario `{scenario}`; the scenarios are: {}",
                known.join(", ")
            );
        }
    }
    Ok((pin, scenarios.to_vec()))
}

/// Writes the cell's output of each scenario in `keys` as an alternative
/// accepted snapshot; refuses, writing nothing, when the cell did not run them.
pub(super) fn alternatives(
    ctx: &RunContext,
    outcomes: &[CellOutcome],
    pin: &Pin,
    keys: &[String],
    accept_unhealthy: bool,
) -> anyhow::Result<Vec<(String, String)>> {
    let outcome = outcomes.first().context("the plan has no cell")?;
    let mut accepted = Vec::new();
    for key in keys {
        let scenario = outcome.report.scenarios.iter().find(|s| &s.scenario == key);
        let contents = outcome.contents.get(key);
        let (Some(scenario), Some(contents)) = (scenario, contents) else {
            bail!("cannot accept: `{}` did not run {key}", outcome.report.name);
        };
        if matches!(
            scenario.verdict,
            Verdict::BuildFailed | Verdict::StartupFailed | Verdict::Error
        ) {
            bail!(
                "cannot accept: `{}` is {} on `{key}`: {}",
                outcome.report.name,
                scenario.verdict.label(),
                scenario.summary.as_deref().unwrap_or("")
            );
        }
        // A 5xx or a traceback made a reference only when asked, as for the baseline.
        if !scenario.unhealthy.is_empty() && !accept_unhealthy {
            return Err(SettingError::new(
                Setting::AcceptUnhealthy,
                format!(
                    "cannot accept: `{}` is unhealthy on `{key}` ({}); fix the service, or accept \
                     this behaviour as it is, unhealthy",
                    outcome.report.name,
                    scenario.unhealthy.join("; ")
                ),
            )
            .into());
        }
        let path = snapshot::alternative_path(&ctx.settings.config.replay.snapshots, key, pin);
        crate::sys::state::refuse_outside(ctx.settings.config.base_dir(), &path)?;
        accepted.push((key, contents));
    }
    let mut written = Vec::new();
    for (key, contents) in accepted {
        let run = run::scenario_runs(
            &ctx.settings.scenarios,
            &ctx.settings.config.service.profile,
        )
        .into_iter()
        .find(|run| &run.key == key)
        .context("the scenario ran, so it exists")?;
        let path = snapshot::alternative_path(&ctx.settings.config.replay.snapshots, key, pin);
        let alternative = snapshot::Alternative {
            path: path.clone(),
            from: pin.clone(),
        };
        let description = format!(
            "alternative accepted for {} (cell `{}`); the baseline's {key}.snap stays the reference",
            alternative.range(),
            outcome.report.name
        );
        snapshot::accept(&path, &header(ctx, &run, &description), contents)?;
        written.push((
            relative(&path, ctx.settings.config.base_dir()),
            alternative.range(),
        ));
    }
    Ok(written)
}

/// One `.snap.new` per scenario that did not match: the baseline's result if
/// the baseline differs, else the first differing cell's; stale ones go.
pub(super) fn write_pending(
    ctx: &RunContext,
    outcomes: &[CellOutcome],
) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    for run in run::scenario_runs(
        &ctx.settings.scenarios,
        &ctx.settings.config.service.profile,
    ) {
        let path = snapshot::accepted_path(&ctx.settings.config.replay.snapshots, &run.key);
        let changed = outcomes.iter().find_map(|outcome| {
            let verdict = outcome
                .report
                .scenarios
                .iter()
                .find(|s| s.scenario == run.key)?
                .verdict;
            let contents = outcome.contents.get(&run.key)?;
            (verdict == Verdict::Changed).then_some((outcome, contents))
        });
        match changed {
            Some((outcome, contents)) => {
                let description = if outcome.report.baseline {
                    "result of the baseline".to_owned()
                } else {
                    format!(
                        "result of cell `{}`; accepting it makes this the expected behaviour",
                        outcome.report.name
                    )
                };
                let pending =
                    snapshot::write_pending(&path, &header(ctx, &run, &description), contents)?;
                written.push(relative(&pending, ctx.settings.config.base_dir()));
            }
            None => snapshot::remove_pending(&path)?,
        }
    }
    Ok(written)
}

fn header<'a>(
    ctx: &RunContext,
    run: &'a run::ScenarioRun<'_>,
    description: &'a str,
) -> snapshot::Header<'a> {
    snapshot::Header {
        source: relative(&run.scenario.path, ctx.settings.config.base_dir()),
        scenario: &run.key,
        description,
    }
}
