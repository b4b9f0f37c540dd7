//! `upgrade-check gc`: keeps the cache bounded, and says what it removed
//! (or would) and what it kept.

use std::path::Path;

use upgrade_check_core::gc::{self, Policy};
use upgrade_check_core::model::report::ExitStatus;

use crate::cli::GlobalArgs;

pub fn run(global: &GlobalArgs, policy: Policy) -> anyhow::Result<ExitStatus> {
    let dirs = super::state_dirs(global, Path::new(""))?;
    // The state folder is gc's when named, or when nothing is named (the
    // default layout keeps the cache in it); never when only --cache-dir is.
    let state_given = global.state_dir.is_some() || global.cache_dir.is_none();
    let collected = gc::collect(&dirs, policy, state_given)?;
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let verb = if policy.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (path, bytes, reason) in &collected.removed {
        crate::outln!(
            "{verb} {} ({:.1} MiB): {reason}",
            path.display(),
            mib(*bytes)
        );
    }
    crate::outln!(
        "{verb} {} entries ({:.1} MiB); kept {} environments ({:.1} MiB) in {}",
        collected.removed.len(),
        mib(collected.removed.iter().map(|(_, bytes, _)| bytes).sum()),
        collected.kept_environments,
        mib(collected.kept_bytes),
        dirs.cache.display()
    );
    Ok(ExitStatus::Pass)
}
