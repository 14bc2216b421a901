"""The report's plots, drawn with plotly (its JavaScript is inlined once by the page, so they work offline).

Plotly rather than hand-drawn SVG: hover, zoom and legends come with it, and its JSON encoding escapes
``<``, ``>`` and ``/``, so nothing in the data can end a script. Plotly reads a subset of HTML in text,
so every string from the run is HTML-escaped before plotly sees it. Every plot shares one time axis
(seconds since the timeline's origin) with the fault windows drawn as bands.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
import plotly.io as pio  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from harness.report._model import Activity
from harness.report._series import (
    MARKER_LANES,
    Lane,
    Marker,
    Outcomes,
    bin_width,
    breaker_lanes,
    event_markers,
    load_series,
    membership_lanes,
    outcomes,
)
from harness.timeline import FaultSpan, Timeline

STATE_COLOURS = {"closed": "#2ca02c", "half_open": "#ff9f1c", "open": "#d62728"}
PALETTE = (
    "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939",
    "#843c39",
)  # fmt: skip
FAULT_FILL = "rgba(214, 39, 40, 0.12)"
TIME_AXIS = "seconds since start"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_LANE_HEIGHT = 34
_MARGIN = {"r": 20, "t": 60, "b": 40}
_CHAR_WIDTH = 7  # pixels per character of a lane label at plotly's default font
_MAX_LEFT = 320
_OVERVIEW_LANES = ("faults", "activities", "background", *MARKER_LANES)


@dataclass(frozen=True)
class Plot:
    """One plot of the report: its HTML fragment, or why there is none."""

    id: str
    title: str
    html: str | None
    empty: str = ""
    lanes: tuple[str, ...] = ()


def text(value: str) -> str:
    """A string from the run, safe for plotly's HTML-like text (it decodes the entities back)."""
    return html.escape(value, quote=False)


def timeline_plots(timeline: Timeline, activities: Sequence[Activity], *, load: bool) -> list[Plot]:
    """Every plot for a run with a timeline; the load plot only when ``load`` or when it has samples."""
    lanes = [*_OVERVIEW_LANES, *(lane.label for lane in breaker_lanes(timeline)),
             *(lane.label for lane in membership_lanes(timeline)[0])]  # fmt: skip
    left = min(_MAX_LEFT, max(60, _CHAR_WIDTH * max(len(label) for label in lanes) + 24))
    plots = [
        _overview(timeline, activities, left),
        _outcomes(timeline, left),
        _breakers(timeline, left),
        _membership(timeline, left),
    ]
    if load or load_series(timeline) is not None:
        plots.append(_load(timeline, left))
    return plots


def _figure_html(plot_id: str, figure: Any) -> str:
    fragment: str = pio.to_html(
        figure, full_html=False, include_plotlyjs=False, div_id=plot_id, config=PLOTLY_CONFIG
    )
    return fragment


def _layout(figure: Any, timeline: Timeline, *, height: int, left: int, rows: int = 1) -> None:
    """The shared look: one time axis from 0 to the end, at the same place in every plot (one left
    margin for all), fault windows as bands across every row."""
    figure.update_layout(
        template="plotly_white", height=height, margin={**_MARGIN, "l": left}, barmode="overlay",
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.03, "xanchor": "left", "x": 0.0},
    )  # fmt: skip
    figure.update_yaxes(automargin=False)
    figure.update_xaxes(range=[0.0, max(timeline.end, 0.001)], zeroline=False)
    if rows > 1:
        figure.update_xaxes(title_text=TIME_AXIS, row=rows, col=1)
    else:
        figure.update_xaxes(title_text=TIME_AXIS)
    for fault in timeline.faults():
        figure.add_shape(
            type="rect", xref="x", yref="paper", x0=fault.start, x1=fault.end, y0=0.0, y1=1.0,
            fillcolor=FAULT_FILL, line_width=0, layer="below",
        )  # fmt: skip


def _fault_label(fault: FaultSpan) -> str:
    return text(f"{fault.kind} on {fault.instance}")


def _overview(timeline: Timeline, activities: Sequence[Activity], left: int) -> Plot:
    figure = go.Figure()
    faults = timeline.faults()
    lanes: list[str] = []
    if faults:
        lanes.append("faults")
        figure.add_trace(_bars(
            "faults", "faults", [(f.start, f.end) for f in faults], "#d62728",
            [text(f"{f.window}: {f.kind} on {f.instance} ({f.description}) {f.start:.2f}-{f.end:.2f} s")
             for f in faults],
        ))  # fmt: skip
    for lane, chosen in (("activities", False), ("background", True)):
        shown = [a for a in activities if a.background == chosen]
        if not shown:
            continue
        lanes.append(lane)
        figure.add_trace(_bars(
            lane, lane, [_activity_span(timeline, a) for a in shown], "#1f77b4",
            [text(f"{a.kind} {a.name}: {a.status} in {a.duration.total_seconds():.2f} s") for a in shown],
            labels=[text(a.name) for a in shown],
        ))  # fmt: skip
    markers = event_markers(timeline)
    present = {m.lane for m in markers}
    for index, lane in enumerate(lane for lane in MARKER_LANES if lane in present):
        lanes.append(lane)
        figure.add_trace(
            _markers(lane, [m for m in markers if m.lane == lane], PALETTE[index % len(PALETTE)])
        )
    if not lanes:
        return Plot("plot-overview", "Timeline", None, "No faults, activities or events on the timeline.")
    _layout(figure, timeline, height=140 + _LANE_HEIGHT * len(lanes), left=left)
    figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)))
    for index, fault in enumerate(faults):
        figure.add_annotation(
            x=fault.start, y=1.0, yref="paper", yanchor="bottom", xanchor="left", showarrow=False,
            yshift=-14 * (index % 3), text=_fault_label(fault), font={"size": 11, "color": "#a50f15"},
        )  # fmt: skip
    return Plot("plot-overview", "Timeline", _figure_html("plot-overview", figure), lanes=tuple(lanes))


def _activity_span(timeline: Timeline, activity: Activity) -> tuple[float, float]:
    start = (activity.start - timeline.origin_wall).total_seconds()
    return start, start + activity.duration.total_seconds()


def _bars(
    name: str,
    lane: str,
    spans: Sequence[tuple[float, float]],
    colour: str,
    hover: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
) -> Any:
    """Horizontal bars on one lane, one per span."""
    return go.Bar(
        name=text(name), orientation="h", y=[text(lane)] * len(spans), base=[s for s, _ in spans],
        x=[max(e - s, 0.0) for s, e in spans], marker={"color": colour, "opacity": 0.75},
        hovertext=list(hover), hoverinfo="text", showlegend=False,
        text=list(labels) if labels is not None else None, textposition="inside", insidetextanchor="start",
    )  # fmt: skip


def _markers(name: str, markers: Sequence[Marker], colour: str, *, symbol: str = "diamond") -> Any:
    return go.Scatter(
        name=text(name), mode="markers", x=[m.at for m in markers], y=[text(m.lane) for m in markers],
        hovertext=[text(f"{m.at:.2f} s {m.text}") for m in markers], hoverinfo="text",
        marker={"color": colour, "symbol": symbol, "size": 9}, showlegend=False,
    )  # fmt: skip


def _outcomes(timeline: Timeline, left: int) -> Plot:
    width = bin_width(timeline.end)
    series = outcomes(timeline, width)
    title = f"Requests per instance ({width:g} s bins)"
    if not series:
        return Plot("plot-outcomes", title, None, "No requests on the timeline (no attempts, no traffic).")
    figure = make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=("successful requests per bin", "failed requests per bin",
                        "latency per bin in ms (p50 solid, p95 dotted)"),
    )  # fmt: skip
    for index, one in enumerate(series):
        _add_outcomes(figure, one, PALETTE[index % len(PALETTE)])
    _layout(figure, timeline, height=640, left=left, rows=3)
    return Plot("plot-outcomes", title, _figure_html("plot-outcomes", figure),
                lanes=tuple(s.name for s in series))  # fmt: skip


def _add_outcomes(figure: Any, series: Outcomes, colour: str) -> None:
    name = text(series.name)
    common = {"x": list(series.starts), "legendgroup": name, "name": name, "line": {"color": colour}}
    figure.add_trace(go.Scatter(y=list(series.ok), line_shape="hv", mode="lines", **common), row=1, col=1)
    figure.add_trace(
        go.Scatter(y=list(series.failed), line_shape="hv", mode="lines", showlegend=False, **common),
        row=2, col=1,
    )  # fmt: skip
    p50 = go.Scatter(
        y=list(series.p50_ms), mode="lines+markers", showlegend=False, connectgaps=False, **common
    )
    figure.add_trace(p50, row=3, col=1)
    p95 = {**common, "line": {"color": colour, "dash": "dot"}}
    figure.add_trace(
        go.Scatter(y=list(series.p95_ms), mode="lines", showlegend=False, connectgaps=False, **p95),
        row=3, col=1,
    )  # fmt: skip


def _lanes_figure(timeline: Timeline, lanes: Sequence[Lane], colours: dict[str, str], left: int) -> Any:
    figure = go.Figure()
    for state, colour in colours.items():
        spans = [(lane.label, span) for lane in lanes for span in lane.spans if span.label == state]
        figure.add_trace(go.Bar(
            name=text(state), orientation="h", y=[text(label) for label, _ in spans],
            base=[s.start for _, s in spans], x=[max(s.end - s.start, 0.0) for _, s in spans],
            marker={"color": colour}, hoverinfo="text", showlegend=True,
            hovertext=[text(f"{label}: {s.label} {s.start:.2f}-{s.end:.2f} s") for label, s in spans],
        ))  # fmt: skip
    _layout(figure, timeline, height=160 + _LANE_HEIGHT * len(lanes), left=left)
    figure.update_yaxes(categoryorder="array", categoryarray=[text(lane.label) for lane in reversed(lanes)])
    return figure


def _breakers(timeline: Timeline, left: int) -> Plot:
    lanes = breaker_lanes(timeline)
    title = "Breaker state per caller's breaker (service / instance)"
    if not lanes:
        return Plot("plot-breakers", title, None, "No breaker transitions or attempts on the timeline.")
    figure = _lanes_figure(timeline, lanes, STATE_COLOURS, left)
    return Plot("plot-breakers", title, _figure_html("plot-breakers", figure),
                lanes=tuple(lane.label for lane in lanes))  # fmt: skip


def _membership(timeline: Timeline, left: int) -> Plot:
    lanes, markers = membership_lanes(timeline)
    title = "Registry membership (instances listed by discovery; registry changes marked)"
    if not lanes:
        return Plot("plot-membership", title, None, "No membership or registry changes on the timeline.")
    figure = _lanes_figure(timeline, lanes, {"listed": "#1f77b4"}, left)
    if markers:
        figure.add_trace(_markers("registry change", markers, "#111111", symbol="x"))
    return Plot("plot-membership", title, _figure_html("plot-membership", figure),
                lanes=tuple(lane.label for lane in lanes))  # fmt: skip


def _load(timeline: Timeline, left: int) -> Plot:
    series = load_series(timeline)
    title = "Load generator: rate and latency percentiles"
    if series is None:
        return Plot("plot-load", title, None, "No load samples on the timeline.")
    figure = make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=("requests per second", "latency in ms", "users"),
    )  # fmt: skip
    x = list(series.at)
    rows: list[tuple[int, str, Sequence[float | None] | Sequence[int], str]] = [
        (1, "completed / s", series.rate, "#1f77b4"), (1, "failed / s", series.failures, "#d62728"),
        (2, "p50", series.p50_ms, "#2ca02c"), (2, "p95", series.p95_ms, "#ff9f1c"),
        (2, "p99", series.p99_ms, "#9467bd"), (3, "users", series.users, "#7f7f7f"),
    ]  # fmt: skip
    for row, name, values, colour in rows:
        figure.add_trace(
            go.Scatter(x=x, y=list(values), name=name, mode="lines", line={"color": colour}), row=row, col=1
        )
    _layout(figure, timeline, height=640, left=left, rows=3)
    return Plot("plot-load", title, _figure_html("plot-load", figure), lanes=tuple(r[1] for r in rows))
