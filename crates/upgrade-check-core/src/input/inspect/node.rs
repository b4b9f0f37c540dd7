//! A Node service: its npm, pnpm or Yarn lock, how it starts (`scripts.start` or `main`
//! in `package.json`), its framework, how it takes its port and the
//! variables it must be given, from its JavaScript and TypeScript source.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use super::{Inspection, health_paths, required_variables, source_files};
use crate::input::config::Ecosystem;

/// Frameworks by the package that brings them, as `how` names them.
const FRAMEWORKS: &[(&str, &str)] = &[
    ("@nestjs/core", "a NestJS app"),
    ("fastify", "a Fastify app"),
    ("koa", "a Koa app"),
    ("express", "an Express app"),
    ("hono", "a Hono app"),
];

/// The locks a Node service's baseline can be, in the order `init` takes them.
pub(super) const NODE_LOCKS: [&str; 3] = ["package-lock.json", "pnpm-lock.yaml", "yarn.lock"];

/// Source files a Node service is written in.
const EXTENSIONS: &[&str] = &["js", "mjs", "cjs", "ts", "mts"];

pub(super) fn inspect_node(dir: &Path) -> Inspection {
    let mut inspection = Inspection::of(Ecosystem::Node);
    if let Some(lock) = NODE_LOCKS.into_iter().find(|lock| dir.join(lock).is_file()) {
        inspection.baseline = Some(lock.to_owned());
    } else {
        inspection.todos.push(
            "no package-lock.json, pnpm-lock.yaml or yarn.lock: run `npm install --package-lock-only` (or your package manager's install) and commit the lock; it is the baseline".to_owned(),
        );
    }
    let manifest: serde_json::Value = match std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
    {
        Some(manifest) => manifest,
        None => {
            inspection
                .todos
                .push("package.json cannot be read as JSON: set service.command".to_owned());
            return inspection;
        }
    };
    let texts: Vec<String> = EXTENSIONS
        .iter()
        .flat_map(|extension| source_files(dir, extension))
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .collect();
    inspection.health_paths = health_paths(texts.iter().map(String::as_str));
    let framework = FRAMEWORKS
        .iter()
        .find(|(package, _)| depends_on(&manifest, package))
        .map_or("a Node service", |(_, name)| name);
    let (command, started) = start_command(&manifest);
    let reads = env_reads(texts.iter().map(String::as_str));
    if reads.contains_key("PORT") {
        inspection
            .env
            .insert("PORT".to_owned(), "{port}".to_owned());
        inspection
            .env_notes
            .push("PORT: the port; the source reads process.env.PORT".to_owned());
    } else {
        inspection.todos.push(
            "how the service takes its port: the source never reads process.env.PORT; add {port} to service.command or service.env".to_owned(),
        );
    }
    required_variables(&reads, &mut inspection);
    match command {
        Some(command) => {
            // `… (scripts.start in package.json; the port in PORT)`.
            let started = match (reads.contains_key("PORT"), started.strip_suffix(')')) {
                (true, Some(open)) => format!("{open}; the port in PORT)"),
                (true, None) => format!("{started} (the port in PORT)"),
                (false, _) => started,
            };
            inspection.how = format!("{framework} started by {started}");
            inspection.command = Some(command);
        }
        None => inspection.todos.push(format!(
            "how {framework} starts: package.json has neither scripts.start nor main; set service.command"
        )),
    }
    inspection
}

/// Whether `package.json` declares `package` in any dependency kind.
fn depends_on(manifest: &serde_json::Value, package: &str) -> bool {
    ["dependencies", "devDependencies"].iter().any(|kind| {
        manifest
            .get(kind)
            .and_then(|map| map.get(package))
            .is_some()
    })
}

/// The argv that starts the service, and what it came from: `node FILE`
/// when `scripts.start` is just that (no shell needed), else `npm start`
/// (npm runs the script, the environment's programs on its PATH), else
/// `node MAIN`.
fn start_command(manifest: &serde_json::Value) -> (Option<Vec<String>>, String) {
    let start = manifest
        .pointer("/scripts/start")
        .and_then(|start| start.as_str());
    if let Some(start) = start {
        let words: Vec<&str> = start.split_whitespace().collect();
        let plain = words.iter().all(|word| {
            word.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=@:".contains(c))
        });
        if plain && words.first() == Some(&"node") && words.len() >= 2 {
            let argv = words.iter().map(|word| (*word).to_owned()).collect();
            return (
                Some(argv),
                format!("`{start}` (scripts.start in package.json)"),
            );
        }
        return (
            Some(vec!["npm".to_owned(), "start".to_owned()]),
            format!("`npm start`, which runs `{start}`"),
        );
    }
    match manifest.get("main").and_then(|main| main.as_str()) {
        Some(main) => (
            Some(vec!["node".to_owned(), main.to_owned()]),
            format!("`node {main}` (main in package.json)"),
        ),
        None => (None, String::new()),
    }
}

/// Names the source reads from the environment: `(name, required)`, where
/// required means read without a default (`process.env.X` not followed by
/// `||` or `??`, nor tested with `if`).
fn env_reads<'a>(texts: impl Iterator<Item = &'a str>) -> BTreeMap<String, bool> {
    static READ: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"process\.env(?:\.([A-Z][A-Z0-9_]*)|\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\])(\s*(?:\|\||\?\?|!==?|===?|\)\s*\?))?"#)
            .expect("valid regex")
    });
    let mut reads = BTreeMap::new();
    for text in texts {
        for found in READ.captures_iter(text) {
            let Some(name) = found.get(1).or_else(|| found.get(2)) else {
                continue;
            };
            let required = found.get(3).is_none();
            *reads.entry(name.as_str().to_owned()).or_insert(false) |= required;
        }
    }
    // Node's own: set by whoever runs it, never the service's to need.
    reads.remove("NODE_ENV");
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_read_without_a_default_is_required() {
        let reads = env_reads(
            [r#"const port = Number(process.env.PORT || 3000);
const key = process.env.JWT_SECRET;
const db = process.env["DATABASE_PATH"] ?? "";
if (process.env.DEBUG === "1") {}
const mode = process.env.NODE_ENV;
const url = process.env.UPSTREAM_URL;"#]
            .into_iter(),
        );
        assert_eq!(
            reads,
            BTreeMap::from(
                [
                    ("DATABASE_PATH", false),
                    ("DEBUG", false),
                    ("JWT_SECRET", true),
                    ("PORT", false),
                    ("UPSTREAM_URL", true),
                ]
                .map(|(name, required)| (name.to_owned(), required))
            )
        );
    }

    #[test]
    fn a_plain_node_start_script_is_run_as_it_is_anything_else_through_npm() {
        let manifest = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap();
        let (argv, _) = start_command(&manifest(r#"{"scripts": {"start": "node server.js"}}"#));
        assert_eq!(argv.unwrap(), ["node", "server.js"]);
        let (argv, how) = start_command(&manifest(
            r#"{"scripts": {"start": "nest start && echo"}, "main": "dist/main.js"}"#,
        ));
        assert_eq!(argv.unwrap(), ["npm", "start"]);
        assert!(how.contains("nest start"), "{how}");
        let (argv, _) = start_command(&manifest(r#"{"main": "index.js"}"#));
        assert_eq!(argv.unwrap(), ["node", "index.js"]);
        assert_eq!(start_command(&manifest("{}")).0, None);
    }
}
