//! Sixteen cells at once, killed at random moments, run after run: no port
//! clash, no leftover process or folder, and a clean run at the end.
//!
//! The cells are sixteen profiles over one environment, so the test costs
//! service starts, not installs.

use std::time::{Duration, Instant};

use crate::common::TestContext;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CELLS: usize = 16;

/// Processes still carrying one of this test's run markers.
fn leftovers(state: &std::path::Path) -> Vec<String> {
    let state = state.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let marked = environ.split(|byte| *byte == 0).any(|var| {
                var.starts_with(b"UPGRADE_CHECK_RUN=")
                    && String::from_utf8_lossy(var).contains(&state)
            });
            (marked && crate::common::alive(u64::from(pid))).then(|| format!("{pid}"))
        })
        .collect()
}

#[test]
fn sixteen_cells_killed_at_random_leave_nothing_and_the_next_run_is_clean() {
    let ctx = TestContext::new();
    let mut profiles = String::new();
    let mut names = Vec::new();
    for index in 0..CELLS - 1 {
        profiles.push_str(&format!(
            "\n[profiles.load-{index}]\nextends = \"dev\"\nenv = {{ LOAD_INDEX = \"{index}\" }}\n"
        ));
        names.push(format!("\"load-{index}\""));
    }
    ctx.edit("upgrade-check.toml", |text| {
        let text = text.replace("[replay]", &format!("{profiles}\n[replay]"));
        text.replace(
            "strategy = \"one-at-a-time\"",
            &format!(
                "strategy = \"one-at-a-time\"\nprofiles = [{}]",
                names.join(", ")
            ),
        )
    });
    ctx.set_matrix(r#"bcrypt = ["3.2.0"]"#);
    let seed = fastrand::u64(..);
    eprintln!("kill schedule seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    for round in 0..4 {
        let mut command = ctx.command(&["--jobs", "16"]);
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut harness = command.spawn().unwrap();
        // Anywhere from setup to the middle of the cells.
        std::thread::sleep(Duration::from_millis(rng.u64(200..8000)));
        let signal = if rng.bool() {
            Signal::SIGKILL
        } else {
            Signal::SIGINT
        };
        let _ = kill(Pid::from_raw(harness.id() as i32), signal);
        harness.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = leftovers(&ctx.path("state"));
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = leftovers(&ctx.path("state"));
        }
        assert!(
            left.is_empty(),
            "round {round} ({signal}): processes left: {left:?}"
        );
    }
    let run = ctx.run(&["--jobs", "16"]);
    assert_eq!(run.code, 0, "the run after the kills is clean");
    let report = ctx.report();
    assert_eq!(report.cells.len(), CELLS);
    assert!(
        !run.stdout.contains("Address already in use")
            && !run.stderr.contains("Address already in use")
    );
    crate::common::assert_no_service_left(&ctx, &report);
    assert_eq!(
        std::fs::read_dir(ctx.path("state/tmp")).unwrap().count(),
        0,
        "every dead run's folder was swept"
    );
}
