//! The pull-request comment: the verdict line first, the matrix as a table,
//! each failure's diff in a collapsed section, version changes per cell.
//! It stays within GitHub's comment size, cutting with a note rather than failing.

use std::fmt::Write as _;

use super::{Report, Verdict, headline};

/// GitHub refuses comments longer than this many characters.
pub(crate) const COMMENT_LIMIT: usize = 65_536;

pub(crate) fn render(report: &Report) -> String {
    render_within(report, COMMENT_LIMIT)
}

pub(crate) fn render_within(report: &Report, limit: usize) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "## upgrade-check\n");
    for line in headline::headline(report).lines() {
        let _ = writeln!(head, "{}  ", escape(line.trim_start()));
    }
    head.push('\n');
    let run = &report.run;
    if !run.reproduce.is_empty() {
        let commit = |commit: &Option<String>| {
            commit
                .as_deref()
                .map(|hash| format!(" ({})", code(hash)))
                .unwrap_or_default()
        };
        let compared = match &run.since {
            Some(since) => format!(
                "{}{} against this change{}",
                code(since),
                commit(&run.since_commit),
                commit(&run.commit)
            ),
            None => format!("the baseline file{}", commit(&run.commit)),
        };
        let _ = writeln!(
            head,
            "Compared {compared} · {} · started {}  \nReproduce locally: {}\n",
            escape(&run.toolchain),
            escape(&run.started_at),
            code(&run.reproduce)
        );
    }
    // A change the reviewer agrees with is accepted on the branch itself.
    if !report.pending_snapshots.is_empty() {
        let accept = match &run.since {
            Some(since) => format!("{} --accept --since {since}", run.program()),
            None => format!("{} accept", run.program()),
        };
        let _ = writeln!(
            head,
            "To accept what changed: run {} on this branch and commit {}.\n",
            code(&accept),
            report
                .pending_snapshots
                .iter()
                .map(|path| code(path.trim_end_matches(".new")))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(exploration) = report.exploration.as_ref().filter(|e| !e.after_check) {
        let sections = exploration_sections(report, exploration, &mut head);
        return within(head, &sections, limit);
    }
    let _ = write!(head, "| cell |");
    for scenario in &report.scenarios {
        let _ = write!(head, " {scenario} |");
    }
    let _ = write!(head, "\n|---|");
    for _ in &report.scenarios {
        head.push_str("---|");
    }
    head.push('\n');
    for cell in &report.cells {
        let _ = write!(head, "| {} |", cell.name);
        for name in &report.scenarios {
            let mark = cell
                .scenarios
                .iter()
                .find(|s| &s.scenario == name)
                .map_or("–", |s| match s.verdict {
                    Verdict::Pass => "✅ pass",
                    Verdict::Accepted => "✅ accepted",
                    Verdict::Changed if s.same_as_baseline => "➖ as baseline",
                    Verdict::Changed => "❌ changed",
                    Verdict::StartupFailed => "💥 startup-failed",
                    Verdict::BuildFailed => "🧱 build-failed",
                    Verdict::Error => "⚠️ error",
                    Verdict::NotTried => "➖ not tried",
                });
            let _ = write!(head, " {mark} |");
        }
        head.push('\n');
    }
    if !report.skipped.is_empty() {
        let _ = write!(
            head,
            "\nNot tried: {}.\n",
            escape(&report.skipped.join("; "))
        );
    }
    for (package, cells) in report.built_from_source() {
        let _ = write!(
            head,
            "\n🔧 `{package}` was built from source (its build code ran) in {}.\n",
            cells.join(", ")
        );
    }
    for (requirement, cells) in report.raised_requirements() {
        let _ = write!(
            head,
            "\n⬆️ Requirement raised to allow the version: {} (for {}).\n",
            escape(requirement),
            cells.join(", ")
        );
    }
    for (cell, why) in report.moves_not_held() {
        let _ = write!(
            head,
            "\n↕️ Nearest moves not held in {}: {}.\n",
            escape(cell),
            escape(why)
        );
    }
    let mut sections = Vec::new();
    for cell in &report.cells {
        // Versions explain a failure; a cell that passes needs none.
        if !cell.changes.is_empty() && !cell.baseline && cell.regressions().next().is_some() {
            let changes: Vec<String> = cell
                .changes
                .iter()
                .map(|change| format!("`{change}`"))
                .collect();
            sections.push(format!(
                "\n**{}** versions: {}\n",
                cell.name,
                changes.join(", ")
            ));
        }
        // A cell that cannot be built or started fails every scenario alike: one section.
        let failures: Vec<(&str, &super::ScenarioReport)> = match headline::whole_cell_failure(cell)
        {
            Some(failure) => vec![("every scenario", failure)],
            None => cell
                .regressions()
                .chain(cell.accepted())
                .map(|failure| (failure.scenario.as_str(), failure))
                .collect(),
        };
        for (scenario, failure) in failures {
            // What the pull request accepts is shown open: it is what the reviewer reviews.
            let open = if failure.verdict == Verdict::Accepted {
                " open"
            } else {
                ""
            };
            let mut section = format!(
                "\n<details{open}><summary><b>{} · {scenario}</b>: {}{}</summary>\n\n",
                cell.name,
                match failure.verdict {
                    Verdict::Accepted => "accepted in this change",
                    verdict => verdict.label(),
                },
                failure
                    .summary
                    .as_deref()
                    .map(|s| format!(" — {}", escape(s)))
                    .unwrap_or_default()
            );
            if let Some(diff) = &failure.diff {
                let _ = write!(section, "{}", fenced("diff", diff));
            }
            if let Some(log) = &failure.log_tail {
                let _ = write!(section, "\nlog tail:\n\n{}", fenced("text", log));
            }
            section.push_str("\n</details>\n");
            sections.push(section);
        }
    }
    // Warnings come after the failures: the first to go when the comment is cut.
    for cell in report
        .cells
        .iter()
        .filter(|cell| !cell.new_warnings.is_empty())
    {
        sections.push(format!(
            "\n<details><summary><b>{}</b> prints {} the baseline does not (a warning, not a failure)</summary>\n\n{}\n</details>\n",
            escape(&cell.name),
            if cell.new_warnings.len() == 1 {
                "1 line".to_owned()
            } else {
                format!("{} lines", cell.new_warnings.len())
            },
            fenced("text", &cell.new_warnings.join("\n"))
        ));
    }
    if let Some(exploration) = report
        .exploration
        .as_ref()
        .filter(|e| !e.findings.is_empty())
    {
        // Explored after the check: its findings after the check's own.
        let mut found = String::new();
        let findings = exploration_sections(report, exploration, &mut found);
        sections.push(found);
        sections.extend(findings);
    }
    within(head, &sections, limit)
}

/// `head`, then as many of `sections` as fit in `limit`, with a note of those cut.
fn within(head: String, sections: &[String], limit: usize) -> String {
    let mut out = head;
    let note = |left: usize| {
        format!(
            "\n_… {left} more sections cut to fit a comment; the full result is in report.json._\n"
        )
    };
    for (index, section) in sections.iter().enumerate() {
        let left = sections.len() - index;
        if out.len() + section.len() + note(left).len() > limit {
            out.push_str(&note(left));
            return out;
        }
        out.push_str(section);
    }
    out
}

/// An exploration's comment: each cell in a line (into `head`), then one
/// section per finding, the changed request and the diff inside.
fn exploration_sections(
    report: &Report,
    exploration: &crate::model::findings::Exploration,
    head: &mut String,
) -> Vec<String> {
    if !exploration.after_check {
        for line in super::exploration::cells(report, exploration) {
            let _ = writeln!(head, "- {}", escape(&line));
        }
    }
    if !exploration.findings.is_empty() {
        let _ = writeln!(
            head,
            "
Found by exploration: each is written as a scenario pending review; \
             accepting it (`{} review`) makes every later run check it.",
            report.run.program()
        );
    }
    exploration
        .findings
        .iter()
        .map(|finding| {
            let mut section = format!(
                "\n<details open><summary><b>{} · {}</b>: {}</summary>\n\n",
                escape(&finding.cells.join(", ")),
                escape(&finding.scenario),
                escape(&super::headline::finding_summary(finding))
            );
            let _ = write!(
                section,
                "{}\n{}",
                fenced("http", &super::exploration::request(finding)),
                fenced("diff", &finding.diff)
            );
            let _ = write!(
                section,
                "\nWritten: {}. Check it: {}\n</details>\n",
                escape(&finding.written),
                code(&finding.reproduce)
            );
            section
        })
        .collect()
}

/// `text` in a code block whose fence is longer than any run of backticks in
/// it: a service's output cannot close the block and write markdown (links,
/// images) into the comment.
fn fenced(language: &str, text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{language}\n{}\n{fence}\n", text.trim_end())
}

/// `text` as inline code, with a fence longer than any backtick run in it.
fn code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Text that came (in part) from a service, made inert as markdown: no HTML
/// tag, no image or link can be written into the comment through it.
fn escape(text: &str) -> String {
    text.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("![", "!\\[")
        .replace("](", "]\\(")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_text_in_a_line_writes_no_image_link_or_tag() {
        let line = escape(
            "step `x`: the body differs (`a` → ![t](https://example.invalid/p.png) <img src=x>)",
        );
        assert!(
            !line.contains("![") && !line.contains("](") && !line.contains('<'),
            "{line}"
        );
    }

    #[test]
    fn skipped_versions_and_new_warnings_are_told_after_the_failures() {
        let mut report = crate::report::tests::sample();
        report.skipped = vec!["bcrypt 3.2.0 is the baseline version".to_owned()];
        report.cells[1].new_warnings = vec!["DeprecationWarning: `ident` is deprecated".to_owned()];
        let comment = render(&report);
        assert!(
            comment.contains("\nNot tried: bcrypt 3.2.0 is the baseline version.\n"),
            "{comment}"
        );
        let warning = comment
            .find("<b>bcrypt 5.0.0</b> prints 1 line the baseline does not")
            .expect("the warning section");
        let failure = comment.find("bcrypt 5.0.0 · long-password").unwrap();
        assert!(failure < warning, "failures first: {comment}");
        assert!(comment.contains("Reproduce locally: `upgrade-check --since origin/main`"));
    }

    #[test]
    fn a_fence_in_service_output_cannot_close_the_block() {
        let hostile = "```\n![tracker](https://example.invalid/pixel.png)\n````";
        let block = fenced("text", hostile);
        assert!(block.starts_with("`````text\n"), "{block}");
        assert!(block.ends_with("\n`````\n"), "{block}");
        // No line of the content is a fence as long as the block's.
        assert!(!hostile.lines().any(|line| line.starts_with("`````")));
    }
}
