//! A cargo service: which binary serves, from `cargo metadata` (a single
//! crate or a workspace's members), its lock, how it takes its port and the
//! variables it must be given, from the source of the package it belongs to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::{Inspection, health_paths, required_variables, source_files};
use crate::input::config::Ecosystem;

/// What a program that serves HTTP has in its source, whatever its framework.
const LISTENS: &[&str] = &[
    "TcpListener",
    "axum::serve",
    "HttpServer::new",
    "Server::bind",
    "warp::serve",
    "rocket::build",
    "#[launch]",
    "poem::Server",
    "salvo::Server",
    "tide::new",
];

/// A binary target of the workspace and the source of its package.
struct Binary {
    name: String,
    package: String,
    /// The target's own file, then the rest of its package.
    main_text: String,
    texts: Vec<String>,
}

impl Binary {
    fn listens_in_main(&self) -> bool {
        LISTENS.iter().any(|mark| self.main_text.contains(mark))
    }

    fn listens(&self) -> bool {
        self.texts
            .iter()
            .any(|text| LISTENS.iter().any(|mark| text.contains(mark)))
    }
}

pub(super) fn inspect_cargo(dir: &Path) -> Inspection {
    let mut inspection = Inspection::of(Ecosystem::Cargo);
    let metadata = match cargo_metadata::MetadataCommand::new()
        .current_dir(dir)
        .no_deps()
        .exec()
    {
        Ok(metadata) => metadata,
        Err(err) => {
            inspection
                .todos
                .push(format!("cargo metadata failed: {err}; set service.command"));
            return inspection;
        }
    };
    let workspace_root = metadata.workspace_root.as_std_path();
    if dir.join("Cargo.lock").is_file() {
        inspection.baseline = Some("Cargo.lock".to_owned());
    } else if !same_folder(workspace_root, dir) && workspace_root.join("Cargo.lock").is_file() {
        inspection.todos.push(format!(
            "this crate is a member of the workspace at {}, whose Cargo.lock is the baseline: run `upgrade-check init` there",
            workspace_root.display()
        ));
    } else {
        inspection.todos.push(
            "no Cargo.lock: run `cargo generate-lockfile` and commit it; it is the baseline"
                .to_owned(),
        );
    }
    let binaries = binaries(&metadata);
    let Some(binary) = serving(&binaries, &mut inspection) else {
        return inspection;
    };
    inspection.health_paths = health_paths(binary.texts.iter().map(String::as_str));
    let member = if binaries.iter().any(|other| other.package != binary.package) {
        format!("the workspace member `{}`'s binary", binary.package)
    } else {
        "the crate's binary".to_owned()
    };
    let name = &binary.name;
    let mut command = vec![format!("{{bin}}/{name}")];
    let reads = env_reads(binary.texts.iter().map(String::as_str));
    if reads.contains_key("PORT") {
        inspection
            .env
            .insert("PORT".to_owned(), "{port}".to_owned());
        inspection
            .env_notes
            .push("PORT: the port; the source reads it from the environment".to_owned());
        inspection.how = format!("{member} `{name}` (the port in PORT)");
    } else if binary.texts.iter().any(|text| {
        text.contains("--port") || text.contains("long = \"port\"") || text.contains("port: u16")
    }) {
        command.extend(["--port".to_owned(), "{port}".to_owned()]);
        inspection.how = format!("{member} `{name}` (the port as `--port`)");
    } else {
        inspection.how = format!("{member} `{name}`");
        inspection.todos.push(
            "how the service takes its port: neither a PORT variable nor a --port argument was found; add {port} to service.command or service.env".to_owned(),
        );
    }
    required_variables(&reads, &mut inspection);
    inspection.command = Some(command);
    inspection
}

/// The binary that serves: the only one, else the only one whose own file,
/// else whose package, listens for connections; `None` with a TODO naming
/// them when that does not tell.
fn serving<'a>(binaries: &'a [Binary], inspection: &mut Inspection) -> Option<&'a Binary> {
    let named = |binaries: &[&Binary]| {
        binaries
            .iter()
            .map(|binary| format!("{} (in {})", binary.name, binary.package))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match binaries {
        [] => {
            inspection.todos.push(
                "the crate has no binary: set service.command to the program that serves"
                    .to_owned(),
            );
            return None;
        }
        [only] => return Some(only),
        _ => {}
    }
    for listens in [Binary::listens_in_main, Binary::listens] {
        let found: Vec<&Binary> = binaries.iter().filter(|binary| listens(binary)).collect();
        match found[..] {
            [one] => return Some(one),
            [] => continue,
            _ => {
                inspection.todos.push(format!(
                    "{} binaries listen for connections ({}): set service.command to the one that serves",
                    found.len(),
                    named(&found)
                ));
                return None;
            }
        }
    }
    let all: Vec<&Binary> = binaries.iter().collect();
    inspection.todos.push(format!(
        "none of the {} binaries ({}) visibly listens for connections: set service.command to the one that serves",
        all.len(),
        named(&all)
    ));
    None
}

/// Every binary target of the workspace's members, each with the source of
/// its own package (not of members nested below it).
fn binaries(metadata: &cargo_metadata::Metadata) -> Vec<Binary> {
    let packages = metadata.workspace_packages();
    let roots: Vec<PathBuf> = packages
        .iter()
        .filter_map(|package| Some(package.manifest_path.parent()?.as_std_path().to_path_buf()))
        .collect();
    let mut found = Vec::new();
    for (package, root) in packages.iter().zip(&roots) {
        let nested: Vec<&PathBuf> = roots
            .iter()
            .filter(|other| *other != root && other.starts_with(root))
            .collect();
        let texts: Vec<String> = source_files(root, "rs")
            .into_iter()
            .filter(|file| !nested.iter().any(|other| file.starts_with(other)))
            .filter_map(|file| std::fs::read_to_string(file).ok())
            .collect();
        for target in package.targets.iter().filter(|target| target.is_bin()) {
            found.push(Binary {
                name: target.name.clone(),
                package: package.name.to_string(),
                main_text: std::fs::read_to_string(&target.src_path).unwrap_or_default(),
                texts: texts.clone(),
            });
        }
    }
    found
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Names the source reads from the environment: `(name, required)`, where
/// required means read without a default: `var("X")` then `?`, `expect` or
/// `unwrap()`, `env["X"]` on a map of the variables, or a name in a
/// `REQUIRED` list the service checks.
fn env_reads<'a>(texts: impl Iterator<Item = &'a str>) -> BTreeMap<String, bool> {
    static VAR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"\bvar(?:_os)?\(\s*"([A-Z][A-Z0-9_]*)"\s*\)(\s*\.\s*(?:unwrap_or|ok\b|is_ok|is_err|is_some|is_none|map_or))?"#)
            .expect("valid regex")
    });
    static INDEXED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"\w\[\s*"([A-Z][A-Z0-9_]*)"\s*\]"#).expect("valid regex"));
    static REQUIRED_LIST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?s)REQUIRED\w*\s*:\s*\[&(?:'static\s+)?str\s*;\s*\w+\]\s*=\s*\[([^\]]*)\]"#)
            .expect("valid regex")
    });
    static NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#""([A-Z][A-Z0-9_]*)""#).expect("valid regex"));
    let mut reads = BTreeMap::new();
    for text in texts {
        for found in VAR.captures_iter(text) {
            let required = found.get(2).is_none();
            let entry = reads.entry(found[1].to_owned()).or_insert(false);
            *entry |= required;
        }
        for found in INDEXED.captures_iter(text) {
            reads.insert(found[1].to_owned(), true);
        }
        for list in REQUIRED_LIST.captures_iter(text) {
            for name in NAME.captures_iter(&list[1]) {
                reads.insert(name[1].to_owned(), true);
            }
        }
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_read_without_a_default_is_required() {
        let reads = env_reads(
            [
                r#"let port = std::env::var("PORT").expect("PORT");
let level = env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into());
let debug = std::env::var_os("DEBUG").is_some();
let key = vars["JWT_SECRET_KEY"].clone();"#,
                r#"const REQUIRED: [&str; 2] = ["DATABASE_PATH", "UPSTREAM"];"#,
            ]
            .into_iter(),
        );
        assert_eq!(
            reads,
            BTreeMap::from(
                [
                    ("DATABASE_PATH", true),
                    ("DEBUG", false),
                    ("JWT_SECRET_KEY", true),
                    ("LOG_LEVEL", false),
                    ("PORT", true),
                    ("UPSTREAM", true),
                ]
                .map(|(name, required)| (name.to_owned(), required))
            )
        );
    }
}
