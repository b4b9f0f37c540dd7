//! Why a scenario run has no answers to judge, and what its report says of
//! that: the one place a failure becomes a verdict and a summary. Every
//! stage of a run returns its failure; none writes a report.

use std::path::PathBuf;

use crate::model::report::{ScenarioReport, Timing, Verdict};
use crate::sys::log;

/// Log lines kept in a report for each failure.
pub(super) const LOG_TAIL_LINES: usize = 30;

/// How a scenario run ended before its answers could be judged.
#[derive(Debug)]
pub(super) enum RunFailure {
    /// The harness could not do its part: copy the service, make its
    /// database, find a port, keep its log.
    Harness(String),
    /// The service (or the setup commands run before it) did not start.
    Startup(String),
    /// The setup commands failed into the template database, set up once
    /// per environment and profile; their own log says why.
    Setup { reason: String, log: PathBuf },
}

/// What is known of a service's run however it ended: its process, its
/// port, where the time went and what it left running.
#[derive(Debug, Default)]
pub(super) struct Trace {
    pub(super) pid: Option<u32>,
    pub(super) port: Option<u16>,
    pub(super) timing: Option<Timing>,
    pub(super) leaks: Vec<String>,
}

impl Trace {
    /// `report` with what this trace knows.
    pub(super) fn into_report(self, report: ScenarioReport) -> ScenarioReport {
        ScenarioReport {
            service_pid: self.pid,
            service_port: self.port,
            timing: self.timing,
            leaks: self.leaks,
            ..report
        }
    }
}

/// What the service's log says of a run, read once and normalised, for
/// the report of a run that answered and of one that failed alike.
#[derive(Debug, Default)]
pub(super) struct LogEvidence {
    pub(super) warnings: Vec<String>,
    pub(super) output: Vec<String>,
    /// Its last lines.
    pub(super) tail: String,
    /// The line that says why the service would not start, if one does.
    pub(super) start_error: Option<String>,
}

impl RunFailure {
    /// The verdict a run that ended so gets.
    pub(super) fn verdict(&self) -> Verdict {
        match self {
            RunFailure::Harness(_) => Verdict::Error,
            RunFailure::Startup(_) | RunFailure::Setup { .. } => Verdict::StartupFailed,
        }
    }

    /// The report of scenario run `key` that ended so; `evidence` is what
    /// its service's log said, when it got as far as having one.
    pub(super) fn report(
        self,
        key: &str,
        trace: Trace,
        evidence: Option<LogEvidence>,
    ) -> ScenarioReport {
        let verdict = self.verdict();
        let (summary, log_tail) = match self {
            RunFailure::Harness(reason) => (reason, None),
            RunFailure::Startup(reason) => {
                // A service that would not start: the line of its log that says why.
                let said = evidence
                    .as_ref()
                    .and_then(|evidence| evidence.start_error.as_ref());
                match said {
                    Some(error) => (format!("{reason}: {error}"), None),
                    None => (reason, None),
                }
            }
            RunFailure::Setup { reason, log } => (
                reason,
                Some(log::tail(&log::read_log(&log), LOG_TAIL_LINES)),
            ),
        };
        let report = ScenarioReport {
            summary: Some(summary),
            log_tail,
            ..ScenarioReport::new(key.to_owned(), verdict)
        };
        let report = match evidence {
            Some(evidence) => ScenarioReport {
                warnings: evidence.warnings,
                output: evidence.output,
                log_tail: Some(evidence.tail),
                ..report
            },
            None => report,
        };
        trace.into_report(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_is_one_verdict_and_a_summary_with_what_the_log_says() {
        let evidence = || LogEvidence {
            tail: "ImportError: cannot import name 'JSONEncoder'".to_owned(),
            start_error: Some("ImportError: cannot import name 'JSONEncoder'".to_owned()),
            ..LogEvidence::default()
        };
        let started = RunFailure::Startup("the service exited with code 1".to_owned()).report(
            "login",
            Trace::default(),
            Some(evidence()),
        );
        assert_eq!(started.verdict, Verdict::StartupFailed);
        assert_eq!(
            started.summary.as_deref(),
            Some("the service exited with code 1: ImportError: cannot import name 'JSONEncoder'")
        );
        assert!(started.log_tail.is_some());

        let harness = RunFailure::Harness("no free loopback port: none".to_owned()).report(
            "login",
            Trace {
                leaks: vec!["pid 7 (sleep)".to_owned()],
                ..Trace::default()
            },
            None,
        );
        assert_eq!(harness.verdict, Verdict::Error);
        assert_eq!(
            harness.summary.as_deref(),
            Some("no free loopback port: none")
        );
        assert_eq!(harness.leaks, ["pid 7 (sleep)"]);
        assert!(harness.log_tail.is_none() && !harness.verdict.passes());
    }
}
