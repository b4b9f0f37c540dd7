//! `upgrade-check explore`: the recorded scenarios' variants (see
//! `plan::variants`) run as scenarios of their own, with the baseline's
//! answers as the reference (replayed twice for noise, as scenarios are);
//! what a cell answers otherwise is a finding. Findings are deduplicated,
//! the smallest variant of each kept, and written as explored scenarios
//! (`scenarios/explored/NAME.toml`) with the baseline's answer pending
//! review, so that accepting them makes every later run check them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;

use super::{Inputs, Options, once};
use crate::input::config::Config;
use crate::input::config::FindingsCount;
use crate::input::openapi::Schema;
use crate::input::scenario::{self, Body, Scenario};
use crate::input::source::InputError;
use crate::input::traffic;
use crate::judge::snapshot;
use crate::model::event::{Events, RunEvent};
use crate::model::findings::{Exploration, Finding, FindingKind};
use crate::model::report::{ExitStatus, Verdict};
use crate::plan::shared_start::{self, SharedStart, shared_starts};
use crate::plan::variants::{Variant, variants};
use crate::run::{CellOutcome, RunContext};
use crate::sys::state::{self, relative};

/// What `explore` was asked for beyond the config's `[explore]`.
#[derive(Debug, Clone, Default)]
pub struct ExploreRequest {
    /// Requests per cell; the config's `explore.budget` when `None`.
    pub budget: Option<usize>,
    /// The config's `explore.seed` when `None`.
    pub seed: Option<u64>,
    /// The steps varied, by name; the config's `explore.steps` when empty.
    pub steps: Vec<String>,
}

/// The variants a run tries, by the scenario name each runs under.
pub(super) struct Exploring {
    variants: BTreeMap<String, Variant>,
    /// The variants that run in one service start, by the shared
    /// scenario's name.
    shared: BTreeMap<String, SharedStart>,
    seed: u64,
    budget: usize,
    /// Where findings are written: the scenarios folder's `explored/` and
    /// the snapshots folder, as the config has them.
    scenarios: PathBuf,
    snapshots: PathBuf,
}

/// Chooses the variants, and makes them the run's scenarios: the run
/// judges them against the baseline's answers, written as they come into
/// an empty snapshots folder of the run's own (`scratch`).
pub(super) fn prepare(
    inputs: &mut Inputs,
    request: &ExploreRequest,
    schema: &Schema,
    scratch: &Path,
    events: &Events,
) -> anyhow::Result<Exploring> {
    let settings = &inputs.config.explore;
    let (budget, seed) = (
        request.budget.unwrap_or(settings.budget),
        request.seed.unwrap_or(settings.seed),
    );
    let recorded: Vec<Scenario> = explorable(&inputs.config, &inputs.scenarios)
        .cloned()
        .collect();
    let steps = match request.steps.is_empty() {
        true => &settings.steps,
        false => &request.steps,
    };
    let chosen = variants(&recorded, schema, seed, budget, steps);
    if chosen.is_empty() {
        bail!(
            "nothing to explore: no {} of {} sends a JSON body, a query or an Authorization \
             header to vary; record one that does with `upgrade-check record NAME`",
            match steps.as_slice() {
                [] => "step".to_owned(),
                names => format!("step `{}`", names.join("`, `")),
            },
            match settings.scenarios.as_slice() {
                [] => "the scenarios".to_owned(),
                names => format!("`{}`", names.join("`, `")),
            }
        );
    }
    let mut named = BTreeMap::new();
    for variant in chosen {
        let mut name = variant.name();
        let mut again = 1;
        while named.contains_key(&name) {
            again += 1;
            name = format!("{}-{again}", variant.name());
        }
        named.insert(name, variant);
    }
    let snapshots = scratch.join("explore-snapshots");
    fs_err::create_dir_all(&snapshots)?;
    let exploring = Exploring {
        seed,
        budget,
        scenarios: inputs.config.replay.scenarios.clone(),
        snapshots: std::mem::replace(&mut inputs.config.replay.snapshots, snapshots),
        shared: shared_starts(&named),
        variants: named,
    };
    inputs.scenarios = scenarios_of(&exploring.variants, &exploring.shared);
    events(&RunEvent::Exploring {
        variants: exploring.variants.len(),
        requests: exploring.requests(),
        from: recorded.len(),
        budget,
        seed,
    });
    Ok(exploring)
}

impl Exploring {
    /// The variants tried, by the scenario name each runs under.
    pub(super) fn variants(&self) -> &BTreeMap<String, Variant> {
        &self.variants
    }

    /// The variants that run in one service start, by the shared
    /// scenario's name.
    pub(super) fn shared(&self) -> &BTreeMap<String, SharedStart> {
        &self.shared
    }

    /// Requests sent to each cell: each variant's alone, each shared
    /// start's once.
    fn requests(&self) -> usize {
        let sharing = |name: &String| self.shared.values().any(|s| s.members.contains(name));
        let alone: usize = (self.variants.iter())
            .filter(|(name, _)| !sharing(name))
            .map(|(_, variant)| variant.requests())
            .sum();
        alone
            + self
                .shared
                .values()
                .map(SharedStart::requests)
                .sum::<usize>()
    }
}

/// Each variant as the scenario it runs as: alone, or with those it
/// shares a start with (`shared`).
pub(super) fn scenarios_of(
    variants: &BTreeMap<String, Variant>,
    shared: &BTreeMap<String, SharedStart>,
) -> Vec<Scenario> {
    let sharing = |name: &String| shared.values().any(|start| start.members.contains(name));
    let alone = variants
        .iter()
        .filter(|(name, _)| !sharing(name))
        .map(|(name, variant)| Scenario {
            name: name.clone(),
            description: description(variant),
            ..variant.scenario.clone()
        });
    let together = shared
        .iter()
        .map(|(name, start)| shared_start::shared_scenario(name, start, variants));
    alone.chain(together).collect()
}

/// The cells that show any of `found`, each once.
pub(super) fn cells_of(found: &[Found]) -> Vec<String> {
    let mut cells: Vec<String> = Vec::new();
    for cell in found.iter().flat_map(|found| &found.cells) {
        if !cells.contains(cell) {
            cells.push(cell.clone());
        }
    }
    cells
}

/// The recorded scenarios whose steps are varied: those `explore.scenarios`
/// names (every one when it names none), explored scenarios left out: they
/// are checked as they are, and varying them again finds what their own
/// scenarios' variants find.
fn explorable<'a>(
    config: &Config,
    scenarios: &'a [Scenario],
) -> impl Iterator<Item = &'a Scenario> {
    let settings = &config.explore;
    let explored = config.replay.scenarios.join(scenario::EXPLORED);
    scenarios
        .iter()
        .filter(move |s| settings.scenarios.is_empty() || settings.scenarios.contains(&s.name))
        .filter(move |s| !s.path.starts_with(&explored))
}

/// The first of `steps` that no explorable scenario has a step of.
pub(super) fn unknown_step<'a>(
    config: &Config,
    scenarios: &[Scenario],
    steps: &'a [String],
) -> Option<&'a String> {
    steps.iter().find(|name| {
        !explorable(config, scenarios).any(|s| s.steps.iter().any(|step| &step.name == *name))
    })
}

/// The config's `explore.scenarios` each name a scenario of the folder
/// (`scenarios`, before `--scenario` narrows them), and its `explore.steps`
/// a step of one of those: bad input, said with the file, line and key,
/// before anything runs.
pub(super) fn check_scenarios(config: &Config, scenarios: &[Scenario]) -> Result<(), InputError> {
    let settings = &config.explore;
    let error = |line, key: &str, message| InputError {
        path: config.path.clone(),
        line,
        column: 1,
        key: key.to_owned(),
        message,
    };
    if let Some(unknown) = settings
        .scenarios
        .iter()
        .find(|name| !scenarios.iter().any(|s| &s.name == *name))
    {
        return Err(error(
            settings.scenarios_line,
            "explore.scenarios",
            format!(
                "no scenario `{unknown}` in {}",
                config.replay.scenarios.display()
            ),
        ));
    }
    match unknown_step(config, scenarios, &settings.steps) {
        Some(unknown) => Err(error(
            settings.steps_line,
            "explore.steps",
            format!("no step `{unknown}` in {}", explored_names(config)),
        )),
        None => Ok(()),
    }
}

/// The scenarios exploring varies, for a message.
pub(super) fn explored_names(config: &Config) -> String {
    match config.explore.scenarios.as_slice() {
        [] => format!("the scenarios of {}", config.replay.scenarios.display()),
        names => format!("`{}`", names.join("`, `")),
    }
}

/// The largest OpenAPI document read; a larger answer is not one.
const MAX_OPENAPI_BYTES: usize = 8 << 20;

/// Where services serve their OpenAPI document: FastAPI's, then the
/// places other frameworks and the documents' own conventions use.
const OPENAPI_PATHS: &[&str] = &[
    "/openapi.json",
    "/api/openapi.json",
    "/docs/openapi.json",
    "/v3/api-docs",
    "/api-docs/openapi.json",
    "/swagger.json",
];

/// The service's OpenAPI document, asked of it once on its baseline: what
/// its operations' bodies accept. None when it serves none (or does not
/// start outside a check: its variants come from its scenarios alone).
pub(super) async fn openapi(config: &Config, options: &Options, events: &Events) -> Schema {
    let health = [config.service.health_path.clone()];
    let started = match once::start(config, options, events, &health).await {
        Ok(Ok(started)) => started,
        Ok(Err(why)) => return unasked(events, &why),
        Err(err) => return unasked(events, &format!("{err:#}")),
    };
    let client = crate::exec::replay::client();
    let mut found = None;
    for path in OPENAPI_PATHS {
        let url = format!("{}{path}", started.running.base_url);
        let asked = client.get(&url).timeout(config.timeouts.request).send();
        let Ok(mut answer) = asked.await else {
            continue;
        };
        if !answer.status().is_success() {
            continue;
        }
        // What the service sends is read up to a bound: it is the code
        // under test, and may send without end.
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = answer.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_OPENAPI_BYTES {
                break;
            }
        }
        if body.len() > MAX_OPENAPI_BYTES {
            continue;
        }
        if let Ok(document) = serde_json::from_slice::<serde_json::Value>(&body)
            && document.get("openapi").is_some()
        {
            found = Some((*path, Schema::read(&document)));
            break;
        }
    }
    started.stop().await;
    let (from, schema) = match found {
        Some((path, schema)) => (Some(path.to_owned()), schema),
        None => (None, Schema::default()),
    };
    events(&RunEvent::OpenApiRead {
        from,
        operations: schema.operations(),
    });
    schema
}

/// No document: the service did not start on its own, which is said with
/// why: the reason, and the error its log tells, as a check says it.
fn unasked(events: &Events, why: &str) -> Schema {
    let (first, log) = why.split_once('\n').unwrap_or((why, ""));
    let reason = match first.rsplit_once("; the ") {
        Some((reason, rest)) if rest.contains("log ends") => reason,
        _ => first.trim_end_matches(':'),
    };
    let why = match crate::run::evidence::startup_error(log) {
        Some(error) => format!("{reason}: {error}"),
        None => reason.to_owned(),
    };
    events(&RunEvent::OpenApiUnasked { why });
    Schema::default()
}

/// What an explored scenario's file says it is.
fn description(variant: &Variant) -> String {
    let step = &variant.scenario.steps[variant.step];
    format!(
        "explored from `{}`, step `{}`: {}",
        variant.from,
        step.name,
        variant.mutation.describe()
    )
}

/// One break of one endpoint: the changed step's method and path, the
/// field, the kind of change and the difference (`crash → 5xx`).
type Group = (String, String, String, String);

/// One variant's difference on one cell, before deduplication.
struct Seen<'a> {
    name: &'a str,
    variant: &'a Variant,
    kind: FindingKind,
    baseline: String,
    answer: String,
    diff: String,
}

/// A finding before it is written: the variant that shows it with the
/// fewest requests, and what it shows.
#[derive(Clone)]
pub(super) struct Found {
    /// The name it is written under: its first variant's, kept while it is
    /// made smaller.
    name: String,
    variant: Variant,
    kind: FindingKind,
    baseline: String,
    answer: String,
    diff: String,
    cells: Vec<String>,
    same_as: Vec<String>,
    /// The baseline's answers, by what the run key adds to the name (`""`,
    /// or `@profile` for each profile the scenario runs under).
    references: Vec<(String, String)>,
    /// What it is grouped by: endpoint, field, kind of change, difference.
    group: Group,
}

/// What a run of variants found, and the variants left out of it.
pub(super) struct Survey {
    pub(super) found: Vec<Found>,
    pub(super) unstable: Vec<String>,
    /// Differences the recorded step shows as well, on the same cells.
    pub(super) known: Vec<String>,
    /// Variants of shared starts to run alone: what a shared start shows
    /// is only a finding once it shows alone.
    pub(super) alone: Vec<String>,
}

/// The findings of a run of `variants` (by scenario name), one per group,
/// the variant with the fewest requests of each kept.
pub(super) fn survey(
    ctx: &RunContext,
    variants: &BTreeMap<String, Variant>,
    shared: &BTreeMap<String, SharedStart>,
    outcomes: &[CellOutcome],
) -> Survey {
    let mut unstable = Vec::new();
    let mut alone = std::collections::BTreeSet::new();
    let Some(baseline) = outcomes.iter().find(|outcome| outcome.report.baseline) else {
        return Survey {
            found: Vec::new(),
            unstable,
            known: Vec::new(),
            alone: Vec::new(),
        };
    };
    let noise = ctx
        .state
        .noise
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // By (step, field, kind of change, difference): what each variant
    // showed, and the cells that showed it.
    let mut groups: BTreeMap<Group, (Vec<Seen<'_>>, Vec<String>)> = BTreeMap::new();
    for scenario in &baseline.report.scenarios {
        let key = &scenario.scenario;
        let name = key.split('@').next().unwrap_or(key);
        // The baseline's answer, when it answered alike twice and passed.
        let flaky = noise.get(key).is_some_and(|noise| noise.is_flaky());
        let steady =
            (baseline.contents.get(key)).filter(|_| !flaky && scenario.verdict == Verdict::Pass);
        if let Some(start) = shared.get(name) {
            match steady {
                Some(reference) => alone.extend(to_run_alone(ctx, key, start, reference, outcomes)),
                None => unstable.extend(
                    start
                        .members
                        .iter()
                        .map(|member| format!("{member}: {}", why_unstable(scenario, flaky))),
                ),
            }
            continue;
        }
        let Some((name, variant)) = variants.get_key_value(name) else {
            continue;
        };
        let Some(reference) = steady else {
            unstable.push(format!("{key}: {}", why_unstable(scenario, flaky)));
            continue;
        };
        for outcome in outcomes.iter().filter(|outcome| !outcome.report.baseline) {
            let Some(answered) = outcome.report.scenarios.iter().find(|s| &s.scenario == key)
            else {
                continue;
            };
            let (Verdict::Changed, Some(diff), Some(contents)) = (
                answered.verdict,
                answered.diff.as_ref(),
                outcome.contents.get(key),
            ) else {
                continue;
            };
            let step = &variant.scenario.steps[variant.step];
            // A difference before the changed step is the recorded
            // scenario's to find, not this variant's.
            if last_exchange(reference).map(|(earlier, _)| earlier)
                != last_exchange(contents).map(|(earlier, _)| earlier)
                || !answered
                    .summary
                    .as_deref()
                    .is_some_and(|summary| names_step(summary, &step.name))
            {
                continue;
            }
            let (kind, before, after) = difference(reference, contents);
            // One break of one endpoint, however many scenarios reach it.
            let group = (
                format!("{} {}", step.method, step.path),
                variant.mutation.field().to_owned(),
                variant.mutation.kind().to_owned(),
                format!("{} → {}", kind.label(), status_class(&after)),
            );
            let (seen, cells) = groups.entry(group).or_default();
            if !cells.contains(&outcome.report.name) {
                cells.push(outcome.report.name.clone());
            }
            seen.push(Seen {
                name,
                variant,
                kind,
                baseline: before,
                answer: after,
                diff: diff.clone(),
            });
        }
    }
    let found = groups
        .into_iter()
        .map(|(group, (seen, cells))| {
            let smallest = seen
                .iter()
                .min_by_key(|seen| (seen.variant.requests(), size(seen.variant)))
                .expect("a group holds what was seen");
            let mut same_as: Vec<String> = seen
                .iter()
                .map(|other| other.name.to_owned())
                .filter(|name| name != smallest.name)
                .collect();
            same_as.sort();
            same_as.dedup();
            let references = baseline
                .contents
                .iter()
                .filter_map(|(key, contents)| {
                    let rest = key.strip_prefix(smallest.name)?;
                    (rest.is_empty() || rest.starts_with('@'))
                        .then(|| (rest.to_owned(), contents.clone()))
                })
                .collect();
            Found {
                name: smallest.name.to_owned(),
                variant: smallest.variant.clone(),
                kind: smallest.kind,
                baseline: smallest.baseline.clone(),
                answer: smallest.answer.clone(),
                diff: smallest.diff.clone(),
                cells,
                same_as,
                references,
                group,
            }
        })
        .collect();
    Survey {
        found,
        unstable,
        known: Vec::new(),
        alone: alone.into_iter().cloned().collect(),
    }
}

/// What `alone` (variants of shared starts run alone) found, joined to
/// `survey`: one finding per group still, the variant with the fewest
/// requests kept, the cells of both.
pub(super) fn join(survey: &mut Survey, alone: Survey) {
    for found in alone.found {
        match survey
            .found
            .iter_mut()
            .find(|same| same.group == found.group)
        {
            Some(same) => {
                let fewer = |f: &Found| (f.variant.requests(), size(&f.variant));
                let (mut kept, other) = match fewer(&found) < fewer(same) {
                    true => (found, same.clone()),
                    false => (same.clone(), found),
                };
                for cell in other.cells {
                    if !kept.cells.contains(&cell) {
                        kept.cells.push(cell);
                    }
                }
                kept.same_as.push(other.name);
                kept.same_as.extend(other.same_as);
                kept.same_as.sort();
                kept.same_as.dedup();
                *same = kept;
            }
            None => survey.found.push(found),
        }
    }
    survey.found.sort_by(|a, b| a.group.cmp(&b.group));
    survey.unstable.extend(alone.unstable);
}

/// The members of a shared start (`key` its run) to run alone: every one
/// when state did not allow sharing (the step as recorded answered
/// otherwise after the variants than before them, on the baseline or a
/// cell, or the service stopped answering), else those a cell answers
/// otherwise than the baseline. A difference by the step as recorded, or
/// before it, is the recorded scenario's, which the check reports.
fn to_run_alone<'a>(
    ctx: &RunContext,
    key: &str,
    start: &'a SharedStart,
    reference: &str,
    outcomes: &[CellOutcome],
) -> Vec<&'a String> {
    let noisy = ctx.noisy_fields(key);
    let split = |rendered: &str| exchanges(&crate::judge::noise::mask(rendered, &noisy));
    let cells: Vec<Vec<String>> = (outcomes.iter())
        .filter(|outcome| !outcome.report.baseline)
        .filter_map(|outcome| outcome.contents.get(key))
        .map(|contents| split(contents))
        .collect();
    alone_of(start, &split(reference), &cells)
}

/// [`to_run_alone`] on the exchanges the baseline and each cell answered.
fn alone_of<'a>(
    start: &'a SharedStart,
    reference: &[String],
    cells: &[Vec<String>],
) -> Vec<&'a String> {
    let sent = start.requests();
    let undisturbed =
        |answers: &[String]| answers.len() == sent && answers[start.prefix] == answers[sent - 1];
    if !undisturbed(reference) {
        return start.members.iter().collect();
    }
    let mut alone = Vec::new();
    for answers in cells {
        if answers == reference
            || answers.len() <= start.prefix
            || answers[..=start.prefix] != reference[..=start.prefix]
        {
            continue;
        }
        if !undisturbed(answers) {
            return start.members.iter().collect();
        }
        for (index, member) in start.members.iter().enumerate() {
            let at = start.exchange_of(index);
            if answers[at] != reference[at] && !alone.contains(&member) {
                alone.push(member);
            }
        }
    }
    alone
}

/// A rendered run's exchanges, each without its `# N. step` line and the
/// blank lines that part it from the next: what the step was sent and
/// answered, whatever it is named and wherever it comes.
fn exchanges(rendered: &str) -> Vec<String> {
    let mut exchanges: Vec<String> = Vec::new();
    for line in rendered.lines() {
        if line.starts_with("# ") {
            exchanges.push(String::new());
        } else if let Some(exchange) = exchanges.last_mut() {
            exchange.push_str(line);
            exchange.push('\n');
        }
    }
    for exchange in &mut exchanges {
        exchange.truncate(exchange.trim_end().len());
    }
    exchanges
}

/// Each finding's variant with its last step as recorded, by the name it
/// runs under, with the finding's place: what tells the variant's doing
/// from a difference the recorded scenario shows too.
pub(super) fn as_recorded(found: &[Found]) -> BTreeMap<String, (usize, Variant)> {
    found
        .iter()
        .enumerate()
        .map(|(index, finding)| {
            let name = format!("{}-as-recorded", finding.name);
            (name, (index, finding.variant.as_recorded()))
        })
        .collect()
}

/// Takes out of `survey`'s findings the cells where the recorded step
/// differs the same way (`shown`: the run of [`as_recorded`]'s); a finding
/// left with no cell is said among the known ones.
pub(super) fn leave_known_out(
    survey: &mut Survey,
    controls: &BTreeMap<String, (usize, Variant)>,
    shown: Survey,
) {
    for control in shown.found {
        let Some((index, _)) = controls.get(&control.name) else {
            continue;
        };
        let finding = &mut survey.found[*index];
        if control.group != finding.group {
            continue;
        }
        let (known, kept): (Vec<String>, Vec<String>) = std::mem::take(&mut finding.cells)
            .into_iter()
            .partition(|cell| control.cells.contains(cell));
        finding.cells = kept;
        for cell in known {
            survey.known.push(format!(
                "{cell}: {} at {}'s `{}`, as recorded too ({} → {})",
                finding.kind.label(),
                finding.variant.from,
                finding.variant.scenario.steps[finding.variant.step].name,
                control.baseline,
                control.answer
            ));
        }
    }
    survey.found.retain(|finding| !finding.cells.is_empty());
}

/// The smaller variants to try next, by the name each runs under: each
/// finding's variant with one of its earlier steps left out (one that no
/// later step needs a capture of), with the finding's place.
pub(super) fn smaller(found: &[Found]) -> BTreeMap<String, (usize, Variant)> {
    let mut tried = BTreeMap::new();
    for (index, finding) in found.iter().enumerate() {
        for step in 0..finding.variant.step {
            if let Some(variant) = finding.variant.without_step(step) {
                tried.insert(
                    format!("{}-less-{}", finding.name, step + 1),
                    (index, variant),
                );
            }
        }
    }
    tried
}

/// Takes the smallest of `tried` that still shows its finding's
/// difference on the same cells; whether any did.
pub(super) fn keep_smaller(
    found: &mut [Found],
    tried: &BTreeMap<String, (usize, Variant)>,
    shown: Survey,
) -> bool {
    let mut smaller = false;
    for candidate in shown.found {
        let Some((index, _)) = tried.get(&candidate.name) else {
            continue;
        };
        let finding = &mut found[*index];
        let same = candidate.group == finding.group && candidate.cells == finding.cells;
        if same && candidate.variant.requests() < finding.variant.requests() {
            *finding = Found {
                name: finding.name.clone(),
                same_as: std::mem::take(&mut finding.same_as),
                ..candidate
            };
            smaller = true;
        }
    }
    smaller
}

/// The findings written as explored scenarios pending review, worst first;
/// the exploration's report, and the status it gives the check.
pub(super) fn conclude(
    ctx: &RunContext,
    exploring: &Exploring,
    survey: Survey,
    program: &str,
    after_check: bool,
) -> anyhow::Result<(Exploration, ExitStatus)> {
    let program = match program {
        "" => "upgrade-check",
        program => program,
    };
    let mut findings = Vec::new();
    let mut written = Vec::new();
    for found in survey.found {
        let place = promote(ctx, exploring, &found)?;
        if let Ok(path) = &place {
            written.push(path.clone());
        }
        findings.push(Finding {
            kind: found.kind,
            scenario: found.name.clone(),
            from: found.variant.from.clone(),
            step: found.variant.scenario.steps[found.variant.step]
                .name
                .clone(),
            mutation: found.variant.mutation.describe(),
            request: request_of(&found.variant),
            baseline: found.baseline,
            answer: found.answer,
            cells: found.cells,
            diff: found.diff,
            same_as: found.same_as,
            written: match place {
                Ok(path) => format!("{path} (pending review)"),
                Err(why) => why,
            },
            reproduce: format!(
                "{program} accept {name} && {program} --scenario {name}",
                name = found.name
            ),
        });
    }
    findings.sort_by(|a, b| (a.kind, &a.scenario).cmp(&(b.kind, &b.scenario)));
    ctx.emit(RunEvent::Explored {
        findings: findings.len(),
        written,
    });
    let status = match (findings.is_empty(), ctx.settings.config.explore.findings) {
        (false, FindingsCount::Fail) => ExitStatus::Regression,
        _ => ExitStatus::Pass,
    };
    let exploration = Exploration {
        after_check,
        seed: exploring.seed,
        budget: exploring.budget,
        variants: exploring.variants.len(),
        requests: exploring.requests(),
        unstable: survey.unstable,
        known: survey.known,
        findings,
    };
    Ok((exploration, status))
}

fn why_unstable(scenario: &crate::model::report::ScenarioReport, flaky: bool) -> String {
    if flaky {
        return "the baseline's two answers differ".to_owned();
    }
    scenario
        .summary
        .clone()
        .unwrap_or_else(|| format!("the baseline's verdict is {}", scenario.verdict.label()))
}

/// Whether a scenario's summary says its first difference is in `step`.
fn names_step(summary: &str, step: &str) -> bool {
    summary.starts_with(&format!("step `{step}`")) || summary.starts_with("the service exited")
}

/// A rendering split before its last exchange: what the steps before the
/// changed one answered (and a recorded startup), and the changed one's
/// exchange. `None`: no exchange at all.
fn last_exchange(rendered: &str) -> Option<(&str, &str)> {
    match rendered.rfind("\n# ") {
        Some(at) => Some(rendered.split_at(at + 1)),
        None => rendered.starts_with("# ").then_some(("", rendered)),
    }
}

/// How the changed step's answer differs, with the baseline's status line and the cell's.
fn difference(reference: &str, contents: &str) -> (FindingKind, String, String) {
    let before = status_line(reference);
    let after = status_line(contents);
    let crashed = |status: &str| status.starts_with('5') || status.starts_with("no response");
    let kind = if crashed(&after) && !crashed(&before) {
        FindingKind::Crash
    } else if status_class(&before) != status_class(&after) {
        FindingKind::Status
    } else if shape(reference) != shape(contents) {
        FindingKind::Shape
    } else {
        FindingKind::Value
    };
    (kind, before, after)
}

/// The last exchange's status line (`201 Created`, `no response: …`).
fn status_line(rendered: &str) -> String {
    let (_, last) = last_exchange(rendered).unwrap_or(("", rendered));
    last.lines()
        .find_map(|line| line.strip_prefix("< "))
        .unwrap_or("no answer")
        .to_owned()
}

/// `2xx`, `5xx`, or the line itself when it is no status.
fn status_class(status: &str) -> String {
    match status.chars().next() {
        Some(digit @ '1'..='5') => format!("{digit}xx"),
        _ => status.to_owned(),
    }
}

/// The last answer's body as JSON with every value replaced by its type:
/// two answers of one shape hold the same fields of the same types.
fn shape(rendered: &str) -> Option<serde_json::Value> {
    let (_, last) = last_exchange(rendered).unwrap_or(("", rendered));
    let mut lines = last.lines().skip_while(|line| *line != "<").skip(1);
    let body: String = lines
        .by_ref()
        .map_while(|line| line.strip_prefix("< "))
        .collect::<Vec<_>>()
        .join("\n");
    fn typed(value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Object(fields) => {
                Value::Object(fields.into_iter().map(|(k, v)| (k, typed(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().take(1).map(typed).collect()),
            Value::String(_) => Value::from("string"),
            Value::Number(_) => Value::from("number"),
            Value::Bool(_) => Value::from("bool"),
            Value::Null => Value::Null,
        }
    }
    serde_json::from_str(&body).ok().map(typed)
}

/// How big a variant's changed request is, to keep the smallest of equals.
fn size(variant: &Variant) -> usize {
    match &variant.scenario.steps[variant.step].body {
        Some(Body::Json(json)) => json.to_string().len(),
        Some(Body::Text(text)) => text.len(),
        None => 0,
    }
}

/// The changed request as a person reads it: method, path, the headers it
/// sets, its body; variables as the scenario writes them.
fn request_of(variant: &Variant) -> String {
    let step = &variant.scenario.steps[variant.step];
    let mut text = format!("{} {}", step.method, step.path);
    for (name, value) in &step.headers {
        text.push_str(&format!("\n{name}: {value}"));
    }
    match &step.body {
        Some(Body::Json(json)) => text.push_str(&format!("\n\n{json}")),
        Some(Body::Text(body)) => text.push_str(&format!("\n\n{body}")),
        None => {}
    }
    text
}

/// Writes a finding's variant as `scenarios/explored/NAME.toml` with the
/// baseline's answers as pending snapshots; never over a file there. The
/// written path, or why nothing was written.
fn promote(
    ctx: &RunContext,
    exploring: &Exploring,
    found: &Found,
) -> anyhow::Result<Result<String, String>> {
    let name = &found.name;
    let base = ctx.settings.config.base_dir();
    let target = exploring
        .scenarios
        .join(scenario::EXPLORED)
        .join(format!("{name}.toml"));
    let shown = relative(&target, base);
    let recorded = exploring.scenarios.join(format!("{name}.toml"));
    if recorded.exists() {
        return Ok(Err(format!(
            "{} has that name already: not written",
            relative(&recorded, base)
        )));
    }
    if target.exists() {
        return Ok(Err(format!("{shown} exists already: not written again")));
    }
    state::refuse_outside(base, &target)?;
    let text = traffic::render_scenario(&found.variant.scenario, &description(&found.variant));
    state::write_new(&target, text.as_bytes())?;
    for (profile, contents) in &found.references {
        let key = format!("{name}{profile}");
        let accepted = snapshot::accepted_path(&exploring.snapshots, &key);
        let header = snapshot::Header {
            source: relative(&target, base),
            scenario: &key,
            description: "result of the baseline, found by exploration",
        };
        snapshot::write_pending(&accepted, &header, contents)?;
    }
    Ok(Ok(shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared start of three members after one step; each answer is its
    /// status alone.
    fn three_after_one() -> SharedStart {
        SharedStart {
            members: vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
            prefix: 1,
        }
    }

    fn answers(statuses: &[&str]) -> Vec<String> {
        statuses.iter().map(|s| format!("< {s}\n")).collect()
    }

    #[test]
    fn a_shared_start_runs_alone_what_differs_and_all_when_state_moved() {
        let start = three_after_one();
        let reference = answers(&["200", "200", "401", "401", "400", "200"]);
        // A cell that answers as the baseline: nothing to run alone.
        assert!(alone_of(&start, &reference, std::slice::from_ref(&reference)).is_empty());
        // One member differs: that one alone, once whichever cells show it.
        let b_differs = answers(&["200", "200", "401", "500", "400", "200"]);
        assert_eq!(
            alone_of(&start, &reference, &[b_differs.clone(), b_differs]),
            [&"b".to_owned()]
        );
        // The recorded step answers otherwise after the variants (a
        // lockout): every member alone.
        let locked = answers(&["200", "200", "401", "429", "429", "429"]);
        assert_eq!(alone_of(&start, &reference, &[locked]).len(), 3);
        // The service stopped answering: fewer exchanges, every member alone.
        let crashed = answers(&["200", "200", "401"]);
        assert_eq!(alone_of(&start, &reference, &[crashed]).len(), 3);
        // The baseline's own state moved: nothing it answered vouches.
        let moved = answers(&["200", "200", "401", "401", "429", "429"]);
        assert_eq!(
            alone_of(&start, &moved, std::slice::from_ref(&moved)).len(),
            3
        );
        // A difference at the recorded step or before it is the recorded
        // scenario's: the check reports it, nothing runs alone.
        let earlier = answers(&["500", "200", "401", "401", "400", "200"]);
        assert!(alone_of(&start, &reference, &[earlier]).is_empty());
    }

    #[test]
    fn a_rendered_run_splits_into_its_exchanges_without_their_names() {
        // The last exchange ends the file; the others, a blank line.
        let rendered =
            "startup: ok\n# 1. before\n> GET /me\n< 200 OK\n\n# 2. after\n> GET /me\n< 200 OK\n";
        let split = exchanges(rendered);
        assert_eq!(split, ["> GET /me\n< 200 OK", "> GET /me\n< 200 OK"]);
    }

    fn exchange(step: usize, status: &str, body: &str) -> String {
        let mut text = format!("# {step}. step {step}\n> POST /x\n< {status}\n");
        if !body.is_empty() {
            text.push_str("<\n");
            for line in body.lines() {
                text.push_str(&format!("< {line}\n"));
            }
        }
        text
    }

    fn rendered(last: &str) -> String {
        format!("{}\n{last}", exchange(1, "201 Created", "{\"id\": 1}"))
    }

    #[test]
    fn a_difference_is_ranked_by_what_the_changed_step_answers() {
        let reference = rendered(&exchange(2, "200 OK", "{\"token\": \"a\"}"));
        let kind = |last: String| difference(&reference, &rendered(&last)).0;
        for (status, body, expected) in [
            ("500 Internal Server Error", "", FindingKind::Crash),
            ("no response: connection closed", "", FindingKind::Crash),
            (
                "401 Unauthorized",
                "{\"error\": \"x\"}",
                FindingKind::Status,
            ),
            ("200 OK", "{\"token\": 1}", FindingKind::Shape),
            ("200 OK", "{\"token\": \"b\"}", FindingKind::Value),
        ] {
            assert_eq!(kind(exchange(2, status, body)), expected, "{status} {body}");
        }
        let (_, before, after) = difference(
            &reference,
            &rendered(&exchange(2, "422 Unprocessable Entity", "")),
        );
        assert_eq!(
            (before.as_str(), after.as_str()),
            ("200 OK", "422 Unprocessable Entity")
        );
        // A service that already failed is no crash of the cell's making.
        let failing = rendered(&exchange(2, "500 Internal Server Error", "x"));
        assert_eq!(
            difference(&failing, &rendered(&exchange(2, "502 Bad Gateway", "y"))).0,
            FindingKind::Value
        );
    }

    #[test]
    fn the_last_exchange_is_found_after_a_recorded_startup() {
        let with_startup = format!(
            "startup: started\n\n{}",
            rendered(&exchange(2, "200 OK", ""))
        );
        let (earlier, last) = last_exchange(&with_startup).unwrap();
        assert!(earlier.starts_with("startup: started") && earlier.contains("# 1."));
        assert!(last.starts_with("# 2."));
        assert_eq!(status_line(&with_startup), "200 OK");
        assert_eq!(last_exchange("startup: refused\n"), None);
        assert_eq!(status_class("404 Not Found"), "4xx");
        assert_eq!(status_class("no response: reset"), "no response: reset");
    }
}
