//! A Node service: its npm, pnpm or Yarn lock, how it starts (`scripts.start` or `main`
//! in `package.json`), its framework, how it takes its port and the
//! variables it must be given, from its JavaScript and TypeScript source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::{Inspection, health_paths, required_variables, source_files};
use crate::input::config::Ecosystem;
use crate::input::node_lock::Manager;
use crate::input::source::Source;

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
    // A workspace's root that starts nothing itself: its service is a member.
    let member = inspection
        .baseline
        .as_deref()
        .and_then(|lock| service_member(dir, lock, &manifest, &mut inspection.todos));
    let (manifest, member) = match member {
        Some((member, declared)) => (declared, Some(member)),
        None => (manifest, None),
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
    let (command, started) = start_command(&manifest, member.as_deref());
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

/// In a workspace's root with no start of its own, the member that is the
/// service (its folder and `package.json`): the one that brings a framework
/// and says how it starts. Of several, the first, and a TODO naming the rest.
fn service_member(
    dir: &Path,
    lock: &str,
    root: &serde_json::Value,
    todos: &mut Vec<String>,
) -> Option<(PathBuf, serde_json::Value)> {
    if start_command(root, None).0.is_some() {
        return None;
    }
    let manager = Manager::of(Path::new(lock))?;
    let lock = Source::read(&dir.join(lock)).ok()?;
    let manifest = Source::read(&dir.join("package.json")).ok()?;
    let members = manager.members(&lock, &manifest).ok()?;
    let services: Vec<(PathBuf, serde_json::Value)> = members
        .into_iter()
        .filter_map(|member| {
            let text = std::fs::read_to_string(dir.join(&member).join("package.json")).ok()?;
            let declared: serde_json::Value = serde_json::from_str(&text).ok()?;
            let framework = FRAMEWORKS
                .iter()
                .any(|(package, _)| depends_on(&declared, package));
            (framework && start_command(&declared, None).0.is_some()).then_some((member, declared))
        })
        .collect();
    if services.len() > 1 {
        let others: Vec<String> = services[1..]
            .iter()
            .map(|(member, _)| format!("{}/", member.display()))
            .collect();
        todos.push(format!(
            "the workspace's members {}/ and {} each start a service: the first is checked; to check another, set service.command (its scripts.start, run from this folder)",
            services[0].0.display(),
            others.join(", ")
        ));
    }
    services.into_iter().next()
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
/// `node MAIN`. A workspace `member`'s is run from the root: its file
/// under the member's folder, its script with `npm --prefix`.
fn start_command(
    manifest: &serde_json::Value,
    member: Option<&Path>,
) -> (Option<Vec<String>>, String) {
    let start = manifest
        .pointer("/scripts/start")
        .and_then(|start| start.as_str());
    let declared_in = match member {
        Some(member) => format!("{}/package.json", member.display()),
        None => "package.json".to_owned(),
    };
    let under_member = |file: &str| match member {
        Some(member) => member.join(file).display().to_string(),
        None => file.to_owned(),
    };
    if let Some(start) = start {
        let words: Vec<&str> = start.split_whitespace().collect();
        let plain = words.iter().all(|word| {
            word.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=@:".contains(c))
        });
        if plain && words.first() == Some(&"node") && words.len() >= 2 {
            // The script: the first source file named after node, else the
            // first word that is no option (`-r dotenv/config` names a module).
            let script = words[1..]
                .iter()
                .position(|word| {
                    !word.starts_with('-')
                        && EXTENSIONS
                            .iter()
                            .any(|extension| word.ends_with(&format!(".{extension}")))
                })
                .or_else(|| words[1..].iter().position(|word| !word.starts_with('-')));
            let argv = words
                .iter()
                .enumerate()
                .map(
                    |(at, word)| match Some(at) == script.map(|script| script + 1) {
                        true => under_member(word),
                        false => (*word).to_owned(),
                    },
                )
                .collect();
            return (
                Some(argv),
                format!("`{start}` (scripts.start in {declared_in})"),
            );
        }
        return match member {
            Some(member) => (
                Some(vec![
                    "npm".to_owned(),
                    "--prefix".to_owned(),
                    member.display().to_string(),
                    "start".to_owned(),
                ]),
                format!("`npm start` in {}/, which runs `{start}`", member.display()),
            ),
            None => (
                Some(vec!["npm".to_owned(), "start".to_owned()]),
                format!("`npm start`, which runs `{start}`"),
            ),
        };
    }
    match manifest.get("main").and_then(|main| main.as_str()) {
        Some(main) => (
            Some(vec!["node".to_owned(), under_member(main)]),
            format!("`node {main}` (main in {declared_in})"),
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
        let (argv, _) = start_command(
            &manifest(r#"{"scripts": {"start": "node server.js"}}"#),
            None,
        );
        assert_eq!(argv.unwrap(), ["node", "server.js"]);
        let (argv, how) = start_command(
            &manifest(r#"{"scripts": {"start": "nest start && echo"}, "main": "dist/main.js"}"#),
            None,
        );
        assert_eq!(argv.unwrap(), ["npm", "start"]);
        assert!(how.contains("nest start"), "{how}");
        let (argv, _) = start_command(&manifest(r#"{"main": "index.js"}"#), None);
        assert_eq!(argv.unwrap(), ["node", "index.js"]);
        assert_eq!(start_command(&manifest("{}"), None).0, None);
    }

    /// A workspace's root that starts nothing: the member with a framework
    /// and a start is the service, run from the root; a second one is named.
    #[test]
    fn at_a_workspace_s_root_the_member_that_starts_a_service_is_the_service() {
        let dir = tempfile::tempdir().unwrap();
        crate::input::inspect::tests::write(
            dir.path(),
            &[
                (
                    "package.json",
                    r#"{"private": true, "workspaces": ["packages/*"]}"#,
                ),
                ("yarn.lock", "# yarn lockfile v1\n"),
                (
                    "packages/api/package.json",
                    r#"{"dependencies": {"express": "^4"}, "scripts": {"start": "node -r dotenv/config server.js"}}"#,
                ),
                (
                    "packages/api/server.js",
                    "app.listen(process.env.PORT); app.get('/healthz', ok); const key = process.env.JWT_SECRET;",
                ),
                ("packages/tokens/package.json", r#"{"main": "index.js"}"#),
                (
                    "packages/worker/package.json",
                    r#"{"dependencies": {"koa": "^2"}, "scripts": {"start": "tsx src/main.ts"}}"#,
                ),
            ],
        );
        let found = inspect_node(dir.path());
        assert_eq!(
            found.command.unwrap(),
            ["node", "-r", "dotenv/config", "packages/api/server.js"]
        );
        assert!(
            found.how.starts_with("an Express app started by `node -r dotenv/config server.js` (scripts.start in packages/api/package.json"),
            "{}",
            found.how
        );
        assert!(found.env.contains_key("JWT_SECRET"), "{:?}", found.env);
        assert!(
            found
                .todos
                .iter()
                .any(|todo| todo.contains("packages/api/ and packages/worker/")),
            "{:?}",
            found.todos
        );

        // A member started by a script is started by npm in its folder.
        std::fs::remove_dir_all(dir.path().join("packages/api")).unwrap();
        let found = inspect_node(dir.path());
        assert_eq!(
            found.command.unwrap(),
            ["npm", "--prefix", "packages/worker", "start"]
        );
        assert!(
            found
                .how
                .starts_with("a Koa app started by `npm start` in packages/worker/"),
            "{}",
            found.how
        );
    }
}
