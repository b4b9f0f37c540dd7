//! JUnit XML: one test suite per cell, one test case per scenario, so CI
//! systems show each verdict natively; a failure carries its summary and diff.

use quick_junit::{NonSuccessKind, Report as Junit, TestCase, TestCaseStatus, TestSuite};

use super::{Report, Verdict};

pub(crate) fn render(report: &Report) -> anyhow::Result<String> {
    let mut junit = Junit::new("upgrade-check");
    if let Some(exploration) = &report.exploration {
        junit.add_test_suite(exploration_suite(exploration));
        if !exploration.after_check {
            return Ok(without_suites_skipped(&junit.to_string()?));
        }
    }
    for cell in &report.cells {
        let mut suite = TestSuite::new(cell.name.as_str());
        if let Some(why) = cell
            .environment
            .as_ref()
            .and_then(|environment| environment.moves_not_held.as_deref())
        {
            suite.set_system_out(format!("nearest moves not held: {why}"));
        }
        for scenario in &cell.scenarios {
            let status = match scenario.verdict {
                Verdict::Pass => TestCaseStatus::success(),
                Verdict::Accepted => TestCaseStatus::success(),
                // Never a failure and never a pass: skipped, with the reason.
                Verdict::NotTried => {
                    let mut status = TestCaseStatus::skipped();
                    if let Some(summary) = &scenario.summary {
                        status.set_message(summary.as_str());
                    }
                    status
                }
                verdict => {
                    let kind = if verdict == Verdict::Error {
                        NonSuccessKind::Error
                    } else {
                        NonSuccessKind::Failure
                    };
                    let mut status = TestCaseStatus::non_success(kind);
                    status.set_type(verdict.label());
                    if let Some(summary) = &scenario.summary {
                        status.set_message(summary.as_str());
                    }
                    let evidence = [scenario.diff.as_deref(), scenario.log_tail.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("\n\n");
                    if !evidence.is_empty() {
                        status.set_description(evidence);
                    }
                    status
                }
            };
            let mut case = TestCase::new(scenario.scenario.as_str(), status);
            case.set_classname(format!("upgrade-check.{}", cell.id));
            // A change the pull request accepts passes; what it accepts is said.
            if scenario.verdict == Verdict::Accepted
                && let Some(diff) = &scenario.diff
            {
                case.set_system_out(format!("accepted in this change:\n{diff}"));
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    Ok(without_suites_skipped(&junit.to_string()?))
}

/// An exploration: one test case per finding and cell, failing with the
/// diff; one passing case when nothing differs.
fn exploration_suite(exploration: &crate::model::findings::Exploration) -> TestSuite {
    let mut suite = TestSuite::new("exploration");
    for finding in &exploration.findings {
        for cell in &finding.cells {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_type(finding.kind.label());
            status.set_message(super::headline::finding_summary(finding));
            status.set_description(format!(
                "{}\n\n{}\n\nwritten: {}\ncheck it: {}",
                super::exploration::request(finding),
                finding.diff,
                finding.written,
                finding.reproduce
            ));
            let mut case = TestCase::new(finding.scenario.as_str(), status);
            case.set_classname(format!("upgrade-check.explore.{cell}"));
            suite.add_test_case(case);
        }
    }
    if exploration.findings.is_empty() {
        let mut case = TestCase::new(
            super::headline::exploration_headline(exploration),
            TestCaseStatus::success(),
        );
        case.set_classname("upgrade-check.explore");
        suite.add_test_case(case);
    }
    suite
}

/// The common JUnit schema (Jenkins' junit-10.xsd) has no `skipped` on the
/// root `<testsuites>`; the harness skips nothing, so the attribute goes.
fn without_suites_skipped(xml: &str) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml.to_owned();
    };
    let end = start + xml[start..].find('>').unwrap_or(0);
    let root = regex::Regex::new(r#" skipped="\d+""#)
        .expect("valid regex")
        .replace(&xml[start..end], "")
        .into_owned();
    format!("{}{root}{}", &xml[..start], &xml[end..])
}
