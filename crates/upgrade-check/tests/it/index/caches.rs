//! The environment cache under interruption and under two runs at once.
//!
//! Each test uses a cache of its own, so that it sees the builds it causes.

use crate::common::TestContext;
use crate::common::Verdict;

/// The baseline cell alone, with a private cache folder.
fn baseline_only(ctx: &TestContext) -> std::path::PathBuf {
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    ctx.path("cache")
}

#[test]
fn an_environment_without_its_complete_marker_is_rebuilt() {
    let ctx = TestContext::new();
    let cache = baseline_only(&ctx);
    let mut first = ctx.command(&[]);
    first.arg("--cache-dir").arg(&cache);
    assert_eq!(ctx.run_command(first).code, 0);
    let id = ctx.report().cells[0]
        .environment
        .as_ref()
        .unwrap()
        .id
        .as_str()
        .to_owned();
    let env = cache.join("envs").join(&id);

    // What an install cut short leaves: files, but no marker, and a package missing.
    std::fs::remove_file(env.join("complete")).unwrap();
    let site = std::fs::read_dir(env.join("venv/lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    std::fs::remove_dir_all(site.join("flask")).unwrap();

    let mut second = ctx.command(&[]);
    second.arg("--cache-dir").arg(&cache);
    let run = ctx.run_command(second);
    assert_eq!(run.code, 0, "the rebuilt environment works");
    let report = ctx.report();
    let environment = report.cells[0].environment.as_ref().unwrap();
    assert!(
        !environment.build_reused,
        "the half-built environment was not trusted"
    );
    assert!(environment.resolution_reused);
    assert!(env.join("complete").exists() && site.join("flask").exists());
}

#[test]
fn two_runs_at_once_share_the_cache_and_both_finish_correct() {
    let ctx = TestContext::new();
    let cache = baseline_only(&ctx);
    let start = |state: &str| {
        let mut command = ctx.command(&[]);
        command
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--state-dir")
            .arg(ctx.path(state));
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command.spawn().unwrap()
    };
    let (mut one, mut two) = (start("state-one"), start("state-two"));
    assert_eq!(one.wait().unwrap().code(), Some(0));
    assert_eq!(two.wait().unwrap().code(), Some(0));
    let report =
        |state: &str| crate::common::report_at(&ctx.path(state).join("report/report.json"));
    let (one, two) = (report("state-one"), report("state-two"));
    let env = |report: &crate::common::Report| report.cells[0].environment.clone().unwrap();
    assert_eq!(
        env(&one).id,
        env(&two).id,
        "one environment for one resolved set"
    );
    let built = [&one, &two]
        .iter()
        .filter(|report| !env(report).build_reused)
        .count();
    assert_eq!(
        built, 1,
        "the lock let exactly one run build it, the other reused it"
    );
    let envs: Vec<_> = std::fs::read_dir(cache.join("envs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .collect();
    assert_eq!(envs.len(), 1);
}

/// A loopback index that answers garbage to every request.
fn garbage_index() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().filter_map(Result::ok) {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.pypi.simple.v1+json\r\ncontent-length: 9\r\nconnection: close\r\n\r\n{garbage!");
        }
    });
    format!("http://127.0.0.1:{port}/simple")
}

/// A loopback address where nothing listens.
fn dead_index() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/simple")
}

#[test]
fn an_unreachable_or_garbled_index_fails_only_what_needs_it_and_offline_uses_the_cache() {
    let ctx = TestContext::new();
    let cache = baseline_only(&ctx);
    let uv_cache = ctx.path("uv-cache");
    let with = |index: Option<&str>, args: &[&str]| {
        let mut command = ctx.command(args);
        command
            .arg("--cache-dir")
            .arg(&cache)
            .env("UV_CACHE_DIR", &uv_cache);
        if let Some(index) = index {
            command.env("UV_DEFAULT_INDEX", index);
        }
        command
    };
    // Online: the baseline's environment is built and cached.
    assert_eq!(ctx.run_command(with(None, &[])).code, 0);

    // A new candidate needs the index; the index is down, then answers garbage, then we go offline.
    ctx.set_matrix(r#"bcrypt = ["3.2.0", "4.1.2"]"#);
    for (index, args) in [
        (dead_index(), vec![]),
        (garbage_index(), vec![]),
        (dead_index(), vec!["--offline"]),
    ] {
        let run = ctx.run_command(with(Some(&index), &args));
        // Online, the index's refusal is the cell's build failure (exit 1);
        // offline, what the cache lacks leaves the cell unchecked (exit 2).
        let offline = args.contains(&"--offline");
        assert_eq!(
            run.code,
            if offline { 2 } else { 1 },
            "a cell that cannot be built fails the run, nothing more"
        );
        let report = ctx.report();
        let baseline = &report.cells[0];
        assert!(
            baseline.environment.as_ref().unwrap().build_reused,
            "the cached baseline needs no index"
        );
        assert_eq!(baseline.scenarios[0].verdict, Verdict::Pass);
        let cell = crate::common::scenario_report(&report, "bcrypt 4.1.2", "health");
        let (verdict, told) = if offline {
            (Verdict::Error, "run once online")
        } else {
            (Verdict::BuildFailed, "")
        };
        assert_eq!(cell.verdict, verdict, "{args:?}: {cell:?}");
        assert!(
            cell.summary.as_deref().unwrap_or("").contains(told),
            "{cell:?}"
        );
        let explanation = cell.log_tail.as_deref().unwrap();
        assert!(
            !explanation.trim().is_empty(),
            "uv's explanation is in the report"
        );
    }
    // Nothing half-made was left looking complete.
    let complete: Vec<_> = std::fs::read_dir(cache.join("envs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("complete").exists())
        .collect();
    assert_eq!(complete.len(), 1);
}

#[test]
fn a_cell_whose_inputs_are_unchanged_reuses_its_recorded_result() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);
    let reused = |ctx: &TestContext| -> Vec<bool> {
        ctx.report()
            .cells
            .iter()
            .map(|cell| cell.result_reused)
            .collect()
    };
    assert_eq!(ctx.run(&[]).code, 0);
    assert_eq!(reused(&ctx), [false, false]);

    let again = ctx.run(&[]);
    assert_eq!(again.code, 0);
    assert_eq!(reused(&ctx), [true, true], "nothing changed");
    assert!(
        again.stdout.contains("results: 2 of 2 cells reused"),
        "{}",
        again.stdout
    );
    assert!(
        !again.stderr.contains("starting the service"),
        "no service ran"
    );

    // A change of the requirements file that moves the baseline's bcrypt
    // (to 3.1.7, which needs cffi and six as 3.2.0 does): the baseline runs
    // again; the bcrypt 4.1.2 cell installs what it installed before, so it
    // is reused, its versions now told against the new baseline.
    ctx.edit("fixtures/python-service/requirements.txt", |text| {
        text.replace("bcrypt==3.2.0", "bcrypt==3.1.7")
    });
    assert_eq!(ctx.run(&[]).code, 0);
    assert_eq!(reused(&ctx), [false, true], "only the baseline changed");
    let report = ctx.report();
    let bcrypt = &report.cells[1];
    assert_eq!(bcrypt.name, "bcrypt 4.1.2");
    let change = crate::common::version_change(bcrypt, "bcrypt");
    assert_eq!(
        (change.before.as_deref(), change.after.as_deref()),
        (Some("3.1.7"), Some("4.1.2"))
    );

    // Any other input changes: a scenario file, here by a comment.
    ctx.edit("scenarios/health.toml", |text| text + "\n# reviewed\n");
    assert_eq!(ctx.run(&[]).code, 0);
    assert_eq!(reused(&ctx), [false, false], "a scenario changed");

    assert_eq!(ctx.run(&["--no-cache"]).code, 0);
    assert_eq!(reused(&ctx), [false, false], "--no-cache runs every cell");
}

#[test]
fn gc_leaves_an_environment_alone_while_a_service_runs_from_it() {
    // A recording holds the service running on its baseline's environment
    // for as long as a person uses it; a `gc` meanwhile (a CI job's cache
    // step, another terminal) must not pull it from under the service.
    let ctx = TestContext::new();
    let cache = baseline_only(&ctx);
    let (recorder, port) = recording(&ctx, &cache);
    let gc = |ctx: &TestContext| {
        let mut command = ctx.command(&["gc", "--max-size", "1KiB"]);
        command.env("UPGRADE_CHECK_CACHE_DIR", &cache);
        ctx.run_command(command)
    };
    let during = gc(&ctx);
    assert_eq!(during.code, 0, "{}", during.stderr);
    assert!(
        during.stdout.contains("removed 0 entries")
            && during.stdout.contains("kept 1 environments"),
        "{}",
        during.stdout
    );
    // The service still answers from it.
    assert_answers_health(port);
    stop_recording(recorder);
    // Once no run holds it, it goes like any other.
    let after = gc(&ctx);
    assert!(
        after
            .stdout
            .contains("least recently used, over the size limit"),
        "{}",
        after.stdout
    );
    assert!(
        !cache
            .join("envs")
            .read_dir()
            .unwrap()
            .any(|entry| entry.unwrap().path().is_dir())
    );
}

#[test]
fn an_environment_changed_while_another_run_uses_it_is_built_again_once_that_run_is_done() {
    // A file appears in the environment a recording's service runs from
    // (a service, or a tool, wrote into it). A check started meanwhile must
    // build it again, but not by pulling it from under the recording.
    let ctx = TestContext::new();
    let cache = baseline_only(&ctx);
    let (recorder, port) = recording(&ctx, &cache);
    let envs = cache.join("envs");
    let venv = std::fs::read_dir(&envs)
        .unwrap()
        .map(|entry| entry.unwrap().path().join("venv"))
        .find(|venv| venv.is_dir())
        .expect("the recording's environment");
    let site_packages = crate::common::files_under(&venv)
        .into_iter()
        .find(|path| path.ends_with("flask/__init__.py"))
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    std::fs::write(site_packages.join("planted.py"), "").unwrap();
    let mut checking = ctx.command(&[]);
    let checking = checking
        .arg("--cache-dir")
        .arg(&cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The check has the environment's use lock open: it found the change.
    let use_lock = venv.parent().unwrap().with_extension("use");
    let holds_it = || {
        std::fs::read_dir(format!("/proc/{}/fd", checking.id()))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to == use_lock))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !holds_it() {
        assert!(
            std::time::Instant::now() < deadline,
            "the check never reached the environment"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        site_packages.join("flask/__init__.py").is_file(),
        "the environment was removed while the recording's service ran from it"
    );
    assert_answers_health(port);
    stop_recording(recorder);
    let checked = checking.wait_with_output().unwrap();
    assert_eq!(checked.status.code(), Some(0));
    let rebuilt = crate::common::cell_report(&ctx.report(), "baseline")
        .environment
        .as_ref()
        .unwrap()
        .rebuilt
        .clone()
        .unwrap_or_default();
    assert!(
        rebuilt.contains("site-packages changed since it was built")
            && rebuilt.contains("built again once the other runs using it had finished"),
        "{rebuilt}"
    );
    assert!(!site_packages.join("planted.py").exists());
}

/// `record` started on `cache`, its service healthy behind the proxy: the
/// recorder, and the proxy's port.
fn recording(ctx: &TestContext, cache: &std::path::Path) -> (std::process::Child, u16) {
    let mut recording = ctx.command(&["record", "held"]);
    let mut recorder = recording
        .env("UPGRADE_CHECK_CACHE_DIR", cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut said =
        std::io::BufRead::lines(std::io::BufReader::new(recorder.stdout.take().unwrap()));
    // Its first line comes once the service is healthy behind the proxy.
    let first = said.next().unwrap().unwrap();
    let port = first
        .split("http://127.0.0.1:")
        .nth(1)
        .unwrap_or_else(|| panic!("{first}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    (recorder, port)
}

fn assert_answers_health(port: u16) {
    let mut health = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut health, b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut health, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
}

/// Ctrl-C to the recorder, which ends cleanly.
fn stop_recording(mut recorder: std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(recorder.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(recorder.wait().unwrap().success());
}

#[test]
fn gc_removes_environments_by_age_and_by_size_and_says_so() {
    let ctx = TestContext::new();
    ctx.set_matrix("");
    // A cache of its own: other tests use the shared one at the same time.
    let cache = ctx.path("cache");
    let run = |args: &[&str]| {
        let mut command = ctx.command(args);
        command.env("UPGRADE_CHECK_CACHE_DIR", &cache);
        ctx.run_command(command)
    };
    assert_eq!(run(&[]).code, 0);
    let environments = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(cache.join("envs"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_dir())
            .collect()
    };
    assert_eq!(environments().len(), 1);

    let kept = run(&["gc", "--max-age", "1h"]);
    assert_eq!(kept.code, 0);
    assert!(
        kept.stdout.contains("removed 0 entries") && kept.stdout.contains("kept 1 environments"),
        "{}",
        kept.stdout
    );

    // Last used two days ago.
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
    for marker in ["used", "complete"] {
        let path = environments()[0].join(marker);
        if path.exists() {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(two_days_ago)
                .unwrap();
        }
    }
    let dry = run(&["gc", "--max-age", "1d", "--dry-run"]);
    assert!(
        dry.stdout.contains("would remove")
            && dry.stdout.contains("unused for longer than the age limit"),
        "{}",
        dry.stdout
    );
    assert_eq!(environments().len(), 1, "a dry run removes nothing");
    assert_eq!(run(&["gc", "--max-age", "1d"]).code, 0);
    assert!(environments().is_empty(), "unused for two days");

    // Rebuilt, it fits no 1 KiB limit.
    assert_eq!(run(&[]).code, 0);
    let sized = run(&["gc", "--max-size", "1KiB"]);
    assert!(
        sized
            .stdout
            .contains("least recently used, over the size limit"),
        "{}",
        sized.stdout
    );
    assert!(environments().is_empty());
    let bad = run(&["gc", "--max-size", "lots"]);
    assert_eq!(bad.code, 2);
}

/// `gc --cache-dir FOLDER` collects in that folder only: the project's own
/// state folder (its recorded results), which it was not given, stays whole.
#[test]
fn gc_never_touches_a_state_folder_it_was_not_given() {
    let project = tempfile::tempdir().unwrap();
    let results = project.path().join("target/upgrade-check/results");
    std::fs::create_dir_all(&results).unwrap();
    let recorded = results.join("recorded.json");
    std::fs::write(&recorded, "{}").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(90 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&recorded)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let gc = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-check"))
            .args(["gc", "--max-age", "1d"])
            .args(args)
            .current_dir(project.path())
            .env_remove("UPGRADE_CHECK_STATE_DIR")
            .env_remove("UPGRADE_CHECK_CACHE_DIR")
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let fresh = tempfile::tempdir().unwrap();
    let said = gc(&["--cache-dir", fresh.path().to_str().unwrap()]);
    assert!(recorded.exists(), "the state folder was not given: {said}");
    // Named, it is gc's to collect.
    gc(&[
        "--state-dir",
        project
            .path()
            .join("target/upgrade-check")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        !recorded.exists(),
        "an old recorded result in the given state folder goes"
    );
}

/// `--offline` on a cache without uv: installing uv would reach the index,
/// so the run stops at once with the one thing to do, and installs nothing.
#[test]
fn offline_without_uv_stops_with_one_instruction_and_installs_nothing() {
    let ctx = TestContext::new();
    let cold = ctx.path("cold-cache");
    // PATH without any uv on it, so that the bootstrap is the only way to uv.
    let path = std::env::join_paths(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .filter(|dir| !dir.join("uv").exists()),
    )
    .unwrap();
    let mut command = ctx.command(&["--offline"]);
    command
        .env("UPGRADE_CHECK_CACHE_DIR", &cold)
        .env("PATH", path)
        .env_remove("UPGRADE_CHECK_UV");
    let run = ctx.run_command(command);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("offline, and no uv on PATH or in")
            && run.stderr.contains("run once online to install it")
            && run.stderr.contains("note: see --offline"),
        "{}",
        run.stderr
    );
    assert!(!cold.join("tools/uv").exists(), "nothing was installed");
}

/// `--offline` with a cache that lacks the baseline's packages cannot check
/// anything: one instruction, exit 2, before any cell runs; never a page of
/// build failures blamed on the versions (exit 1).
#[test]
fn offline_with_a_cold_cache_stops_with_one_instruction_before_any_cell() {
    let ctx = TestContext::new();
    let cold = ctx.path("cold-cache");
    let uv_cache = ctx.path("cold-uv-cache");
    let command = |args: &[&str]| {
        let mut command = ctx.command(args);
        command
            .env("UPGRADE_CHECK_CACHE_DIR", &cold)
            .env("UV_CACHE_DIR", &uv_cache);
        command
    };
    // Online first, as a newcomer's first command: uv is found or installed;
    // the matrix's versions are looked up, the baseline's packages are not fetched.
    let planned = ctx.run_command(command(&["plan"]));
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let run = ctx.run_command(command(&["--offline", "--no-bisect"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("offline, and the cache does not hold the baseline's packages")
            && run.stderr.contains("run once online to fill it")
            && run.stderr.contains("note: see --offline"),
        "{}",
        run.stderr
    );
    assert!(
        !ctx.path("state/report/report.json").exists(),
        "no cell ran, so there is no report"
    );
}
