"""The report page: one self-contained HTML file (styles, plotly and data inline) that opens offline.

Nothing is fetched: no script, style, font or image comes from the network, and a Content-Security-Policy
forbids the page to connect anywhere, so a report opened years later, on a plane, shows the same thing.
The only network addresses in the page are links the input gave on purpose. Every string from the run
is escaped here, at the one place text becomes HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path

import plotly.offline  # type: ignore[import-untyped]

from harness.checks._figures import Figure
from harness.report._model import (
    Activity,
    FigureSection,
    Hypothesis,
    ProbeResult,
    ReportInput,
    ReportKind,
)
from harness.report._plots import Plot, timeline_plots
from harness.verdict import Verdict

# Inline scripts and styles only, nothing to connect to. The SVG plots need no 'unsafe-eval' (plotly's
# WebGL traces would: the browser test sees the violation if one is ever added).
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)

# What each kind of report always shows, saying so when there is no data (anything else only when given).
_EXPECTED: dict[ReportKind, frozenset[str]] = {
    ReportKind.CHAOS: frozenset({"plots", "hypothesis", "activities", "figures"}),
    ReportKind.LOAD: frozenset({"plots", "load", "figures"}),
    ReportKind.RUN: frozenset({"plots", "load", "hypothesis", "activities", "figures", "links"}),
    ReportKind.PYRAMID: frozenset({"tables"}),
}

NOT_JUDGED = "not judged"
_VERDICT_CSS = {Verdict.HELD: "held", Verdict.DEVIATED: "deviated", Verdict.INCONCLUSIVE: "inconclusive"}
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1400px; padding: 1rem 2rem; color: #1d2433; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #d7dce5; padding-bottom: .2rem; margin-top: 2rem; }
.badge { display: inline-block; padding: .1rem .6rem; border-radius: .8rem; font-size: .9rem;
         font-weight: 600; margin-right: .4rem; background: #e8ecf3; }
.passed, .ok, .held { color: #1a7f37; } .failed, .FAILED, .deviated { color: #c62828; font-weight: 600; }
.inconclusive { color: #9a6700; font-weight: 600; }
.badge.held { background: #dcf5e3; } .badge.deviated { background: #fde2e2; }
.badge.inconclusive { background: #fff1c2; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #d7dce5; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f5f9; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #6b7385; font-style: italic; } .meta { color: #4a5263; }
pre { white-space: pre-wrap; margin: 0; font-size: .85rem; }
nav a { margin-right: 1rem; }
"""

# Zooming one plot zooms every other: they share the time axis.
_SYNC_SCRIPT = """
(function () {
  var plots = Array.prototype.slice.call(document.querySelectorAll(".js-plotly-plot"));
  function same(a, b) { return a && b && Math.abs(a[0] - b[0]) < 1e-9 && Math.abs(a[1] - b[1]) < 1e-9; }
  plots.forEach(function (source) {
    if (typeof source.on !== "function") { return; }
    source.on("plotly_relayout", function (change) {
      if (!Object.keys(change).some(function (key) { return key.indexOf("xaxis") === 0; })) { return; }
      var range = source.layout.xaxis.range.slice();
      plots.forEach(function (other) {
        if (other !== source && !same(other.layout.xaxis.range, range)) {
          Plotly.relayout(other, {"xaxis.range": range});
        }
      });
    });
  });
})();
"""


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


@cache
def _plotly_js() -> str:
    script: str = plotly.offline.get_plotlyjs()
    if "</script" in script.lower():  # cannot happen with plotly's bundle; would end the inline script
        raise ValueError("the plotly bundle contains '</script' and cannot be inlined")
    return script


def render_report(report: ReportInput) -> str:
    """The report as one self-contained HTML document."""
    expected = _EXPECTED[report.kind]
    plots = _plots(report, expected)
    body = [
        _header(report),
        _nav(report, plots),
        *(_plot_section(p) for p in plots),
        _hypothesis(report.hypothesis, "hypothesis" in expected),
        _activities(report, "activities" in expected),
        _figure_sections(report.sections, "figures" in expected),
        *(_table(t.title, t.columns, t.rows) for t in report.tables),
        _empty_section("tables", "Tables", "No tables.")
        if not report.tables and "tables" in expected
        else "",
        _links(report, "links" in expected),
        _notes(report),
        _metadata(report),
    ]
    drawn = any(p.html is not None for p in plots)
    head_script = f"<script>{_plotly_js()}</script>" if drawn else ""
    tail_script = f"<script>{_SYNC_SCRIPT}</script>" if drawn else ""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(report.title)}</title>",
        f"<style>{_STYLE}</style>",
        head_script,
        f'</head><body data-kind="{e(report.kind)}" data-verdict="{e(report.verdict or NOT_JUDGED)}">',
        *[part for part in body if part],
        tail_script,
        "</body></html>",
    ])  # fmt: skip


def write_report(report: ReportInput, path: Path) -> Path:
    """Render the report into ``path`` (folders created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(report), encoding="utf-8")
    return path


def _plots(report: ReportInput, expected: frozenset[str]) -> list[Plot]:
    if report.timeline is None:
        if "plots" not in expected:
            return []
        return [Plot("plot-timeline", "Timeline", None, "No timeline was recorded for this run.")]
    return timeline_plots(report.timeline, report.activities, load="load" in expected)


def _header(report: ReportInput) -> str:
    meta = report.metadata
    verdict = report.verdict
    css = "" if verdict is None else _VERDICT_CSS[verdict]
    shown = (verdict or NOT_JUDGED).upper()
    seconds = (meta.ended - meta.started).total_seconds()
    seed = "none" if meta.seed is None else str(meta.seed)
    summary = f'<p class="summary">{e(report.summary)}</p>' if report.summary else ""
    return (
        f"<header><h1>{e(report.title)}</h1>"
        f'<p><span class="badge kind">{e(report.kind)}</span>'
        f'<span class="badge verdict {css}" id="verdict">{e(shown)}</span></p>{summary}'
        f'<p class="meta">seed {e(seed)} · harness {e(meta.harness_version)} · commit {e(meta.commit)} · '
        f"{e(_wall(meta.started))} to {e(_wall(meta.ended))} ({seconds:.1f} s)</p></header>"
    )


def _nav(report: ReportInput, plots: Sequence[Plot]) -> str:
    entries = [(f"section-{p.id}", p.title.split(" (")[0]) for p in plots]
    if report.hypothesis is not None:
        entries.append(("section-hypothesis", "Hypothesis"))
    if report.activities:
        entries.append(("section-activities", "Activities"))
    if report.sections:
        entries.append(("section-figures", "Figures"))
    entries.append(("section-metadata", "Run"))
    links = "".join(f'<a href="#{e(anchor)}">{e(name)}</a>' for anchor, name in entries)
    return f"<nav>{links}</nav>"


def _section(key: str, title: str, content: str) -> str:
    return f'<section id="section-{e(key)}"><h2>{e(title)}</h2>{content}</section>'


def _empty_section(key: str, title: str, message: str) -> str:
    return _section(key, title, f'<p class="empty">{e(message)}</p>')


def _plot_section(plot: Plot) -> str:
    if plot.html is None:
        return _empty_section(plot.id, plot.title, plot.empty)
    return _section(plot.id, plot.title, plot.html)


def _hypothesis(hypothesis: Hypothesis | None, expected: bool) -> str:
    if hypothesis is None:
        return (
            _empty_section("hypothesis", "Steady-state hypothesis", "No hypothesis recorded.")
            if expected
            else ""
        )
    phases: list[tuple[str, list[ProbeResult] | None]] = [
        ("before", hypothesis.before),
        ("after", hypothesis.after),
        ("after cleanup", hypothesis.after_cleanup),
    ]
    names = list(dict.fromkeys(p.name for _, phase in phases if phase for p in phase))
    tolerance = {p.name: p.tolerance for _, phase in phases if phase for p in phase}
    rows = []
    for name in names:
        cells = [f"<td>{e(name)}</td><td>{e(tolerance[name])}</td>"]
        for _, phase in phases:
            cells.append(_probe_cell(phase, name))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{e(h)}</th>" for h in ["probe", "tolerance", *(label for label, _ in phases)])
    verdict, css = ("held", "ok") if hypothesis.holds else ("deviated", "failed")
    content = (
        f'<p>{e(hypothesis.title)}: <span class="{css}">{verdict}</span></p>'
        f'<table id="hypothesis"><tr>{head}</tr>{"".join(rows)}</table>'
    )
    return _section("hypothesis", "Steady-state hypothesis", content)


def _probe_cell(phase: list[ProbeResult] | None, name: str) -> str:
    if phase is None:
        return '<td class="empty">not run</td>'
    probe = next((p for p in phase if p.name == name), None)
    if probe is None:
        return '<td class="empty">-</td>'
    verdict = '<span class="ok">held</span>' if probe.held else '<span class="failed">deviated</span>'
    return f"<td>{e(_value(probe.value))} {verdict}</td>"


def _value(value: object) -> str:
    return "none" if value is None else str(value)


def _activities(report: ReportInput, expected: bool) -> str:
    if not report.activities:
        return _empty_section("activities", "Activities", "No activities recorded.") if expected else ""
    rows = "".join(_activity_row(report, a) for a in report.activities)
    head = "".join(f"<th>{h}</th>" for h in ("activity", "kind", "start", "duration", "status", "output"))
    return _section("activities", "Activities", f'<table id="activities"><tr>{head}</tr>{rows}</table>')


def _activity_row(report: ReportInput, activity: Activity) -> str:
    if report.timeline is not None:
        start = f"{(activity.start - report.timeline.origin_wall).total_seconds():.2f} s"
    else:
        start = _wall(activity.start)
    status = "ok" if activity.status == "succeeded" else "failed"
    name = activity.name + (" (background)" if activity.background else "")
    return (
        f'<tr><td>{e(name)}</td><td>{e(activity.kind)}</td><td class="num">{e(start)}</td>'
        f'<td class="num">{activity.duration.total_seconds():.2f} s</td>'
        f'<td class="{status}">{e(activity.status)}</td><td><pre>{e(activity.output)}</pre></td></tr>'
    )


def _figure_sections(sections: Sequence[FigureSection], expected: bool) -> str:
    if not sections:
        return _empty_section("figures", "Figures", "No figures measured.") if expected else ""
    tables = "".join(_figure_table(index, s) for index, s in enumerate(sections))
    return _section("figures", "Figures", tables)


def _figure_table(index: int, section: FigureSection) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("figure", "measured", "bound", "verdict", "detail"))
    rows = "".join(_figure_row(f) for f in section.figures)
    if not section.figures:
        rows = '<tr><td colspan="5" class="empty">no figures in this section</td></tr>'
    note = f"<p>{e(section.note)}</p>" if section.note else ""
    return (
        f"<h3>{e(section.title)}</h3>{note}"
        f'<table class="figures" id="figures-{index}"><tr>{head}</tr>{rows}</table>'
    )


def _figure_row(figure: Figure) -> str:
    measured = "none" if figure.measured is None else f"{figure.measured:g}{figure.unit}"
    bound = "" if figure.bound is None else f"{figure.comparison.value} {figure.bound:g}{figure.unit}"
    verdict = "info" if figure.bound is None else figure.mark
    css = {"TOO THIN": "inconclusive", "FAILED": "FAILED"}.get(verdict, verdict)
    evidence = " (evidence)" if figure.evidence else ""
    return (
        f'<tr><td>{e(figure.name)}{evidence}</td><td class="num">{e(measured)}</td>'
        f'<td class="num">{e(bound)}</td><td class="verdict {css}">{verdict}</td>'
        f"<td>{e(figure.detail)}</td></tr>"
    )


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    key = "table-" + "".join(ch if ch.isalnum() else "-" for ch in title.lower())
    return _section(key, title, f"<table><tr>{head}</tr>{body}</table>")


def _links(report: ReportInput, expected: bool) -> str:
    if not report.links:
        return _empty_section("links", "Other reports", "No other reports linked.") if expected else ""
    items = "".join(f'<li><a href="{e(link.href)}">{e(link.title)}</a></li>' for link in report.links)
    return _section("links", "Other reports", f"<ul>{items}</ul>")


def _notes(report: ReportInput) -> str:
    parts = []
    for note in report.notes:
        paragraphs = [p.strip() for p in note.text.split("\n\n") if p.strip()]
        parts.append(f"<h3>{e(note.title)}</h3>" + "".join(f"<p>{e(p)}</p>" for p in paragraphs))
    return _section("notes", "Notes", "".join(parts)) if parts else ""


def _metadata(report: ReportInput) -> str:
    meta = report.metadata
    rows = [
        ("seed", "none" if meta.seed is None else str(meta.seed)),
        ("harness version", meta.harness_version),
        ("commit", meta.commit),
        ("command", meta.command),
        ("started", _wall(meta.started)),
        ("ended", _wall(meta.ended)),
    ]
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return _section("metadata", "Run", f'<table id="metadata">{body}</table>')


def _wall(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
