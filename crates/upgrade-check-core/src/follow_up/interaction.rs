//! Interactions: a cell with several pins fails a scenario in a way that no
//! single pin of it explains. Delta debugging over the cell's pins, with
//! real cells, finds a smallest set of pins that still fails it that way.
//!
//! A failure is a scenario and how it fails
//! ([`ScenarioReport::how_it_fails`](crate::model::report::ScenarioReport::how_it_fails)):
//! a pin that alone keeps the service from starting does not explain a
//! group that starts and changes a timestamp's format.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::model::cell::{Cell, Pin, Plan};
use crate::model::event::RunEvent;
use crate::model::findings::Interaction;
use crate::run::{self, CellOutcome, RunContext};

/// A scenario and how it fails.
type Failure = (String, String);

/// Failures each set of pins was seen to show in scenarios the baseline
/// passes, from the plan and from the cells run here.
struct Known {
    regressed: BTreeMap<Vec<Pin>, BTreeSet<Failure>>,
    baseline_failing: BTreeSet<String>,
}

impl Known {
    fn from_plan(plan: &Plan, outcomes: &[CellOutcome]) -> Known {
        let baseline_failing = plan
            .cells
            .iter()
            .zip(outcomes)
            .find(|(cell, _)| cell.is_baseline())
            .map(|(_, outcome)| outcome.report.failing())
            .unwrap_or_default();
        let mut known = Known {
            regressed: BTreeMap::new(),
            baseline_failing,
        };
        for (cell, outcome) in plan.cells.iter().zip(outcomes) {
            if !cell.is_whole_change() {
                let regressed = known.regressions(outcome);
                known.regressed.insert(sorted(&cell.pins), regressed);
            }
        }
        known
    }

    /// A cell that could not be built fails every scenario, but in its own
    /// way: an unbuildable subset of pins neither passes as innocent nor
    /// explains what the whole cell shows.
    fn regressions(&self, outcome: &CellOutcome) -> BTreeSet<Failure> {
        outcome
            .report
            .failures()
            .filter(|failure| !self.baseline_failing.contains(&failure.scenario))
            .map(|failure| (failure.scenario.clone(), failure.how_it_fails()))
            .collect()
    }
}

impl Known {
    /// What `cell` shows (`failing`) that none of its pins shows alone, and
    /// the pins that alone fail one of those scenarios another way, said as
    /// `marshmallow 3.26.2 alone: articles fails another way (…)`.
    fn unexplained(
        &self,
        cell: &Cell,
        failing: &BTreeSet<Failure>,
    ) -> (BTreeSet<Failure>, Vec<String>) {
        let alone = |pin: &Pin| self.regressed.get(&vec![pin.clone()]);
        let explained: BTreeSet<&Failure> = cell.pins.iter().filter_map(alone).flatten().collect();
        let unexplained: BTreeSet<Failure> = failing
            .iter()
            .filter(|failure| !explained.contains(failure))
            .cloned()
            .collect();
        let differently = cell
            .pins
            .iter()
            .filter_map(|pin| {
                let other: Vec<String> = alone(pin)?
                    .iter()
                    .filter(|(scenario, how)| {
                        unexplained
                            .iter()
                            .any(|(wanted, wanted_how)| wanted == scenario && wanted_how != how)
                    })
                    .map(|(scenario, how)| format!("{scenario} {how}"))
                    .collect();
                (!other.is_empty()).then(|| format!("{pin} alone: {}", other.join("; ")))
            })
            .collect();
        (unexplained, differently)
    }
}

/// The scenarios of `failures`, each once.
fn names(failures: &BTreeSet<Failure>) -> Vec<String> {
    let names: BTreeSet<&String> = failures.iter().map(|(scenario, _)| scenario).collect();
    names.into_iter().cloned().collect()
}

fn sorted(pins: &[Pin]) -> Vec<Pin> {
    let mut pins = pins.to_vec();
    pins.sort();
    pins
}

/// Looks at every multi-pin cell of `plan` that regresses, and isolates the
/// smallest set of its pins behind what no single pin explains.
pub(crate) async fn isolate(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    outcomes: &[CellOutcome],
) -> Vec<Interaction> {
    let mut known = Known::from_plan(plan, outcomes);
    let mut found = Vec::new();
    for (cell, outcome) in plan.cells.iter().zip(outcomes) {
        if cell.pins.len() < 2 || cell.is_whole_change() {
            continue;
        }
        let failing = known.regressions(outcome);
        let (unexplained, differently) = known.unexplained(cell, &failing);
        if unexplained.is_empty() {
            continue;
        }
        let scenarios = names(&unexplained);
        ctx.emit(RunEvent::Isolating {
            cell: cell.name.clone(),
            scenarios: scenarios.clone(),
        });
        let (pins, cells_run) = minimise(ctx, cell, &unexplained, &mut known).await;
        if pins.len() < 2 {
            ctx.emit(RunEvent::OnePinExplains {
                pins: pins.iter().map(ToString::to_string).collect(),
            });
        }
        let scenarios = known
            .regressed
            .get(&sorted(&pins))
            .map(|shown| names(&shown.intersection(&unexplained).cloned().collect()))
            .unwrap_or(scenarios);
        found.push(Interaction {
            pins: pins.iter().map(ToString::to_string).collect(),
            scenarios,
            found_in: cell.name.clone(),
            cells_run,
            differently,
        });
    }
    found
}

/// One-minimal delta debugging: drops one pin at a time while the rest still
/// shows one of `failures`, until no pin can go.
async fn minimise(
    ctx: &Arc<RunContext>,
    cell: &Cell,
    failures: &BTreeSet<Failure>,
    known: &mut Known,
) -> (Vec<Pin>, usize) {
    let mut current = sorted(&cell.pins);
    let mut cells_run = 0;
    'shrink: while current.len() > 1 {
        for index in 0..current.len() {
            let mut smaller = current.clone();
            smaller.remove(index);
            let failing = match known.regressed.get(&smaller) {
                Some(failing) => failing.clone(),
                None => {
                    cells_run += 1;
                    let outcome = run_pins(ctx, &smaller, &cell.profile).await;
                    let failing = outcome
                        .map(|outcome| known.regressions(&outcome))
                        .unwrap_or_default();
                    known.regressed.insert(smaller.clone(), failing.clone());
                    failing
                }
            };
            if !failing.is_disjoint(failures) {
                current = smaller;
                continue 'shrink;
            }
        }
        break;
    }
    (current, cells_run)
}

/// Runs one cell with `pins`.
async fn run_pins(ctx: &Arc<RunContext>, pins: &[Pin], profile: &str) -> Option<CellOutcome> {
    let plan = Plan {
        cells: vec![Cell::with_pins(pins.to_vec(), profile)],
        skipped: Vec::new(),
    };
    run::run_plan(ctx.clone(), &plan).await.pop()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::package::{Ecosystem, PackageName, Version};
    use crate::model::report::{CellReport, ScenarioReport, Verdict};

    fn pin(package: &str, version: &str) -> Pin {
        Pin {
            package: PackageName::parse(Ecosystem::Python, package).unwrap(),
            version: Version::parse(Ecosystem::Python, version).unwrap(),
        }
    }

    /// A cell's outcome whose scenarios fail as `failures` say: (scenario, verdict, summary).
    fn outcome(failures: &[(&str, Verdict, &str)]) -> CellOutcome {
        let report: CellReport = serde_json::from_value(serde_json::json!({
            "id": "cell", "name": "cell", "baseline": false, "pins": [], "changes": [],
            "new_warnings": [], "environment": null, "scenarios": [], "duration_ms": 0
        }))
        .unwrap();
        let scenarios = failures
            .iter()
            .map(|(name, verdict, summary)| {
                let mut scenario = ScenarioReport::new((*name).to_owned(), *verdict);
                scenario.summary = Some((*summary).to_owned());
                scenario
            })
            .collect();
        CellOutcome {
            report: CellReport {
                scenarios,
                ..report
            },
            contents: BTreeMap::new(),
        }
    }

    #[test]
    fn a_pin_that_alone_fails_another_way_does_not_explain_the_group() {
        // marshmallow 3 with flask-apispec 0.11 changes a timestamp's format;
        // marshmallow 3 alone keeps the service from starting.
        let (marshmallow, apispec) = (pin("marshmallow", "3.26.2"), pin("flask-apispec", "0.11.4"));
        let group = Cell::with_pins(vec![marshmallow.clone(), apispec.clone()], "dev");
        let plan = Plan {
            cells: vec![
                Cell::baseline("dev"),
                Cell::with_pins(vec![marshmallow.clone()], "dev"),
                Cell::with_pins(vec![apispec], "dev"),
                group.clone(),
            ],
            skipped: Vec::new(),
        };
        let outcomes = [
            outcome(&[]),
            outcome(&[(
                "articles",
                Verdict::Changed,
                "exited during startup (exit status: 1)",
            )]),
            outcome(&[]),
            outcome(&[(
                "articles",
                Verdict::Changed,
                "step `list articles`: the body differs (`\"2018-01-01T00:00:00\"` → `\"2018-01-01T00:00:00+00:00\"`)",
            )]),
        ];
        let known = Known::from_plan(&plan, &outcomes);
        let (unexplained, differently) =
            known.unexplained(&group, &known.regressions(&outcomes[3]));
        assert_eq!(names(&unexplained), ["articles"]);
        assert_eq!(
            differently,
            ["marshmallow 3.26.2 alone: articles changed: exited during startup"]
        );

        // The same failure alone explains the group: nothing to isolate.
        let explains = outcomes[3].clone();
        let outcomes = [
            outcomes[0].clone(),
            explains.clone(),
            outcome(&[]),
            explains,
        ];
        let known = Known::from_plan(&plan, &outcomes);
        let (unexplained, differently) =
            known.unexplained(&group, &known.regressions(&outcomes[3]));
        assert!(unexplained.is_empty() && differently.is_empty());
    }
}
