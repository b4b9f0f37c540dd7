//! npm's version ranges (`>=18`, `^14.17.0 || >=16`, `>= 0.6`, `14 - 18`),
//! as `engines.node` and `[service] node` write them, read into semver's.

/// Whether npm's range `text` (`>=18`, `^14.17.0 || >=16`, `>= 0.6`,
/// `14 - 18`) accepts `node`; `None` when it cannot be read, as npm warns
/// and goes on.
pub(crate) fn node_range_accepts(text: &str, node: &semver::Version) -> Option<bool> {
    let mut accepts = false;
    for alternative in text.split("||") {
        let requirement = semver::VersionReq::parse(&cargo_syntax(alternative)?).ok()?;
        accepts |= requirement.matches(node);
    }
    Some(accepts)
}

/// One npm comparator set in cargo's syntax: comparators joined by commas, a
/// bare version exact, `a - b` as `>=a, <=b`, `x` and `*` as any.
fn cargo_syntax(set: &str) -> Option<String> {
    let set = set.trim();
    if set.is_empty() || set == "*" || set == "x" {
        return Some("*".to_owned());
    }
    if let Some((low, high)) = set.split_once(" - ") {
        return Some(format!(">={}, <={}", low.trim(), high.trim()));
    }
    // `>= 0.6` is one comparator: glue each operator to its version.
    let mut glued: Vec<String> = Vec::new();
    let mut pending = String::new();
    for word in set.split_whitespace() {
        if word
            .chars()
            .all(|c| matches!(c, '<' | '>' | '=' | '~' | '^'))
        {
            pending.push_str(word);
            continue;
        }
        let word = format!("{pending}{word}");
        pending.clear();
        let bare = word.starts_with(|c: char| c.is_ascii_digit());
        let full = word.split('.').count() == 3;
        glued.push(match (bare, full) {
            (true, true) => format!("={word}"),
            _ => word.trim_start_matches('v').to_owned(),
        });
    }
    (pending.is_empty()).then(|| glued.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_ranges_are_read_as_npm_writes_them() {
        let node = semver::Version::new(20, 11, 1);
        for (range, accepts) in [
            (">=18", true),
            (">= 0.6", true),
            ("^14.17.0 || >=16", true),
            ("^14.17.0 || ^16.13.0", false),
            (">=22.12.0", false),
            ("14 - 18", false),
            ("18 - 22", true),
            ("*", true),
            ("20.11.1", true),
            (">=12 <19", false),
        ] {
            assert_eq!(node_range_accepts(range, &node), Some(accepts), "{range}");
        }
        assert_eq!(node_range_accepts(">= nonsense", &node), None);
    }
}
