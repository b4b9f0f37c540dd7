//! The commands that run a check through the library (`session`): the
//! whole matrix, `plan`, `bisect` and `accept --cell`. Progress goes to
//! stderr (and `--events`), the answer to stdout.

use std::sync::Arc;

use upgrade_check_core::Bisected;
use upgrade_check_core::model::cell::Plan;
use upgrade_check_core::model::event::{Events, RunEvent};
use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::render;
use upgrade_check_core::shard;
use upgrade_check_core::{self as core, Finished, Options};

use crate::cli::{CheckArgs, Format, GlobalArgs, PlanFormat, Shard};
use crate::events_log::EventLog;
use crate::progress::Progress;

/// Runs the check `options` ask for and shows what it finished with.
pub fn run(
    global: &GlobalArgs,
    check: &CheckArgs,
    mut options: Options,
    shard: Option<Shard>,
) -> anyhow::Result<ExitStatus> {
    if let Some(shard) = shard {
        options.shard = Some(shard.resolve(|name| std::env::var(name).ok())?);
    }
    let shown = Shown {
        global,
        format: match check.format {
            Format::Terminal => PlanFormat::Terminal,
            Format::Json => PlanFormat::Json,
        },
        shards: 0,
    };
    session_with_events(global, check.events.as_deref(), options, shown)
}

/// `upgrade-check plan`: the plan, in `shards` shards for a job matrix.
pub fn plan(
    global: &GlobalArgs,
    options: Options,
    format: PlanFormat,
    shards: usize,
) -> anyhow::Result<ExitStatus> {
    let shown = Shown {
        global,
        format,
        shards,
    };
    session_with_events(global, None, options, shown)
}

/// How the answer is shown.
struct Shown<'a> {
    global: &'a GlobalArgs,
    format: PlanFormat,
    /// For a plan as a job matrix: how many shards.
    shards: usize,
}

fn session_with_events(
    global: &GlobalArgs,
    events_file: Option<&std::path::Path>,
    options: Options,
    shown: Shown,
) -> anyhow::Result<ExitStatus> {
    let progress = Arc::new(Progress::new(global.quiet, global.verbose));
    let log = match events_file {
        Some(path) => Some(Arc::new(EventLog::create(path)?)),
        None => None,
    };
    let (on_screen, logged) = (progress.clone(), log.clone());
    let events: Events = Arc::new(move |event: &RunEvent| {
        on_screen.show(event);
        if let Some(log) = &logged {
            log.write(event);
        }
    });
    let finished = core::upgrade_check(options, events);
    // The summary goes below the live display, never through it.
    progress.finish();
    let answered = finished.and_then(|finished| answer(&shown, finished));
    if let Some(log) = &log {
        log.finish(&answered);
    }
    answered
}

/// What a finished session shows on stdout, and its exit status.
fn answer(shown: &Shown, finished: Finished) -> anyhow::Result<ExitStatus> {
    match finished {
        Finished::Planned(plan) => {
            print_plan(&plan, shown.format, shown.shards)?;
            Ok(ExitStatus::Pass)
        }
        Finished::Reported {
            report,
            written,
            status,
        } => {
            match shown.format {
                PlanFormat::Json => crate::outln!("{}", serde_json::to_string_pretty(&report)?),
                PlanFormat::Terminal | PlanFormat::GithubMatrix => crate::output::print_summary(
                    &render::terminal::render(&report),
                    shown.global.color.for_stdout(),
                ),
            }
            let written: Vec<String> = written
                .iter()
                .map(|path| path.display().to_string())
                .collect();
            if !shown.global.quiet {
                crate::errln!("reports: {}", written.join(", "));
            }
            Ok(status)
        }
        Finished::Bisected(Bisected::NothingToBisect { package, from, to }) => {
            crate::outln!("{package} {to} breaks nothing that {from} passes: nothing to bisect");
            Ok(ExitStatus::Pass)
        }
        Finished::Bisected(Bisected::Searched { report, first_bad }) => {
            crate::out!("{}", render::bisect::render(&report, &first_bad));
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
fn print_plan(plan: &Plan, format: PlanFormat, shards: usize) -> anyhow::Result<()> {
    match format {
        PlanFormat::GithubMatrix => {
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
        PlanFormat::Terminal => {
            for cell in &plan.cells {
                crate::outln!("{}\t{}\t{}", cell.id, cell.name, cell.profile);
            }
            for skipped in &plan.skipped {
                crate::outln!("# skipped: {skipped}");
            }
        }
        PlanFormat::Json => {
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
