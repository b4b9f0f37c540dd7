//! Variants that share one service start: those of one step of one
//! scenario whose method is safe (GET, HEAD, OPTIONS: a request that asks
//! for no change of state). They run as one scenario: the steps before the
//! changed one replayed once, the step as recorded, each variant's step in
//! turn, and the step as recorded again. The two recorded answers are the
//! check that state allowed it: when they differ (a lockout, a counter,
//! a crash), what the variants answered is not what each answers alone,
//! and they run alone instead.

use std::collections::BTreeMap;

use super::variants::Variant;
use crate::input::scenario::{Scenario, Step};

/// Methods that ask for no change of state (RFC 9110, 9.2.1).
const SAFE_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS"];

/// The name of the recorded step before the variants, and after them.
pub(crate) const BEFORE: &str = "as recorded, before the variants";
pub(crate) const AFTER: &str = "as recorded, after the variants";

/// Variants run in one service start, by the name each runs under alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedStart {
    /// In the order their steps are sent.
    pub(crate) members: Vec<String>,
    /// The steps replayed before the recorded one.
    pub(crate) prefix: usize,
}

impl SharedStart {
    /// Where member `index`'s answer is among the shared scenario's: after
    /// the prefix and the recorded step.
    pub(crate) fn exchange_of(&self, index: usize) -> usize {
        self.prefix + 1 + index
    }

    /// Requests it sends: the prefix once, the step as recorded twice, and
    /// each member's step.
    pub(crate) fn requests(&self) -> usize {
        self.prefix + self.members.len() + 2
    }
}

/// The shared starts among `variants` (by the name each runs under), by the
/// name the shared scenario runs under: the variants of one safe step of
/// one scenario, where sharing sends no more requests than each alone
/// would (a budget is of requests), so never without steps before it.
pub(crate) fn shared_starts(variants: &BTreeMap<String, Variant>) -> BTreeMap<String, SharedStart> {
    let mut by_step: BTreeMap<(String, usize), Vec<String>> = BTreeMap::new();
    for (name, variant) in variants {
        let step = &variant.scenario.steps[variant.step];
        if SAFE_METHODS.contains(&step.method.to_ascii_uppercase().as_str()) {
            let place = (variant.from.clone(), variant.step);
            by_step.entry(place).or_default().push(name.clone());
        }
    }
    by_step
        .into_iter()
        .filter(|((_, step), members)| step * (members.len().saturating_sub(1)) >= 2)
        .map(|((from, step), members)| {
            let name = format!("{from}-{}-shared-start", step + 1);
            (
                name,
                SharedStart {
                    members,
                    prefix: step,
                },
            )
        })
        .collect()
}

/// The one scenario `start` runs as, named `name`: its members' steps,
/// each under its member's name, between the step as recorded twice.
pub(crate) fn shared_scenario(
    name: &str,
    start: &SharedStart,
    variants: &BTreeMap<String, Variant>,
) -> Scenario {
    let first = &variants[&start.members[0]];
    let recorded = first.as_recorded();
    let sent_as_recorded = |named: &str| Step {
        name: named.to_owned(),
        ..recorded.scenario.steps[first.step].clone()
    };
    let mut steps: Vec<Step> = first.scenario.steps[..start.prefix].to_vec();
    steps.push(sent_as_recorded(BEFORE));
    for member in &start.members {
        let variant = &variants[member];
        steps.push(Step {
            name: member.clone(),
            ..variant.scenario.steps[variant.step].clone()
        });
    }
    steps.push(sent_as_recorded(AFTER));
    Scenario {
        name: name.to_owned(),
        description: format!(
            "explored from `{}`, step `{}`: {} variants in one service start",
            first.from,
            first.scenario.steps[first.step].name,
            start.members.len()
        ),
        steps,
        ..first.scenario.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::openapi::Schema;
    use crate::input::scenario::load_dir;
    use crate::plan::variants::variants;

    fn named(all: Vec<Variant>) -> BTreeMap<String, Variant> {
        all.into_iter().map(|v| (v.name(), v)).collect()
    }

    #[test]
    fn the_variants_of_a_safe_step_share_a_start_between_its_recorded_answers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        let scenarios = load_dir(&dir).unwrap();
        let all = named(variants(&scenarios, &Schema::default(), 0, usize::MAX, &[]));
        let starts = shared_starts(&all);
        // Login's `me with the token` is its one GET: its token variants.
        let me = &starts["login-5-shared-start"];
        assert!(me.members.len() > 3, "{me:?}");
        assert_eq!(me.prefix, 4);
        // Register and the logins are POSTs: each variant alone.
        assert!(
            starts
                .values()
                .flat_map(|start| &start.members)
                .all(|member| {
                    let variant = &all[member];
                    variant.scenario.steps[variant.step].method == "GET"
                }),
            "{starts:?}"
        );
        let scenario = shared_scenario("login-5-shared-start", me, &all);
        let names: Vec<&str> = scenario.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names[..6],
            [
                "register",
                "good password",
                "wrong password",
                "unknown user",
                BEFORE,
                me.members[0].as_str()
            ]
        );
        assert_eq!(names.last(), Some(&AFTER));
        assert_eq!(scenario.steps.len(), me.prefix + me.members.len() + 2);
        // Each member's step is the one it sends alone.
        for (index, member) in me.members.iter().enumerate() {
            let alone = &all[member];
            let shared = &scenario.steps[me.exchange_of(index)];
            assert_eq!(shared.headers, alone.scenario.steps[alone.step].headers);
            assert_eq!(shared.path, alone.scenario.steps[alone.step].path);
        }
        let recorded = &scenarios.iter().find(|s| s.name == "login").unwrap().steps[4];
        assert_eq!(scenario.steps[4].headers, recorded.headers);
        assert!(scenario.steps[4].captures.is_empty());
    }
}
