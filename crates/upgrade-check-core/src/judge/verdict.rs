//! A scenario run's verdict from its comparison with the accepted snapshot:
//! pure, so that every way a run can differ is checked without a service.

use crate::judge::snapshot::Comparison;
use crate::model::report::Verdict;

/// How the summary of a scenario with no accepted snapshot yet begins.
pub(crate) const NO_SNAPSHOT: &str = "no accepted snapshot at";

/// What is known about a scenario run besides its rendering.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunFacts {
    /// The scenario guards a refusal (`security = true`).
    pub security: bool,
    /// The step that failed its expectation, said in a line.
    pub failure: Option<String>,
    /// The service exited during the scenario, said in a line.
    pub died: Option<String>,
    /// Where the accepted snapshot would be, as the user reads it.
    pub accepted: String,
}

/// The verdict and the evidence a report shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judged {
    pub verdict: Verdict,
    /// One line saying why, for anything but a pass.
    pub summary: Option<String>,
    pub diff: Option<String>,
    /// A security finding: the service now serves where it refused.
    pub security: bool,
}

/// Judges one scenario run. The summary names the most telling change
/// first: the startup outcome, the service dying, a failed step, the first
/// status that changed, then the first difference of any kind.
pub(crate) fn judge(comparison: anyhow::Result<Comparison>, facts: RunFacts) -> Judged {
    let mut judged = Judged {
        verdict: Verdict::Error,
        summary: None,
        diff: None,
        security: false,
    };
    match comparison {
        Ok(Comparison::Matches) => judged.verdict = Verdict::Pass,
        Ok(Comparison::Differs { diff, changes }) => {
            judged.verdict = Verdict::Changed;
            let startup = changes
                .startup
                .as_ref()
                .map(|(before, after)| format!("startup: {before} → {after}"))
                .or_else(|| refusal_change(&diff));
            // A security scenario guards a refusal; it is a finding when the
            // service now starts or answers 2xx where it refused before.
            judged.security = facts.security && changes.now_serves();
            // A security finding is said by the step that now serves.
            let served = judged
                .security
                .then(|| changes.first_now_served())
                .flatten();
            judged.summary = Some(
                startup
                    .or(served)
                    .or(facts.died)
                    .or(facts.failure)
                    .or(changes.first_status_change())
                    .or(changes.first_difference)
                    .unwrap_or_else(|| {
                        "the responses differ from the accepted snapshot".to_owned()
                    }),
            );
            judged.diff = Some(diff);
        }
        Ok(Comparison::Missing) => {
            judged.verdict = Verdict::Changed;
            judged.summary = Some(format!(
                "{NO_SNAPSHOT} {}; review the pending one or run with --accept",
                facts.accepted
            ));
        }
        Err(err) => judged.summary = Some(format!("{err:#}")),
    }
    judged
}

/// A service that still refuses to start, with another error than before.
fn refusal_change(diff: &str) -> Option<String> {
    diff.lines()
        .find_map(|line| line.strip_prefix("+error: "))
        .map(|error| format!("still refused to start, now with: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::snapshot::Changes;

    fn differs(changes: Changes) -> anyhow::Result<Comparison> {
        Ok(Comparison::Differs {
            diff: "-a\n+b\n".to_owned(),
            changes,
        })
    }

    #[test]
    fn a_match_passes_with_nothing_to_show() {
        let judged = judge(Ok(Comparison::Matches), RunFacts::default());
        assert_eq!(judged.verdict, Verdict::Pass);
        assert_eq!((judged.summary, judged.diff), (None, None));
    }

    #[test]
    fn the_summary_names_the_most_telling_change_first() {
        let changes = Changes {
            statuses: vec![(
                "login".into(),
                "200 OK".into(),
                "500 Internal Server Error".into(),
            )],
            startup: None,
            first_difference: Some("step `login`: body".into()),
        };
        let facts = RunFacts {
            failure: Some("step `login` (login.toml:3): expected 200".into()),
            ..RunFacts::default()
        };
        let judged = judge(differs(changes.clone()), facts);
        assert_eq!(judged.verdict, Verdict::Changed);
        assert_eq!(
            judged.summary.as_deref(),
            Some("step `login` (login.toml:3): expected 200")
        );
        assert_eq!(judged.diff.as_deref(), Some("-a\n+b\n"));
        // Without a failed step: the first status change.
        let judged = judge(differs(changes.clone()), RunFacts::default());
        assert_eq!(
            judged.summary.as_deref(),
            Some("step `login`: 200 OK → 500 Internal Server Error")
        );
        // A service that died says so before any step.
        let facts = RunFacts {
            died: Some("the service exited during the scenario (code 1)".into()),
            ..RunFacts::default()
        };
        let judged = judge(differs(changes), facts);
        assert_eq!(
            judged.summary.as_deref(),
            Some("the service exited during the scenario (code 1)")
        );
    }

    #[test]
    fn a_security_finding_is_said_by_the_step_that_now_serves() {
        // A refusal that changed its status first, then the one that now serves.
        let changes = Changes {
            statuses: vec![
                (
                    "no token".into(),
                    "401 Unauthorized".into(),
                    "404 Not Found".into(),
                ),
                (
                    "forged token".into(),
                    "401 Unauthorized".into(),
                    "200 OK".into(),
                ),
            ],
            startup: None,
            first_difference: None,
        };
        let facts = RunFacts {
            security: true,
            failure: Some("step `no token` (auth.toml:3): expected 401".into()),
            ..RunFacts::default()
        };
        let judged = judge(differs(changes.clone()), facts);
        assert!(judged.security);
        assert_eq!(
            judged.summary.as_deref(),
            Some("step `forged token`: 401 Unauthorized → 200 OK")
        );
        // Not a security scenario: the first change, as ever.
        let judged = judge(differs(changes), RunFacts::default());
        assert!(!judged.security);
        assert_eq!(
            judged.summary.as_deref(),
            Some("step `no token`: 401 Unauthorized → 404 Not Found")
        );
    }

    #[test]
    fn a_security_scenario_that_now_serves_is_a_finding_and_only_then() {
        let serves = Changes {
            statuses: vec![("admin".into(), "403 Forbidden".into(), "200 OK".into())],
            ..Changes::default()
        };
        let security = RunFacts {
            security: true,
            ..RunFacts::default()
        };
        assert!(judge(differs(serves.clone()), security.clone()).security);
        assert!(!judge(differs(serves), RunFacts::default()).security);
        let still_refuses = Changes {
            statuses: vec![(
                "admin".into(),
                "403 Forbidden".into(),
                "401 Unauthorized".into(),
            )],
            ..Changes::default()
        };
        assert!(!judge(differs(still_refuses), security).security);
    }

    #[test]
    fn a_startup_change_and_a_new_refusal_are_said_as_such() {
        let started = Changes {
            startup: Some(("refused".into(), "started".into())),
            ..Changes::default()
        };
        let judged = judge(differs(started), RunFacts::default());
        assert_eq!(
            judged.summary.as_deref(),
            Some("startup: refused → started")
        );
        let judged = judge(
            Ok(Comparison::Differs {
                diff: "-error: KeyError: 'A'\n+error: KeyError: 'B'\n".to_owned(),
                changes: Changes::default(),
            }),
            RunFacts::default(),
        );
        assert_eq!(
            judged.summary.as_deref(),
            Some("still refused to start, now with: KeyError: 'B'")
        );
    }

    #[test]
    fn no_snapshot_yet_is_a_change_naming_where_it_goes_and_a_read_error_is_the_harness_s() {
        let facts = RunFacts {
            accepted: "snapshots/login.snap".into(),
            ..RunFacts::default()
        };
        let judged = judge(Ok(Comparison::Missing), facts);
        assert_eq!(judged.verdict, Verdict::Changed);
        assert!(judged.summary.unwrap().contains("snapshots/login.snap"));
        let judged = judge(Err(anyhow::anyhow!("cannot read it")), RunFacts::default());
        assert_eq!(judged.verdict, Verdict::Error);
        assert_eq!(judged.summary.as_deref(), Some("cannot read it"));
    }
}
