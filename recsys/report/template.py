"""The report's HTML template (Jinja2, autoescaped) with its inline stylesheet.

Kept as a Python string so that the package carries it without package-data declarations;
nothing in it points outside the file (no font, script or stylesheet is fetched).
"""

from __future__ import annotations

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Offline evaluation: {{ run.title }}</title>
<style>
  :root { --blue: #000091; --red: #e1000f; --green: #18753c; --grey: #666; --line: #ddd; }
  body { font-family: "Marianne", "DejaVu Sans", Arial, sans-serif; color: #161616;
         margin: 0; background: #f6f6f6; font-size: 14px; line-height: 1.45; }
  main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
  h1 { color: var(--blue); font-size: 26px; margin: 0 0 4px; }
  h2 { color: var(--blue); font-size: 20px; border-bottom: 2px solid var(--blue);
       padding-bottom: 4px; margin-top: 36px; }
  h3 { font-size: 16px; margin: 22px 0 6px; }
  .meta { color: var(--grey); font-size: 12.5px; margin-bottom: 14px; }
  .meta code { font-size: 12px; }
  .box { border-left: 6px solid; padding: 10px 16px; margin: 14px 0; border-radius: 3px; }
  .warning { background: #fff4e5; border-color: #e07000; }
  .warning strong { color: #b34000; }
  .reading { background: #eef0ff; border-color: var(--blue); font-size: 15px; }
  .reading ul { margin: 6px 0; padding-left: 20px; }
  .reading li { margin: 4px 0; }
  .note { color: var(--grey); font-size: 12.5px; }
  table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
  th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right;
           vertical-align: top; }
  th { background: #f0f0f7; font-weight: 600; }
  th:first-child, td:first-child { text-align: left; }
  td.text, th.text { text-align: left; }
  tr.block td { background: #fafafa; font-weight: 600; color: var(--blue); text-align: left; }
  td.mine { font-weight: 700; color: var(--blue); }
  .up { color: var(--green); font-weight: 600; }
  .down { color: var(--red); font-weight: 600; }
  .flat { color: var(--grey); }
  .delta { font-size: 11.5px; margin-left: 5px; }
  th .delta { display: block; margin: 0; font-weight: 400; }
  .small { color: #888; font-style: italic; }
  img { max-width: 100%; display: block; margin: 6px 0 12px; }
  .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 28px; }
  dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0; }
  dl.kv dt { color: var(--grey); }
  dl.kv dd { margin: 0; font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px;
             word-break: break-all; }
  details summary { cursor: pointer; color: var(--blue); margin: 6px 0; }
  nav a { color: var(--blue); margin-right: 12px; font-size: 13px; }
</style>
</head>
<body>
<main>
<h1>Offline evaluation: {{ run.title }}</h1>
<div class="meta">
  run <code>{{ run.run_id }}</code>{% if run.started %} · trained {{ run.started }}{% endif %}
  · report generated {{ generated }} · evaluation window
  {{ (data.get("window_start") or "?")[:10] }} → {{ (data.get("window_end") or "?")[:10] }}
</div>
<nav>
  <a href="#reading">Reading</a><a href="#headline">Headline</a><a href="#curves">At k</a>
  <a href="#segments">Segments</a><a href="#exposure">Exposure</a>
  {% if comparisons %}<a href="#comparison">Comparison</a>{% endif %}
  <a href="#data">Data</a>
</nav>

{% for warning in warnings %}
<div class="box warning"><strong>Warning:</strong> {{ warning }}</div>
{% endfor %}

<section id="reading" class="box reading">
  <strong>Reading</strong>
  <ul>{% for sentence in reading %}<li>{{ sentence }}</li>{% endfor %}</ul>
  <div class="note">Relevance is an application in the evaluated window; every person who
  applied is evaluated, and a person a model could not serve counts as zero. A model beats
  the incumbent only if it beats the strongest baseline.</div>
</section>

<section id="headline">
<h2>Headline: {{ run.candidate_label }} against the baselines</h2>
<table>
  <tr><th>metric</th><th>{{ run.candidate_label }}</th>
  {% for row in headline_refs %}
  <th>{{ row | model }}<span class="delta flat">value · Δ</span></th>
  {% endfor %}
  </tr>
  {% for line in headline %}
  {% if loop.first or line.k != loop.previtem.k %}
  <tr class="block"><td colspan="{{ 2 + headline_refs | length }}">k = {{ line.k }}</td></tr>
  {% endif %}
  <tr><td>{{ line.label }}</td><td class="mine">{{ line.value | num }}</td>
  {% for ref in line.references %}
  <td>{{ ref.value | num }}<span class="delta {{ ref.delta | tone }}">{{ ref.delta | delta }}</span>
  </td>
  {% endfor %}</tr>
  {% endfor %}
</table>
<div class="note">Δ is relative: ({{ run.candidate_label }} − baseline) / baseline; green when
{{ run.candidate_label }} is ahead.</div>
</section>

{% if comparisons %}
<section id="comparison">
<h2>Comparison with other runs</h2>
<table>
  <tr><th>metric</th><th>this run<span class="delta flat">{{ run.run_id[:8] }}</span></th>
  {% for other in comparisons %}
  <th>{{ other.label or "run" }}
  <span class="delta flat">{{ other.run_id[:8] }} · {{ other.candidate_label }}</span></th>
  {% endfor %}
  </tr>
  {% for line in comparison %}
  <tr><td>{{ line.label }}</td><td class="mine">{{ line.value | figure(line.metric) }}</td>
  {% for other in line.runs %}
  <td>{{ other.value | figure(line.metric) }}
  <span class="delta {{ other.delta | tone(line.metric) }}">{{ other.delta | delta }}</span></td>
  {% endfor %}</tr>
  {% endfor %}
</table>
<table>
  <tr><th>run</th><th class="text">data fingerprint</th><th class="text">cutoff</th>
  <th class="text">same holdout</th></tr>
  <tr><td>this run</td><td class="text"><code>{{ (fingerprint or "unknown")[:16] }}</code></td>
  <td class="text">{{ split.get("cutoff") or "?" }}</td><td class="text">–</td></tr>
  {% for other in comparisons %}
  <tr><td>{{ other.label or "run" }} {{ other.run_id[:8] }}</td>
  <td class="text"><code>{{ (other.fingerprint or "unknown")[:16] }}</code></td>
  <td class="text">{{ other.cutoff or "?" }}</td>
  <td class="text {{ 'up' if other.same_holdout else 'down' }}">
  {{ "yes" if other.same_holdout else "NO" }}</td></tr>
  {% endfor %}
</table>
</section>
{% endif %}

<section id="curves">
<h2>Accuracy at k</h2>
<img alt="NDCG and recall at k, one line per model" src="{{ figures.at_k }}">
</section>

<section id="segments">
<h2>By segment ({{ segment_metric | metric }})</h2>
<p class="note">n = people evaluated in the segment (those with an application there).
Segments under {{ small_segment }} people are starred and greyed: their differences are
mostly noise.</p>
{% for group in segment_groups %}
<h3>{{ group.title }}</h3>
<img alt="{{ group.title }}" src="{{ group.figure }}">
<table>
  <tr><th>segment</th><th>people</th><th>{{ run.candidate_label }}</th>
  <th class="text">best baseline</th><th>Δ vs best</th>
  {% if has_incumbent %}<th>Δ vs incumbent</th>{% endif %}</tr>
  {% for row in group.rows %}
  <tr class="{{ 'small' if row.small }}">
  <td>{{ row.label }}{% if row.small %} *{% endif %}</td>
  <td>{{ row.users }}</td><td class="mine">{{ row.value | num }}</td>
  <td class="text">{{ row.best_baseline | model }} {{ row.best_value | num }}</td>
  <td class="{{ row.delta_best | tone }}">{{ row.delta_best | delta }}</td>
  {% if has_incumbent %}
  <td class="{{ row.delta_incumbent | tone }}">{{ row.delta_incumbent | delta }}</td>
  {% endif %}</tr>
  {% endfor %}
</table>
{% endfor %}
</section>

<section id="exposure">
<h2>Exposure, distance and new offers (top-{{ k }})</h2>
<h3>Programmes</h3>
{% if figures.exposure %}
<img alt="share of slots by programme" src="{{ figures.exposure }}">
{% endif %}
<table>
  <tr><th>programme</th><th>open catalog</th><th>applications</th>
  {% for model in models %}<th>{{ model | model }}</th>{% endfor %}</tr>
  {% for row in programmes %}
  <tr><td>{{ row.label }}</td><td>{{ row.catalog_share | pct }}</td>
  <td>{{ row.apply_share | pct }}</td>
  {% for model in models %}
  <td class="{{ 'mine' if model == run.candidate }}">{{ row.slots[model] | pct }}</td>
  {% endfor %}</tr>
  {% endfor %}
</table>
{% if not dataset %}
<p class="note">Catalog and application shares: {{ dataset_note }}</p>
{% endif %}

<h3>Publishers, coverage, distance, new offers and eligibility</h3>
<table>
  <tr><th>model</th>{% for name in beyond_names %}<th>{{ name | metric }}</th>{% endfor %}</tr>
  {% for row in beyond %}
  <tr><td class="{{ 'mine' if row.row == run.candidate }}">{{ row.row | model }}</td>
  {% for name in beyond_names %}<td>{{ row["values"][name] | beyond(name) }}</td>{% endfor %}
  </tr>
  {% endfor %}
</table>
<p class="note">Gini 0 = slots spread evenly, 1 = all slots to one programme or publisher.
The ineligible rate must be 0 for every model that may be served.</p>
{% if dataset %}
<p class="note">New offers: of the {{ dataset.offers_open }} offers open in the window,
{{ dataset.new_offer_share | pct }} were posted after the cutoff.</p>
{% endif %}
{% if dataset and dataset.publishers %}
<h3>Largest publishers of the open catalog</h3>
<table>
  <tr><th>publisher</th><th>open offers</th><th>catalog</th><th>applications</th></tr>
  {% for row in dataset.publishers %}
  <tr><td>{{ row.publisher }}</td><td>{{ row.offers_open }}</td>
  <td>{{ row.catalog_share | pct }}</td><td>{{ row.apply_share | pct }}</td></tr>
  {% endfor %}
</table>
<p class="note">Share of each publisher in the models' top-{{ k }} lists: see the training
run's exposure figure{{ " below" if logged_figures else " (not available for this run)" }};
the evaluation records the Gini and the top publisher's share only.</p>
{% endif %}
{% for item in logged_figures %}
<h3>{{ item.title }}</h3>
<img alt="{{ item.title }}" src="{{ item.uri }}">
{% endfor %}

<h3>Distance</h3>
{% if figures.distance %}
<img alt="mean distance of recommendations" src="{{ figures.distance }}">
{% endif %}
{% if dataset %}
<p class="note">People who applied in the window: declared radius mean
{{ dataset.radius_km.mean | km }} (n={{ dataset.radius_km.n }}); distance to the offers they
applied to: median {{ dataset.apply_distance_km.median | km }}, mean
{{ dataset.apply_distance_km.mean | km }} (n={{ dataset.apply_distance_km.n }}).</p>
{% endif %}
</section>

{% macro pairs(items) %}
<dl class="kv">{% for key, value in items %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}
</dl>
{% endmacro %}
<section id="data">
<h2>Data and configuration</h2>
<div class="grid"><div>
<h3>Dataset</h3>
{{ pairs(dataset_facts) }}
<h3>Events by type</h3>
{% if dataset %}
<table>
  <tr><th>type</th><th>all</th><th>bots</th><th>humans</th></tr>
  {% for row in dataset.events_by_type %}
  <tr><td>{{ row.type }}</td><td>{{ row.all }}</td><td>{{ row.bots }}</td>
  <td>{{ row.humans }}</td></tr>
  {% endfor %}
</table>
<p class="note">Funnel (humans): {{ dataset.funnel.click_rate | pct(1) }} of prints clicked,
{{ dataset.funnel.apply_rate | pct(1) }} of clicks followed by an application.</p>
{% else %}
<p class="note">{{ dataset_note }}</p>
{% endif %}
{% if feature_counts %}
<details><summary>Feature set counts ({{ feature_counts | length }})</summary>
{{ pairs(feature_counts) }}
</details>
{% endif %}
</div><div>
<h3>Model</h3>
{{ pairs(params.model) }}
<h3>Code</h3>
{{ pairs(params.code) }}
{% if params.features %}
<details><summary>Feature configuration ({{ params.features | length }} parameters)</summary>
{{ pairs(params.features) }}
</details>
{% endif %}
{% if params.other %}
<details><summary>Other parameters ({{ params.other | length }})</summary>
{{ pairs(params.other) }}
</details>
{% endif %}
</div></div>
</section>
</main>
</body>
</html>
"""
