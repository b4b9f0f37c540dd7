//! Interactions: a cell with several pins fails a scenario that no single pin
//! of it explains. Delta debugging over the cell's pins, with real cells,
//! finds a smallest set of pins that still fails it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::model::cell::{Cell, Pin, Plan};
use crate::model::event::RunEvent;
use crate::model::findings::Interaction;
use crate::run::{self, CellOutcome, RunContext};

/// Scenarios each set of pins was seen to regress (fail where the baseline
/// passes), from the plan and from the cells run here.
struct Known {
    regressed: BTreeMap<Vec<Pin>, BTreeSet<String>>,
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
            if cell.from_file.is_none() {
                let regressed = known.regressions(outcome);
                known.regressed.insert(sorted(&cell.pins), regressed);
            }
        }
        known
    }

    /// A cell that could not be built fails every scenario, which keeps an
    /// unbuildable subset of pins from passing as innocent.
    fn regressions(&self, outcome: &CellOutcome) -> BTreeSet<String> {
        outcome
            .report
            .failing()
            .difference(&self.baseline_failing)
            .cloned()
            .collect()
    }
}

fn sorted(pins: &[Pin]) -> Vec<Pin> {
    let mut pins = pins.to_vec();
    pins.sort();
    pins
}

/// Looks at every multi-pin cell of `plan` that regresses, and isolates the
/// smallest set of its pins behind what no single pin explains.
pub async fn isolate(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    outcomes: &[CellOutcome],
) -> Vec<Interaction> {
    let mut known = Known::from_plan(plan, outcomes);
    let mut found = Vec::new();
    for (cell, outcome) in plan.cells.iter().zip(outcomes) {
        if cell.pins.len() < 2 || cell.from_file.is_some() {
            continue;
        }
        let failing = known.regressions(outcome);
        let explained: BTreeSet<String> = cell
            .pins
            .iter()
            .filter_map(|pin| known.regressed.get(&vec![pin.clone()]))
            .flatten()
            .cloned()
            .collect();
        let unexplained: BTreeSet<String> = failing.difference(&explained).cloned().collect();
        if unexplained.is_empty() {
            continue;
        }
        ctx.emit(RunEvent::Isolating {
            cell: cell.name.clone(),
            scenarios: unexplained.iter().cloned().collect(),
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
            .map(|failing| failing.intersection(&unexplained).cloned().collect())
            .unwrap_or_else(|| unexplained.iter().cloned().collect());
        found.push(Interaction {
            pins: pins.iter().map(ToString::to_string).collect(),
            scenarios,
            found_in: cell.name.clone(),
            cells_run,
        });
    }
    found
}

/// One-minimal delta debugging: drops one pin at a time while the rest still
/// fails one of `scenarios`, until no pin can go.
async fn minimise(
    ctx: &Arc<RunContext>,
    cell: &Cell,
    scenarios: &BTreeSet<String>,
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
            if !failing.is_disjoint(scenarios) {
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
