//! `upgrade-check init [DIR]`: what it found in the service's folder, how
//! starting the service once went, what it wrote, and what is left to do.

use std::path::Path;
use std::sync::Arc;

use upgrade_check_core::model::event::{Events, RunEvent};
use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::{Options, init};

use crate::cli::GlobalArgs;
use crate::progress::Progress;

/// Exit 0 when the service started and answered its health path; 1 when
/// the files are written but it did not (the reason is printed); 2 when
/// nothing could be written.
pub fn run(
    global: &GlobalArgs,
    dir: Option<&Path>,
    options: Options,
) -> anyhow::Result<ExitStatus> {
    let dir = dir.unwrap_or(Path::new("."));
    let progress = Arc::new(Progress::new(global.quiet, global.verbose));
    let shown = progress.clone();
    let events: Events = Arc::new(move |event: &RunEvent| shown.show(event));
    crate::errln!(
        "init: reading {} and starting the service once…",
        dir.display()
    );
    let done = init::init(dir, &options, events);
    progress.finish();
    let done = done?;
    let found = &done.inspection;
    crate::outln!("found:");
    let ecosystem = format!("{:?}", found.ecosystem).to_lowercase();
    crate::outln!("  ecosystem   {ecosystem}");
    if found.root != "." {
        crate::outln!("  service in  {}/", found.root);
    }
    crate::outln!(
        "  baseline    {}",
        found.baseline.as_deref().unwrap_or("(none found)")
    );
    match &found.command {
        Some(command) => {
            crate::outln!("  starts as   {}", command.join(" "));
            crate::outln!("              {}", found.how);
        }
        None => crate::outln!("  starts as   (not found)"),
    }
    for (name, value) in &found.env {
        crate::outln!("  env         {name} = {value}");
    }
    match (&done.healthy, &done.unproven) {
        (Some(path), _) => {
            crate::outln!("  health      GET {path} answered 2xx when the service was started once")
        }
        (None, Some(why)) => crate::outln!("  health      not proven: {why}"),
        (None, None) => {}
    }
    let here = std::env::current_dir().unwrap_or_default();
    let shown = |path: &Path| {
        path.strip_prefix(&here)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    crate::outln!(
        "wrote {} and {}",
        shown(&done.config),
        shown(&done.scenario)
    );
    for todo in &found.todos {
        crate::outln!("TODO: {todo}");
    }
    for note in &done.notes {
        crate::outln!("note: {note}");
    }
    let program = crate::invoked_as();
    if done.healthy.is_some() {
        crate::outln!(
            "next: `{program} --accept` records what the baseline answers as the accepted snapshots; add scenarios beside scenarios/health.toml and packages under [matrix.packages]"
        );
        Ok(ExitStatus::Pass)
    } else {
        crate::outln!(
            "next: fill in the TODOs in {}, then `{program} --accept`",
            shown(&done.config)
        );
        Ok(ExitStatus::Regression)
    }
}
