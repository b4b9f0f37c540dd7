//! `upgrade-check report merge`: the shards' parts as one report, written in
//! every format; the exit code is the merged result's.

use std::path::{Path, PathBuf};

use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::render;

use crate::cli::{Format, GlobalArgs};

pub fn run(
    global: &GlobalArgs,
    dirs: &[PathBuf],
    out: Option<&Path>,
    format: Format,
) -> anyhow::Result<ExitStatus> {
    let merged = render::merge::merge(render::merge::read_parts(dirs)?)?;
    let out = match out {
        Some(out) => out.to_owned(),
        None => super::state_dirs(global, Path::new(""))?.report_dir(),
    };
    let written = render::write_all(&merged, &out)?;
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&merged)?),
        Format::Terminal => crate::output::print_summary(
            &render::terminal::render(&merged),
            global.color.for_stdout(),
        ),
    }
    let written: Vec<String> = written
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    crate::errln!("merged {} parts: {}", dirs.len(), written.join(", "));
    Ok(merged.status())
}
