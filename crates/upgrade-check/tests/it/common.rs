//! A test context: the fixture service, scenarios, snapshots and config copied
//! into a temp dir, and the real `upgrade-check` binary run on them.
//!
//! Environments are cached in one folder shared by every test (content-
//! addressed and locked), so each distinct resolved set is installed once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use upgrade_check_core::model::findings::VersionChange;
pub use upgrade_check_core::model::report::{CellReport, Report, ScenarioReport, Verdict};

/// The repository: the nearest folder above the crate with the workspace's lock.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|folder| folder.join("Cargo.lock").is_file())
        .expect("the crate is inside the workspace")
        .to_owned()
}

/// The real `upgrade-check` binary cargo built for these tests.
pub fn binary() -> PathBuf {
    // `option_env!`: the bench's tests (in xtask) share this file, without the binary.
    match option_env!("CARGO_BIN_EXE_upgrade-check") {
        Some(path) => PathBuf::from(path),
        None => panic!("only the upgrade-check crate's tests run its binary"),
    }
}

/// Shared between all tests and all runs: environments are keyed by content.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("upgrade-check-cache")
}

/// uv as the tests have it: `UPGRADE_CHECK_UV`, on PATH, or the copy the
/// harness installed into the shared cache.
pub fn uv() -> PathBuf {
    if let Some(path) = std::env::var_os("UPGRADE_CHECK_UV") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("uv"))
            .find(|uv| uv.is_file())
    });
    on_path.unwrap_or_else(|| shared_cache().join("tools/uv/bin/uv"))
}

/// The harness installs uv into the shared cache on its first run when none
/// is on PATH: a test that runs uv itself makes sure it is there.
pub fn ensure_uv(ctx: &TestContext) {
    if !uv().is_file() {
        assert_eq!(ctx.run(&["plan"]).code, 0, "uv is installed");
    }
}

/// The Pipenv release that writes the tests' `Pipfile.lock`s.
pub const PIPENV: &str = "pipenv==2024.4.1";

/// Runs a Python packaging tool at a pinned version from the package index,
/// in `folder`, the way uv runs tools (installed once into uv's own cache).
pub fn packaging_tool(ctx: &TestContext, folder: &str, from: &str, args: &[&str]) {
    let output = Command::new(uv())
        .args(["tool", "run", "--from", from])
        .args(args)
        .current_dir(ctx.path(folder))
        .env("PIPENV_IGNORE_VIRTUALENVS", "1")
        .env("PIPENV_VENV_IN_PROJECT", "0")
        .env("PIPENV_NOSPIN", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{from} {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub struct TestContext {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// A run of the baseline alone that passed: exit 0, and the headline
    /// that says so.
    pub fn assert_green(&self) {
        assert_eq!(self.code, 0, "{}\n{}", self.stdout, self.stderr);
        assert!(
            self.stdout
                .starts_with("✓ the baseline matches the accepted snapshots"),
            "{}",
            self.stdout
        );
    }
}

impl TestContext {
    /// A copy of the repository's fixture setup.
    pub fn new() -> TestContext {
        let dir = tempfile::tempdir().unwrap();
        let root = workspace_root();
        copy_tree(
            &root.join("fixtures/python-service"),
            &dir.path().join("fixtures/python-service"),
        );
        copy_tree(&root.join("scenarios"), &dir.path().join("scenarios"));
        copy_tree(&root.join("snapshots"), &dir.path().join("snapshots"));
        std::fs::copy(
            root.join("upgrade-check.toml"),
            dir.path().join("upgrade-check.toml"),
        )
        .unwrap();
        TestContext { dir }
    }

    /// A copy of the cargo fixture (`fixtures/rust-service`): its config,
    /// scenarios and snapshots at the top, the crate under `service/`.
    pub fn cargo() -> TestContext {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&workspace_root().join("fixtures/rust-service"), dir.path());
        TestContext { dir }
    }

    /// A copy of a folder of the workspace (e.g. `fixtures/variants/hostile`),
    /// each file at the relative path `place` gives it.
    pub fn from_workspace(folder: &str, place: impl Fn(&Path) -> PathBuf) -> TestContext {
        let dir = tempfile::tempdir().unwrap();
        let from = workspace_root().join(folder);
        for file in walk(&from) {
            let target = dir.path().join(place(file.strip_prefix(&from).unwrap()));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&file, target).unwrap();
        }
        TestContext { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Another checkout of the same files, in a folder of its own, as CI's
    /// fresh clone is: nothing of this one's state folder comes with it.
    pub fn another_checkout(&self) -> TestContext {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let from = entry.unwrap().path();
            let to = dir.path().join(from.file_name().unwrap());
            match (from.is_dir(), from.ends_with("state")) {
                (_, true) => {}
                (true, false) => copy_tree(&from, &to),
                (false, false) => {
                    std::fs::copy(&from, &to).unwrap();
                }
            }
        }
        TestContext { dir }
    }

    /// Lays the files of a variant folder (e.g. `fixtures/incidents/INC-003`) over the service.
    pub fn overlay(&self, variant: &str) {
        let from = workspace_root().join(variant);
        let to = self.path("fixtures/python-service");
        for entry in walk(&from) {
            let relative = entry.strip_prefix(&from).unwrap();
            if relative.extension().is_some_and(|ext| ext == "md") {
                continue;
            }
            let target = to.join(relative);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&entry, target).unwrap();
        }
    }

    /// Replaces the matrix's packages table with `packages` (TOML lines).
    pub fn set_matrix(&self, packages: &str) {
        let path = self.path("upgrade-check.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text
            .find("[matrix.packages]")
            .expect("the config has a packages table");
        std::fs::write(
            &path,
            format!("{}[matrix.packages]\n{packages}\n", &text[..start]),
        )
        .unwrap();
    }

    pub fn edit(&self, relative: &str, edit: impl FnOnce(String) -> String) {
        let path = self.path(relative);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        // As the README runs it, so that its hints are the README's.
        std::os::unix::process::CommandExt::arg0(&mut command, "cargo xtask upgrade-check");
        command
            .arg("--config")
            .arg(self.path("upgrade-check.toml"))
            // Through the environment, so that a test may still pass the flags.
            .env("UPGRADE_CHECK_STATE_DIR", self.path("state"))
            .env("UPGRADE_CHECK_CACHE_DIR", shared_cache())
            .args(args)
            .env_remove("CI")
            .env_remove("INSTA_UPDATE")
            .env_remove("INSTA_FORCE_PASS");
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_command(self.command(args))
    }

    pub fn run_command(&self, mut command: Command) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        eprintln!(
            "--- exit {}\n--- stdout\n{}\n--- stderr\n{}",
            run.code, run.stdout, run.stderr
        );
        run
    }

    /// The report.json the last run wrote, read through the result model:
    /// a field renamed or retyped in the schema fails to compile here.
    pub fn report(&self) -> Report {
        report_at(&self.path("state/report/report.json"))
    }
}

/// The report.json at `path`, read through the result model.
pub fn report_at(path: &Path) -> Report {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The bisect.json the last `bisect` wrote, read through the result model.
pub fn bisect_report(ctx: &TestContext) -> upgrade_check_core::model::findings::BisectReport {
    let path = ctx.path("state/report/bisect.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The verdict of `scenario` in the cell named `cell`.
pub fn verdict(report: &Report, cell: &str, scenario: &str) -> Verdict {
    scenario_report(report, cell, scenario).verdict
}

pub fn scenario_report<'a>(report: &'a Report, cell: &str, scenario: &str) -> &'a ScenarioReport {
    let cell = cell_report(report, cell);
    cell.scenarios
        .iter()
        .find(|s| s.scenario == scenario)
        .unwrap_or_else(|| panic!("no scenario {scenario} in {cell:?}"))
}

pub fn cell_report<'a>(report: &'a Report, cell: &str) -> &'a CellReport {
    report
        .cells
        .iter()
        .find(|c| c.name == cell)
        .unwrap_or_else(|| panic!("no cell {cell} in the report"))
}

/// The names of the report's cells, in plan order.
pub fn cell_names(report: &Report) -> Vec<&str> {
    report.cells.iter().map(|cell| cell.name.as_str()).collect()
}

/// The report's `skipped` lines.
pub fn skipped(report: &Report) -> Vec<&str> {
    report.skipped.iter().map(String::as_str).collect()
}

/// The version change of `package` in a cell's report.
pub fn version_change<'a>(cell: &'a CellReport, package: &str) -> &'a VersionChange {
    cell.changes
        .iter()
        .find(|change| change.package == package)
        .unwrap_or_else(|| panic!("no change of {package} in {}", cell.name))
}

/// Running, as opposed to gone or a zombie.
pub fn alive(pid: u64) -> bool {
    u32::try_from(pid).is_ok_and(upgrade_check_core::util::is_running)
}

/// Every service the report names is gone, and what listens on a port one
/// of them used (if anything) is not of `ctx`'s runs: the suite's other
/// tests start services at the same time, and one may take a freed port.
pub fn assert_no_service_left(ctx: &TestContext, report: &Report) {
    for cell in &report.cells {
        for scenario in &cell.scenarios {
            if let Some(pid) = scenario.service_pid {
                assert!(
                    !alive(pid.into()),
                    "service pid {pid} of {} is still alive",
                    cell.name
                );
            }
            let Some(port) = scenario.service_port else {
                continue;
            };
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                continue;
            }
            for holder in upgrade_check_core::util::listeners(port) {
                assert!(
                    !of_context(ctx, holder),
                    "port {port} of {} is still held by pid {holder}, a process of this test's run",
                    cell.name
                );
            }
        }
    }
}

/// Whether process `pid` belongs to `ctx`'s runs: its environment (the
/// harness's markers name the run's state folder) or its working folder
/// (a private copy in that folder) is inside the test's folder.
fn of_context(ctx: &TestContext, pid: i32) -> bool {
    let folder = ctx.dir.path().to_string_lossy().into_owned();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
    String::from_utf8_lossy(&environ).contains(&folder)
        || cwd.to_string_lossy().starts_with(&folder)
}

/// Runs git in the context's folder, as a fixed committer; fails the test on failure.
pub fn git(ctx: &TestContext, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=upgrade-check",
            "-c",
            "user.email=upgrade-check@localhost",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(ctx.dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// `cargo ARGS` in the service's folder, as a maintainer or Dependabot runs it.
pub fn cargo(ctx: &TestContext, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(ctx.path("service"))
        .status()
        .unwrap();
    assert!(status.success(), "cargo {args:?}");
}

/// Every file below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn copy_tree(from: &Path, to: &Path) {
    for file in walk(from) {
        let relative = file.strip_prefix(from).unwrap();
        if relative
            .components()
            .any(|c| c.as_os_str() == "__pycache__" || c.as_os_str() == "target")
            || file.to_string_lossy().ends_with(".snap.new")
        {
            continue;
        }
        let target = to.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, target).unwrap();
    }
}

/// `text` with the requirement that starts with `pin`, and the indented
/// `--hash` and comment lines that continue it, replaced by `with`.
pub fn replace_requirement(text: &str, pin: &str, with: &str) -> String {
    let start = text.find(pin).unwrap_or_else(|| panic!("{pin} in {text}"));
    let first_line_end = start
        + text[start..]
            .find('\n')
            .map_or(text.len() - start, |i| i + 1);
    let mut end = first_line_end;
    for line in text[first_line_end..].split_inclusive('\n') {
        if !line.starts_with(char::is_whitespace) {
            break;
        }
        end += line.len();
    }
    format!("{}{with}{}", &text[..start], &text[end..])
}

/// `explore --budget BUDGET` on [`fastapi_signing_up`]'s service: it
/// passes, and its fields were read from the OpenAPI document it serves.
pub fn explore_reading_openapi(ctx: &TestContext, budget: &str) -> Run {
    let explored = ctx.run(&["explore", "--budget", budget]);
    assert_eq!(explored.code, 0, "{}\n{}", explored.stdout, explored.stderr);
    assert!(
        explored
            .stderr
            .contains("OpenAPI document at /openapi.json: 1 operation with fields it bounds"),
        "{}",
        explored.stderr
    );
    explored
}

/// The FastAPI fixture (`username` 3 to 32 characters, `password` 8 at
/// least, in its OpenAPI document) with one scenario: signing up.
pub fn fastapi_signing_up() -> TestContext {
    let ctx = TestContext::from_workspace("fixtures/variants/fastapi-auth", Path::to_path_buf);
    std::fs::create_dir_all(ctx.path("snapshots")).unwrap();
    std::fs::create_dir_all(ctx.path("scenarios")).unwrap();
    std::fs::write(
        ctx.path("scenarios/signup.toml"),
        "description = \"sign up\"\n\n[vars]\nusername = \"dana\"\n\n[secrets]\n\
         password = \"correct-horse-9\"\n\n[[steps]]\nname = \"sign up\"\nmethod = \"POST\"\n\
         path = \"/users\"\njson = { username = \"{{username}}\", password = \"{{password}}\" }\n",
    )
    .unwrap();
    ctx
}

/// Checks that the README's sample after `anchor` (the next ```text block)
/// is what the tool printed: line for line, where a line `…` stands for any
/// lines (none included) and the first line must be the output's first;
/// timings (`[   1.3s]`, `finished in 8.2s`) are normalised on both sides.
/// A README that tells what the tool no longer says fails here.
pub fn assert_readme_sample(anchor: &str, printed: &str) {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    // An anchor may be wrapped across lines; a newline for a space keeps
    // every offset.
    let at = readme
        .replace('\n', " ")
        .find(&anchor.replace('\n', " "))
        .unwrap_or_else(|| panic!("README has no `{anchor}`"));
    let block = readme[at..]
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .unwrap_or_else(|| panic!("no text block after `{anchor}`"));
    let normal = |text: &str| -> Vec<String> {
        without_timings(text)
            .lines()
            .map(|line| line.trim_end().to_owned())
            .collect()
    };
    let sample = normal(block);
    let output = normal(printed);
    let segments: Vec<&[String]> = sample.split(|line| line.trim() == "…").collect();
    let mut from = 0;
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            continue;
        }
        let found = if index == 0 {
            output.starts_with(segment).then_some(0)
        } else {
            (from..=output.len().saturating_sub(segment.len()))
                .find(|&start| output[start..].starts_with(segment))
        };
        let Some(start) = found else {
            panic!(
                "README's sample after `{anchor}` is not what the tool prints.\nThis part is missing:\n{}\n\nThe tool printed:\n{}",
                segment.join("\n"),
                output.join("\n")
            );
        };
        from = start + segment.len();
    }
}

/// Timings, cache counts and registry sizes as placeholders: they differ
/// from run to run (a cold cache builds what a warm one reuses) and from
/// release to release.
fn without_timings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut line = line.to_owned();
        // `[   1.3s] ` progress stamps.
        if let Some(rest) = line.strip_prefix('[')
            && let Some((stamp, tail)) = rest.split_once("s] ")
            && stamp.trim().parse::<f64>().is_ok()
        {
            line = format!("[T] {tail}");
        }
        if let Some(at) = line.find("finished in ") {
            line = format!("{}finished in T", &line[..at]);
        }
        if line.starts_with("environments: ") {
            line = line.replace(|c: char| c.is_ascii_digit(), "N");
        }
        // Whether the index was asked or its cached answer used.
        line = line.replace(", index answer cached:", ", from the package index:");
        // How many environments a bisection built depends on the cache; how
        // many versions a registry lists grows with every release.
        for marker in [
            " environments built",
            " environment built",
            " on the index)",
            " versions, ",
        ] {
            if let Some(at) = line.find(marker)
                && let Some(count) = line[..at].rsplit([' ', '(']).next()
                && count.parse::<u32>().is_ok()
            {
                line = format!("{}N{}", &line[..at - count.len()], &line[at..]);
            }
        }
        // One environment or several: the count is gone, so is the plural.
        line = line.replace("N environment built", "N environments built");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// What Dependabot does to the `package.json` and lock in `folder` for
/// `packages` (`name@version`): npm's own edit, exact versions kept exact,
/// no registry address written.
pub fn npm_bump(folder: &Path, packages: &[&str]) {
    let status = Command::new("npm")
        .args([
            "install",
            "--package-lock-only",
            "--ignore-scripts",
            "--save-exact",
            "--no-audit",
            "--no-fund",
            "--omit-lockfile-registry-resolved",
        ])
        .args(packages)
        .current_dir(folder)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "npm install {packages:?}");
}

/// `pnpm`: the one on PATH, else the one the harness installs into the
/// tests' shared cache on first use (a run on a pnpm-locked service has).
pub fn pnpm() -> PathBuf {
    let on_path = Command::new("pnpm")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    match on_path {
        true => PathBuf::from("pnpm"),
        false => shared_cache().join("tools/pnpm@10.34.9/node_modules/.bin/pnpm"),
    }
}
