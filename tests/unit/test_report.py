"""The HTML report: typed input, data shaped from the timeline, one self-contained page that escapes
everything and refers to nothing on the network."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import harness.report
from harness.checks._figures import Comparison, Figure
from harness.report import (
    Activity,
    FigureSection,
    Hypothesis,
    Link,
    Metadata,
    Note,
    ProbeResult,
    ReportInput,
    ReportKind,
    Table,
    demo_report,
    git_commit,
    render_report,
    write_report,
)
from harness.report._series import bin_width, breaker_lanes, membership_lanes, outcomes, percentile
from harness.timeline import Timeline
from harness.verdict import Verdict

ORIGIN = 100.0
WALL = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
NASTY = '<script>alert("x")</script>'


def event(name: str, at: float, source: str = "orchestrator", **fields: Any) -> dict[str, Any]:
    wall = (WALL + timedelta(seconds=at)).isoformat()
    return {"ts": wall, "mono": ORIGIN + at, "source": source, "event": name, **fields}


def attempt(at: float, instance: str, status: int | None = 200, duration: float = 0.01, **extra: Any) -> Any:
    outcome = "timeout" if status is None else f"status_{status // 100}xx"
    return event("client.attempt", at + duration, service="users", instance=instance, outcome=outcome,
                 status=status, sent_at=ORIGIN + at, duration=duration, **extra)  # fmt: skip


def transition(at: float, old: str, new: str, instance: str = "users-2", source: str = "orchestrator") -> Any:
    return event("client.breaker_transition", at, source, service="users", instance=instance, from_state=old,
                 to_state=new)  # fmt: skip


def membership(at: float, instances: list[str], source: str = "orchestrator") -> Any:
    return event("discovery.membership_changed", at, source, service="users", instances=instances)


def timeline(*records: dict[str, Any], end: float = 10.0) -> Timeline:
    return Timeline.model_validate(
        {
            "origin": ORIGIN,
            "origin_wall": WALL,
            "end": end,
            "events": sorted(records, key=lambda r: r["mono"]),
        }
    )


def metadata(**changes: Any) -> Metadata:
    fields = {"seed": 42, "harness_version": "0.1.0", "commit": "abc1234", "command": "harness chaos run x",
              "started": WALL, "ended": WALL + timedelta(seconds=10)}  # fmt: skip
    return Metadata(**{**fields, **changes})


def report(**changes: Any) -> ReportInput:
    fields: dict[str, Any] = {"title": "A run", "kind": ReportKind.CHAOS, "metadata": metadata()}
    return ReportInput(**{**fields, **changes})


def figure(measured: float | None, bound: float | None = 3, **extra: Any) -> Figure:
    return Figure(name="failed calls before OPEN", measured=measured, bound=bound, **extra)


class _Refs(HTMLParser):
    """Every tag and its attributes, to see what the page would load."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Refs()
    parser.feed(page)
    return parser.tags


@pytest.mark.behaviour("harness.report")
class TestPublicApi:
    def test_exported_names(self) -> None:
        """__all__ lists exactly the public names, plainly sorted, and each of them resolves."""
        assert harness.report.__all__ == sorted(harness.report.__all__)
        assert set(harness.report.__all__) >= {"ReportInput", "render_report", "write_report", "demo_report"}
        for name in harness.report.__all__:
            assert getattr(harness.report, name) is not None


@pytest.mark.behaviour("harness.report")
class TestInput:
    def test_verdict_from_figures_and_hypothesis(self) -> None:
        """Held when every bounded figure and probe holds, deviated on any miss, not judged on nothing."""
        held = ProbeResult(name="p99", value=12.0, held=True)
        assert report().verdict is None
        assert report(sections=[FigureSection(title="s", figures=[figure(3)])]).verdict is Verdict.HELD
        assert report(sections=[FigureSection(title="s", figures=[figure(4)])]).verdict is Verdict.DEVIATED
        assert report(sections=[FigureSection(title="s", figures=[figure(None)])]).verdict is Verdict.DEVIATED
        cleanup_failed = Hypothesis(title="h", before=[held], after=[held],
                                    after_cleanup=[held.model_copy(update={"held": False})])  # fmt: skip
        assert report(hypothesis=cleanup_failed).verdict is Verdict.DEVIATED

    @pytest.mark.behaviour("harness.verdicts")
    def test_thin_evidence_makes_a_section_inconclusive_not_deviated(self) -> None:
        """A check that missed is not judged when the evidence beside it was too thin; a deviation
        elsewhere, on sufficient evidence, still deviates the run."""
        thin = Figure(name="calls", measured=3, bound=10, comparison=Comparison.AT_LEAST, evidence=True)
        enough = thin.model_copy(update={"measured": 12})
        inconclusive = FigureSection(title="a", figures=[thin, figure(4)])
        deviated = FigureSection(title="b", figures=[enough, figure(4)])
        assert inconclusive.verdict is Verdict.INCONCLUSIVE
        assert deviated.verdict is Verdict.DEVIATED
        assert report(sections=[inconclusive]).verdict is Verdict.INCONCLUSIVE
        assert report(sections=[inconclusive, deviated]).verdict is Verdict.DEVIATED
        page = render_report(report(sections=[inconclusive]))
        assert 'data-verdict="inconclusive"' in page
        assert '<span class="badge verdict inconclusive" id="verdict">INCONCLUSIVE</span>' in page
        assert '<td class="verdict inconclusive">TOO THIN</td>' in page
        assert thin.line() == "calls: 3 (bound >= 10) TOO THIN"

    def test_unknown_fields_and_unsafe_values_are_refused(self) -> None:
        """extra="forbid" at the boundary; javascript: links, ragged tables and reversed activities fail."""
        with pytest.raises(ValidationError, match="extra"):
            ReportInput.model_validate({"title": "t", "kind": "chaos", "metadata": metadata(), "colour": 1})
        with pytest.raises(ValidationError, match="only relative paths"):
            Link(title="x", href="javascript:alert(1)")
        with pytest.raises(ValidationError, match="row 0 has 1 cells, expected 2"):
            Table(title="t", columns=["a", "b"], rows=[["1"]])
        with pytest.raises(ValidationError, match="ends before it starts"):
            Activity(name="a", kind="action", start=WALL, end=WALL - timedelta(seconds=1), status="succeeded")

    def test_times_without_a_zone_are_utc(self) -> None:
        """Chaos Toolkit's naive journal times are read as UTC, so they compare with the timeline's."""
        naive = datetime(2026, 11, 29, 10, 0, 1)
        activity = Activity(name="a", kind="probe", start=naive, end=naive, status="succeeded")
        assert activity.start == WALL + timedelta(seconds=1)
        assert metadata(started=naive, ended=naive).ended.tzinfo is UTC

    def test_round_trips_as_json(self) -> None:
        """A report input saved as JSON is read back equal (it can be rendered again later)."""
        original = demo_report()
        assert ReportInput.model_validate_json(original.model_dump_json()) == original


@pytest.mark.behaviour("harness.report")
class TestSeries:
    @pytest.mark.parametrize(
        ("duration", "width"),
        [
            pytest.param(0.0, 0.05, id="empty"),
            pytest.param(20.0, 0.5, id="twenty-seconds"),
            pytest.param(600.0, 10.0, id="ten-minutes"),
            pytest.param(7200.0, 120.0, id="two-hours"),
        ],
    )
    def test_bin_width_is_round_and_bounded(self, duration: float, width: float) -> None:
        """At most 60 bins, of a round width."""
        assert bin_width(duration) == width

    def test_percentile_is_nearest_rank(self) -> None:
        """p50 and p95 of 1..20 are 10 and 19; nothing gives None."""
        values = [float(v) for v in range(20, 0, -1)]
        assert (percentile(values, 0.5), percentile(values, 0.95), percentile([], 0.5)) == (10.0, 19.0, None)

    def test_outcomes_per_instance_by_time_sent(self) -> None:
        """Attempts count in the bin they were sent in, 5xx and timeouts as failures; the harness's
        own traffic is a series of its own."""
        line = timeline(
            attempt(0.1, "users-1"), attempt(0.2, "users-1", 503),
            attempt(0.45, "users-1", None, duration=0.3), attempt(0.6, "users-2", 404, duration=0.05),
            event("traffic.request", 0.9, "traffic", target="POST /orders", outcome="ok", latency=0.02),
            end=1.0,
        )  # fmt: skip
        series = {s.name: s for s in outcomes(line, 0.5)}
        assert list(series) == ["users-1", "users-2", "traffic POST /orders"]
        # the timeout sent at 0.45 s ended at 0.75 s: it counts in the first bin
        assert (series["users-1"].ok, series["users-1"].failed) == ((1, 0), (2, 0))
        assert series["users-2"].ok == (0, 1)  # a 4xx is the caller's answer, not the instance failing
        assert series["users-1"].p50_ms[1] is None
        assert series["users-1"].p50_ms[0] == pytest.approx(10.0)
        assert series["users-1"].p95_ms[0] == pytest.approx(300.0)
        assert series["traffic POST /orders"].ok == (0, 1)

    def test_breaker_lanes_per_caller_when_several_call(self) -> None:
        """One lane per instance; an instance two callers call gets a lane per caller, each its own spans."""
        line = timeline(
            attempt(0.1, "users-1"), transition(2.0, "closed", "open"), transition(3.0, "open", "half_open"),
            transition(2.5, "closed", "open", source="notifications"),
            attempt(0.2, "users-2", source="notifications"),
        )  # fmt: skip
        lanes = {lane.label: [(s.label, s.start, s.end) for s in lane.spans] for lane in breaker_lanes(line)}
        assert lanes == {
            "users / users-1": [("closed", 0.0, 10.0)],
            "users / users-2 (caller notifications)": [("closed", 0.0, 2.5), ("open", 2.5, 10.0)],
            "users / users-2 (caller orchestrator)": [
                ("closed", 0.0, 2.0), ("open", 2.0, 3.0), ("half_open", 3.0, 10.0),
            ],
        }  # fmt: skip

    def test_membership_spans_and_registry_markers(self) -> None:
        """An instance dropped and listed again has two spans; registry changes become markers."""
        line = timeline(
            membership(1.0, ["users-1", "users-2"]), membership(4.0, ["users-1"]),
            membership(6.0, ["users-1", "users-2"]),
            event("registry.expired", 3.5, "registry", instance_id="users-2", service="users", reason="ttl"),
        )  # fmt: skip
        lanes, markers = membership_lanes(line)
        spans = {lane.label: [(s.start, s.end) for s in lane.spans] for lane in lanes}
        assert spans == {"users: users-1": [(1.0, 10.0)], "users: users-2": [(1.0, 4.0), (6.0, 10.0)]}
        assert [(m.lane, m.at, m.text) for m in markers] == [("users: users-2", 3.5, "expired ttl")]


@pytest.mark.behaviour("harness.report")
class TestRendering:
    def test_every_section_of_a_chaos_report(self) -> None:
        """Plots, hypothesis, activities, figures, links, notes and the run's seed, version and commit."""
        page = render_report(demo_report(seed=7))
        for section in ("plot-overview", "plot-outcomes", "plot-breakers", "plot-membership", "hypothesis",
                        "activities", "figures", "links", "notes", "metadata"):  # fmt: skip
            assert f'id="section-{section}"' in page
        assert page.count("Plotly.newPlot(") == 4
        assert 'id="section-plot-load"' not in page  # a chaos run without load samples has no load plot
        assert re.search(r"<th>seed</th><td>7</td>", page)
        assert "<th>harness version</th>" in page
        assert "<th>commit</th>" in page
        assert 'data-verdict="held"' in page

    def test_figure_tables_show_measured_bound_and_verdict(self) -> None:
        """Each figure is one row: measured, bound with its comparison, ok / FAILED / info."""
        section = FigureSection(title="Breaker users-2", figures=[
            figure(3), figure(5, detail="too slow"), figure(None),
            Figure(name="probes", measured=2, bound=2, comparison=Comparison.EXACTLY),
            Figure(name="seconds to OPEN", measured=0.51, unit="s"),
        ])  # fmt: skip
        page = render_report(report(sections=[section]))
        rows = re.findall(r"<tr><td>(.*?)</td><td class=\"num\">(.*?)</td><td class=\"num\">(.*?)</td>"
                          r"<td class=\"verdict \w+\">(.*?)</td><td>(.*?)</td></tr>", page)  # fmt: skip
        assert rows == [
            ("failed calls before OPEN", "3", "&lt;= 3", "ok", ""),
            ("failed calls before OPEN", "5", "&lt;= 3", "FAILED", "too slow"),
            ("failed calls before OPEN", "none", "&lt;= 3", "FAILED", ""),
            ("probes", "2", "== 2", "ok", ""),
            ("seconds to OPEN", "0.51s", "", "info", ""),
        ]
        assert 'data-verdict="deviated"' in page

    def test_every_string_is_escaped(self) -> None:
        """Markup in any string of the run shows as text: in the tables and in what plotly draws."""
        line = timeline(attempt(0.1, NASTY), transition(1.0, "closed", "open", instance=NASTY),
                        membership(0.5, [NASTY]))  # fmt: skip
        started = WALL + timedelta(seconds=1)
        page = render_report(report(
            title=NASTY, summary=NASTY, timeline=line,
            sections=[FigureSection(title=NASTY, note=NASTY,
                                    figures=[Figure(name=NASTY, measured=1, detail=NASTY)])],
            hypothesis=Hypothesis(title=NASTY, before=[ProbeResult(name=NASTY, value=NASTY, held=True)]),
            activities=[Activity(name=NASTY, kind="action", start=started, end=started, status="failed",
                                 output=NASTY)],
            tables=[Table(title=NASTY, columns=[NASTY], rows=[[NASTY]])],
            links=[Link(title=NASTY, href='x.html"><script>alert(1)</script>')],
            notes=[Note(title=NASTY, text=NASTY)], metadata=metadata(command=NASTY),
        ))  # fmt: skip
        assert "<script>alert" not in page
        assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 12
        # plotly receives the escaped text (it decodes entities), never markup: a raw "<" from the data
        # would be encoded as \u003c in its JSON
        assert "\\u003cscript" not in page
        assert '"name":"&lt;script&gt;alert' in page

    def test_nothing_refers_to_the_network(self) -> None:
        """No script, style, font or image from anywhere; only the links the input gave are URLs; the
        policy forbids connecting anywhere."""
        given = "https://ci.example.org/run/7/load.html"
        page = render_report(demo_report().model_copy(update={"links": [Link(title="load", href=given)]}))
        tags = tags_of(page)
        assert not [attrs for tag, attrs in tags if tag == "script" and "src" in attrs]
        assert not [tag for tag, _ in tags if tag in ("link", "img", "iframe", "object", "embed")]
        urls = [v for _, attrs in tags for k, v in attrs.items() if k in ("src", "href") and v and "//" in v]
        assert urls == [given]
        policy = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv"))
        assert policy is not None
        assert "connect-src 'none'" in policy
        assert "default-src 'none'" in policy
        assert not re.search(r"url\(\s*['\"]?https?:", page)
        assert "@import" not in page

    def test_sections_without_data_say_so(self) -> None:
        """A chaos run with an empty timeline draws no plot and says, per section, that there is no data;
        no plotly is inlined for nothing."""
        page = render_report(report(timeline=timeline(end=0.0)))
        for message in (
            "No faults, activities or events on the timeline.", "No requests on the timeline",
            "No breaker transitions or attempts", "No membership or registry changes",
            "No hypothesis recorded.", "No activities recorded.", "No figures measured.",
        ):  # fmt: skip
            assert message in page
        assert "Plotly.newPlot(" not in page
        assert len(page) < 20_000
        assert 'data-verdict="not judged"' in page
        assert "No timeline was recorded for this run." in render_report(report())

    def test_pyramid_report_has_tables_and_no_plots(self) -> None:
        """The pyramid's report: its matrix as a table, no timeline sections, no hypothesis."""
        matrix = Table(title="Behaviour x level", columns=["behaviour", "unit", "chaos"],
                       rows=[["breaker.opens", "3 passed", "1 failed"]])  # fmt: skip
        page = render_report(report(kind=ReportKind.PYRAMID, tables=[matrix]))
        assert "<td>breaker.opens</td><td>3 passed</td><td>1 failed</td>" in page
        assert "section-plot" not in page
        assert "section-hypothesis" not in page

    def test_load_samples_get_their_plot(self) -> None:
        """Load samples are drawn; a load report without them says so."""
        samples = [event("load.sample", t, "locust", users=10, rate=50.0, p50=12.0, p95=30.0, p99=41.0)
                   for t in (1.0, 2.0, 3.0)]  # fmt: skip
        drawn = render_report(report(kind=ReportKind.LOAD, timeline=timeline(*samples)))
        assert 'id="section-plot-load"' in drawn
        assert drawn.count("Plotly.newPlot(") == 1
        empty = render_report(report(kind=ReportKind.LOAD, timeline=timeline(attempt(0.1, "users-1"))))
        assert "No load samples on the timeline." in empty

    def test_write_report_creates_the_folder(self, tmp_path: Path) -> None:
        """write_report writes the same page render_report returns, folders included."""
        path = write_report(report(), tmp_path / "run" / "report.html")
        assert path.read_text(encoding="utf-8") == render_report(report())


@pytest.mark.behaviour("harness.report")
class TestMetadata:
    def test_commit_unknown_outside_a_checkout(self, tmp_path: Path) -> None:
        """Outside a git checkout the commit is "unknown", never an error."""
        assert git_commit(tmp_path) == "unknown"
