"""The HTML report in a real headless Chromium: it loads offline without errors and draws the lanes a
reader looks for (instances, breakers, membership), and its plots zoom together."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.checks import Comparison, Figure
from harness.report import (
    FigureSection,
    HeadlessChromium,
    Hypothesis,
    ReportInput,
    demo_report,
    find_chromium,
    write_report,
)
from harness.timeline import Timeline
from tests.unit.test_pyramid import a_pyramid_report_with_a_hole_and_a_caught_bug

PLOTS = ("plot-overview", "plot-outcomes", "plot-breakers", "plot-membership")
DRAWN = " && ".join(f"document.querySelector('#{p} .main-svg')" for p in PLOTS)
# What a page may load by itself: itself, and what plotly makes in memory.
LOCAL = ("file://", "data:", "blob:", "about:")


@pytest.fixture(scope="module")
def browser() -> Iterator[HeadlessChromium]:
    """One headless Chromium for the module; outside CI a missing browser skips, in CI it fails."""
    executable = find_chromium()
    if executable is None:
        message = "Chromium not found (apt-get install chromium, or set HARNESS_CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must run the browser tests")
        pytest.skip(message)
    with HeadlessChromium(executable, timeout=60.0) as chromium:
        yield chromium


def opened(browser: HeadlessChromium, report: ReportInput, folder: Path) -> list[str]:
    """Open the rendered report, wait (bounded) until every plot is drawn; the problems seen so far."""
    page = write_report(report, folder / "report.html")
    browser.log.problems.clear()
    browser.log.requests.clear()
    browser.open(page.as_uri())
    assert browser.wait_for(DRAWN, timeout=30.0), "the plots were not drawn within 30 s"
    return browser.log.problems


def texts(browser: HeadlessChromium, selector: str) -> list[str]:
    found: Any = browser.evaluate(
        f"Array.from(document.querySelectorAll({selector!r})).map(function (n) {{ return n.textContent; }})"
    )
    return list(found)


@pytest.mark.behaviour("harness.report")
class TestReportInBrowser:
    def test_loads_offline_without_errors(self, browser: HeadlessChromium, tmp_path: Path) -> None:
        """No uncaught exception, console error, failed load or policy violation; only the file itself
        is requested, nothing from the network."""
        problems = opened(browser, demo_report(), tmp_path)
        assert problems == []
        assert [url for url in browser.log.requests if not url.startswith(LOCAL)] == []
        assert browser.evaluate("typeof Plotly") == "object"
        assert texts(browser, "#verdict") == ["HELD"]

    def test_shows_instances_breakers_and_membership_lanes(
        self, browser: HeadlessChromium, tmp_path: Path
    ) -> None:
        """The drawn legends and axes name users-1..3, the breaker lanes with their states, the
        membership lanes and the fault band."""
        assert opened(browser, demo_report(), tmp_path) == []
        assert texts(browser, "#plot-outcomes .legendtext") == [
            "users-1", "users-2", "users-3", "traffic POST /orders",
        ]  # fmt: skip
        assert sorted(texts(browser, "#plot-breakers .ytick text")) == [
            "users / users-1", "users / users-2", "users / users-3",
        ]  # fmt: skip
        assert texts(browser, "#plot-breakers .legendtext") == ["closed", "half_open", "open"]
        states = browser.evaluate(
            "document.getElementById('plot-breakers').data.map(function (t) {"
            " return [t.name, t.y.filter(function (y) { return y === 'users / users-2'; }).length]; })"
        )
        assert states == [["closed", 2], ["half_open", 2], ["open", 2]]
        assert sorted(texts(browser, "#plot-membership .ytick text")) == [
            "users: users-1", "users: users-2", "users: users-3",
        ]  # fmt: skip
        assert texts(browser, "#plot-overview .ytick text") == [
            "processes", "registry", "breakers", "background", "activities", "faults",
        ]  # fmt: skip
        assert "latency on users-2" in texts(browser, "#plot-overview .annotation-text")
        bands = browser.evaluate("document.getElementById('plot-breakers').layout.shapes.length")
        assert bands == 1
        assert texts(browser, "#figures-0 td.verdict") == ["ok", "info", "ok", "ok", "ok", "ok"]

    def test_an_inconclusive_run_shows_in_its_own_colour(
        self, browser: HeadlessChromium, tmp_path: Path
    ) -> None:
        """Evidence the harness could not produce (too few calls) makes the page INCONCLUSIVE, drawn in a
        colour that is neither held's nor deviated's, and the thin figure's cell says TOO THIN."""
        report = demo_report()
        thin = FigureSection(
            title="evidence for the breaker checks",
            figures=[Figure(name="calls in the window", measured=3, bound=20, comparison=Comparison.AT_LEAST,
                            evidence=True)],
        )  # fmt: skip
        assert (
            opened(browser, report.model_copy(update={"sections": [*report.sections, thin]}), tmp_path) == []
        )
        assert texts(browser, "#verdict") == ["INCONCLUSIVE"]
        last = len(report.sections)
        assert texts(browser, f"#figures-{last} td.verdict") == ["TOO THIN"]
        colours = {}
        for name, shown in (
            ("inconclusive", report.model_copy(update={"sections": [*report.sections, thin]})),
            ("held", report),
            ("deviated", report.model_copy(update={"hypothesis": _failed(report)})),
        ):
            assert opened(browser, shown, tmp_path / name) == []
            colours[name] = browser.evaluate(
                "getComputedStyle(document.getElementById('verdict')).backgroundColor"
            )
        print(f"verdict badge colours: {colours}")
        assert len(set(colours.values())) == 3
        assert "rgba(0, 0, 0, 0)" not in colours.values(), "every verdict has a colour of its own"

    def test_zooming_one_plot_zooms_every_plot(self, browser: HeadlessChromium, tmp_path: Path) -> None:
        """They share the time axis: a zoom on the timeline to the fault window applies to the others."""
        assert opened(browser, demo_report(), tmp_path) == []
        browser.evaluate(
            "Plotly.relayout(document.getElementById('plot-overview'), {'xaxis.range': [5, 11]})"
            ".then(function () { return true; })",
            await_promise=True,
        )
        zoomed = " && ".join(
            f"document.getElementById('{p}').layout.xaxis.range[0] === 5"
            f" && document.getElementById('{p}').layout.xaxis.range[1] === 11"
            for p in PLOTS
        )
        assert browser.wait_for(zoomed, timeout=10.0)
        assert browser.log.problems == []

    def test_markup_in_names_shows_as_text(self, browser: HeadlessChromium, tmp_path: Path) -> None:
        """An instance named like markup (plotly's own subset included: links, bold) is drawn as those
        characters; no link appears, nothing is loaded or run."""
        nasty = '<a href="https://example.org/">users</a><b>-1</b><img src=x onerror=alert(1)>'
        report = demo_report()
        assert report.timeline is not None
        events: list[dict[str, Any]] = [
            {**e.model_dump(mode="json"), "instance": nasty} if e.event == "client.attempt"
            and getattr(e, "instance", "") == "users-1" else e.model_dump(mode="json")
            for e in report.timeline.events
        ]  # fmt: skip
        timeline = Timeline.model_validate({**report.timeline.model_dump(mode="json"), "events": events})
        problems = opened(browser, report.model_copy(update={"timeline": timeline}), tmp_path)
        assert problems == []
        assert nasty in texts(browser, "#plot-outcomes .legendtext")
        assert f"users / {nasty}" in texts(browser, "#plot-breakers .ytick text")
        assert browser.evaluate("document.querySelectorAll('img, svg a, svg b').length") == 0
        assert [url for url in browser.log.requests if not url.startswith(LOCAL)] == []


@pytest.mark.behaviour("harness.pyramid")
def test_the_pyramid_report_loads_and_shows_its_matrix_and_bugs(
    browser: HeadlessChromium, tmp_path: Path
) -> None:
    """The pyramid's page (tables, no plots): no error, nothing from the network, the verdict, the hole and
    the cheapest catching level as a reader sees them."""
    page = write_report(a_pyramid_report_with_a_hole_and_a_caught_bug(), tmp_path / "report.html")
    browser.log.problems.clear()
    browser.log.requests.clear()
    browser.open(page.as_uri())
    assert browser.wait_for("document.readyState === 'complete'", timeout=30.0)
    assert browser.log.problems == []
    assert [url for url in browser.log.requests if not url.startswith(LOCAL)] == []
    assert texts(browser, "#verdict") == ["DEVIATED"]
    shown = browser.evaluate("document.body.innerText")
    assert "Behaviour x level" in shown
    assert "HOLE" in shown
    assert "unit (4.2 s)" in shown


def _failed(report: ReportInput) -> Hypothesis:
    """The report's hypothesis with its first probe failed: a deviated page."""
    assert report.hypothesis is not None
    probes = report.hypothesis.before
    first = probes[0].model_copy(update={"held": False})
    return report.hypothesis.model_copy(update={"before": [first, *probes[1:]]})
