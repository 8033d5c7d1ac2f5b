"""The report as one self-contained HTML page: the figure inlined as a data URI, plain CSS,
no script and no link outside the file, so it opens anywhere without a network."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from archdsl.search.trials import SHOWN, TrialRow, format_value

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #1f2933; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #d9e2ec; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #e4e7eb; vertical-align: top; }
th { background: #f0f4f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 13px ui-monospace, monospace; white-space: pre-wrap; }
tr.baseline { background: #eef4fb; } .tag { font-size: 11px; padding: 0 .4em; border-radius: 3px; color: #fff; }
.tag.baseline { background: #1d3557; } .tag.front { background: #d1495b; }
.counts span { margin-right: 1.2em; } img { max-width: 100%; border: 1px solid #e4e7eb; }
.muted { color: #7b8794; }
"""


def _trial_rows(report, rows: list[TrialRow], front: set[int]) -> str:
    out = []
    for r in rows:
        tags = ""
        if r.number in front:
            tags += ' <span class="tag front">front</span>'
        if r.baseline:
            tags += ' <span class="tag baseline">baseline</span>'
        values = r.values or [None] * len(report.objectives)
        cells = "".join(
            f'<td class="num">{html.escape(format_value(n, v))}</td>' for n, v in zip(report.objectives, values)
        )
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in r.metrics.items())
        cost = ", ".join(f"{k} {format_value(k, v)}" for k, v in r.cost.items())
        klass = ' class="baseline"' if r.baseline else ""
        out.append(
            f"<tr{klass}><td class='num'>{r.number}{tags}</td>{cells}<td><code>{html.escape(r.dsl or '')}</code></td>"
            f"<td>{html.escape(r.status)}</td><td>{html.escape(metrics)}</td><td>{html.escape(cost)}</td>"
            f"<td class='muted'>{html.escape(r.reason or '')}</td></tr>"
        )
    return "\n".join(out)


def _table(report, rows: list[TrialRow], front: set[int]) -> str:
    heads = "".join(f"<th>{html.escape(n)} <span class='muted'>({d[:3]})</span></th>"
                    for n, d in zip(report.objectives, report.directions))  # fmt: skip
    return (
        f"<table><tr><th>trial</th>{heads}<th>layout (DSL)</th><th>status</th><th>metrics</th><th>cost</th>"
        f"<th>reason</th></tr>\n{_trial_rows(report, rows, front)}</table>"
    )


def render_html(report, png: Path, *, top: int = 10) -> str:
    image = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    front = {r.number for r in report.best}
    counts = "".join(f"<span><b>{report.counts.get(k, 0)}</b> {k}</span>" for k in SHOWN)
    title = f"archdsl search: {report.study_name}"
    best_heading = "Pareto front" if len(report.objectives) > 1 else "Best trials"
    beaten = ""
    if len(report.objectives) > 1 and report.baselines:
        free = [r for r in report.best if not r.baseline]
        beaten = (
            f"<p>{len(free)} layout(s) on the front are not baselines; no baseline dominates them.</p>"
            if free else "<p>Every point of the front is a baseline.</p>"
        )  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="counts">{len(report.rows)} trials: {counts}</p>
<p>Objectives: {", ".join(f"{html.escape(n)} ({d})" for n, d in zip(report.objectives, report.directions))}.
Baselines are marked with a star in the figure and shaded in the tables.</p>
<img alt="Pareto front of the study" src="data:image/png;base64,{image}">
<h2>{best_heading}</h2>
{beaten}
{_table(report, report.top(top), front)}
<h2>Baselines</h2>
{_table(report, report.baselines, front) if report.baselines else "<p class='muted'>none in the recipe</p>"}
<h2>All trials</h2>
{_table(report, report.rows, front)}
<h2>Recipe</h2>
<pre><code>{html.escape(json.dumps(report.recipe, indent=2))}</code></pre>
</body></html>
"""
