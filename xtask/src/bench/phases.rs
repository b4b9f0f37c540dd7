//! Where a whole run's time goes, phase by phase, so that the part above
//! the floor has a measured reason.
//!
//! Each scenario run reports how long it held its service slot and what it
//! did in it (`timing` and `timing.harness` in `report.json`); the run's
//! events (`--events`) say when the first scenario run started and the last
//! cell finished. Summed over runs and divided by the jobs, the phases in
//! the slots, the slots' idle time in between, and the time before the
//! first run and after the last add up to the run's wall time.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use upgrade_check_core::model::report::Report;

/// One run's wall time, phase by phase. The in-slot phases are summed over
/// every scenario run (the baseline's check replays included) and divided
/// by the jobs.
#[derive(Debug, Default)]
pub struct Phases {
    /// Process start until the first scenario run took a slot: the config,
    /// the plan, the environments looked up or built, the cluster.
    pub before_first_run: Duration,
    /// The services' own start-up and requests, in the judged runs.
    pub services: Duration,
    /// The baseline's other replays of each scenario (noise, and forked
    /// starts against cold ones).
    pub baseline_check: Duration,
    pub copy: Duration,
    pub database: Duration,
    pub setup: Duration,
    pub preloader: Duration,
    pub stop: Duration,
    pub judge: Duration,
    /// Slot time none of the above accounts for.
    pub rest_of_slot: Duration,
    /// Slots free while runs were still to come: cells waiting for their
    /// environment or preloader, the last runs of an uneven end.
    pub slots_idle: Duration,
    /// The last cell finished until the process exited: the reports,
    /// databases dropped, the cluster stopped.
    pub after_last_run: Duration,
}

impl Phases {
    /// The phases of a run that took `wall`, from its report and the
    /// moments its events tell; none where no scenario ran (every result
    /// reused).
    pub fn measure(
        wall: Duration,
        report: &Report,
        moments: &Moments,
        jobs: usize,
    ) -> Option<Phases> {
        let (first_run, last_cell) = moments.first_run.zip(moments.last_cell)?;
        let mut sums = Phases::default();
        let mut slots = Duration::ZERO;
        let timings = report
            .cells
            .iter()
            .flat_map(|cell| &cell.scenarios)
            .filter_map(|scenario| scenario.timing);
        for timing in timings {
            let work = timing.harness;
            let ms = Duration::from_millis;
            let services = ms(timing.startup_ms + timing.replay_ms);
            let database = ms(timing.database_ms.unwrap_or(0));
            let own = services
                + database
                + ms(timing.setup_ms + work.copy_ms + work.preloader_ms + work.stop_ms)
                + ms(work.judge_ms);
            sums.services += services;
            sums.baseline_check += ms(work.check_ms);
            sums.copy += ms(work.copy_ms);
            sums.database += database;
            sums.setup += ms(timing.setup_ms);
            sums.preloader += ms(work.preloader_ms);
            sums.stop += ms(work.stop_ms);
            sums.judge += ms(work.judge_ms);
            sums.rest_of_slot += ms(work.slot_ms).saturating_sub(own);
            slots += ms(work.slot_ms + work.check_ms);
        }
        let per_job = |sum: Duration| sum / jobs as u32;
        let running = last_cell.saturating_sub(first_run);
        Some(Phases {
            before_first_run: first_run,
            services: per_job(sums.services),
            baseline_check: per_job(sums.baseline_check),
            copy: per_job(sums.copy),
            database: per_job(sums.database),
            setup: per_job(sums.setup),
            preloader: per_job(sums.preloader),
            stop: per_job(sums.stop),
            judge: per_job(sums.judge),
            rest_of_slot: per_job(sums.rest_of_slot),
            slots_idle: running.saturating_sub(per_job(slots)),
            after_last_run: wall.saturating_sub(last_cell),
        })
    }

    /// Each phase with what it holds, in the order a run goes through them.
    pub fn rows(&self) -> [(&'static str, Duration); 12] {
        [
            (
                "before the first scenario run (config, plan, environments looked up, cluster)",
                self.before_first_run,
            ),
            (
                "the services' own start-up and requests / jobs",
                self.services,
            ),
            (
                "the baseline's check replays (noise, forked against cold) / jobs",
                self.baseline_check,
            ),
            ("copying the source per run / jobs", self.copy),
            ("waiting for the run's database / jobs", self.database),
            ("setup commands / jobs", self.setup),
            ("waiting for the cell's preloader / jobs", self.preloader),
            ("stopping the service, the leak check / jobs", self.stop),
            (
                "judging: the log, normalising, the snapshot / jobs",
                self.judge,
            ),
            ("the rest of the runs' slot time / jobs", self.rest_of_slot),
            (
                "service slots idle between the first run and the last",
                self.slots_idle,
            ),
            (
                "after the last cell (reports, databases dropped, exit)",
                self.after_last_run,
            ),
        ]
    }
}

/// The moments of a run, from its start, read once from its event log;
/// each is none where the run never got there.
#[derive(Debug, Default)]
pub struct Moments {
    /// The first scenario run's service starting.
    pub first_run: Option<Duration>,
    /// The baseline's environment ready (built or reused).
    pub baseline_environment_ready: Option<Duration>,
    /// The baseline's verdict: a broken reference is known from here.
    pub baseline_judged: Option<Duration>,
    /// The first verdict on an upgrade: another cell than the baseline finished.
    pub first_cell_verdict: Option<Duration>,
    /// The run stopped after a broken baseline.
    pub stopped_after_baseline: Option<Duration>,
    /// How many other cells' environments were ready before that.
    pub environments_ready_before_the_stop: usize,
    /// The last cell's environment ready (built or reused).
    pub last_environment_ready: Option<Duration>,
    /// The last cell finished.
    pub last_cell: Option<Duration>,
}

impl Moments {
    pub fn read(events: &Path) -> anyhow::Result<Moments> {
        let text = fs_err::read_to_string(events)?;
        let mut moments = Moments::default();
        for line in text.lines() {
            let event: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not a JSON line: {line}", events.display()))?;
            let at = Some(Duration::from_millis(
                event["elapsed_ms"].as_u64().unwrap_or(0),
            ));
            let step = &event["step"]["step"];
            let baseline = event["cell"] == "baseline";
            match event["event"].as_str() {
                Some("cell-step") if step == "starting-service" && moments.first_run.is_none() => {
                    moments.first_run = at;
                }
                Some("cell-step") if step == "environment-ready" => {
                    moments.last_environment_ready = at;
                    if baseline && moments.baseline_environment_ready.is_none() {
                        moments.baseline_environment_ready = at;
                    } else if !baseline && moments.stopped_after_baseline.is_none() {
                        moments.environments_ready_before_the_stop += 1;
                    }
                }
                Some("baseline-judged") if moments.baseline_judged.is_none() => {
                    moments.baseline_judged = at;
                }
                Some("stopped-after-baseline") => moments.stopped_after_baseline = at,
                Some("cell-finished") => {
                    moments.last_cell = at;
                    if !baseline && moments.first_cell_verdict.is_none() {
                        moments.first_cell_verdict = at;
                    }
                }
                _ => {}
            }
        }
        Ok(moments)
    }
}
