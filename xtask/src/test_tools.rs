//! `cargo xtask test`: the test suite, with the tools its tests need.
//!
//! The integration tests drive a real browser (Chromium and chromedriver),
//! validate JUnit XML with xmllint, start PostgreSQL and build a Rust
//! service against the system's SQLite. A test never passes
//! silently without its tool: this command installs what is missing from
//! Debian's packages when it can (as root, with apt-get), or stops at once
//! naming the one command to run, before anything compiles.

use std::path::Path;

use anyhow::{Context, bail};

/// A program the tests need, and the Debian package that brings it.
struct Tool {
    program: &'static str,
    package: &'static str,
    /// Where Debian puts it when not on PATH.
    elsewhere: &'static [&'static str],
}

const TOOLS: &[Tool] = &[
    Tool {
        program: "chromium",
        package: "chromium",
        elsewhere: &[],
    },
    Tool {
        program: "chromedriver",
        package: "chromium-driver",
        elsewhere: &["/usr/lib/chromium/chromedriver"],
    },
    Tool {
        program: "xmllint",
        package: "libxml2-utils",
        elsewhere: &[],
    },
    Tool {
        program: "initdb",
        package: "postgresql",
        elsewhere: &["/usr/lib/postgresql"],
    },
    // Not a program: the Rust auth fixture links the system's SQLite.
    Tool {
        program: "sqlite3.h",
        package: "libsqlite3-dev",
        elsewhere: &["/usr/include/sqlite3.h"],
    },
];

/// The fast tier: unit tests, the source tree's rules, and the integration
/// tests that need nothing but the repository; no tool, no package index.
const FAST: &[&[&str]] = &[
    &["--workspace", "--lib", "--bins", "--test", "tidy"],
    &[
        "--package",
        "upgrade-check",
        "--test",
        "it",
        "--",
        "offline::",
    ],
];

/// `--fast`: the fast tier, each part in turn; the first failure's exit code.
pub fn run_fast() -> anyhow::Result<i32> {
    for args in FAST {
        let code = cargo_test(args)?;
        if code != 0 {
            return Ok(code);
        }
    }
    Ok(0)
}

/// Installs what is missing (or says how), then runs `cargo test ARGS`; its exit code.
pub fn run(args: &[String]) -> anyhow::Result<i32> {
    let installing = install_missing_tools()?;
    install_from_the_crate()?;
    build_wheel()?;
    let cargo_insta = build_cargo_insta_meanwhile()?;
    let code = if args.is_empty() {
        whole_suite(installing)
    } else {
        installing.finish()?;
        cargo_test(args)
    };
    if let Some(build) = cargo_insta {
        let _ = build.join();
    }
    code
}

/// Debian's packages for the tools that are missing, installed while the
/// suite compiles (apt waits on the network and the disk, the compiler on
/// the cores: on a fresh machine the two took a minute one after the
/// other), or the one command that installs them, said before anything
/// is built.
fn install_missing_tools() -> anyhow::Result<Installing> {
    let missing: Vec<&Tool> = TOOLS.iter().filter(|tool| !present(tool)).collect();
    if missing.is_empty() {
        return Ok(Installing(None));
    }
    let packages: Vec<&str> = missing.iter().map(|tool| tool.package).collect();
    let can_install = nix::unistd::geteuid().is_root() && on_path("apt-get");
    if !can_install {
        bail!(
            "the tests need {} and cannot install {} here; run: sudo apt-get install {}",
            missing
                .iter()
                .map(|tool| tool.program)
                .collect::<Vec<_>>()
                .join(", "),
            if packages.len() == 1 { "it" } else { "them" },
            packages.join(" ")
        );
    }
    upgrade_check::errln!(
        "installing what the tests need while the suite compiles: {}",
        packages.join(" ")
    );
    let packages: Vec<String> = packages.into_iter().map(str::to_owned).collect();
    Ok(Installing(Some(std::thread::spawn(move || {
        apt_get(&["update", "-qq"])?;
        // Only what the tools need: recommended packages would bring ~100
        // more (and upgrades of the machine's own) onto a developer's machine.
        let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
        install.extend(packages.iter().map(String::as_str));
        apt_get(&install)
    }))))
}

/// Debian's packages being installed in the background; waited for before
/// any test runs, and when the suite stops early, so that no install is
/// left running.
struct Installing(Option<std::thread::JoinHandle<anyhow::Result<()>>>);

impl Installing {
    /// Waits for the install; its failure.
    fn finish(mut self) -> anyhow::Result<()> {
        match self.0.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(installed)) => installed,
            Some(Err(_)) => bail!("installing the tests' tools panicked"),
        }
    }
}

impl Drop for Installing {
    fn drop(&mut self) {
        if let Some(install) = self.0.take() {
            let _ = install.join();
        }
    }
}

/// `program` (cargo, or a wrapper of it) without what `cargo run` set for
/// this tool: cargo compares a crate's `env!` variables with its own
/// environment, so an inherited `CARGO_PKG_NAME=xtask` would rebuild ring,
/// rustls and the harness each time a build alternates with this one.
pub(crate) fn without_this_package(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let this_package = name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name.as_ref());
        if this_package {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// Cargo, as the user's own shell would run it, but with the folder of the
/// interpreter `python3` names first on PATH.
pub(crate) fn cargo() -> std::process::Command {
    let mut cargo =
        without_this_package(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    if let Some(path) = path_with_python_first() {
        cargo.env("PATH", path);
    }
    cargo
}

/// PATH with the folder of the interpreter `python3` names now put first:
/// the same interpreter, found directly. A version manager's shim (pyenv's
/// is a chain of some thirty shell scripts) otherwise runs again for each
/// of the hundreds of harness runs the suite makes, each asking which
/// Python it is. `None` when there is no `python3` or it does not say.
fn path_with_python_first() -> Option<std::ffi::OsString> {
    static PATH: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let output = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()?;
        let executable = String::from_utf8(output.stdout).ok()?;
        let folder = Path::new(executable.trim()).parent()?.to_owned();
        let rest = std::env::var_os("PATH").unwrap_or_default();
        std::env::join_paths(std::iter::once(folder).chain(std::env::split_paths(&rest))).ok()
    })
    .clone()
}

/// The whole suite, every failure told, not only the first binary's. The
/// bench's tests (the whole bench on a two-cell matrix, and the peers) run
/// beside the others rather than after them: the others keep the cores
/// about 90 % busy, and the rest of their time and their tail take most of
/// the bench's work. Its output, kept in a file, follows theirs.
fn whole_suite(installing: Installing) -> anyhow::Result<i32> {
    // Built as they run: xtask's tests alone resolve other features than
    // the whole workspace's, so a `--workspace` build of them would be
    // built again.
    for built in [
        cargo_test(&["--workspace", "--exclude", "xtask", "--no-run"])?,
        cargo_test(&["--package", "xtask", "--no-run"])?,
    ] {
        if built != 0 {
            return Ok(built);
        }
    }
    installing.finish()?;
    let (_, target) = workspace_and_target();
    let bench_log = target.join("tmp/bench-tests.log");
    fs_err::create_dir_all(target.join("tmp"))?;
    let log = fs_err::File::create(&bench_log)?;
    let mut bench = cargo()
        .args(["test", "--package", "xtask", "--test", "bench"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?.into_parts().0)
        .stderr(log.into_parts().0)
        .spawn()
        .context("cannot run cargo test")?;
    // The bench's tests are waited for (and told) even when the others
    // could not run.
    let others = every_test_but_the_bench();
    let bench = bench.wait().context("cannot wait for the bench's tests")?;
    eprint!("{}", fs_err::read_to_string(&bench_log)?);
    let mut codes = others?;
    codes.push(bench.code().unwrap_or(101));
    Ok(codes.into_iter().find(|code| *code != 0).unwrap_or(0))
}

/// Every test but the bench's: the workspace's, then xtask's own; each
/// run's exit code.
fn every_test_but_the_bench() -> anyhow::Result<Vec<i32>> {
    let mut workspace = cargo();
    workspace.args([
        "test",
        "--workspace",
        "--no-fail-fast",
        "--exclude",
        "xtask",
    ]);
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        workspace.env("RUST_TEST_THREADS", test_threads().to_string());
    }
    let workspace = code_of(&mut workspace)?;
    let xtask_tests = xtask_tests_but_the_bench()?;
    let mut args = vec!["--package", "xtask", "--no-fail-fast", "--bins"];
    for test in &xtask_tests {
        args.extend(["--test", test.as_str()]);
    }
    Ok(vec![workspace, cargo_test(&args)?])
}

/// One test more than there are cores: the integration tests spend much of
/// their time waiting (on the package index, on services starting, on the
/// timeouts they test), so one test per core leaves the cores idle that
/// long. On two cores, a clean clone's integration tests took 628 s with
/// two at a time, 549 s with three and 638 s with four (the machine
/// oversubscribed: the bench's tests run beside them).
fn test_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get() + 1)
}

/// The names of xtask's integration tests (`tests/*.rs`) but the bench's.
fn xtask_tests_but_the_bench() -> anyhow::Result<Vec<String>> {
    let (workspace, _) = workspace_and_target();
    let mut tests = Vec::new();
    for entry in fs_err::read_dir(workspace.join("xtask/tests"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rs")
            && let Some(name) = path.file_stem().and_then(|stem| stem.to_str())
            && name != "bench"
        {
            tests.push(name.to_owned());
        }
    }
    tests.sort();
    Ok(tests)
}

fn cargo_test(args: &[impl AsRef<std::ffi::OsStr>]) -> anyhow::Result<i32> {
    code_of(cargo().arg("test").args(args))
}

/// Runs a `cargo test` command; its exit code.
fn code_of(command: &mut std::process::Command) -> anyhow::Result<i32> {
    let status = command.status().context("cannot run cargo test")?;
    Ok(status.code().unwrap_or(101))
}

/// `apt-get ARGS`, its output kept (it runs beside the compiler's) and
/// shown when it fails.
fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    let output = std::process::Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run apt-get")?;
    if !output.status.success() {
        bail!(
            "apt-get {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn present(tool: &Tool) -> bool {
    on_path(tool.program)
        || tool.elsewhere.iter().any(|place| {
            let place = Path::new(place);
            place.is_file()
                // PostgreSQL's versions each have a bin folder of their own.
                || std::fs::read_dir(place).is_ok_and(|versions| {
                    versions
                        .filter_map(Result::ok)
                        .any(|version| version.path().join("bin").join(tool.program).is_file())
                })
        })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The `tools` tier's cargo-insta test needs the `cargo insta` command,
/// which comes only as source from the registry (a minute of compiling on
/// two cores). It is built here at the lowest priority while the suite
/// compiles and runs, on cores the tests leave idle, into the tests' shared
/// cache; the test waits on the same lock file, or builds it itself when
/// run alone. Nothing is built when it is there already.
fn build_cargo_insta_meanwhile() -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
    let (workspace, target) = workspace_and_target();
    let tools = target.join("tmp/upgrade-check-cache/tools");
    let root = tools.join("cargo-insta");
    if root.join("bin/cargo-insta").is_file() {
        return Ok(None);
    }
    let lockfile = fs_err::read_to_string(workspace.join("Cargo.lock"))?;
    let Some(version) = insta_version(&lockfile) else {
        return Ok(None);
    };
    fs_err::create_dir_all(&tools)?;
    let lock = std::fs::File::create(tools.join("cargo-insta.lock"))?;
    lock.lock()?;
    upgrade_check::errln!("building cargo-insta {version} for the tests, at low priority");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = if on_path("nice") {
        let mut nice = without_this_package("nice");
        nice.args(["-n", "19"]).arg(cargo);
        nice
    } else {
        without_this_package(cargo)
    };
    command
        .args(["install", "--quiet", "--locked", "--debug", "cargo-insta"])
        .args(["--version", &version, "--root"])
        .arg(&root)
        .arg("--target-dir")
        .arg(root.join("build"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Ok(Some(std::thread::spawn(move || {
        // The test builds it itself, and says why, if this fails.
        let _ = command.status();
        let _ = std::fs::remove_dir_all(root.join("build"));
        drop(lock);
    })))
}

/// The version of insta in a `Cargo.lock`: cargo-insta is released with it.
fn insta_version(lockfile: &str) -> Option<String> {
    let entry = "\nname = \"insta\"\nversion = \"";
    let at = lockfile.find(entry)? + entry.len();
    Some(lockfile[at..].split('"').next()?.to_owned())
}

/// The `tools` tier checks that `cargo install --path` gives the binary:
/// installed here into `target/tmp/installed`, before the suite, reusing
/// the debug build the suite makes anyway (a test cannot build in the
/// target folder cargo holds while it runs).
fn install_from_the_crate() -> anyhow::Result<()> {
    let (workspace, target) = workspace_and_target();
    run_quietly(
        cargo()
            .args([
                "install", "--quiet", "--locked", "--debug", "--force", "--path",
            ])
            .arg(workspace.join("crates/upgrade-check"))
            .arg("--root")
            .arg(target.join("tmp/installed"))
            .env("CARGO_TARGET_DIR", &target),
    )
}

/// The maturin release that builds the wheel.
const MATURIN: &str = "maturin==1.16.0";

/// The `tools` tier's wheel test installs the binary as Python teams get
/// it, from a wheel maturin builds (`bin` bindings). Built here, before the
/// suite compiles, into `target/wheels/`, reusing the debug build the suite
/// makes anyway (a test cannot build in the target folder cargo holds
/// while it runs); maturin comes from the package index into a virtual
/// environment of its own, once.
fn build_wheel() -> anyhow::Result<()> {
    let (workspace, target) = workspace_and_target();
    let venv = target.join("tmp/maturin");
    let maturin = venv.join("bin/maturin");
    if !maturin.is_file() {
        let python = if on_path("python3") {
            "python3"
        } else {
            "python"
        };
        run_quietly(
            std::process::Command::new(python)
                .args(["-m", "venv"])
                .arg(&venv),
        )?;
        run_quietly(std::process::Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MATURIN,
        ]))?;
    }
    let wheels = target.join("wheels");
    let _ = fs_err::remove_dir_all(&wheels);
    upgrade_check::errln!(
        "building the wheel (maturin, bin bindings) into {}",
        wheels.display()
    );
    run_quietly(
        without_this_package(maturin)
            .args(["build", "--quiet", "--profile", "dev", "--manifest-path"])
            .arg(workspace.join("crates/upgrade-check/Cargo.toml"))
            .arg("--out")
            .arg(&wheels),
    )
}

/// Runs `command`; on failure, its output in the error.
fn run_quietly(command: &mut std::process::Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The workspace's folder, and the target folder its builds go to.
fn workspace_and_target() -> (std::path::PathBuf, std::path::PathBuf) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => workspace.join("target"),
    };
    (workspace, target)
}
