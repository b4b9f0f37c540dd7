//! `upgrade-check import har FILE` and `import postman COLLECTION`:
//! recorded traffic (`input::traffic`) or a Postman collection
//! (`input::postman`) into scenario files in the config's scenarios
//! folder, each checked to load as any scenario does, never over an
//! existing one.

use std::path::{Path, PathBuf};

use super::Options;
use crate::input::config::Config;
use crate::input::source::InputError;
use crate::input::{har, postman, scenario, traffic};
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
    let config_path = options.config_path()?;
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
    check_name(&name)?;
    let file_name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let written = traffic::scenario(
        &format!("recorded in {file_name}, requests to {}", from.origin),
        &from.recorded,
    );
    let (scenario, loaded) = write_scenario(&config, &name, &written)?;
    Ok(Imported {
        scenario,
        steps: loaded.steps.len(),
        origin: from.origin,
        notes: written.notes,
        left_out: from.left_out,
    })
}

/// One scenario a collection became.
#[derive(Debug)]
pub struct FromCollection {
    pub scenario: PathBuf,
    pub steps: usize,
}

/// Turns the Postman collection `file` (with the environment file
/// `environment`, whose values win) into one scenario per top-level folder;
/// none is written when any would overwrite a scenario. What was not
/// translated is returned, by item.
pub fn import_postman(
    options: &Options,
    file: &Path,
    environment: Option<&Path>,
) -> anyhow::Result<(Vec<FromCollection>, Vec<String>)> {
    let config_path = options.config_path()?;
    let config = Config::load(&config_path)?;
    let scenarios = postman::read(file, environment)?;
    if scenarios.is_empty() {
        return Err(InputError::in_file(file, "the collection holds no request").into());
    }
    for made in &scenarios {
        check_name(&made.name)?;
        new_scenario_path(&config, &made.name)?;
    }
    let mut written = Vec::new();
    let mut notes = Vec::new();
    for made in scenarios {
        let text = traffic::Written {
            text: made.text,
            notes: Vec::new(),
        };
        let (scenario, loaded) = write_scenario(&config, &made.name, &text)?;
        written.push(FromCollection {
            scenario,
            steps: loaded.steps.len(),
        });
        notes.extend(made.notes);
    }
    Ok((written, notes))
}

/// A scenario's name is its file's stem: letters, digits, `-` and `_`.
pub(super) fn check_name(name: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || !name.chars().all(allowed) {
        anyhow::bail!("`{name}` cannot name a scenario: letters, digits, `-` and `_` only");
    }
    Ok(())
}

/// The path `scenarios/NAME.toml` in `config`'s scenarios folder, refused
/// when it exists: nothing records over a scenario.
pub(super) fn new_scenario_path(config: &Config, name: &str) -> anyhow::Result<PathBuf> {
    let target = config.replay.scenarios.join(format!("{name}.toml"));
    state::refuse_outside(config.base_dir(), &target)?;
    if target.exists() {
        return Err(InputError::in_file(
            &target,
            "exists already; a recording never overwrites a scenario",
        )
        .into());
    }
    Ok(target)
}

/// Writes `written` as `scenarios/NAME.toml`, loaded first as any scenario
/// is; its secrets are registered, so that nothing after prints them.
pub(super) fn write_scenario(
    config: &Config,
    name: &str,
    written: &traffic::Written,
) -> anyhow::Result<(PathBuf, scenario::Scenario)> {
    let target = new_scenario_path(config, name)?;
    let scratch = state::temp_dir()?;
    let draft = scratch.path().join(format!("{name}.toml"));
    state::write_new(&draft, written.text.as_bytes())?;
    let loaded = scenario::load(&draft)?;
    state::write_new(&target, written.text.as_bytes()).map_err(|_| {
        InputError::in_file(
            &target,
            "exists already; a recording never overwrites a scenario",
        )
    })?;
    redact::register(&redact::Secrets::new(
        loaded
            .secrets
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    ));
    Ok((target, loaded))
}
