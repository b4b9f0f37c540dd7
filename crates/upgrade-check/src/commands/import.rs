//! `upgrade-check import har FILE` and `import postman COLLECTION`: what
//! became of the recording or the collection.

use std::path::Path;

use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::{Action, import};

use crate::cli::GlobalArgs;

pub fn har(
    global: &GlobalArgs,
    file: &Path,
    name: Option<&str>,
    origin: Option<&str>,
) -> anyhow::Result<ExitStatus> {
    let imported = import::import_har(&global.options(Action::Run), file, name, origin)?;
    let here = std::env::current_dir().unwrap_or_default();
    let shown = imported
        .scenario
        .strip_prefix(&here)
        .unwrap_or(&imported.scenario);
    crate::outln!(
        "wrote {}: {}, the requests to {}",
        shown.display(),
        super::steps(imported.steps),
        imported.origin
    );
    for note in &imported.notes {
        crate::outln!("  {note}");
    }
    if !imported.left_out.is_empty() {
        crate::outln!("left out ({}):", imported.left_out.len());
        for request in &imported.left_out {
            crate::outln!("  {request}");
        }
    }
    crate::outln!(
        "next: `{} --accept` records what the baseline answers to it",
        crate::invoked_as()
    );
    Ok(ExitStatus::Pass)
}

pub fn postman(
    global: &GlobalArgs,
    collection: &Path,
    environment: Option<&Path>,
) -> anyhow::Result<ExitStatus> {
    let (written, notes) =
        import::import_postman(&global.options(Action::Run), collection, environment)?;
    let here = std::env::current_dir().unwrap_or_default();
    for made in &written {
        let shown = made.scenario.strip_prefix(&here).unwrap_or(&made.scenario);
        crate::outln!("wrote {}: {}", shown.display(), super::steps(made.steps));
    }
    if !notes.is_empty() {
        crate::outln!("not translated ({}):", notes.len());
        for note in &notes {
            crate::outln!("  {note}");
        }
    }
    crate::outln!(
        "next: `{} --accept` records what the baseline answers to them",
        crate::invoked_as()
    );
    Ok(ExitStatus::Pass)
}
