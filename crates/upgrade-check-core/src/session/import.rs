//! `upgrade-check import har FILE`: recorded traffic into a scenario file
//! in the config's scenarios folder ([`crate::input::traffic`] writes it),
//! checked to load as any scenario does, never over an existing one.

use std::path::{Path, PathBuf};

use super::Options;
use crate::input::config::{self, Config};
use crate::input::source::InputError;
use crate::input::{har, scenario, traffic};
use crate::sys::{redact, state};

/// The scenario written, and what the import says about it.
#[derive(Debug)]
pub struct Imported {
    pub scenario: PathBuf,
    pub steps: usize,
    /// The origin whose requests were kept.
    pub origin: String,
    /// Captures and secrets made, and anything left out of a step.
    pub notes: Vec<String>,
    /// Requests not made steps: other origins, static files.
    pub left_out: Vec<String>,
}

/// Turns the HAR file `file` into `scenarios/NAME.toml` (NAME: `name`, or
/// the file's stem), keeping the requests to `origin` (by default the one
/// most requests went to).
pub fn import_har(
    options: &Options,
    file: &Path,
    name: Option<&str>,
    origin: Option<&str>,
) -> anyhow::Result<Imported> {
    let config_path = match &options.config {
        Some(path) => path.clone(),
        None => config::discover()?,
    };
    let config = Config::load(&config_path)?;
    let from = har::read(file, origin)?;
    if from.recorded.is_empty() {
        return Err(
            InputError::in_file(file, format!("no request to {} in it", from.origin)).into(),
        );
    }
    let name = match name {
        Some(name) => name.to_owned(),
        None => file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || !name.chars().all(allowed) {
        return Err(InputError::in_file(
            file,
            format!("`{name}` cannot name a scenario (letters, digits, `-` and `_`): give one with --name"),
        )
        .into());
    }
    let file_name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let written = traffic::scenario(
        &format!("recorded in {file_name}, requests to {}", from.origin),
        &from.recorded,
    );
    let target = config.replay.scenarios.join(format!("{name}.toml"));
    if target.exists() {
        return Err(InputError::in_file(
            &target,
            "exists already; an import never overwrites a scenario",
        )
        .into());
    }
    // Loaded as any scenario is, from a copy, before it is written.
    let scratch = state::temp_dir()?;
    let draft = scratch.path().join(format!("{name}.toml"));
    state::write_new(&draft, written.text.as_bytes())?;
    let loaded = scenario::load(&draft)?;
    state::write_new(&target, written.text.as_bytes()).map_err(|_| {
        InputError::in_file(
            &target,
            "exists already; an import never overwrites a scenario",
        )
    })?;
    // From here on its secrets are never printed.
    redact::register(&redact::Secrets::new(
        loaded
            .secrets
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    ));
    Ok(Imported {
        scenario: target,
        steps: loaded.steps.len(),
        origin: from.origin,
        notes: written.notes,
        left_out: from.left_out,
    })
}
