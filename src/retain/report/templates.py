"""Jinja2 templates of the report pages, with their style and script inlined (a report is one file that opens
from disk, offline). Kept in Python so they ship with the package without package-data rules.

Accessibility: every chart has a text label and a data table; collapsible parts are ``<details>`` (keyboard
operable without script); scrollable boxes are focusable; a print stylesheet opens everything and drops the
controls. Status is always written out, never shown by colour alone.
"""

from __future__ import annotations

CSS = """
:root { --fg:#1b1b1b; --muted:#555; --line:#c8c8c8; --bg:#fff; --accent:#1f5fa8; --bad:#a4262c; --ok:#1d6b2c; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; max-width: 1200px; padding: 0 1rem 3rem; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: .5rem; background: #fff; padding: .3rem; }
header { border-bottom: 2px solid var(--fg); margin-bottom: 1rem; }
h1 { font-size: 1.6rem; margin: 1rem 0 .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; } .lead { color: var(--muted); margin: 0 0 .6rem; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .3rem 1rem; margin: .4rem 0 .8rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .88rem; }
caption { text-align: left; font-weight: 600; padding: .2rem 0; }
th, td { border: 1px solid var(--line); padding: .2rem .45rem; text-align: left; vertical-align: top; }
td.time { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead th { background: #f1f1f1; }
pre.json { white-space: pre-wrap; word-break: break-all; font-size: .8rem; max-height: 24rem; overflow: auto;
            background: #f7f7f7; padding: .4rem; }
code, .hash { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .82rem; word-break: break-all; }
.scroll { overflow: auto; max-height: 80vh; border: 1px solid var(--line); padding: .3rem; margin: .4rem 0; }
.wide { overflow-x: auto; }
figure { margin: .5rem 0 1rem; } figcaption { color: var(--muted); font-size: .9rem; }
svg { max-width: none; height: auto; }
.badge { display: inline-block; border: 2px solid currentColor; border-radius: 3px; padding: 0 .4rem;
         font-weight: 700; font-size: .85rem; text-transform: uppercase; letter-spacing: .02em; }
.st-champion { color: #7a5c00; } .st-rejected, .bad { color: var(--bad); } .st-rolled-back { color: #8a3a00; }
.st-superseded { color: #33536f; } .ok { color: var(--ok); }
details { margin: .3rem 0; } summary { cursor: pointer; padding: .2rem 0; }
summary > h3, summary > h4 { display: inline; }
details.version { border: 1px solid var(--line); border-left: 6px solid var(--line); padding: .2rem .7rem; }
details.version[data-status=champion] { border-left-color: #f2c12e; }
details.version[data-status=rejected] { border-left-style: dotted; border-left-color: var(--bad); }
details.version[data-status=rolled-back] { border-left-style: double; border-left-color: #e45756; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: .4rem 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.controls { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .5rem 0; }
.controls input { font: inherit; padding: .2rem .4rem; min-width: 18rem; }
.controls button { font: inherit; padding: .2rem .6rem; }
ul.reasons { margin: .2rem 0 .5rem; }
@media print {
  body { max-width: none; font-size: 11pt; } nav, .controls, .skip { display: none; }
  .scroll, .wide, pre.json { max-height: none; overflow: visible; border: 0; }
  details.version, figure, table { break-inside: avoid; } h2 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""

# Opens every <details> for printing (and restores them after), filters version cards as one types.
SCRIPT = """
(function () {
  var opened = [];
  window.addEventListener('beforeprint', function () {
    opened = Array.prototype.filter.call(document.querySelectorAll('details'), function (d) { return !d.open; });
    opened.forEach(function (d) { d.open = true; });
  });
  window.addEventListener('afterprint', function () { opened.forEach(function (d) { d.open = false; }); });
  var filter = document.getElementById('card-filter');
  if (filter) {
    var count = document.getElementById('card-count');
    filter.addEventListener('input', function () {
      var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean), shown = 0;
      document.querySelectorAll('details.version').forEach(function (card) {
        var text = card.textContent.toLowerCase();
        var hit = words.every(function (w) { return text.indexOf(w) >= 0; });
        card.hidden = !hit; if (hit) { shown += 1; }
      });
      count.textContent = shown + ' shown';
    });
  }
  document.querySelectorAll('button[data-open]').forEach(function (button) {
    button.addEventListener('click', function () {
      var open = button.getAttribute('data-open') === 'all';
      document.querySelectorAll('details.version').forEach(function (d) { if (!d.hidden) { d.open = open; } });
    });
  });
})();
"""

BASE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="retain {{ version }}">
<title>{{ title }}</title>
<style>{{ css|safe }}</style>
</head>
<body>
<a class="skip" href="#main">Skip to the report</a>
<header>
<h1>{{ title }}</h1>
<p class="lead">{{ lead }}</p>
<p class="lead">Made {{ made_at }} by retain {{ version }}. One file: it needs no network and no server.</p>
<nav aria-label="Sections"><ul>
{% for id, name in toc %}<li><a href="#{{ id }}">{{ name }}</a></li>
{% endfor %}</ul></nav>
</header>
<main id="main">
{% block main %}{% endblock %}
</main>
<script>{{ script|safe }}</script>
</body>
</html>
"""

MACROS = """
{% macro table(t, cls="") -%}
<table{% if cls %} class="{{ cls }}"{% endif %}>
<caption>{{ t.caption }}</caption>
<thead><tr>{% for h in t.headers %}<th scope="col">{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for cell in row %}{% if loop.first %}<th scope="row">{{ cell }}</th>{% else %}<td{% if cell is numeric %} class="num"{% elif cell is timestamp %} class="time"{% endif %}>{{ cell }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{%- endmacro %}
{% macro chart(c) -%}
<figure>
<div class="scroll" tabindex="0" aria-label="{{ c.caption }} (scrollable)">{{ c.svg | safe }}</div>
<figcaption>{{ c.caption }}</figcaption>
{% if c.data %}<details><summary>The numbers in this chart</summary>{% for t in c.data %}<div class="wide" tabindex="0">{{ table(t) }}</div>{% endfor %}</details>{% endif %}
</figure>
{%- endmacro %}
{% macro body(s, level) -%}
{% for p in s.paragraphs %}<p>{{ p }}</p>
{% endfor %}{% for t in s.tables %}<div class="wide" tabindex="0">{{ table(t) }}</div>
{% endfor %}{% for c in s.charts %}{{ chart(c) }}
{% endfor %}{% for sub in s.subsections %}<section id="{{ sub.id }}" aria-labelledby="{{ sub.id }}-h"><details{% if sub.open %} open{% endif %}>
<summary><h{{ level + 1 }} id="{{ sub.id }}-h">{{ sub.title }}</h{{ level + 1 }}></summary>
{{ body(sub, level + 1) }}
</details></section>
{% endfor %}
{%- endmacro %}
{% macro section(s) -%}
<section id="{{ s.id }}" aria-labelledby="{{ s.id }}-h">
<h2 id="{{ s.id }}-h">{{ s.title }}</h2>
{{ body(s, 2) }}
</section>
{%- endmacro %}
"""

PAGE = """{% extends "base" %}{% import "macros" as m %}
{% block main %}{% for s in sections %}{{ m.section(s) }}
{% endfor %}{% endblock %}
"""

HOME = """{% extends "base" %}{% import "macros" as m %}
{% block main %}
<section id="summary" aria-labelledby="summary-h">
<h2 id="summary-h">Summary</h2>
<dl class="facts">
<dt>Champion</dt><dd><a href="#card-{{ r.champion }}">{{ r.champion }}</a> <span class="badge st-champion">champion</span></dd>
<dt>Versions</dt><dd>{{ r.versions|length }}: {% for status, n in statuses %}{{ n }} {{ status }}{% if not loop.last %}, {% endif %}{% endfor %}</dd>
<dt>Gate</dt><dd>{{ gate_rule(r.policy) }}</dd>
<dt>Audit chain</dt><dd id="verification-status" data-ok="{{ 'yes' if r.verification.ok else 'no' }}">{% if r.verification.ok %}<span class="badge ok">verified</span> every hash recomputed at report time matched{% else %}<span class="badge bad">mismatch</span> {{ r.verification.problems|length }} problem(s) found at report time: see <a href="#verification">verification</a>{% endif %}</dd>
<dt>Quarantined lines</dt><dd>{{ quarantined }}</dd>
</dl>
</section>
<section id="lineage" aria-labelledby="lineage-h">
<h2 id="lineage-h">Lineage</h2>
<p>One row per version, oldest first; a line joins each version to the champion it was trained from. Shapes: star champion, circle superseded, triangle rolled back, cross rejected (dotted line).</p>
{{ m.chart(lineage) }}
</section>
<section id="scores" aria-labelledby="scores-h">
<h2 id="scores-h">Scores on the regression suite</h2>
{% for page in heat_pages %}<details{% if page.open %} open{% endif %}><summary>{{ page.title }}</summary>{{ m.chart(page.chart) }}</details>
{% endfor %}</section>
<section id="versions" aria-labelledby="versions-h">
<h2 id="versions-h">Versions</h2>
<div class="controls"><label for="card-filter">Filter versions</label>
<input id="card-filter" type="search" placeholder="e.g. rejected, forced, v12, a skill name">
<span id="card-count" aria-live="polite">{{ r.versions|length }} shown</span>
<button type="button" data-open="all">Expand all</button><button type="button" data-open="none">Collapse all</button></div>
{% for v in r.versions|reverse %}{% set rec = v.record %}
<details class="version" id="card-{{ v.name }}" data-version="{{ v.name }}" data-status="{{ v.status }}"{% if v.forced %} data-forced="yes"{% endif %}{% if v.name in open_cards %} open{% endif %}>
<summary><strong>{{ v.name }}</strong> <span class="badge st-{{ v.status }}">{{ v.status }}</span>
{% if rec.skill %}learned <em>{{ rec.skill }}</em> with {{ rec.method }}{% else %}base model{% endif %}
{% for g in v.gates %} &middot; gate: <span class="decision">{{ g.decision }}</span>{% endfor %}
{% for e in v.events if e.type == "rolled_back" %} &middot; rolled back to{% endfor %}</summary>
<dl class="facts">
<dt>Parent</dt><dd>{% if v.parent %}<a href="#card-{{ v.parent }}">{{ v.parent }}</a>{% else %}none (base model){% endif %}</dd>
<dt>Recipe</dt><dd>method {{ rec.method }}{% if rec.lora %} (LoRA adapter){% endif %}, kind {{ rec.kind }}{% for key, value in rec.options|settings %}, {{ key }} {{ value }}{% endfor %}
{% if rec.options %}<details><summary>Recipe as recorded</summary><pre class="json">{{ rec.options|pretty }}</pre></details>{% endif %}
{% if rec.config %}<details><summary>Configuration as recorded</summary><pre class="json">{{ rec.config|pretty }}</pre></details>{% endif %}</dd>
<dt>Seed</dt><dd>{{ rec.seed if rec.seed is not none else "-" }}</dd>
<dt>Created</dt><dd><time datetime="{{ rec.created_at }}">{{ rec.created_at|when }}</time>, trained and scored in {{ "%.1f"|format(rec.wall_seconds) }} s</dd>
<dt>Weights</dt><dd><span class="hash">sha256 {{ rec.artifacts.weights_sha256 }}</span> ({{ rec.artifacts.tensors }} tensors, {{ rec.artifacts.bytes|bytes }}, {{ rec.artifacts.bytes_new|bytes }} new)</dd>
<dt>Environment</dt><dd>{{ rec.environment|environment }}</dd>
</dl>
{% if rec.data %}{{ m.table(data_table(v)) }}{% endif %}
{% for g in v.gates %}<div class="gate" data-decision="{{ g.decision }}">
<h3>Gate vs {{ g.champion }}: {{ g.decision }}</h3>
{% if g.forced_reason %}<p class="forced"><strong>Forced promotion.</strong> Reason given: <q>{{ g.forced_reason }}</q></p>{% endif %}
{% if g.reasons %}<ul class="reasons">{% for reason in g.reasons %}<li>{{ reason }}</li>{% endfor %}</ul>{% else %}<p>Every check passed.</p>{% endif %}
<details><summary>All {{ g.checks|length }} checks</summary>{{ m.table(checks_table(g)) }}</details>
</div>{% endfor %}
{% if v.drift %}<div class="drift"><h3>Drift from {{ v.drift.parent }}</h3>
<p>{{ drift_text(v) }}</p>
{{ m.table(drift_table(v)) }}</div>{% endif %}
{{ m.table(events_table(v.events, "Events of " ~ v.name)) }}
</details>{% endfor %}
</section>
<section id="verification" aria-labelledby="verification-h">
<h2 id="verification-h">Audit chain verification</h2>
<p>At {{ r.made_at|when }} every line of the audit log was re-hashed, the database was rebuilt from the log and compared, and every stored object was hashed again (what <code>retain verify</code> does). Result: <strong>{{ "intact" if r.verification.ok else "MISMATCH" }}</strong>.</p>
{% if r.verification.problems %}<ul class="bad">{% for p in r.verification.problems %}<li>{{ p }}</li>{% endfor %}</ul>{% endif %}
{% if r.verification.notes %}<ul>{% for n in r.verification.notes %}<li>note: {{ n }}</li>{% endfor %}</ul>{% endif %}
{{ m.table(counts) }}
</section>
<section id="quarantine" aria-labelledby="quarantine-h">
<h2 id="quarantine-h">Guard quarantine</h2>
{% if r.quarantine %}<p>Lines the guard held back before training, as the audit log records them.</p>
{% for t in quarantine_tables %}<div class="scroll" tabindex="0">{{ m.table(t, "quarantine") }}</div>{% endfor %}
{% else %}<p>The audit log records no quarantined lines.</p>{% endif %}
</section>
<section id="audit" aria-labelledby="audit-h">
<h2 id="audit-h">Audit log</h2>
<details{% if r.events|length <= 30 %} open{% endif %}><summary>All {{ r.events|length }} entries</summary>
<div class="scroll" tabindex="0">{{ m.table(events_table(r.events, "Every audit entry, oldest first")) }}</div></details>
</section>
{% endblock %}
"""
