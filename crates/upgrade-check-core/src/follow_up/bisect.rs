//! Bisection: the first version of a package that breaks what the newest
//! candidate breaks, found by binary search over the index's versions.
//!
//! [`search`] is pure: it asks `probe` about a version (by its position) and
//! never builds anything itself, so that it can be checked on its own.
//! [`Bisection`] runs it with real cells: each probe is one cell of the
//! package at that version, built, started and replayed like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::env::index::Index;
use crate::input::baseline::BaselineFile;
use crate::model::cell::{Cell, Pin, Plan};
use crate::model::event::{Events, RunEvent};
use crate::model::findings::{BisectReport, BreakReport, NewestSafe, ProbeReport, THE_BUILD};
use crate::model::package::{PackageName, Version};
use crate::model::report::{CellReport, ScenarioReport, Verdict};
use crate::model::setting::{Setting, SettingError};
use crate::run::{self, CellOutcome, RunContext};
use crate::sys::state;

/// `upgrade-check bisect PACKAGE [--from V] [--to V] [--pre]`, as typed.
#[derive(Debug, Clone)]
pub struct BisectRequest {
    pub package: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub pre: bool,
}

/// What a bisection found, for the caller to show.
#[derive(Debug, Clone)]
pub enum Bisected {
    /// The end fails nothing the start passes.
    NothingToBisect {
        package: String,
        from: String,
        to: String,
    },
    /// The search ran: what `bisect.json` holds, and the first bad version's cell.
    Searched {
        report: Box<BisectReport>,
        /// Each break's first bad version's cell, as `report.breaks` lists them.
        first_bad: Vec<CellReport>,
    },
}

/// What a probe found out about one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Passes the scenarios that fail at the bad end.
    Good,
    /// Fails at least one of them.
    Bad,
    /// Could not be built or started by the harness: stepped over.
    Unknown,
}

/// What the bad end shows that the start does not: what a probe is bad for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sought {
    /// These scenarios fail.
    Breaks(BTreeSet<String>),
    /// These scenarios fail in this way (scenario, [`ScenarioReport::how_it_fails`]): a
    /// break the bad end shows that an earlier first bad version does not.
    Failures(BTreeSet<(String, String)>),
    /// The service no longer builds: the first version that stops the build
    /// is sought, and a version that builds is good whatever it answers.
    Build,
}

impl Sought {
    /// The scenarios sought, or [`THE_BUILD`].
    pub(crate) fn names(&self) -> Vec<String> {
        match self {
            Sought::Breaks(scenarios) => scenarios.iter().cloned().collect(),
            Sought::Failures(kinds) => kinds
                .iter()
                .map(|(scenario, _)| scenario.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            Sought::Build => vec![THE_BUILD.to_owned()],
        }
    }
}

/// Where the search ended, as positions in the candidate list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Search {
    /// The newest good candidate; `None` when only the known-good start is.
    pub last_good: Option<usize>,
    pub first_bad: usize,
    /// Versions stepped over between the last good and the first bad: the
    /// break may lie in any of them.
    pub unknown_between: Vec<usize>,
    /// Every probe asked, in order.
    pub probes: Vec<(usize, Probe)>,
}

impl Search {
    /// This search, run over the candidates from `offset` on, in the
    /// positions of the whole list; `after` is the known-good start it began
    /// from.
    fn shifted(self, offset: usize, after: Option<usize>) -> Search {
        Search {
            last_good: self.last_good.map(|p| p + offset).or(after),
            first_bad: self.first_bad + offset,
            unknown_between: self.unknown_between.iter().map(|p| p + offset).collect(),
            probes: self
                .probes
                .into_iter()
                .map(|(p, found)| (p + offset, found))
                .collect(),
        }
    }
}

/// Searches `count` candidates (oldest first) whose last one is known bad and
/// which all come after a known-good start, for the first bad one.
pub(crate) async fn search(count: usize, mut probe: impl AsyncFnMut(usize) -> Probe) -> Search {
    assert!(count > 0, "the bad end is a candidate");
    let mut good: Option<usize> = None;
    let mut bad = count - 1;
    let mut unknown = BTreeSet::new();
    let mut probes = Vec::new();
    loop {
        let open: Vec<usize> = (good.map_or(0, |g| g + 1)..bad)
            .filter(|position| !unknown.contains(position))
            .collect();
        let Some(&middle) = open.get(open.len() / 2) else {
            break;
        };
        let found = probe(middle).await;
        probes.push((middle, found));
        match found {
            Probe::Good => good = Some(middle),
            Probe::Bad => bad = middle,
            Probe::Unknown => {
                unknown.insert(middle);
            }
        }
    }
    let unknown_between = unknown
        .into_iter()
        .filter(|&position| good.is_none_or(|g| position > g) && position < bad)
        .collect();
    Search {
        last_good: good,
        first_bad: bad,
        unknown_between,
        probes,
    }
}

/// One package's versions to search, between a good start and a bad end.
#[derive(Debug, Clone)]
pub(crate) struct Bisection {
    pub package: PackageName,
    pub from: Version,
    /// The start is the baseline's own pin: the baseline cell probes it.
    from_is_baseline: bool,
    /// The index's versions after `from`, up to and including the bad end.
    pub candidates: Vec<Version>,
    /// Versions the index lists in all, for the report.
    listed: usize,
}

impl Bisection {
    /// Checks the request and lists the versions to search from the index.
    pub(crate) async fn prepare(
        request: &BisectRequest,
        baseline: &BaselineFile,
        index: &Index,
        events: &Events,
    ) -> anyhow::Result<Bisection> {
        let ecosystem = index.ecosystem();
        let package = PackageName::parse(ecosystem, &request.package)
            .map_err(|err| anyhow::anyhow!("`{}` is not a package name: {err}", request.package))?;
        let version = |text: &str, setting: Setting| {
            Version::parse(ecosystem, text).map_err(|err| {
                let end = if setting == Setting::BisectFrom {
                    "start"
                } else {
                    "end"
                };
                SettingError::new(
                    setting,
                    format!("where bisection should {end}, `{text}`: {err}"),
                )
            })
        };
        let pinned = baseline.pinned_version(&package);
        let from = match (&request.from, &pinned) {
            (Some(text), _) => version(text, Setting::BisectFrom)?,
            (None, Some(pinned)) => pinned.clone(),
            (None, None) => {
                return Err(SettingError::new(
                    Setting::BisectFrom,
                    format!(
                        "the baseline file does not pin {package} with ==: say which version bisection starts from"
                    ),
                )
                .into());
            }
        };
        let listing = index.list(&package, request.pre).await?;
        let to = match &request.to {
            Some(text) => version(text, Setting::BisectTo)?,
            None => listing
                .versions
                .last()
                .cloned()
                .with_context(|| format!("the package index lists no version of {package}"))?,
        };
        if to <= from {
            return Err(SettingError::new(
                Setting::BisectTo,
                format!("bisection's end {to} is not newer than its start {from}"),
            )
            .into());
        }
        if !listing.versions.contains(&to) {
            let why = listing
                .skipped
                .iter()
                .find(|skipped| skipped.version == to)
                .map_or("not listed", |skipped| skipped.reason.as_str());
            bail!(
                "{package} {to} is not an installable version on {} ({why})",
                listing.source
            );
        }
        let candidates: Vec<Version> = listing
            .versions
            .iter()
            .filter(|version| **version > from && **version <= to)
            .cloned()
            .collect();
        let between: Vec<String> = candidates[..candidates.len() - 1]
            .iter()
            .map(ToString::to_string)
            .collect();
        events(&RunEvent::BisectStarted {
            package: package.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            between,
            stale: listing.stale,
        });
        Ok(Bisection {
            from_is_baseline: pinned.as_ref() == Some(&from),
            package,
            from,
            candidates,
            listed: listing.versions.len(),
        })
    }

    /// The first round: the start (the baseline, or its own cell) and the bad end.
    pub(crate) fn first_plan(&self, profile: &str) -> Plan {
        let mut cells = vec![Cell::baseline(profile)];
        if !self.from_is_baseline {
            cells.push(self.cell(&self.from, profile));
        }
        cells.push(self.cell(self.candidates.last().unwrap_or(&self.from), profile));
        Plan {
            cells,
            skipped: Vec::new(),
        }
    }

    fn cell(&self, version: &Version, profile: &str) -> Cell {
        Cell::with_pins(
            vec![Pin {
                package: self.package.clone(),
                version: version.clone(),
            }],
            profile,
        )
    }

    /// Runs the search with real cells and writes `bisect.json`.
    pub(crate) async fn run(
        self,
        ctx: Arc<RunContext>,
        report_dir: &Path,
    ) -> anyhow::Result<Bisected> {
        let profile = ctx.settings.config.service.profile.clone();
        let mut first = run::run_plan(ctx.clone(), &self.first_plan(&profile)).await;
        let end = first.pop().context("the bad end ran")?;
        let start = first.pop().context("the start ran")?;
        let to = self.candidates.last().cloned().unwrap_or(self.from.clone());
        let sought = if unbuildable(&end) {
            if !build_failed(&end) || unbuildable(&start) {
                bail!(
                    "{} {to} cannot be built or run, so there is no bad end to search from: {}",
                    self.package,
                    end.report
                        .failures()
                        .find_map(|failure| failure.log_tail.clone().or(failure.summary.clone()))
                        .unwrap_or_default()
                );
            }
            Sought::Build
        } else {
            let start_failing: BTreeSet<String> = start.report.failing();
            let broken: BTreeSet<String> = end
                .report
                .failing()
                .into_iter()
                .filter(|scenario| !start_failing.contains(scenario))
                .collect();
            if broken.is_empty() {
                return Ok(Bisected::NothingToBisect {
                    package: self.package.to_string(),
                    from: self.from.to_string(),
                    to: to.to_string(),
                });
            }
            Sought::Breaks(broken)
        };
        let mut probed = Probed::new(self.candidates.len() - 1, end);
        let breaks = self
            .separate_breaks(&ctx, &profile, &sought, &mut probed)
            .await;
        let report = self.report(&breaks, &probed, &sought, &start);
        state::write_atomic(
            &report_dir.join("bisect.json"),
            &serde_json::to_vec_pretty(&report)?,
        )?;
        Ok(Bisected::Searched {
            report: Box::new(report),
            first_bad: breaks
                .iter()
                .map(|found| probed.outcomes[&found.search.first_bad].report.clone())
                .collect(),
        })
    }

    /// Searches for the first version that shows what is `sought`, then, as
    /// long as the bad end fails in a way that first bad version does not,
    /// for the first version after it that shows the rest: one first bad
    /// version per separate break, oldest first.
    async fn separate_breaks(
        &self,
        ctx: &Arc<RunContext>,
        profile: &str,
        sought: &Sought,
        probed: &mut Probed,
    ) -> Vec<Found> {
        let last = self.candidates.len() - 1;
        let mut breaks: Vec<Found> = Vec::new();
        let mut looking_for = sought.clone();
        loop {
            let after = breaks.last().map(|found| found.search.first_bad);
            let search = self
                .probe_after(ctx, profile, sought, &looking_for, after, probed)
                .await;
            let first_bad = search.first_bad;
            let shows = failure_kinds(&probed.outcomes[&first_bad], sought);
            let left: BTreeSet<(String, String)> = match &looking_for {
                Sought::Build => BTreeSet::new(),
                Sought::Breaks(_) | Sought::Failures(_) => {
                    failure_kinds(&probed.outcomes[&last], sought)
                        .difference(&shows)
                        .cloned()
                        .collect()
                }
            };
            let shown = match &looking_for {
                Sought::Failures(kinds) => shows.intersection(kinds).cloned().collect(),
                _ => shows,
            };
            breaks.push(Found { search, shown });
            if left.is_empty() || first_bad == last {
                return breaks;
            }
            looking_for = Sought::Failures(left);
        }
    }

    /// Searches the candidates after `after` (the start when `None`) up to
    /// the bad end, one real cell per version not probed yet; a probe is bad
    /// when it shows what is `looking_for`. Probes are labelled by `sought`,
    /// what the whole bisection is about.
    async fn probe_after(
        &self,
        ctx: &Arc<RunContext>,
        profile: &str,
        sought: &Sought,
        looking_for: &Sought,
        after: Option<usize>,
        probed: &mut Probed,
    ) -> Search {
        let offset = after.map_or(0, |position| position + 1);
        let found = search(self.candidates.len() - offset, async |relative| {
            let position = offset + relative;
            if let Some(outcome) = probed.outcomes.get(&position) {
                return classify(outcome, looking_for);
            }
            let plan = Plan {
                cells: vec![self.cell(&self.candidates[position], profile)],
                skipped: Vec::new(),
            };
            let Some(outcome) = run::run_plan(ctx.clone(), &plan).await.pop() else {
                return Probe::Unknown;
            };
            let labelled = classify(&outcome, sought);
            ctx.emit(RunEvent::Probed {
                package: self.package.to_string(),
                version: self.candidates[position].to_string(),
                result: label(labelled).to_owned(),
            });
            probed.order.push((position, labelled));
            let found = classify(&outcome, looking_for);
            probed.outcomes.insert(position, outcome);
            found
        })
        .await;
        found.shifted(offset, after)
    }

    /// Searches the candidates before the bad end (whose outcome is `end`)
    /// for the first that shows what is `sought`.
    async fn probe_between(
        &self,
        ctx: &Arc<RunContext>,
        profile: &str,
        sought: &Sought,
        end: CellOutcome,
    ) -> (Search, BTreeMap<usize, CellOutcome>) {
        let mut probed = Probed::new(self.candidates.len() - 1, end);
        let search = self
            .probe_after(ctx, profile, sought, sought, None, &mut probed)
            .await;
        (search, probed.outcomes)
    }

    fn report(
        &self,
        breaks: &[Found],
        probed: &Probed,
        sought: &Sought,
        start: &CellOutcome,
    ) -> BisectReport {
        let version = |position: usize| self.candidates[position].to_string();
        let mut probes = vec![ProbeReport {
            version: self.from.to_string(),
            result: "good".to_owned(),
            failing: Vec::new(),
        }];
        let last = self.candidates.len() - 1;
        probes.push(ProbeReport {
            version: version(last),
            result: "bad".to_owned(),
            failing: sought.names(),
        });
        for (position, found) in &probed.order {
            probes.push(ProbeReport {
                version: version(*position),
                result: label(*found).to_owned(),
                failing: probed
                    .outcomes
                    .get(position)
                    .map(|outcome| match sought {
                        Sought::Build if build_failed(outcome) => sought.names(),
                        // Not built: no scenario ran, so none is said to fail.
                        _ if *found == Probe::Unknown => Vec::new(),
                        _ => outcome.report.failing().into_iter().collect(),
                    })
                    .unwrap_or_default(),
            });
        }
        let built = probed
            .outcomes
            .values()
            .chain(std::iter::once(start).filter(|_| !self.from_is_baseline))
            .filter(|outcome| {
                outcome
                    .report
                    .environment
                    .as_ref()
                    .is_some_and(|environment| !environment.build_reused)
            })
            .count();
        let breaks: Vec<BreakReport> = breaks
            .iter()
            .map(|found| self.break_report(found, probed, sought))
            .collect();
        let earliest = breaks.first().cloned();
        BisectReport {
            package: self.package.to_string(),
            from: self.from.to_string(),
            to: version(last),
            scenarios: sought.names(),
            versions_between: last,
            probes,
            last_good: earliest
                .as_ref()
                .map_or(self.from.to_string(), |found| found.last_good.clone()),
            first_bad: earliest.as_ref().and_then(|found| found.first_bad.clone()),
            unknown_between: earliest
                .as_ref()
                .map(|found| found.unknown_between.clone())
                .unwrap_or_default(),
            not_built: earliest.map(|found| found.not_built).unwrap_or_default(),
            breaks,
            environments_built: built,
            versions_listed: self.listed,
        }
    }

    /// One break as `bisect.json` says it: what it fails, how, and where it came in.
    fn break_report(&self, found: &Found, probed: &Probed, sought: &Sought) -> BreakReport {
        let version = |position: usize| self.candidates[position].to_string();
        let first_bad = &probed.outcomes[&found.search.first_bad];
        let (scenarios, failures) = match sought {
            Sought::Build => (sought.names(), Vec::new()),
            _ => {
                let shown: BTreeSet<&String> =
                    found.shown.iter().map(|(scenario, _)| scenario).collect();
                let failing: Vec<&ScenarioReport> = first_bad
                    .report
                    .failures()
                    .filter(|failure| shown.contains(&failure.scenario))
                    .collect();
                (
                    failing.iter().map(|f| f.scenario.clone()).collect(),
                    failing
                        .iter()
                        .map(|f| format!("{}: {}", f.scenario, f.summary.as_deref().unwrap_or("")))
                        .collect(),
                )
            }
        };
        BreakReport {
            scenarios,
            failures,
            // The start of the search when nothing after it was good.
            last_good: found
                .search
                .last_good
                .map_or(self.from.to_string(), version),
            // The first that builds and breaks, named even when versions
            // before it could not be built: they are listed beside it.
            first_bad: Some(version(found.search.first_bad)),
            unknown_between: found
                .search
                .unknown_between
                .iter()
                .map(|&p| version(p))
                .collect(),
            not_built: found
                .search
                .unknown_between
                .iter()
                .map(|position| {
                    let why = probed
                        .outcomes
                        .get(position)
                        .and_then(|outcome| first_error(&outcome.report))
                        .unwrap_or_else(|| "no reason given".to_owned());
                    format!("{}: {why}", version(*position))
                })
                .collect(),
        }
    }
}

/// Every cell a bisection ran, by candidate position, and the probes in the
/// order they ran, each labelled by what the bisection seeks.
struct Probed {
    outcomes: BTreeMap<usize, CellOutcome>,
    order: Vec<(usize, Probe)>,
}

impl Probed {
    /// The bad end's outcome, known before any probe.
    fn new(end: usize, outcome: CellOutcome) -> Probed {
        Probed {
            outcomes: BTreeMap::from([(end, outcome)]),
            order: Vec::new(),
        }
    }
}

/// One break's search, and the failures (scenario, how) its first bad shows.
struct Found {
    search: Search,
    shown: BTreeSet<(String, String)>,
}

/// How each failure of `outcome` among those `sought` fails, by scenario.
fn failure_kinds(outcome: &CellOutcome, sought: &Sought) -> BTreeSet<(String, String)> {
    let scenarios = sought.names();
    outcome
        .report
        .failures()
        .filter(|failure| scenarios.contains(&failure.scenario))
        .map(|failure| (failure.scenario.clone(), failure.how_it_fails()))
        .collect()
}

/// The harness could not judge the cell at all: not built, not holding the
/// version probed, or its own error.
fn unbuildable(outcome: &CellOutcome) -> bool {
    outcome.report.scenarios.iter().all(|scenario| {
        matches!(
            scenario.verdict,
            Verdict::BuildFailed | Verdict::Error | Verdict::NotTried
        )
    })
}

/// Cargo or uv refused to build the cell (not the harness's own error).
fn build_failed(outcome: &CellOutcome) -> bool {
    !outcome.report.scenarios.is_empty()
        && outcome
            .report
            .scenarios
            .iter()
            .all(|scenario| scenario.verdict == Verdict::BuildFailed)
}

/// The first error line of a cell that could not be built or judged.
fn first_error(report: &crate::model::report::CellReport) -> Option<String> {
    let scenario = report.scenarios.first()?;
    let text = [scenario.summary.as_deref(), scenario.log_tail.as_deref()]
        .into_iter()
        .flatten()
        .flat_map(str::lines)
        .map(str::trim)
        .find(|line| {
            line.starts_with("error") || line.contains("error:") || line.contains("error[")
        })
        .or(scenario.summary.as_deref())?
        .to_owned();
    Some(text)
}

/// A cell that built and fails nothing the baseline passes.
fn passes_all(outcome: &CellOutcome, baseline_failing: &BTreeSet<String>) -> bool {
    !unbuildable(outcome) && outcome.report.failing().is_subset(baseline_failing)
}

/// The newest of `known` versions whose cell passed everything.
fn newest_passing<'a>(
    known: impl Iterator<Item = (Version, &'a CellOutcome)>,
    baseline_failing: &BTreeSet<String>,
) -> Option<Version> {
    known
        .filter(|(_, outcome)| passes_all(outcome, baseline_failing))
        .map(|(version, _)| version)
        .max()
}

fn classify(outcome: &CellOutcome, sought: &Sought) -> Probe {
    match sought {
        Sought::Build if build_failed(outcome) => Probe::Bad,
        _ if unbuildable(outcome) => Probe::Unknown,
        Sought::Build => Probe::Good,
        Sought::Breaks(broken) => {
            let fails = outcome
                .report
                .failing()
                .iter()
                .any(|scenario| broken.contains(scenario));
            if fails { Probe::Bad } else { Probe::Good }
        }
        Sought::Failures(kinds) => {
            let shows = outcome
                .report
                .failures()
                .any(|f| kinds.contains(&(f.scenario.clone(), f.how_it_fails())));
            if shows { Probe::Bad } else { Probe::Good }
        }
    }
}

fn label(probe: Probe) -> &'static str {
    match probe {
        Probe::Good => "good",
        Probe::Bad => "bad",
        Probe::Unknown => "could not be built",
    }
}

/// For each package the plan tried alone: its newest safe version, bisecting
/// between the newest passing version and the newest tried when that fails.
pub(crate) async fn newest_safe_versions(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    outcomes: &[CellOutcome],
    index: &Index,
) -> Vec<NewestSafe> {
    let Some((baseline_cell, baseline)) = plan
        .cells
        .iter()
        .zip(outcomes)
        .find(|(cell, _)| cell.is_baseline())
    else {
        return Vec::new();
    };
    let baseline_failing = baseline.report.failing();
    // Single-pin cells of the baseline profile, by package, oldest version first.
    let mut tried: BTreeMap<PackageName, Vec<(Version, &CellOutcome)>> = BTreeMap::new();
    for (cell, outcome) in plan.cells.iter().zip(outcomes) {
        if let [pin] = &cell.pins[..]
            && !cell.is_whole_change()
            && cell.profile == baseline_cell.profile
        {
            tried
                .entry(pin.package.clone())
                .or_default()
                .push((pin.version.clone(), outcome));
        }
    }
    let mut found = Vec::new();
    for (package, mut versions) in tried {
        versions.sort_by(|a, b| a.0.cmp(&b.0));
        let Some((newest, newest_outcome)) = versions.last().cloned() else {
            continue;
        };
        let broken: BTreeSet<String> = newest_outcome
            .report
            .failing()
            .difference(&baseline_failing)
            .cloned()
            .collect();
        let sought = if build_failed(newest_outcome) {
            Sought::Build
        } else if broken.is_empty() || unbuildable(newest_outcome) {
            if !unbuildable(newest_outcome) {
                found.push(NewestSafe {
                    package: package.to_string(),
                    newest_tried: newest.to_string(),
                    newest_safe: newest.to_string(),
                    first_bad: None,
                    breaks: Vec::new(),
                    unknown_between: Vec::new(),
                    cells_run: 0,
                });
            }
            continue;
        } else {
            Sought::Breaks(broken)
        };
        let baseline_pin = ctx.services.builder.baseline().pinned_version(&package);
        // Bisected from a version that passes everything: one that builds
        // but breaks a scenario is no safe start for a build break.
        let good = versions[..versions.len() - 1]
            .iter()
            .rev()
            .find(|(_, outcome)| passes_all(outcome, &baseline_failing))
            .map(|(version, _)| version.clone())
            .or(baseline_pin.clone().filter(|pinned| *pinned < newest));
        let Some(good) = good else {
            continue;
        };
        let listing = match index.list(&package, false).await {
            Ok(listing) => listing,
            Err(err) => {
                ctx.emit(RunEvent::NoBisection {
                    package: package.to_string(),
                    error: format!("{err:#}"),
                });
                continue;
            }
        };
        let mut candidates: Vec<Version> = listing
            .versions
            .into_iter()
            .filter(|version| *version > good && *version < newest)
            .collect();
        candidates.push(newest.clone());
        ctx.emit(RunEvent::BisectingNewest {
            package: package.to_string(),
            newest: newest.to_string(),
            fails: sought.names(),
            versions: candidates.len() - 1,
            since: good.to_string(),
        });
        let bisection = Bisection {
            package: package.clone(),
            from: good.clone(),
            from_is_baseline: false,
            candidates,
            listed: 0,
        };
        let (search, outcomes) = bisection
            .probe_between(ctx, &baseline_cell.profile, &sought, newest_outcome.clone())
            .await;
        let version = |position: usize| bisection.candidates[position].to_string();
        // What every cell run for this package showed: the newest version
        // that passed every scenario, never one that builds and breaks.
        let known = versions
            .iter()
            .map(|(version, outcome)| (version.clone(), *outcome))
            .chain(
                outcomes
                    .iter()
                    .map(|(position, outcome)| (bisection.candidates[*position].clone(), outcome)),
            );
        let newest_safe = newest_passing(known, &baseline_failing).unwrap_or(good.clone());
        found.push(NewestSafe {
            package: package.to_string(),
            newest_tried: newest.to_string(),
            newest_safe: newest_safe.to_string(),
            first_bad: Some(version(search.first_bad)),
            breaks: match &sought {
                Sought::Build | Sought::Failures(_) => sought.names(),
                Sought::Breaks(broken) => outcomes
                    .get(&search.first_bad)
                    .map(|outcome| {
                        outcome
                            .report
                            .failing()
                            .intersection(broken)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            unknown_between: search.unknown_between.iter().map(|&p| version(p)).collect(),
            cells_run: search.probes.len(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search with `first_bad` as the truth and some positions unbuildable.
    fn run(count: usize, first_bad: usize, unbuildable: &[usize]) -> Search {
        let probe = async |position: usize| {
            if unbuildable.contains(&position) {
                Probe::Unknown
            } else if position >= first_bad {
                Probe::Bad
            } else {
                Probe::Good
            }
        };
        block_on(search(count, probe))
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn finds_every_first_bad_position_in_log2_probes() {
        // Ten versions between the good start and the bad end, as for bcrypt 3.2.0..5.0.0.
        for first_bad in 0..11 {
            let search = run(11, first_bad, &[]);
            assert_eq!(search.first_bad, first_bad);
            assert_eq!(search.last_good, first_bad.checked_sub(1));
            assert!(search.probes.len() <= 4, "{first_bad}: {:?}", search.probes);
        }
    }

    /// A cell's outcome with `verdicts` for the scenarios `login`, `register`…
    fn outcome(verdicts: &[(&str, Verdict)]) -> CellOutcome {
        let report: crate::model::report::CellReport = serde_json::from_value(serde_json::json!({
            "id": "cell", "name": "cell", "baseline": false, "pins": [], "changes": [],
            "new_warnings": [], "environment": null, "scenarios": [], "duration_ms": 0
        }))
        .unwrap();
        let scenarios = verdicts
            .iter()
            .map(|(name, verdict)| {
                crate::model::report::ScenarioReport::new((*name).to_owned(), *verdict)
            })
            .collect();
        CellOutcome {
            report: crate::model::report::CellReport {
                scenarios,
                ..report
            },
            contents: BTreeMap::new(),
        }
    }

    #[test]
    fn the_newest_safe_version_passes_every_scenario_not_just_the_build() {
        // jsonwebtoken: 8.3.0, 9.3.1 and 10.4.0 build and change answers;
        // 11 and 12 do not build. None is safe: the baseline's 8.2.0 is.
        let v = |text: &str| Version::parse(crate::model::package::Ecosystem::Cargo, text).unwrap();
        let changes = outcome(&[("login", Verdict::Changed), ("health", Verdict::Pass)]);
        let unbuilt = outcome(&[
            ("login", Verdict::BuildFailed),
            ("health", Verdict::BuildFailed),
        ]);
        let passes = outcome(&[("login", Verdict::Pass), ("health", Verdict::Pass)]);
        let none = BTreeSet::new();
        let known = [
            (v("8.3.0"), &changes),
            (v("9.3.1"), &changes),
            (v("10.4.0"), &changes),
            (v("11.0.0"), &unbuilt),
            (v("12.1.0"), &unbuilt),
        ];
        assert_eq!(newest_passing(known.iter().cloned(), &none), None);
        // A version that passes is the newest safe, whatever builds after it.
        let known = [
            (v("8.2.1"), &passes),
            (v("9.3.1"), &changes),
            (v("12.1.0"), &unbuilt),
        ];
        assert_eq!(
            newest_passing(known.iter().cloned(), &none),
            Some(v("8.2.1"))
        );
        // A scenario the baseline fails too is no reason to call a version unsafe.
        let baseline_fails = BTreeSet::from(["login".to_owned()]);
        let known = [(v("9.3.1"), &changes)];
        assert_eq!(
            newest_passing(known.iter().cloned(), &baseline_fails),
            Some(v("9.3.1"))
        );
    }

    #[test]
    fn unbuildable_versions_are_stepped_over_and_reported_when_they_hide_the_break() {
        let search = run(11, 6, &[5]);
        assert_eq!(search.first_bad, 6);
        assert_eq!(search.last_good, Some(4));
        assert_eq!(search.unknown_between, [5]);

        let search = run(11, 8, &[5]);
        assert_eq!((search.last_good, search.first_bad), (Some(7), 8));
        assert!(search.unknown_between.is_empty());

        // 10.0.0–10.2.0 do not build, 10.3.0 builds and breaks: it is found,
        // with the three before it that could not be built.
        let search = run(5, 3, &[0, 1, 2]);
        assert_eq!((search.last_good, search.first_bad), (None, 3));
        assert_eq!(search.unknown_between, [0, 1, 2]);
    }
}
