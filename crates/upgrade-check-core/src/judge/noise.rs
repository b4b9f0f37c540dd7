//! Noise: what differs between two runs of the baseline is not the
//! upgrade's doing.
//!
//! The baseline replays each scenario twice. A JSON field whose value
//! differs between the two is nondeterministic: it is masked on both sides
//! of every comparison (so it never counts as a regression), reported, and
//! suggested as a redaction. Any other difference makes the scenario flaky.

use std::collections::BTreeSet;

use crate::model::findings::Noise;

/// What stands in for a nondeterministic value in comparisons.
const MASK: &str = "\"[nondeterministic]\"";

/// How two renderings of one scenario differ, or `None` when they agree.
pub(crate) fn compare_runs(scenario: &str, first: &str, second: &str) -> Option<Noise> {
    if first == second {
        return None;
    }
    let (first_lines, second_lines): (Vec<&str>, Vec<&str>) =
        (first.lines().collect(), second.lines().collect());
    let mut fields = BTreeSet::new();
    let mut unexplained = Vec::new();
    for op in similar::TextDiff::from_lines(first, second).ops() {
        if op.tag() == similar::DiffTag::Equal {
            continue;
        }
        let olds = first_lines.get(op.old_range()).unwrap_or_default();
        let news = second_lines.get(op.new_range()).unwrap_or_default();
        // Each changed line must be the same field with another value.
        let keys: Option<Vec<&str>> = (olds.len() == news.len())
            .then(|| {
                olds.iter()
                    .zip(news)
                    .map(|(old, new)| match (json_field(old), json_field(new)) {
                        (Some((key, _)), Some((other, _))) if key == other => Some(key),
                        _ => None,
                    })
                    .collect()
            })
            .flatten();
        match keys {
            Some(keys) => fields.extend(keys.into_iter().map(str::to_owned)),
            None => unexplained.extend(olds.iter().chain(news).map(|line| line.to_string())),
        }
    }
    let fields: Vec<String> = fields.into_iter().collect();
    unexplained.truncate(6);
    Some(Noise {
        scenario: scenario.to_owned(),
        suggestion: suggestion(&fields),
        fields,
        unexplained,
    })
}

/// `text` with the values of `fields` in response bodies replaced by a mask.
pub(crate) fn mask(text: &str, fields: &BTreeSet<String>) -> String {
    if fields.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        match json_field(body) {
            Some((key, value)) if fields.contains(key) => {
                let prefix = &body[..body.len() - value.len()];
                let comma = if value.ends_with(',') { "," } else { "" };
                out.push_str(prefix);
                out.push_str(MASK);
                out.push_str(comma);
                out.push_str(&line[body.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// `(key, value)` of a response body line `<   "key": value`, for scalar values.
fn json_field(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('<')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let (key, value) = rest.split_once("\": ")?;
    let scalar = !value.starts_with('{') && !value.starts_with('[');
    (scalar && !key.contains('"')).then_some((key, value))
}

fn suggestion(fields: &[String]) -> String {
    fields
        .iter()
        .map(|field| {
            format!("[[redactions]]\njson-key = \"{field}\"\nplaceholder = \"[{field}]\"\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = "# 1. register\n> POST /api/auth/register\n< 201 Created\n<\n< {\n<   \"request_id\": \"9f2c\",\n<   \"username\": \"dave\"\n< }\n";

    #[test]
    fn a_field_that_differs_is_found_masked_and_suggested() {
        let second = FIRST.replace("9f2c", "a771");
        let noise = compare_runs("register", FIRST, &second).unwrap();
        assert_eq!(noise.fields, ["request_id"]);
        assert!(!noise.is_flaky());
        assert!(noise.suggestion.contains("json-key = \"request_id\""));
        let fields = noise.fields.iter().cloned().collect();
        assert_eq!(mask(FIRST, &fields), mask(&second, &fields));
        assert!(mask(FIRST, &fields).contains("\"request_id\": \"[nondeterministic]\","));
        assert_eq!(compare_runs("register", FIRST, FIRST), None);
    }

    #[test]
    fn a_status_that_differs_is_flaky() {
        let second = FIRST.replace("201 Created", "500 Internal Server Error");
        let noise = compare_runs("register", FIRST, &second).unwrap();
        assert!(noise.is_flaky(), "{noise:?}");
        assert!(noise.fields.is_empty());
    }
}
