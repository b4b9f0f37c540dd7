//! Which Python package indexes to ask: the ones uv and pip are configured
//! with, so that a range lists what the builds can install.
//!
//! Each setting (the default index, extra indexes, find-links) is taken
//! from the first place that sets it: uv's environment variables, uv's
//! configuration files (the project's `uv.toml` or `[tool.uv]`, then the
//! user's and the system's), pip's environment variables, pip's
//! configuration files; the default index last of all from pip itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::env::Python;
use crate::sys::process;

/// The indexes to ask, in uv's order of priority.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct IndexUrls {
    /// Asked before the default, in order; the first that has the package
    /// answers (uv's `first-index` strategy).
    pub extra: Vec<String>,
    pub default: String,
    /// Folders or pages of distribution files, added to what the index lists.
    pub find_links: Vec<String>,
}

/// One place settings come from; `None` where it says nothing.
#[derive(Debug, Default, PartialEq, Eq)]
struct Layer {
    default: Option<String>,
    extra: Option<Vec<String>>,
    find_links: Option<Vec<String>>,
}

impl IndexUrls {
    /// Reads the configuration as uv and pip would for a service in `project`.
    pub(super) async fn find(python: &Python, project: &Path) -> anyhow::Result<IndexUrls> {
        let layers = layers(&|name| std::env::var(name).ok(), project);
        let found = merge(&layers);
        let default = match found.default {
            Some(url) => url,
            None => pip_default(python).await?,
        };
        Ok(IndexUrls {
            extra: found.extra.unwrap_or_default(),
            default,
            // A relative folder is the project's, as uv reads it.
            find_links: found
                .find_links
                .unwrap_or_default()
                .into_iter()
                .map(
                    |link| match link.contains("://") || Path::new(&link).is_absolute() {
                        true => link,
                        false => project.join(link).display().to_string(),
                    },
                )
                .collect(),
        })
    }
}

/// Every layer, highest priority first.
fn layers(env: &dyn Fn(&str) -> Option<String>, project: &Path) -> Vec<Layer> {
    let mut layers = vec![uv_environment(env)];
    layers.extend(uv_files(env, project).iter().map(|path| uv_file(path)));
    layers.push(pip_environment(env));
    // pip reads its files in order, each overriding the last.
    let mut pip = Layer::default();
    for path in pip_files(env) {
        let file = pip_file(&path);
        pip = merge(&[file, pip]);
    }
    layers.push(pip);
    layers
}

/// Each setting from the first layer that has it.
fn merge(layers: &[Layer]) -> Layer {
    Layer {
        default: layers.iter().find_map(|layer| layer.default.clone()),
        extra: layers.iter().find_map(|layer| layer.extra.clone()),
        find_links: layers.iter().find_map(|layer| layer.find_links.clone()),
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn uv_environment(env: &dyn Fn(&str) -> Option<String>) -> Layer {
    // `UV_INDEX` entries may be named: `name=url`.
    let named = env("UV_INDEX").map(|value| {
        words(&value)
            .into_iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, url)) if !name.contains(':') => url.to_owned(),
                _ => entry,
            })
            .collect::<Vec<_>>()
    });
    let extra = match (named, env("UV_EXTRA_INDEX_URL").map(|value| words(&value))) {
        (None, None) => None,
        (named, extra) => Some([named.unwrap_or_default(), extra.unwrap_or_default()].concat()),
    };
    Layer {
        default: env("UV_DEFAULT_INDEX").or_else(|| env("UV_INDEX_URL")),
        extra,
        find_links: env("UV_FIND_LINKS").map(|value| words(&value)),
    }
}

/// uv's configuration files, highest priority first: `UV_CONFIG_FILE`
/// alone when set; else the nearest project file, the user's, the system's.
fn uv_files(env: &dyn Fn(&str) -> Option<String>, project: &Path) -> Vec<PathBuf> {
    if let Some(file) = env("UV_CONFIG_FILE") {
        return vec![PathBuf::from(file)];
    }
    if env("UV_NO_CONFIG").is_some() {
        return Vec::new();
    }
    let mut files = Vec::new();
    let nearest = project.ancestors().find_map(|folder| {
        let uv = folder.join("uv.toml");
        if uv.is_file() {
            return Some(uv);
        }
        let pyproject = folder.join("pyproject.toml");
        let has_uv = std::fs::read_to_string(&pyproject)
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .is_some_and(|table| table.get("tool").and_then(|tool| tool.get("uv")).is_some());
        has_uv.then_some(pyproject)
    });
    files.extend(nearest);
    let user = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config")));
    files.extend(user.map(|folder| folder.join("uv/uv.toml")));
    let system = env("XDG_CONFIG_DIRS")
        .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/xdg"));
    files.push(system.join("uv/uv.toml"));
    files.push(PathBuf::from("/etc/uv/uv.toml"));
    files
}

/// The index settings of one uv file (`pyproject.toml`'s are under `[tool.uv]`).
fn uv_file(path: &Path) -> Layer {
    let Some(table) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
    else {
        return Layer::default();
    };
    let settings = if path
        .file_name()
        .is_some_and(|name| name == "pyproject.toml")
    {
        match table.get("tool").and_then(|tool| tool.get("uv")) {
            Some(toml::Value::Table(uv)) => uv.clone(),
            _ => return Layer::default(),
        }
    } else {
        table
    };
    let strings = |key: &str| -> Option<Vec<String>> {
        let values = settings.get(key)?.as_array()?;
        Some(
            values
                .iter()
                .filter_map(|value| value.as_str().map(str::to_owned))
                .collect(),
        )
    };
    let mut default = settings
        .get("index-url")
        .and_then(|value| value.as_str())
        .map(str::to_owned);
    let mut extra = Vec::new();
    // `[[index]]`: the one marked default, and the others in order; an
    // explicit index serves only the packages pinned to it.
    for index in settings
        .get("index")
        .and_then(|value| value.as_array())
        .into_iter()
        .flatten()
    {
        let Some(url) = index.get("url").and_then(|url| url.as_str()) else {
            continue;
        };
        let flag = |key: &str| index.get(key).and_then(|value| value.as_bool()) == Some(true);
        if flag("explicit") {
            continue;
        }
        if flag("default") {
            default.get_or_insert_with(|| url.to_owned());
        } else {
            extra.push(url.to_owned());
        }
    }
    extra.extend(strings("extra-index-url").unwrap_or_default());
    Layer {
        default,
        extra: (!extra.is_empty()).then_some(extra),
        find_links: strings("find-links"),
    }
}

fn pip_environment(env: &dyn Fn(&str) -> Option<String>) -> Layer {
    Layer {
        default: env("PIP_INDEX_URL"),
        extra: env("PIP_EXTRA_INDEX_URL").map(|value| words(&value)),
        find_links: env("PIP_FIND_LINKS").map(|value| words(&value)),
    }
}

/// pip's configuration files in the order pip reads them, later ones
/// overriding: the system's, the user's, the virtual environment's, then
/// `PIP_CONFIG_FILE`.
fn pip_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("/etc/xdg/pip/pip.conf"),
        PathBuf::from("/etc/pip.conf"),
    ];
    if let Some(home) = env("HOME") {
        files.push(Path::new(&home).join(".pip/pip.conf"));
    }
    let user = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config")));
    files.extend(user.map(|folder| folder.join("pip/pip.conf")));
    files.extend(env("VIRTUAL_ENV").map(|venv| Path::new(&venv).join("pip.conf")));
    match env("PIP_CONFIG_FILE") {
        // pip's way to say "no files at all".
        Some(file) if file == "/dev/null" => Vec::new(),
        Some(file) => [files, vec![PathBuf::from(file)]].concat(),
        None => files,
    }
}

/// The index settings of a pip configuration file (INI): `[global]`, then
/// `[install]` over it.
fn pip_file(path: &Path) -> Layer {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Layer::default();
    };
    let mut global = Layer::default();
    let mut install = Layer::default();
    let mut section = String::new();
    let mut entries: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = name.trim().to_lowercase();
        } else if line.starts_with([' ', '\t']) {
            // A continuation line adds to the last value.
            if let Some((_, _, value)) = entries.last_mut() {
                value.push(' ');
                value.push_str(trimmed);
            }
        } else if let Some((key, value)) = trimmed.split_once(['=', ':']) {
            entries.push((
                section.clone(),
                key.trim().to_lowercase().replace('_', "-"),
                value.trim().to_owned(),
            ));
        }
    }
    for (section, key, value) in entries {
        let layer = match section.as_str() {
            "global" => &mut global,
            "install" => &mut install,
            _ => continue,
        };
        match key.as_str() {
            "index-url" | "i" => layer.default = Some(value),
            "extra-index-url" => layer.extra = Some(words(&value)),
            "find-links" | "f" => layer.find_links = Some(words(&value)),
            _ => {}
        }
    }
    merge(&[install, global])
}

/// The index pip uses when nothing names one: pip's own setting, so that no
/// address is written here.
async fn pip_default(python: &Python) -> anyhow::Result<String> {
    let command = duct::cmd(
        &python.path,
        [
            "-c",
            "from pip._internal.models.index import PyPI; print(PyPI.simple_url)",
        ],
    );
    let output = tokio::task::spawn_blocking(move || {
        process::run_checked(command, Duration::from_secs(60), "pip's default index")
    })
    .await?
    .with_context(|| {
        format!(
            "no package index is configured and {} has no pip to say its default: set UV_DEFAULT_INDEX or PIP_INDEX_URL",
            python.path.display()
        )
    })?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    #[test]
    fn uv_settings_come_before_pip_settings() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let env = env_of(&[
            ("HOME", home.path().to_str().unwrap()),
            ("UV_DEFAULT_INDEX", "https://uv.example.test/simple"),
            ("PIP_INDEX_URL", "https://pip.example.test/simple"),
            ("PIP_FIND_LINKS", "/opt/wheels /srv/more"),
            ("XDG_CONFIG_DIRS", "/nonexistent"),
        ]);
        let merged = merge(&layers(&env, project.path()));
        assert_eq!(
            merged.default.as_deref(),
            Some("https://uv.example.test/simple")
        );
        assert_eq!(
            merged.find_links,
            Some(vec!["/opt/wheels".to_owned(), "/srv/more".to_owned()])
        );
    }

    #[test]
    fn a_project_uv_toml_names_default_and_extra_indexes() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        std::fs::write(
            project.path().join("uv.toml"),
            r#"
extra-index-url = ["https://extra.example.test/simple"]

[[index]]
name = "internal"
url = "https://internal.example.test/simple"

[[index]]
name = "torch"
url = "https://torch.example.test/whl"
explicit = true

[[index]]
name = "mirror"
url = "https://mirror.example.test/simple"
default = true
"#,
        )
        .unwrap();
        let service = project.path().join("service");
        std::fs::create_dir(&service).unwrap();
        let env = env_of(&[
            ("HOME", home.path().to_str().unwrap()),
            ("PIP_INDEX_URL", "https://pip.example.test/simple"),
            ("XDG_CONFIG_DIRS", "/nonexistent"),
        ]);
        let merged = merge(&layers(&env, &service));
        assert_eq!(
            merged.default.as_deref(),
            Some("https://mirror.example.test/simple")
        );
        assert_eq!(
            merged.extra,
            Some(vec![
                "https://internal.example.test/simple".to_owned(),
                "https://extra.example.test/simple".to_owned()
            ])
        );
    }

    #[test]
    fn pyproject_tool_uv_and_pip_conf_are_read() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        std::fs::write(
            project.path().join("pyproject.toml"),
            "[project]\nname = \"svc\"\n\n[tool.uv]\nfind-links = [\"./wheels\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(home.path().join(".config/pip")).unwrap();
        std::fs::write(
            home.path().join(".config/pip/pip.conf"),
            "[global]\nindex-url = https://user.example.test/simple\nextra-index-url =\n    https://a.example.test/simple\n    https://b.example.test/simple\n[install]\nindex_url = https://install.example.test/simple\n",
        )
        .unwrap();
        let env = env_of(&[
            ("HOME", home.path().to_str().unwrap()),
            ("XDG_CONFIG_DIRS", "/nonexistent"),
        ]);
        let merged = merge(&layers(&env, project.path()));
        assert_eq!(merged.find_links, Some(vec!["./wheels".to_owned()]));
        assert_eq!(
            merged.default.as_deref(),
            Some("https://install.example.test/simple")
        );
        assert_eq!(
            merged.extra,
            Some(vec![
                "https://a.example.test/simple".to_owned(),
                "https://b.example.test/simple".to_owned()
            ])
        );
    }

    #[test]
    fn pip_config_file_dev_null_reads_no_file() {
        let env = env_of(&[("PIP_CONFIG_FILE", "/dev/null"), ("HOME", "/root")]);
        assert!(pip_files(&env).is_empty());
    }
}
