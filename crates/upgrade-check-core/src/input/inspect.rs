//! What `upgrade-check init` reads from a service folder (Python, cargo in
//! `inspect/cargo.rs`, Node in `inspect/node.rs`): the ecosystem, the
//! baseline file, how the service starts and takes its port, the variables
//! it must be given, and the paths that may answer a health check. Only
//! reads and infers; what it cannot tell is left as a TODO with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::baseline::BaselineFile;
use super::config::Ecosystem;

mod cargo;
mod node;

/// Baseline files in the order a service's own tools would read them: a
/// lock before what it was made from.
const PYTHON_BASELINES: &[&str] = &[
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "requirements.txt",
    "requirements/base.txt",
    "requirements/prod.txt",
    "requirements/production.txt",
    "pyproject.toml",
];

/// Paths a service commonly answers health checks on, tried after those
/// its source names.
const USUAL_HEALTH_PATHS: &[&str] = &[
    "/health",
    "/healthz",
    "/api/health",
    "/health/",
    "/ping",
    "/status",
    "/ready",
    "/",
];

/// Folders that are not the service's source.
const NOT_SOURCE: &[&str] = &[
    ".git",
    ".venv",
    "venv",
    "env",
    "node_modules",
    "target",
    "__pycache__",
    "site-packages",
    "snapshots",
    "scenarios",
];

/// The most files read: a service folder, not a monorepo's every package.
const MAX_FILES: usize = 2_000;

/// What the folder says about its service.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub ecosystem: Ecosystem,
    /// The service's folder, relative to where `init` runs: `.`, or the
    /// one folder below that holds a service (`service/`).
    pub root: String,
    /// Relative to the folder.
    pub baseline: Option<String>,
    /// The argv, with the config's placeholders.
    pub command: Option<Vec<String>>,
    /// What starts it, in words: "a Flask app factory (create_app in app/__init__.py)".
    pub how: String,
    /// Variables the service gets: its port, and those it must be given.
    pub env: BTreeMap<String, String>,
    /// Why each variable got its value.
    pub env_notes: Vec<String>,
    /// Candidate health paths, the source's own first.
    pub health_paths: Vec<String>,
    /// What is left to the user, each with the reason.
    pub todos: Vec<String>,
}

/// Reads the service folder `dir`; when nothing there is a service, the
/// one folder below it that is (a repository whose cargo service lives in
/// `service/`), or a TODO naming the candidates.
pub(crate) fn inspect(dir: &Path) -> anyhow::Result<Inspection> {
    let mut here = inspect_folder(dir)?;
    // No baseline file here: the sources found belong to a folder below.
    if here.baseline.is_some()
        || dir.join("Cargo.toml").is_file()
        || dir.join("package.json").is_file()
    {
        return Ok(here);
    }
    let candidates = service_folders(dir);
    match candidates.as_slice() {
        [] => Ok(here),
        [one] => {
            let mut found = inspect_folder(&dir.join(one))?;
            found.root = one.display().to_string();
            found.how = match found.how.as_str() {
                "" => String::new(),
                how => format!("{how}, in {}/", found.root),
            };
            Ok(found)
        }
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|folder| format!("{}/", folder.display()))
                .collect();
            here.todos.push(format!(
                "nothing here is a service, but {} each hold one: run `upgrade-check init FOLDER` for the one to check",
                names.join(", ")
            ));
            Ok(here)
        }
    }
}

/// Folders one or two levels below `dir` with a cargo manifest and lock, or
/// a Python baseline file: where a repository keeps its service.
fn service_folders(dir: &Path) -> Vec<PathBuf> {
    let is_service = |folder: &Path| {
        (folder.join("Cargo.toml").is_file() && folder.join("Cargo.lock").is_file())
            || (folder.join("package.json").is_file()
                && node::NODE_LOCKS
                    .iter()
                    .any(|lock| folder.join(lock).is_file()))
            || PYTHON_BASELINES
                .iter()
                .any(|name| !name.contains('/') && folder.join(name).is_file())
    };
    let children = |folder: &Path| -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| !name.starts_with('.') && !NOT_SOURCE.contains(&name))
            })
            .collect();
        found.sort();
        found
    };
    let mut services = Vec::new();
    for child in children(dir) {
        if is_service(&child) {
            services.push(child);
            continue;
        }
        services.extend(
            children(&child)
                .into_iter()
                .filter(|grandchild| is_service(grandchild)),
        );
    }
    services
        .into_iter()
        .filter_map(|path| path.strip_prefix(dir).ok().map(Path::to_path_buf))
        .collect()
}

/// Reads one folder as the service's.
fn inspect_folder(dir: &Path) -> anyhow::Result<Inspection> {
    if dir.join("Cargo.toml").is_file() {
        return Ok(cargo::inspect_cargo(dir));
    }
    // A package.json beside a Python baseline is the front end's.
    let python = PYTHON_BASELINES.iter().any(|name| dir.join(name).is_file());
    if dir.join("package.json").is_file() && !python {
        return Ok(node::inspect_node(dir));
    }
    let files = source_files(dir, "py");
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .filter_map(|path| Some((path.clone(), std::fs::read_to_string(&path).ok()?)))
        .collect();
    let mut inspection = Inspection {
        health_paths: health_paths(texts.iter().map(|(_, text)| text.as_str())),
        ..Inspection::of(Ecosystem::Python)
    };
    let packages = python_baseline(dir, &mut inspection);
    let reads = env_reads(texts.iter().map(|(_, text)| text.as_str()));
    let relative = |path: &Path| path.strip_prefix(dir).unwrap_or(path).to_path_buf();
    python_command(dir, &texts, &packages, &reads, &relative, &mut inspection);
    required_variables(&reads, &mut inspection);
    Ok(inspection)
}

impl Inspection {
    /// Nothing found yet about a service of `ecosystem` in the folder itself.
    fn of(ecosystem: Ecosystem) -> Inspection {
        Inspection {
            ecosystem,
            root: ".".to_owned(),
            baseline: None,
            command: None,
            how: String::new(),
            env: BTreeMap::new(),
            env_notes: Vec::new(),
            health_paths: Vec::new(),
            todos: Vec::new(),
        }
    }

    /// The config `init` writes: what was found, each with a comment saying
    /// where it came from, and a commented TODO for what was not.
    pub fn config_text(&self, health: Option<&str>) -> String {
        let quoted = |text: &str| format!("{text:?}");
        let mut out = String::new();
        out.push_str("# upgrade-check configuration, written by `upgrade-check init`.\n");
        out.push_str(
            "# Paths are relative to this file; the README's config table has every key.\n\n",
        );
        out.push_str("[service]\n");
        out.push_str("# The service's source; each scenario run starts from a private copy.\n");
        out.push_str(&format!("root = {}\n", quoted(&self.root)));
        out.push_str(&format!("ecosystem = \"{}\"\n", self.ecosystem.name()));
        out.push_str(
            "# What the service installs today: the baseline every upgrade is compared with.\n",
        );
        match &self.baseline {
            Some(baseline) => out.push_str(&format!("baseline = {}\n", quoted(baseline))),
            None => out.push_str("# TODO: the file that pins what the service installs.\n# baseline = \"requirements.txt\"\n"),
        }
        match &self.command {
            Some(command) => {
                out.push_str(&format!("# How it starts: {}.\n", self.how));
                let argv: Vec<String> = command.iter().map(|arg| quoted(arg)).collect();
                out.push_str(&format!("command = [{}]\n", argv.join(", ")));
            }
            // Empty, so that loading the config says which key to fill.
            None => out.push_str("# TODO: how the service starts, listening on 127.0.0.1:{port}, e.g.\n#   [\"{python}\", \"-m\", \"myservice\", \"--port\", \"{port}\"]\ncommand = []\n"),
        }
        match health {
            Some(path) => {
                out.push_str("# Answers 2xx once the service is up (found by starting it once).\n");
                out.push_str(&format!("health = {{ path = {} }}\n", quoted(path)));
            }
            None => {
                let first = self.health_paths.first().map_or("/health", String::as_str);
                out.push_str(
                    "# TODO: a path that answers 2xx once the service is up (none answered\n",
                );
                out.push_str(&format!(
                    "# when it was started once); {first} is a guess.\n"
                ));
                out.push_str(&format!("health = {{ path = {} }}\n", quoted(first)));
            }
        }
        if !self.env.is_empty() {
            out.push_str("\n# The service's environment; {port}, {secret}, {sqlite_path} and\n");
            out.push_str("# {database_url} are filled per scenario run.\n[service.env]\n");
            for note in &self.env_notes {
                out.push_str(&format!("# {note}\n"));
            }
            for (name, value) in &self.env {
                out.push_str(&format!("{name} = {}\n", quoted(value)));
            }
        }
        let todos: Vec<&String> = self
            .todos
            .iter()
            .filter(|todo| {
                !todo.starts_with("how the service starts") && !todo.starts_with("no baseline file")
            })
            .collect();
        for todo in todos {
            out.push_str(&format!("# TODO: {todo}\n"));
        }
        out.push_str("\n# The versions to try on top of the baseline, e.g.\n");
        out.push_str("#   somepackage = [\"2.0.0\", \"3.0.0\"]\n");
        out.push_str(match self.ecosystem {
            Ecosystem::Python => {
                "#   otherpackage = { range = \">=2.2\", pick = \"latest-per-minor\" }\n"
            }
            Ecosystem::Cargo => {
                "#   othercrate = { range = \"^1.2\", pick = \"latest-per-minor\" }\n"
            }
            Ecosystem::Node => {
                "#   otherpackage = { range = \">=4, <6\", pick = \"latest-per-minor\" }\n"
            }
        });
        out.push_str(
            "# In a pull request, `--since BASE` tries the versions the change moves instead.\n",
        );
        out.push_str("[matrix.packages]\n");
        out
    }
}

/// `scenarios/health.toml`: the one scenario `init` can write, a GET of the
/// health path; each scenario run replays it on a fresh start.
pub(crate) fn health_scenario_text(path: &str) -> String {
    format!(
        "description = \"the service starts and answers its health check\"\n\n[[steps]]\nname = \"health\"\nmethod = \"GET\"\npath = {path:?}\n"
    )
}

/// The first baseline file there is, and the packages it names (lower case).
fn python_baseline(dir: &Path, inspection: &mut Inspection) -> BTreeSet<String> {
    let Some(found) = PYTHON_BASELINES.iter().find(|name| {
        let path = dir.join(name);
        path.is_file() && (**name != "pyproject.toml" || BaselineFile::load(&path).is_ok())
    }) else {
        inspection.todos.push(
            "no baseline file (uv.lock, poetry.lock, Pipfile.lock, requirements.txt or pyproject.toml with [project] dependencies): name the file that pins what the service installs as service.baseline".to_owned(),
        );
        return BTreeSet::new();
    };
    inspection.baseline = Some((*found).to_owned());
    match BaselineFile::load(&dir.join(found)) {
        Ok(file) => file
            .requirements
            .iter()
            .chain(&file.constraints)
            .map(|declared| declared.package().to_string())
            .collect(),
        Err(err) => {
            inspection
                .todos
                .push(format!("{found} does not read as a baseline: {err}"));
            BTreeSet::new()
        }
    }
}

/// Names the source reads from the environment: `(name, required)`, where
/// required means read without a default (`os.environ["X"]`, or named in a
/// list the service checks).
fn env_reads<'a>(texts: impl Iterator<Item = &'a str>) -> BTreeMap<String, bool> {
    static REQUIRED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"#).expect("valid regex")
    });
    static OPTIONAL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?:environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"#).expect("valid regex")
    });
    let mut reads = BTreeMap::new();
    for text in texts {
        for found in OPTIONAL.captures_iter(text) {
            reads.entry(found[1].to_owned()).or_insert(false);
        }
        for found in REQUIRED.captures_iter(text) {
            reads.insert(found[1].to_owned(), true);
        }
    }
    // `request.environ["HTTP_AUTHORIZATION"]`: a WSGI request's keys, not
    // variables anyone sets.
    reads.retain(|name, _| !is_wsgi_key(name));
    reads
}

/// A key of a WSGI (CGI) request's environ: `HTTP_*` headers and the
/// request's own variables.
fn is_wsgi_key(name: &str) -> bool {
    const REQUEST: &[&str] = &[
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "PATH_INFO",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_USER",
        "REQUEST_METHOD",
        "REQUEST_URI",
        "SCRIPT_NAME",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
    ];
    name.starts_with("HTTP_") || REQUEST.contains(&name)
}

/// The name of the port variable the service reads, if it reads one.
fn port_variable(reads: &BTreeMap<String, bool>) -> Option<String> {
    if reads.contains_key("PORT") {
        return Some("PORT".to_owned());
    }
    let others = ["DB", "DATABASE", "PG", "POSTGRES", "REDIS", "SMTP", "MAIL"];
    reads
        .keys()
        .find(|name| name.ends_with("PORT") && !others.iter().any(|other| name.contains(other)))
        .cloned()
}

fn python_command(
    dir: &Path,
    texts: &[(PathBuf, String)],
    packages: &BTreeSet<String>,
    reads: &BTreeMap<String, bool>,
    relative: &dyn Fn(&Path) -> PathBuf,
    inspection: &mut Inspection,
) {
    static ASGI: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?m)^(\w+)\s*=\s*(FastAPI|Starlette)\(").expect("valid regex")
    });
    // `app = Flask(__name__)`, or a factory's app (`app = create_app(...)`
    // in an `autoapp.py`).
    static FLASK_APP: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?m)^(\w+)\s*=\s*(?:Flask|create_app)\(").expect("valid regex")
    });
    let python = "{python}".to_owned();
    let port = port_variable(reads);
    let host_port = |args: &[&str]| -> Vec<String> {
        let mut argv = vec![python.clone()];
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        argv
    };
    // The Procfile's web process: what the team runs in production.
    if let Some((command, how)) = procfile_web(dir, packages) {
        inspection.command = Some(command);
        inspection.how = how;
        return;
    }
    // Django: its own server, without the reloader (one process to stop).
    if dir.join("manage.py").is_file() {
        inspection.command = Some(host_port(&[
            "manage.py",
            "runserver",
            "--noreload",
            "127.0.0.1:{port}",
        ]));
        inspection.how =
            "Django (manage.py runserver --noreload, the port as an argument)".to_owned();
        return;
    }
    // FastAPI or Starlette: an ASGI app served by uvicorn.
    if let Some((path, found)) = texts
        .iter()
        .find_map(|(path, text)| Some((path, ASGI.captures(text)?)))
    {
        let target = format!("{}:{}", module_of(&relative(path)), &found[1]);
        inspection.command = Some(host_port(&[
            "-m",
            "uvicorn",
            &target,
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ]));
        inspection.how = format!(
            "{} app `{}` in {} under uvicorn (the port as an argument)",
            &found[2],
            &found[1],
            relative(path).display()
        );
        if !packages.contains("uvicorn") {
            inspection.todos.push(format!(
                "uvicorn serves the app but the baseline does not install it: add uvicorn to {}",
                inspection.baseline.as_deref().unwrap_or("the baseline")
            ));
        }
        return;
    }
    // A package run as `python -m PACKAGE` that takes its port from a variable.
    if let Some(port) = &port
        && let Some(main) = texts
            .iter()
            .map(|(path, _)| relative(path))
            .find(|path| path.file_name().is_some_and(|name| name == "__main__.py"))
    {
        let package = module_of(main.parent().unwrap_or(Path::new("")));
        inspection.command = Some(host_port(&["-m", &package]));
        inspection.env.insert(port.clone(), "{port}".to_owned());
        inspection.env_notes.push(format!(
            "{port}: the port; the source reads it from the environment"
        ));
        inspection.how = format!(
            "`python -m {package}` ({}, the port in {port})",
            main.display()
        );
        return;
    }
    // Flask: an app factory in a package, or an app object in a module.
    let factory = texts.iter().find(|(path, text)| {
        path.file_name().is_some_and(|name| name == "__init__.py")
            && text.contains("def create_app(")
    });
    let flask_target = match factory {
        Some((path, _)) => Some((
            module_of(relative(path).parent().unwrap_or(Path::new(""))),
            format!(
                "a Flask app factory (create_app in {})",
                relative(path).display()
            ),
        )),
        None => texts.iter().find_map(|(path, text)| {
            let found = FLASK_APP.captures(text)?;
            Some((
                format!("{}:{}", module_of(&relative(path)), &found[1]),
                format!(
                    "a Flask app `{}` in {}",
                    &found[1],
                    relative(path).display()
                ),
            ))
        }),
    };
    if let Some((target, how)) = flask_target {
        inspection.command = Some(host_port(&[
            "-m",
            "flask",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ]));
        inspection
            .env
            .insert("FLASK_APP".to_owned(), target.clone());
        inspection
            .env_notes
            .push(format!("FLASK_APP: the app `flask run` serves ({target})"));
        inspection.how = format!("{how}, served by `flask run` (the port as an argument)");
        return;
    }
    inspection.todos.push(
        "how the service starts: no Django manage.py, FastAPI/Starlette app, `python -m` package reading a port variable, or Flask app was found; set service.command (with {port})".to_owned(),
    );
}

/// The `web:` process of a Procfile that gunicorn or uvicorn serves, bound
/// to the harness's port instead of the platform's, when the baseline
/// installs the server.
fn procfile_web(dir: &Path, packages: &BTreeSet<String>) -> Option<(Vec<String>, String)> {
    let text = std::fs::read_to_string(dir.join("Procfile")).ok()?;
    let line = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("web:"))?
        .trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    let (server, rest) = words.split_first()?;
    // Flags that take a value: their value is no app.
    const VALUED: &[&str] = &[
        "-b",
        "--bind",
        "-w",
        "--workers",
        "-k",
        "--worker-class",
        "-c",
        "--config",
        "--host",
        "--port",
        "--timeout",
        "-t",
        "--log-level",
    ];
    let target = rest
        .iter()
        .enumerate()
        .find(|(at, word)| !word.starts_with('-') && (*at == 0 || !VALUED.contains(&rest[at - 1])))
        .map(|(_, word)| *word)?;
    let python = "{python}".to_owned();
    let command: Vec<String> = match *server {
        "gunicorn" => vec![
            python,
            "-m".into(),
            "gunicorn".into(),
            target.into(),
            "--bind".into(),
            "127.0.0.1:{port}".into(),
        ],
        "uvicorn" => vec![
            python,
            "-m".into(),
            "uvicorn".into(),
            target.into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            "{port}".into(),
        ],
        _ => return None,
    };
    if !packages.contains(*server) {
        return None;
    }
    Some((
        command,
        format!("the Procfile's web process (`{line}`), bound to the harness's port"),
    ))
}

/// Variables read without a default get a value the harness provides where
/// the name says what it is (a secret, a SQLite path, a database URL);
/// the rest are left to the user.
fn required_variables(reads: &BTreeMap<String, bool>, inspection: &mut Inspection) {
    let mut unknown = Vec::new();
    for (name, _) in reads.iter().filter(|(_, required)| **required) {
        if inspection.env.contains_key(name) || Some(name) == port_variable(reads).as_ref() {
            continue;
        }
        let value = if ["SECRET", "KEY", "TOKEN", "PASSWORD"]
            .iter()
            .any(|part| name.contains(part))
        {
            Some(("{secret}", "a secret the harness makes per run"))
        } else if name == "DATABASE_URL" {
            Some(("{database_url}", "a fresh SQLite database per scenario run"))
        } else if name.contains("SQLITE") || name == "DATABASE_PATH" || name == "DB_PATH" {
            Some(("{sqlite_path}", "a fresh SQLite file per scenario run"))
        } else {
            None
        };
        match value {
            Some((value, why)) => {
                inspection.env.insert(name.clone(), value.to_owned());
                inspection
                    .env_notes
                    .push(format!("{name}: read without a default; {why}"));
            }
            None => unknown.push(name.as_str()),
        }
    }
    if !unknown.is_empty() {
        inspection.todos.push(format!(
            "{} {} read without a default somewhere in the source: where the service needs {}, give {} under [service.env] (or a profile's env)",
            unknown.join(", "),
            if unknown.len() == 1 { "is" } else { "are" },
            if unknown.len() == 1 { "it" } else { "them" },
            if unknown.len() == 1 { "it a value" } else { "them values" },
        ));
    }
}

/// Paths in the source that look like health checks, then the usual ones.
fn health_paths<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<String> {
    let texts: Vec<&str> = texts.collect();
    static ROUTE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"["'](/?[A-Za-z0-9_/-]*(?:health|healthz|ready|readyz|live|livez|ping|status)[A-Za-z0-9_/-]*)["']"#)
            .expect("valid regex")
    });
    let mut paths: Vec<String> = Vec::new();
    for text in &texts {
        for found in ROUTE.captures_iter(text) {
            let path = &found[1];
            // Django's `path("health/", …)` has no leading slash.
            let path = if path.starts_with('/') {
                path.to_owned()
            } else if path.ends_with('/') {
                format!("/{path}")
            } else {
                continue;
            };
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    // Then GET routes the source declares in full (`@bp.route("/api/tags")`):
    // a real path is a better guess than a usual one the app may not serve.
    static GET_ROUTE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"\.(route|get)\(\s*["'](/[A-Za-z0-9_/.-]*)["']([^)]*)\)"#)
            .expect("valid regex")
    });
    let mut routes = Vec::new();
    for text in &texts {
        for found in GET_ROUTE.captures_iter(text) {
            let (kind, path, rest) = (&found[1], &found[2], &found[3]);
            let other_methods =
                kind == "route" && rest.contains("methods") && !rest.contains("GET");
            if !other_methods
                && !paths.iter().any(|known| known == path)
                && !routes.contains(&path.to_owned())
            {
                routes.push(path.to_owned());
            }
        }
    }
    paths.extend(routes.into_iter().take(8));
    for usual in USUAL_HEALTH_PATHS {
        if !paths.iter().any(|path| path == usual) {
            paths.push((*usual).to_owned());
        }
    }
    paths
}

/// A file or package folder's Python module path: `app/main.py` → `app.main`.
fn module_of(path: &Path) -> String {
    let path = path.with_extension("");
    path.components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .filter(|part| part != "__init__")
        .collect::<Vec<_>>()
        .join(".")
}

/// The folder's source files with `extension`, in name order, outside
/// virtual environments, build output and the harness's own folders.
fn source_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let name = entry.file_name();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && !NOT_SOURCE.iter().any(|skip| name == *skip) {
                folders.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|ext| ext == extension) {
                found.push(path);
                if found.len() >= MAX_FILES {
                    return found;
                }
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn write(dir: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn a_package_run_with_python_m_takes_its_port_from_the_variable_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("requirements.txt", "Flask==2.2.5\n"),
                ("app/__init__.py", "def create_app():\n    pass\n"),
                ("app/__main__.py", "from . import create_app\n"),
                (
                    "app/config.py",
                    "import os\nport = int(os.environ[\"PORT\"])\nkey = os.environ[\"JWT_SECRET_KEY\"]\nmode = os.environ.get(\"APP_ENV\", \"dev\")\nother = os.environ[\"UPSTREAM\"]\n",
                ),
                (
                    "app/routes.py",
                    "@bp.get(\"/api/healthcheck\")\ndef health(): ...\n",
                ),
            ],
        );
        let found = inspect(dir.path()).unwrap();
        assert_eq!(found.baseline.as_deref(), Some("requirements.txt"));
        assert_eq!(found.command.unwrap(), ["{python}", "-m", "app"]);
        assert_eq!(found.env["PORT"], "{port}");
        assert_eq!(found.env["JWT_SECRET_KEY"], "{secret}");
        assert!(!found.env.contains_key("APP_ENV"), "it has a default");
        assert_eq!(found.health_paths[0], "/api/healthcheck");
        assert!(
            found
                .todos
                .iter()
                .any(|todo| todo.starts_with("UPSTREAM is read without a default")),
            "{:?}",
            found.todos
        );
    }

    #[test]
    fn each_framework_gets_its_own_start() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("requirements.txt", "starlette==0.37.2\n"),
                (
                    "service/main.py",
                    "app = Starlette(routes=[Route(\"/healthz\", h)])\n",
                ),
            ],
        );
        let found = inspect(dir.path()).unwrap();
        assert_eq!(
            found.command.unwrap()[1..4],
            ["-m", "uvicorn", "service.main:app"]
        );
        assert!(
            found.todos[0].starts_with("uvicorn serves the app"),
            "{:?}",
            found.todos
        );
        assert_eq!(found.health_paths[0], "/healthz");

        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("requirements.txt", "Django==4.2.16\n"),
                ("manage.py", ""),
                (
                    "site/urls.py",
                    "urlpatterns = [path(\"health/\", views.health)]\n",
                ),
            ],
        );
        let found = inspect(dir.path()).unwrap();
        assert_eq!(
            found.command.unwrap()[1..4],
            ["manage.py", "runserver", "--noreload"]
        );
        assert_eq!(found.health_paths[0], "/health/");

        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("requirements.txt", "Flask==3.0.3\n"),
                ("web.py", "app = Flask(__name__)\n"),
            ],
        );
        let found = inspect(dir.path()).unwrap();
        assert_eq!(found.env["FLASK_APP"], "web:app");
        assert_eq!(found.command.unwrap()[1..4], ["-m", "flask", "run"]);
    }

    #[test]
    fn what_cannot_be_told_is_left_as_a_todo() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("worker.py", "print('hi')\n")]);
        let found = inspect(dir.path()).unwrap();
        assert!(found.baseline.is_none() && found.command.is_none());
        assert_eq!(found.todos.len(), 2, "{:?}", found.todos);
        // The written config says which key to fill when it is loaded.
        assert!(found.config_text(None).contains("\ncommand = []\n"));
    }

    /// A 2018 Flask API's layout (the RealWorld "conduit" one): a factory in
    /// `conduit/app.py`, the app made in `autoapp.py`, served by gunicorn
    /// from a Procfile; its routes, not `/health`, are what it answers.
    #[test]
    fn a_procfile_a_factory_app_and_its_own_routes_are_read() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("requirements.txt", "Flask==1.0.2\ngunicorn==19.9.0\n"),
                (
                    "Procfile",
                    "web: gunicorn autoapp:app -b 0.0.0.0:$PORT -w 3\n",
                ),
                (
                    "autoapp.py",
                    "from conduit.app import create_app\napp = create_app()\n",
                ),
                (
                    "conduit/app.py",
                    "from flask import Flask, request\ndef create_app():\n    app = Flask(__name__)\n    return app\ndef auth():\n    return request.environ[\"HTTP_AUTHORIZATION\"]\n",
                ),
                (
                    "conduit/articles/views.py",
                    "@blueprint.route('/api/articles', methods=('POST',))\ndef make(): ...\n@blueprint.route('/api/tags', methods=('GET',))\ndef tags(): ...\n",
                ),
            ],
        );
        let found = inspect(dir.path()).unwrap();
        assert_eq!(
            found.command.unwrap(),
            [
                "{python}",
                "-m",
                "gunicorn",
                "autoapp:app",
                "--bind",
                "127.0.0.1:{port}"
            ]
        );
        assert!(found.how.contains("Procfile"), "{}", found.how);
        assert!(
            !found.env.contains_key("HTTP_AUTHORIZATION"),
            "{:?}",
            found.env
        );
        assert!(
            !found
                .todos
                .iter()
                .any(|todo| todo.contains("HTTP_AUTHORIZATION")),
            "{:?}",
            found.todos
        );
        assert_eq!(
            found.health_paths[0], "/api/tags",
            "{:?}",
            found.health_paths
        );
        assert!(!found.health_paths.contains(&"/api/articles".to_owned()));

        // Without the Procfile: the factory's app under `flask run`.
        std::fs::remove_file(dir.path().join("Procfile")).unwrap();
        let found = inspect(dir.path()).unwrap();
        assert_eq!(found.env["FLASK_APP"], "autoapp:app");
    }

    /// A repository whose service lives in a folder of its own: found there,
    /// and the config's root says so.
    #[test]
    fn a_service_in_a_folder_of_the_repository_is_found_there() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("README.md", "the service is in backend/\n"),
                ("backend/requirements.txt", "Flask==2.2.5\n"),
                (
                    "backend/app.py",
                    "from flask import Flask\napp = Flask(__name__)\n",
                ),
            ],
        );
        let found = inspect(dir.path()).unwrap();
        assert_eq!(found.root, "backend");
        assert_eq!(found.baseline.as_deref(), Some("requirements.txt"));
        assert!(found.config_text(None).contains("root = \"backend\""));
        // Two such folders: the choice is the user's, and said.
        write(
            dir.path(),
            &[("worker/requirements.txt", "celery==5.3.6\n")],
        );
        let found = inspect(dir.path()).unwrap();
        assert_eq!(found.root, ".");
        assert!(
            found
                .todos
                .iter()
                .any(|todo| todo.contains("backend/, worker/ each hold one")),
            "{:?}",
            found.todos
        );
    }
}
