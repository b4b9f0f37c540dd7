//! Rules about the source tree, checked as ordinary tests.
//!
//! - The library's folders are layers: a module imports only from its own
//!   layer or below, and no modules import each other round in a circle.
//! - The library knows no command line and prints nothing; it emits events.
//! - Secrets are kept out of everything the tool writes by one choke point
//!   (`sys/redact.rs`, the binary's `output.rs`); a new writer that bypasses
//!   it fails here, rather than leak a secret in some release.
//! - The binary's dependencies have the features the tests turn on, so the
//!   suite compiles the harness once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's layers, lowest first. ARCHITECTURE.md lists them.
const LAYERS: &[&str] = &[
    "sys",
    "model",
    "input",
    "plan",
    "env",
    "exec",
    "judge",
    "run",
    "follow_up",
    "report",
    "session",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// A crate's code, by file relative to its `src/`, less unit tests.
fn code_of(krate: &str) -> Vec<(String, String)> {
    let src = root().join("crates").join(krate).join("src");
    sources(&src)
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(tests) => text[..tests].to_owned(),
                None => text,
            };
            let name = path.strip_prefix(&src).unwrap().display().to_string();
            (name, code)
        })
        .collect()
}

fn library() -> Vec<(String, String)> {
    code_of("upgrade-check-core")
}

fn binary() -> Vec<(String, String)> {
    code_of("upgrade-check")
}

/// Lines of `code` (not comments) that contain any of `needles`.
fn uses<'a>(code: &'a str, needles: &[&str]) -> Vec<&'a str> {
    code.lines()
        .filter(|line| {
            !line.trim_start().starts_with("//") && needles.iter().any(|n| line.contains(n))
        })
        .collect()
}

/// Ways of printing that bypass the redacting `out!`/`outln!`/`errln!`.
const PRINTING: &[&str] = &[
    "println!(",
    "print!(",
    "eprintln!(",
    "eprint!(",
    "io::stdout()",
    "io::stderr()",
];

/// The module path of a library file: `run/mod.rs` → `run`, `env/uv.rs` → `env::uv`.
fn module_of(file: &str) -> String {
    let path = file.trim_end_matches(".rs");
    let path = path.strip_suffix("/mod").unwrap_or(path);
    if path == "lib" {
        String::new()
    } else {
        path.replace('/', "::")
    }
}

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    LAYERS.iter().position(|layer| *layer == top)
}

/// Every path the code names from the crate (`crate::…`, and `super::…` or
/// `self::…` resolved against `module`, the file's own), in `use` lines
/// with braces expanded one level and inline, with the line it is on.
fn crate_paths(code: &str, module: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pending_use = String::new();
    for line in code.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("//") {
            continue;
        }
        // A `use crate::{…}` may span lines: gather it whole.
        let braced = ["use crate::{", "use super::{", "use self::{"]
            .iter()
            .any(|start| trimmed.starts_with(start));
        if !pending_use.is_empty() || braced {
            pending_use.push_str(trimmed);
            if !trimmed.ends_with(';') {
                continue;
            }
            let statement = std::mem::take(&mut pending_use);
            let (head, inner) = statement
                .strip_prefix("use ")
                .and_then(|rest| rest.split_once("::{"))
                .unwrap_or_default();
            if let Some(inner) = inner.strip_suffix("};") {
                for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let path = match part {
                        "self" => absolute(&format!("{head}::"), module),
                        _ => absolute(&format!("{head}::{part}"), module),
                    };
                    found.push((path, statement.clone()));
                }
                continue;
            }
        }
        for start in ["crate::", "super::", "self::"] {
            let mut rest = line;
            while let Some(at) = rest.find(start) {
                let tail = &rest[at..];
                // `itself::`, `Self::`, `my_crate::`: not a path of this crate.
                let joined = rest[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
                let path: String = tail
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !joined {
                    found.push((absolute(&path, module), trimmed.to_owned()));
                }
                rest = &tail[path.len().max(1)..];
            }
        }
    }
    found
}

/// `path` from the crate's root: `super::`/`self::` prefixes resolved
/// against `module` (`run/mod.rs` is `run`, whose `super` is the root).
fn absolute(path: &str, module: &str) -> String {
    let mut here: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let mut rest = path;
    if let Some(tail) = rest.strip_prefix("crate::") {
        return format!("crate::{tail}");
    }
    if let Some(tail) = rest.strip_prefix("self::") {
        rest = tail;
    } else {
        while let Some(tail) = rest.strip_prefix("super::") {
            here.pop();
            rest = tail;
        }
    }
    let mut segments = here;
    segments.extend(rest.split("::").filter(|s| !s.is_empty()));
    format!("crate::{}", segments.join("::"))
}

/// The library module a `crate::…` path lands in: the longest module prefix.
fn target_module(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let segments: Vec<&str> = path
        .trim_start_matches("crate::")
        .split("::")
        .filter(|segment| !segment.is_empty())
        .collect();
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// Each library module and the modules it imports.
fn import_graph() -> BTreeMap<String, Vec<(String, String)>> {
    graph_of(&library())
}

/// Each module of `files` (path under `src/`, code) and the modules it imports.
fn graph_of(files: &[(String, String)]) -> BTreeMap<String, Vec<(String, String)>> {
    let modules: BTreeSet<String> = files.iter().map(|(file, _)| module_of(file)).collect();
    files
        .iter()
        .map(|(file, code)| {
            let from = module_of(file);
            let targets = crate_paths(code, &from)
                .into_iter()
                .filter_map(|(path, line)| Some((target_module(&path, &modules)?, line)))
                .filter(|(to, _)| *to != from && !to.is_empty())
                .collect();
            (from, targets)
        })
        .collect()
}

#[test]
fn no_library_module_imports_from_a_layer_above_its_own() {
    let mut offenders = Vec::new();
    for (from, targets) in import_graph() {
        let Some(own) = layer_of(&from) else {
            continue;
        };
        for (to, line) in targets {
            let theirs = layer_of(&to).expect("every module is in a layer");
            if theirs > own {
                offenders.push(format!(
                    "{from} ({}) imports {to} ({}): {line}",
                    LAYERS[own], LAYERS[theirs]
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "a module may import only from its own layer or below ({}):\n{}",
        LAYERS.join(" < "),
        offenders.join("\n")
    );
    // Every folder of the library is a known layer.
    for (file, _) in library() {
        let module = module_of(&file);
        assert!(
            module.is_empty() || layer_of(&module).is_some(),
            "{file} is in no layer; add its folder to LAYERS and ARCHITECTURE.md"
        );
    }
}

/// Every circle of imports in `graph`, as "a → b → a".
fn cycles_in(graph: &BTreeMap<String, Vec<(String, String)>>) -> Vec<String> {
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, Vec<(String, String)>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_owned());
            cycles.push(cycle.join(" → "));
            return;
        }
        if !done.insert(module.to_owned()) {
            return;
        }
        path.push(module.to_owned());
        let targets: BTreeSet<&str> = graph
            .get(module)
            .into_iter()
            .flatten()
            .map(|(to, _)| to.as_str())
            .collect();
        for to in targets {
            visit(to, graph, path, done, cycles);
        }
        path.pop();
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    cycles
}

#[test]
fn no_library_modules_import_each_other_in_a_circle() {
    let cycles = cycles_in(&import_graph());
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The rule sees circles however the paths are written: `crate::`,
/// `super::` (from a file or a `mod.rs`), `self::`, braced or inline.
#[test]
fn a_circle_planted_through_relative_paths_is_found() {
    let file = |name: &str, code: &str| (name.to_owned(), code.to_owned());
    let planted = [
        file(
            "input/mod.rs",
            "pub mod a;\npub mod b;\nuse self::a::Thing;\n",
        ),
        file("input/a.rs", "use super::b::Other;\n"),
        file(
            "input/b.rs",
            "use super::{\n    a::Thing,\n    c::More,\n};\n",
        ),
        file(
            "input/c.rs",
            "fn f() -> super::super::run::Ran { todo!() }\n",
        ),
        file("run/mod.rs", "fn g() { let _ = super::input::c::f(); }\n"),
    ];
    let graph = graph_of(&planted);
    assert_eq!(
        graph["input"]
            .iter()
            .map(|(to, _)| to.as_str())
            .collect::<Vec<_>>(),
        ["input::a"]
    );
    let cycles = cycles_in(&graph);
    assert!(
        cycles
            .iter()
            .any(|cycle| cycle == "input::a → input::b → input::a"),
        "{cycles:?}"
    );
    assert!(
        cycles
            .iter()
            .any(|cycle| cycle == "input::c → run → input::c"),
        "{cycles:?}"
    );
    // Words that end in `self::` or `super::` are no paths of the crate.
    assert!(crate_paths("let x = Self::new(); my_self::y();", "input").is_empty());
}

#[test]
fn the_report_schema_depends_on_the_model_alone() {
    let graph = import_graph();
    for (to, line) in &graph["model::report"] {
        assert!(
            to.starts_with("model::"),
            "model::report imports {to}: {line}"
        );
    }
}

#[test]
fn the_library_knows_no_command_line_and_prints_nothing() {
    let manifest =
        std::fs::read_to_string(root().join("crates/upgrade-check-core/Cargo.toml")).unwrap();
    for dependency in ["clap", "indicatif"] {
        assert!(
            !manifest
                .lines()
                .any(|line| line.starts_with(&format!("{dependency} "))),
            "the library depends on {dependency}"
        );
    }
    let mut offenders = Vec::new();
    for (file, code) in library() {
        // A test's failpoint says it was reached; nothing else is said.
        if file == "sys/failpoint.rs" {
            continue;
        }
        for line in uses(&code, &[PRINTING, &["clap::"]].concat()) {
            offenders.push(format!("{file}: {}", line.trim()));
        }
    }
    assert!(
        offenders.is_empty(),
        "the library emits RunEvents and returns values; the binary prints:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn stdout_and_stderr_are_written_through_the_redaction_choke_point() {
    let mut offenders = Vec::new();
    for (file, code) in binary() {
        if file == "output.rs" {
            continue;
        }
        for line in uses(&code, PRINTING) {
            // The redacting macro `out!` contains `print!(` only as a name;
            // asking whether stderr is a terminal writes nothing.
            let named = line
                .replace("crate::out!(", "")
                .replace("crate::outln!(", "");
            if uses(&named, PRINTING).is_empty() || line.contains(".is_terminal()") {
                continue;
            }
            offenders.push(format!("{file}: {}", line.trim()));
        }
    }
    assert!(
        offenders.is_empty(),
        "print with crate::out!/outln!/errln! (output.rs), never directly:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn files_are_written_through_the_redaction_choke_point() {
    // Files written directly, each for a reason that keeps secrets out.
    let allowed = [
        // The choke point itself, and the one writer of whole files.
        "core: sys/redact.rs",
        "core: sys/state.rs",
        // Markers and lists of packages the environment builders make: no
        // scenario or service text reaches them.
        "core: env/python/mod.rs",
        "core: env/cargo/mod.rs",
        // The owner file of a run's folder: a pid and a start time.
        "core: sys/sweep.rs",
        // The PostgreSQL template's completion marker: empty.
        "core: exec/db.rs",
        // The service log: created empty, filled only by redact::pump_log.
        "core: exec/service.rs",
        // `--events`: each line scrubbed with redact::scrub as it is written.
        "bin: events_log.rs",
    ];
    let files = library()
        .into_iter()
        .map(|(file, code)| (format!("core: {file}"), code))
        .chain(
            binary()
                .into_iter()
                .map(|(file, code)| (format!("bin: {file}"), code)),
        );
    let files: Vec<(String, String)> = files.collect();
    let stale: Vec<&&str> = allowed
        .iter()
        .filter(|name| !files.iter().any(|(file, _)| file == *name))
        .collect();
    assert!(
        stale.is_empty(),
        "allowed writers that no longer exist: {stale:?}"
    );
    let mut offenders = Vec::new();
    for (file, code) in files {
        if allowed.contains(&file.as_str()) {
            continue;
        }
        let writing = [
            "fs::write(",
            "File::create(",
            "OpenOptions",
            "fs_err::write(",
        ];
        for line in uses(&code, &writing) {
            offenders.push(format!("{file}: {}", line.trim()));
        }
    }
    assert!(
        offenders.is_empty(),
        "write files with state::write_atomic, which scrubs secrets:\n{}",
        offenders.join("\n")
    );
    let events = binary()
        .into_iter()
        .find(|(file, _)| file == "events_log.rs")
        .unwrap()
        .1;
    assert!(events.contains("redact::scrub("), "the event log scrubs");
    // And the service log is filled by the pump alone.
    let service = library()
        .into_iter()
        .find(|(file, _)| file == "exec/service.rs")
        .unwrap()
        .1;
    assert!(
        service.contains("redact::pump_log("),
        "the log pump writes the log"
    );
    assert!(
        !service.contains("stdout_path(") && !service.contains("stderr_path("),
        "a service's output never goes to a file unscrubbed"
    );
}

/// A run's steps stay readable one by one: no function of `run/` (the
/// code every change of the pipeline touches) grows past 80 lines.
#[test]
fn no_function_in_run_is_longer_than_80_lines() {
    const MOST: usize = 80;
    let mut long = Vec::new();
    for (file, code) in library()
        .iter()
        .filter(|(file, _)| file.starts_with("run/"))
    {
        let lines: Vec<&str> = code.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let is_fn = [
                "fn ",
                "async fn ",
                "pub fn ",
                "pub async fn ",
                "pub(super) fn ",
            ]
            .iter()
            .chain(&[
                "pub(super) async fn ",
                "pub(crate) fn ",
                "pub(crate) async fn ",
            ])
            .any(|start| trimmed.starts_with(start));
            if !is_fn || trimmed.ends_with(';') {
                continue;
            }
            let end = lines[at..]
                .iter()
                .position(|line| *line == format!("{indent}}}"))
                .map_or(lines.len() - at, |end| end + 1);
            if end > MOST {
                long.push(format!("{file}:{}: {end} lines", at + 1));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these into named steps (at most {MOST} lines each):\n{}",
        long.join("\n")
    );
}

/// ARCHITECTURE.md names only source files that exist: a file moved or
/// gone without the map being told fails here.
#[test]
fn architecture_names_only_files_that_exist() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut names = BTreeSet::new();
    for code in map.split('`').skip(1).step_by(2) {
        if code.ends_with(".rs") && !code.contains(' ') && !code.contains('*') {
            names.insert(code.to_owned());
        }
    }
    assert!(names.len() > 30, "{names:?}");
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        files.extend(sources(&root().join(dir)));
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| {
            !files
                .iter()
                .any(|file| file.to_string_lossy().ends_with(&format!("/{name}")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names files that are not there: {missing:?}"
    );
}

#[test]
fn integration_tests_read_reports_through_the_result_model() {
    // A field renamed or retyped in report.json's schema must fail to
    // compile a test, not make a JSON lookup quietly read null.
    let tests = root().join("crates/upgrade-check/tests/it");
    let untyped = untyped_lookups();
    let mut offenders = Vec::new();
    for path in sources(&tests) {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(&tests).unwrap().display().to_string();
        for (number, line) in text.lines().enumerate() {
            let parsed_as_json = line.contains("report.json")
                && ["serde_json::from_", "serde_json::Value"]
                    .iter()
                    .any(|parse| line.contains(parse));
            if parsed_as_json || untyped.iter().any(|lookup| line.contains(lookup)) {
                offenders.push(format!("{name}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "read report.json with ctx.report() or common::report_at:\n{}",
        offenders.join("\n")
    );
}

/// `report["…"]`-style lookups on the values a report is read into.
fn untyped_lookups() -> Vec<String> {
    [
        "report",
        "cell",
        "scenario",
        "environment",
        "timing",
        "part",
        "bisected",
    ]
    .iter()
    .map(|name| format!("{name}[\""))
    .collect()
}

#[test]
fn the_library_is_reached_through_its_facade() {
    // The layers are private and every item the facade does not re-export
    // is the crate's own; dropping either would make the whole crate API.
    let lib = std::fs::read_to_string(root().join("crates/upgrade-check-core/src/lib.rs")).unwrap();
    assert!(
        lib.contains("#![warn(unreachable_pub)]"),
        "lib.rs keeps unreachable_pub on"
    );
    let public_layers: Vec<&str> = lib
        .lines()
        .filter(|line| line.starts_with("pub mod ") && line.ends_with(';'))
        .filter(|line| *line != "pub mod model;")
        .collect();
    assert!(
        public_layers.is_empty(),
        "layers other than model are private; re-export what is needed: {public_layers:?}"
    );
}

/// Each package `cargo tree` lists for `packages` with `edges`, with its
/// enabled features.
fn features_of(packages: &[&str], edges: &str) -> BTreeMap<String, String> {
    let mut command = std::process::Command::new(env!("CARGO"));
    command.args(["tree", "--offline", "--prefix", "none", "-f", "{p}|{f}"]);
    command.args(["-e", edges]).current_dir(root());
    for package in packages {
        command.args(["-p", package]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (package, features) = line.trim_end_matches(" (*)").split_once('|')?;
            Some((package.to_owned(), features.to_owned()))
        })
        .collect()
}

#[test]
fn the_binary_s_dependencies_have_the_features_the_tests_give_them() {
    // What `cargo test --workspace --exclude xtask` builds, and what
    // `cargo xtask`, `cargo install --path crates/upgrade-check` and
    // `cargo test -p upgrade-check --test it` build.
    let tests = features_of(&["upgrade-check", "upgrade-check-core"], "normal,build,dev");
    let mut differing = Vec::new();
    for (build, edges) in [
        ("xtask", "normal,build"),
        ("upgrade-check", "normal,build"),
        ("upgrade-check", "normal,build,dev"),
    ] {
        for (package, features) in features_of(&[build], edges) {
            if let Some(tested) = tests.get(&package)
                && *tested != features
            {
                differing.push(format!(
                    "{package}: [{features}] for {build} ({edges}), [{tested}] for the tests"
                ));
            }
        }
    }
    assert!(
        differing.is_empty(),
        "a crate compiled twice, once per feature set; turn the tests' features on in \
         crates/upgrade-check/Cargo.toml:\n{}",
        differing.join("\n")
    );
}
