//! A Yarn 2+ service's own `.yarnrc.yml`, as the harness lays it beside the
//! lock for each install: its registries, scopes, `packageExtensions` and
//! the rest, but never `yarnPath` or `plugins`, which name files of the
//! repository's `.yarn/` folder an install folder does not hold (the Yarn
//! the harness runs is the one `packageManager` or the lock asks for).

use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::input::source::{InputError, Source};

/// Settings naming files of the repository: left out.
const LEFT_OUT: [&str; 2] = ["yarnPath", "plugins"];

/// The settings the harness lays, and whether they name the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct YarnSettings {
    /// `.yarnrc.yml`'s text without the settings that name files.
    pub text: String,
    /// Whether it sets `npmRegistryServer`: then npm's registry is not
    /// passed to Yarn, which would take it over the service's.
    pub names_registry: bool,
}

/// Reads `.yarnrc.yml`; refuses one that is no YAML mapping, at its line.
pub(crate) fn read(source: &Source) -> Result<YarnSettings, InputError> {
    let documents = YamlLoader::load_from_str(&source.text).map_err(|err| InputError {
        line: err.marker().line().max(1),
        column: err.marker().col() + 1,
        ..InputError::in_file(&source.path, format!("not YAML: {err}"))
    })?;
    let mut settings = match documents.into_iter().next() {
        None => return Ok(YarnSettings::default()),
        Some(Yaml::Hash(settings)) => settings,
        Some(_) => {
            return Err(InputError::in_file(
                &source.path,
                "not a mapping of settings",
            ));
        }
    };
    for key in LEFT_OUT {
        settings.remove(&Yaml::String(key.to_owned()));
    }
    let names_registry = settings.contains_key(&Yaml::String("npmRegistryServer".to_owned()));
    let mut text = String::new();
    if !settings.is_empty() {
        YamlEmitter::new(&mut text)
            .dump(&Yaml::Hash(settings))
            .map_err(|err| {
                InputError::in_file(&source.path, format!("cannot be written again: {err}"))
            })?;
        // The emitter's document start, which Yarn's own files never have.
        text = text.trim_start_matches("---\n").to_owned() + "\n";
    }
    Ok(YarnSettings {
        text,
        names_registry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::source::in_memory;

    #[test]
    fn settings_that_name_the_repository_s_files_are_left_out_the_rest_kept() {
        let settings = read(&in_memory(
            ".yarnrc.yml",
            "yarnPath: .yarn/releases/yarn-4.5.0.cjs\n\
             nodeLinker: pnp\n\
             plugins:\n  - path: .yarn/plugins/@yarnpkg/plugin-typescript.cjs\n\
             npmScopes:\n  acme:\n    npmRegistryServer: \"https://npm.acme.test\"\n\
             packageExtensions:\n  \"debug@*\":\n    dependencies:\n      ms: \"^2\"\n",
        ))
        .unwrap();
        assert!(!settings.text.contains("yarnPath") && !settings.text.contains("plugin"));
        let kept = YamlLoader::load_from_str(&settings.text).unwrap().remove(0);
        assert_eq!(kept["nodeLinker"].as_str(), Some("pnp"));
        assert_eq!(
            kept["npmScopes"]["acme"]["npmRegistryServer"].as_str(),
            Some("https://npm.acme.test")
        );
        assert_eq!(
            kept["packageExtensions"]["debug@*"]["dependencies"]["ms"].as_str(),
            Some("^2")
        );
        // A scope's registry is not the registry.
        assert!(!settings.names_registry);
        let own = read(&in_memory(
            ".yarnrc.yml",
            "npmRegistryServer: \"https://npm.acme.test\"\n",
        ));
        assert!(own.unwrap().names_registry);
    }

    #[test]
    fn a_yarnrc_that_is_no_mapping_is_refused_at_its_line() {
        let err = read(&in_memory(
            ".yarnrc.yml",
            "nodeLinker: pnp\n  - broken: [\n",
        ))
        .unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = read(&in_memory(".yarnrc.yml", "- a list\n")).unwrap_err();
        assert!(err.to_string().contains("not a mapping"), "{err}");
        assert_eq!(read(&in_memory(".yarnrc.yml", "")).unwrap().text, "");
    }
}
