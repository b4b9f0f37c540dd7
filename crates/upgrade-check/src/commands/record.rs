//! `upgrade-check record NAME`: the proxy's URL while it records, then the
//! scenario it wrote.

use std::sync::Arc;

use upgrade_check_core::model::event::{Events, RunEvent};
use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::{Options, record};

use crate::cli::GlobalArgs;
use crate::progress::Progress;

pub fn run(
    global: &GlobalArgs,
    recording: &record::Recording,
    options: &Options,
) -> anyhow::Result<ExitStatus> {
    let name = &recording.name;
    let progress = Arc::new(Progress::new(global.quiet, global.verbose));
    let shown = progress.clone();
    let events: Events = Arc::new(move |event: &RunEvent| shown.show(event));
    let finish = progress.clone();
    let done = record::record(options, recording, events, &|url| {
        finish.finish();
        crate::outln!("recording: send requests to {url} (Ctrl-C writes scenarios/{name}.toml)");
    });
    progress.finish();
    let done = done?;
    let here = std::env::current_dir().unwrap_or_default();
    let shown = done.scenario.strip_prefix(&here).unwrap_or(&done.scenario);
    crate::outln!(
        "stopped ({}); wrote {}: {}",
        done.stopped_by,
        shown.display(),
        super::steps(done.steps)
    );
    for note in &done.notes {
        crate::outln!("  {note}");
    }
    match &done.snapshot {
        Some((path, text)) => {
            let path = path.strip_prefix(&here).unwrap_or(path);
            let verb = if recording.accept {
                "accepted"
            } else {
                "pending"
            };
            crate::outln!(
                "replayed on the baseline; {verb} snapshot {}:",
                path.display()
            );
            crate::out!("{text}");
        }
        None => crate::outln!("replayed on the baseline; no snapshot was written"),
    }
    if !recording.accept {
        crate::outln!(
            "next: `{program} accept {name}` accepts it (`{program} record NAME --accept` accepts as it records)",
            program = crate::invoked_as()
        );
    }
    Ok(ExitStatus::Pass)
}
