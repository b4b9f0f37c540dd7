//! `report.html`: one self-contained page (no network) with the matrix as a
//! coloured grid; clicking a square shows its verdict, diff, log tail and the
//! cell's version changes.
//!
//! The result model is embedded as JSON and drawn by a small script, so the
//! page shows exactly what report.json holds. The page is made by an
//! auto-escaping template engine (minijinja): every value is escaped for
//! where it lands, the JSON with `tojson` (no `<`, `>` or `&` left in it), and
//! a Content-Security-Policy lets no script run but the page's own, named by
//! its digest, so a service's output cannot become code in a reviewer's browser.

use base64::Engine;
use sha2::Digest;

use super::{Report, exploration, headline};

pub fn render(report: &Report) -> anyhow::Result<String> {
    let mut env = minijinja::Environment::new();
    // `.html` templates are escaped for HTML by default.
    env.add_template("report.html", TEMPLATE)?;
    let script_digest =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()));
    let page = env
        .get_template("report.html")?
        .render(minijinja::context! {
            title => headline::headline(report),
            run => minijinja::Value::from(minijinja::value::Serde(&report.run)),
            took => format!("{:.1}s", report.duration_ms as f64 / 1000.0),
            reused => report.cells.iter().filter(|cell| cell.result_reused).count(),
            cells => report.cells.len(),
            report => minijinja::Value::from(minijinja::value::Serde(report)),
            script => minijinja::Value::from_safe_string(SCRIPT.to_owned()),
            script_digest => script_digest,
            exploration => report.exploration.as_ref().map(|exploration| minijinja::context! {
                findings => exploration.findings.iter().map(|finding| minijinja::context! {
                    title => format!(
                        "{} · {}: {}",
                        finding.cells.join(", "),
                        finding.scenario,
                        finding.kind.label()
                    ),
                    summary => headline::finding_summary(finding),
                    request => exploration::request(finding),
                    diff => finding.diff.clone(),
                    written => finding.written.clone(),
                    reproduce => finding.reproduce.clone(),
                }).collect::<Vec<_>>(),
                cells => exploration::cells(report, exploration),
            }),
        })?;
    Ok(page)
}

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{{ script_digest }}'">
<title>upgrade-check</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
  h1 { font-size: 1.2rem; white-space: pre-line; }
  table { border-collapse: collapse; margin: 1rem 0; }
  th, td { padding: .25rem .5rem; text-align: left; }
  th.scenario { font-weight: 600; writing-mode: horizontal-tb; }
  button.square { width: 7.5rem; height: 1.9rem; border: 1px solid #0002; border-radius: 4px; cursor: pointer; font: inherit; }
  .pass { background: #d1f4d9; }
  .changed { background: #ffd6d6; }
  .startup-failed { background: #ffb3b3; }
  .build-failed { background: #ffe0a8; }
  .error { background: #d9d9d9; }
  .as-baseline { background: #eee; color: #555; }
  .not-tried { background: #f6f6f6; color: #777; border-style: dashed; }
  .accepted { background: #cfe6ff; }
  button.selected { outline: 3px solid #0969da; }
  #details { border-top: 1px solid #d0d7de; padding-top: 1rem; }
  pre { background: #f6f8fa; padding: .75rem; overflow: auto; max-height: 30rem; }
  .del { color: #b31d28; } .add { color: #22863a; }
  #run { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0; color: #57606a; }
  #run dt { font-weight: 600; } #run dd { margin: 0; }
  #legend span { display: inline-block; padding: .1rem .5rem; margin-right: .35rem; border-radius: 4px; border: 1px solid #0002; }
</style>
</head>
<body>
<h1 id="headline">{{ title }}</h1>
<dl id="run">
{%- if run.since %}
  <dt>compared</dt><dd>{{ run.since }}{% if run.since_commit %} ({{ run.since_commit }}){% endif %} against this change{% if run.commit %} ({{ run.commit }}){% endif %}</dd>
{%- elif run.commit %}
  <dt>commit</dt><dd>{{ run.commit }}</dd>
{%- endif %}
  <dt>started</dt><dd>{{ run.started_at }}, took {{ took }}</dd>
  <dt>tools</dt><dd>{{ run.toolchain }}</dd>
{%- if run.service_start %}
  <dt>services</dt><dd>{{ run.service_start }}</dd>
{%- endif %}
{%- if run.noise_check %}
  <dt>baseline's noise check</dt><dd>{{ run.noise_check }}</dd>
{%- endif %}
  <dt>reused</dt><dd>{{ reused }} of {{ cells }} cells' recorded results (nothing they depend on changed)</dd>
  <dt>reproduce</dt><dd><code>{{ run.reproduce }}</code></dd>
</dl>
<p id="legend">
  <span class="pass">pass: answers as accepted</span><span class="accepted">accepted: a change this pull request accepts</span><span class="changed">changed: answers differently</span><span class="startup-failed">startup-failed</span><span class="build-failed">build-failed: not installable or not built</span><span class="error">error: the harness failed; nothing known</span><span class="as-baseline">as baseline: fails exactly as the baseline does</span><span class="not-tried">not tried: the cell could not hold the version it is named for</span>
</p>
{%- if exploration %}
<section id="exploration">
<h2>Found by exploration</h2>
{%- for finding in exploration.findings %}
<article class="finding">
<h3>{{ finding.title }}</h3>
<p>{{ finding.summary }}</p>
<pre class="request">{{ finding.request }}</pre>
<pre class="diff">{{ finding.diff }}</pre>
<p>written: {{ finding.written }} · check it: <code>{{ finding.reproduce }}</code></p>
</article>
{%- else %}
<p>Every cell answers every variant as the baseline does.</p>
{%- endfor %}
<ul>
{%- for line in exploration.cells %}
  <li>{{ line }}</li>
{%- endfor %}
</ul>
</section>
{%- endif %}
<table id="grid"></table>
<section id="details"><p>Click a square to see its diff, log tail and versions.</p></section>
<script type="application/json" id="report-data">{{ report|tojson }}</script>
<script>{{ script }}</script>
</body>
</html>
"#;

/// The page's only script; the policy allows it by its digest.
const SCRIPT: &str = r#"
"use strict";
const report = JSON.parse(document.getElementById("report-data").textContent);
const grid = document.getElementById("grid");
const details = document.getElementById("details");

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

const header = grid.insertRow();
header.appendChild(element("th", "cell"));
for (const name of report.scenarios) header.appendChild(element("th", name, "scenario"));

report.cells.forEach((cell, row) => {
  const line = grid.insertRow();
  line.appendChild(element("th", cell.name));
  for (const name of report.scenarios) {
    const td = line.insertCell();
    const scenario = cell.scenarios.find((s) => s.scenario === name);
    if (!scenario) { td.textContent = "–"; continue; }
    const kind = scenario.same_as_baseline ? "as-baseline" : scenario.verdict;
    const button = element("button", scenario.same_as_baseline ? "as baseline" : scenario.verdict, "square " + kind);
    button.dataset.cell = cell.name;
    button.dataset.scenario = name;
    button.addEventListener("click", () => show(cell, scenario, button));
    td.appendChild(button);
  }
});

// The first failure a reviewer should look at is open from the start.
window.addEventListener("DOMContentLoaded", () => {
  const first = document.querySelector("button.square.changed, button.square.startup-failed, button.square.build-failed, button.square.error");
  if (first) first.click();
});

function diffBlock(diff) {
  const pre = element("pre");
  pre.id = "diff";
  for (const line of diff.split("\n")) {
    const kind = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
    pre.appendChild(element("span", line + "\n", kind));
  }
  return pre;
}

function show(cell, scenario, button) {
  for (const selected of document.querySelectorAll("button.selected")) selected.classList.remove("selected");
  button.classList.add("selected");
  details.replaceChildren();
  details.appendChild(element("h2", cell.name + " · " + scenario.scenario + ": " + scenario.verdict));
  if (scenario.summary) details.appendChild(element("p", scenario.summary, "summary"));
  if (scenario.diff) {
    details.appendChild(element("h3", "diff (accepted → this run)"));
    details.appendChild(diffBlock(scenario.diff));
  }
  if (scenario.log_tail) {
    details.appendChild(element("h3", "log tail"));
    const pre = element("pre", scenario.log_tail);
    pre.id = "log";
    details.appendChild(pre);
  }
  details.appendChild(element("h3", "versions that differ from the baseline"));
  const list = element("ul");
  list.id = "versions";
  for (const change of cell.changes) {
    const moved = change.before && change.after ? change.before + " → " + change.after : change.before ? change.before + " removed" : change.after + " added";
    const why = change.forced_by && change.forced_by.length ? " (transitive: " + change.forced_by.join(", ") + ")" : " (transitive)";
    const text = change.package + " " + moved + (change.transitive ? why : "");
    list.appendChild(element("li", text));
  }
  if (!cell.changes.length) list.appendChild(element("li", "none"));
  details.appendChild(list);
  const env = cell.environment;
  if (env) {
    const facts = ["environment " + env.id + (env.build_reused ? " (reused)" : " (built)")];
    if (env.hash_checked) facts.push("every download checked against its declared hash");
    if (env.built_from_source.length) facts.push("built from source: " + env.built_from_source.join(", "));
    if (env.raised_requirements && env.raised_requirements.length) facts.push("requirement raised: " + env.raised_requirements.join(", "));
    if (env.moves_not_held) facts.push("nearest moves not held: " + env.moves_not_held);
    if (env.rebuilt) facts.push("built again: " + env.rebuilt);
    details.appendChild(element("p", facts.join(" · "), "environment"));
  }
}
"#;
