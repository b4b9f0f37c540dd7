//! The commands that run a check through the library (`session`): the
//! whole matrix, `plan`, `bisect` and `accept --cell`. Progress goes to
//! stderr (and `--events`), the answer to stdout.

use std::sync::Arc;

use anyhow::bail;
use upgrade_check_core::follow_up::bisect::Bisected;
use upgrade_check_core::model::cell::Plan;
use upgrade_check_core::model::event::{Events, RunEvent};
use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::plan::shard;
use upgrade_check_core::report;
use upgrade_check_core::session::{self, Action, Finished};

use crate::cli::{Cli, Format};
use crate::events_log::EventLog;
use crate::progress::Progress;

/// Runs `action` and shows what it finished with.
pub fn run(cli: &Cli, action: Action) -> anyhow::Result<ExitStatus> {
    if cli.format == Format::GithubMatrix {
        bail!("--format github-matrix is for `upgrade-check plan`");
    }
    check(cli, action, 0)
}

/// `upgrade-check plan`: the plan, in `shards` shards for a job matrix.
pub fn plan(cli: &Cli, shards: usize) -> anyhow::Result<ExitStatus> {
    check(cli, Action::Plan, shards)
}

fn check(cli: &Cli, action: Action, shards: usize) -> anyhow::Result<ExitStatus> {
    let progress = Arc::new(Progress::new(cli.quiet, cli.verbose));
    let log = match &cli.events {
        Some(path) => Some(Arc::new(EventLog::create(path)?)),
        None => None,
    };
    let (shown, logged) = (progress.clone(), log.clone());
    let events: Events = Arc::new(move |event: &RunEvent| {
        shown.show(event);
        if let Some(log) = &logged {
            log.write(event);
        }
    });
    let mut options = cli.options(action);
    if let Some(shard) = cli.shard {
        options.shard = Some(shard.resolve(|name| std::env::var(name).ok())?);
    }
    let finished = session::upgrade_check(options, events);
    // The summary goes below the live display, never through it.
    progress.finish();
    let answered = finished.and_then(|finished| answer(cli, finished, shards));
    if let Some(log) = &log {
        log.finish(&answered);
    }
    answered
}

/// What a finished session shows on stdout, and its exit status.
fn answer(cli: &Cli, finished: Finished, shards: usize) -> anyhow::Result<ExitStatus> {
    match finished {
        Finished::Planned(plan) => {
            print_plan(&plan, cli.format, shards)?;
            Ok(ExitStatus::Pass)
        }
        Finished::Reported {
            report,
            written,
            status,
        } => {
            match cli.format {
                Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&report)?),
                Format::Terminal | Format::GithubMatrix => crate::output::print_summary(
                    &report::terminal::render(&report),
                    cli.color.for_stdout(),
                ),
            }
            let written: Vec<String> = written
                .iter()
                .map(|path| path.display().to_string())
                .collect();
            if !cli.quiet {
                crate::errln!("reports: {}", written.join(", "));
            }
            Ok(status)
        }
        Finished::Bisected(Bisected::NothingToBisect { package, from, to }) => {
            crate::outln!("{package} {to} breaks nothing that {from} passes: nothing to bisect");
            Ok(ExitStatus::Pass)
        }
        Finished::Bisected(Bisected::Searched { report, first_bad }) => {
            crate::out!("{}", report::bisect::render(&report, &first_bad));
            // A first bad version is a regression found, as in a run.
            Ok(if report.first_bad.is_some() {
                ExitStatus::Regression
            } else {
                ExitStatus::Pass
            })
        }
        Finished::AcceptedAlternatives(accepted) => {
            for (path, versions) in accepted {
                crate::outln!("accepted alternative: {path} (for {versions})");
            }
            Ok(ExitStatus::Pass)
        }
        Finished::Interrupted { signal, during } => {
            crate::errln!("upgrade-check: interrupted by {signal}{during}");
            Ok(ExitStatus::Interrupted)
        }
    }
}

/// The plan on stdout: one cell per line, JSON, or a job matrix of shards.
fn print_plan(plan: &Plan, format: Format, shards: usize) -> anyhow::Result<()> {
    match format {
        Format::GithubMatrix => {
            let include: Vec<serde_json::Value> = (0..shards)
                .map(|index| {
                    let names: Vec<String> = shard(plan, index, shards)
                        .cells
                        .into_iter()
                        .skip(1)
                        .map(|cell| cell.name)
                        .collect();
                    serde_json::json!({
                        "shard": format!("{}/{shards}", index + 1),
                        "cells": names.join("; "),
                    })
                })
                .collect();
            crate::outln!("{}", serde_json::json!({ "include": include }));
        }
        Format::Terminal => {
            for cell in &plan.cells {
                crate::outln!("{}\t{}\t{}", cell.id, cell.name, cell.profile);
            }
            for skipped in &plan.skipped {
                crate::outln!("# skipped: {skipped}");
            }
        }
        Format::Json => {
            let cells: Vec<serde_json::Value> = plan
                .cells
                .iter()
                .map(|cell| {
                    serde_json::json!({
                        "id": cell.id,
                        "name": cell.name,
                        "profile": cell.profile,
                        "pins": cell.pins.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "cells": cells,
                    "skipped": plan.skipped,
                }))?
            );
        }
    }
    Ok(())
}
