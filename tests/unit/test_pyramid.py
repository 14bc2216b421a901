"""The pyramid's machinery without running a level: the catalogue, the marker, JUnit XML, the matrix, the
seeded bugs' patches on a copy, the verdicts of a level against a bug, the results and their rendering."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.errors import ConfigError
from harness.faults import ToxicType
from harness.pyramid import (
    BEHAVIOURS,
    KNOWN_LEVELS,
    SEEDED_BUGS,
    BugResult,
    CaseResult,
    Catch,
    Cell,
    LevelRun,
    LevelVerdict,
    MutantsResult,
    Outcome,
    Patch,
    PatchRefused,
    PyramidResult,
    PyramidSettings,
    SeededBug,
    UnknownBehaviour,
    apply_bug,
    behaviour,
    behaviours_of,
    build_rows,
    check_bugs,
    choose_levels,
    copy_source,
    discover_levels,
    judge,
    junit_properties,
    level_environment,
    matrix_lines,
    mutants_lines,
    mutants_markdown,
    patched_texts,
    pyramid_markdown,
    pytest_command,
    read_junit,
    read_pyramid,
    run_pyramid,
    seeded_bugs,
    write_result,
)
from harness.pyramid._matrix import failures_of, tally
from harness.pyramid._mutants import MACHINERY_TESTS
from harness.pyramid._report import pyramid_report
from harness.pyramid._results import LevelSource
from harness.report import ReportInput, render_report

ROOT = Path(__file__).parents[2]
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="tests.unit.test_breaker.TestOpening" name="test_opens" time="0.010">
  <properties><property name="level" value="unit"/><property name="behaviour" value="breaker.opens"/>
  <property name="behaviour" value="breaker.slow_calls"/></properties></testcase>
<testcase classname="tests.unit.test_breaker.TestOpen" name="test_rejects" time="0.020">
  <properties><property name="level" value="unit"/>
  <property name="behaviour" value="breaker.rejects_while_open"/></properties>
  <failure message="assert 1 == 2&#10;second line">trace</failure></testcase>
<testcase classname="tests.chaos.test_x" name="test_setup_breaks" time="1.5">
  <error message="fixture failed">trace</error></testcase>
<testcase classname="tests.unit.test_x" name="test_skipped" time="0">
  <properties><property name="behaviour" value="breaker.closes"/></properties>
  <skipped message="no TOXIPROXY_URL"/></testcase>
<testcase classname="odd" name="test_without_a_package" time="x"/>
</testsuite></testsuites>
"""


def case(level: str, outcome: Outcome, *behaviours: str, node: str = "t::x") -> CaseResult:
    return CaseResult(node, level, behaviours, outcome, 0.1)


def pyramid_result(cases: list[CaseResult], levels: tuple[str, ...], *, judged: bool = True) -> PyramidResult:
    rows, uncatalogued = build_rows(cases, levels)
    summaries = [
        tally([c for c in cases if c.level == level]).summary(level, LevelSource.READ, f"{level}.xml")
        for level in levels
    ]
    return PyramidResult(
        command="harness pyramid", started=T0, ended=T0, levels=summaries, rows=rows,
        failures=failures_of(cases), uncatalogued=uncatalogued, holes_judged=judged,
    )  # fmt: skip


def every_behaviour_held(level: str = "unit") -> list[CaseResult]:
    return [case(level, Outcome.PASSED, b.id) for b in BEHAVIOURS]


def a_pyramid_report_with_a_hole_and_a_caught_bug() -> ReportInput:
    """The first catalogued behaviour held by no test; breaker.never_opens caught at unit in 4.2 s."""
    pyramid = pyramid_result(every_behaviour_held()[1:], ("unit",))
    verdict = LevelVerdict(
        level="unit", verdict=Catch.CAUGHT, seconds=4.2, exit_code=1, test="tests.unit.t::a"
    )
    bug = BugResult(id="breaker.never_opens", description="d", behaviours=["breaker.opens"], files=[],
                    levels=[verdict])  # fmt: skip
    mutants = MutantsResult(
        command="c", started=T0, ended=T0, cheapest_only=True, levels=["unit"], bugs=[bug]
    )
    return pyramid_report(pyramid, mutants)


@pytest.mark.behaviour("harness.pyramid")
class TestCatalogue:
    def test_ids_are_unique_and_grouped_in_order(self) -> None:
        """Every id once, of the form area.name, rows of one group together."""
        ids = [b.id for b in BEHAVIOURS]
        assert len(ids) == len(set(ids))
        groups = [b.group for b in BEHAVIOURS]
        assert groups == sorted(groups, key=list(type(groups[0])).index)

    def test_every_contract_experiment_and_toxic_has_its_row(self) -> None:
        """Each committed pact, each chaos experiment file and each toxic type is a behaviour."""
        ids = {b.id for b in BEHAVIOURS}
        pacts = {f"contract.{p.stem}" for p in (ROOT / "contracts").glob("*.json")}
        experiments = {
            "experiment." + p.stem.split("-", 1)[1].replace("-", "_")
            for p in (ROOT / "chaos_experiments").glob("*.json")
        }
        toxics = {f"toxic.{t.value}" for t in ToxicType}
        assert len(pacts) == 10
        assert len(experiments) == 10
        assert len(toxics) == 9
        assert (pacts | experiments | toxics) - ids == set()

    def test_an_unknown_id_is_named_with_the_known_ones_of_its_area(self) -> None:
        """A typo is refused naming itself and its neighbours, as a configuration error."""
        with pytest.raises(
            UnknownBehaviour, match=r"'breaker\.half_open_probe'.*breaker\.half_open_probes"
        ) as info:
            behaviour("breaker.half_open_probe")
        assert isinstance(info.value, ConfigError)
        assert info.value.exit_code == 2


@pytest.mark.behaviour("harness.pyramid")
class TestMarker:
    def test_ids_of_every_marker_once_in_order(self) -> None:
        """Class and function markers add up; an id named twice counts once."""
        no_keywords: dict[str, object] = {}
        marks = [(("breaker.opens", "breaker.closes"), no_keywords), (("breaker.opens",), no_keywords)]
        assert behaviours_of(marks) == ("breaker.opens", "breaker.closes")

    def test_by_id_gives_each_case_its_own(self) -> None:
        """A parametrized test's case finds its behaviours by its id, one or a list."""
        by_id = {"01": ["experiment.latency_on_one_users_instance", "breaker.opens"], "07": "toxic.slicer"}
        marks: list[tuple[tuple[str, ...], dict[str, object]]] = [((), {"by_id": by_id})]
        assert behaviours_of(marks, "01") == ("experiment.latency_on_one_users_instance", "breaker.opens")
        assert behaviours_of(marks, "07") == ("toxic.slicer",)

    @pytest.mark.parametrize(
        ("marks", "param_id", "message"),
        [
            pytest.param([(("breaker.nope",), {})], None, "unknown behaviour 'breaker.nope'", id="unknown"),
            pytest.param([((), {"by_id": {"01": "toxic.slicer"}})], "02", "no behaviour for the case '02'",
                         id="case-not-mapped"),
            pytest.param([((), {"by_id": {"01": "toxic.slicer"}})], None, "not parametrized", id="not-param"),
            pytest.param([((), {"ids": ["toxic.slicer"]})], None, "not ids", id="unknown-keyword"),
            pytest.param([((3,), {})], None, "strings, got 3", id="not-a-string"),
        ],
    )  # fmt: skip
    def test_mistakes_are_config_errors(
        self, marks: list[tuple[tuple[object, ...], dict[str, object]]], param_id: str | None, message: str
    ) -> None:
        """What collection turns into a usage error naming the test."""
        with pytest.raises(ConfigError, match=message):
            behaviours_of(marks, param_id)

    def test_properties_carry_the_level_then_each_behaviour(self) -> None:
        """What the JUnit XML gets for one test case."""
        assert junit_properties("chaos", ["toxic.latency", "toxic.slicer"]) == [
            ("level", "chaos"), ("behaviour", "toxic.latency"), ("behaviour", "toxic.slicer"),
        ]  # fmt: skip


@pytest.mark.behaviour("harness.pyramid")
class TestJunit:
    def test_cases_with_level_behaviours_outcome_and_message(self, tmp_path: Path) -> None:
        """Failures and errors fail, skips skip; the level is the property's, else the class name's."""
        path = tmp_path / "unit.xml"
        path.write_text(JUNIT)
        cases = read_junit(path)
        assert [(c.level, c.outcome, c.behaviours) for c in cases] == [
            ("unit", Outcome.PASSED, ("breaker.opens", "breaker.slow_calls")),
            ("unit", Outcome.FAILED, ("breaker.rejects_while_open",)),
            ("chaos", Outcome.FAILED, ()),
            ("unit", Outcome.SKIPPED, ("breaker.closes",)),
            ("unit", Outcome.PASSED, ()),
        ]
        assert cases[1].node == "tests.unit.test_breaker.TestOpen::test_rejects"
        assert cases[1].message == "assert 1 == 2"
        assert cases[4].seconds == 0.0

    def test_a_matrix_from_the_xml_a_ci_job_kept(self, tmp_path: Path) -> None:
        """--from: every *.xml below the folder; a file of one level's run gives that level its wall time; a
        case of no known level counts under its file's name."""
        (tmp_path / "mixed.xml").write_text(JUNIT)
        (tmp_path / "jobs").mkdir()
        (tmp_path / "jobs" / "load.xml").write_text(
            '<testsuites><testsuite time="95.5"><testcase classname="tests.load.test_a" name="t">'
            '<properties><property name="behaviour" value="load.shares"/></properties></testcase>'
            "</testsuite></testsuites>"
        )
        result = run_pyramid(PyramidSettings(from_dir=tmp_path), command="harness pyramid --from x")
        assert [(s.level, s.tests, s.seconds) for s in result.levels] == [
            ("unit", 3, None), ("chaos", 1, None), ("load", 1, 95.5), ("mixed", 1, None),
        ]  # fmt: skip
        assert [f.node for f in result.failures] == [
            "tests.unit.test_breaker.TestOpen::test_rejects", "tests.chaos.test_x::test_setup_breaks",
        ]  # fmt: skip
        assert result.holes_judged

    def test_an_unreadable_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A truncated file names itself."""
        path = tmp_path / "broken.xml"
        path.write_text("<testsuites><testcase")
        with pytest.raises(ConfigError, match=r"broken\.xml"):
            read_junit(path)


@pytest.mark.behaviour("harness.pyramid")
class TestMatrix:
    def test_cells_count_each_levels_tests_by_outcome(self) -> None:
        """A cell per behaviour and level; passed, failed and skipped counted apart."""
        cases = [
            case("unit", Outcome.PASSED, "breaker.opens"),
            case("unit", Outcome.FAILED, "breaker.opens"),
            case("chaos", Outcome.PASSED, "breaker.opens", "toxic.latency"),
            case("chaos", Outcome.SKIPPED, "toxic.latency"),
        ]
        rows, _ = build_rows(cases, ("unit", "chaos"))
        by_id = {row.id: row for row in rows}
        assert by_id["breaker.opens"].cells == {"unit": Cell(passed=1, failed=1), "chaos": Cell(passed=1)}
        assert by_id["breaker.opens"].cells["unit"].text() == "1/2 FAILED"
        assert by_id["toxic.latency"].cells["chaos"].text() == "1 (+1 skipped)"

    def test_a_behaviour_no_test_ran_for_is_a_hole(self) -> None:
        """Held by nothing, or only by skipped tests: a hole, which fails a judged matrix."""
        cases = [*every_behaviour_held()[2:], case("unit", Outcome.SKIPPED, BEHAVIOURS[1].id)]
        result = pyramid_result(cases, ("unit",))
        assert result.holes == [BEHAVIOURS[0].id, BEHAVIOURS[1].id]
        assert not result.passed
        assert "HOLE" in "\n".join(matrix_lines(result))

    def test_holes_of_a_partial_run_are_shown_not_judged(self) -> None:
        """With only some levels run, a behaviour may be held elsewhere: listed, but the run passes."""
        result = pyramid_result(every_behaviour_held()[1:], ("unit",), judged=False)
        assert result.holes == [BEHAVIOURS[0].id]
        assert result.passed
        assert "not judged" in "\n".join(matrix_lines(result))

    def test_a_failed_test_fails_the_matrix_and_is_listed(self) -> None:
        """Every behaviour held, one test failed: FAILED, with the test named."""
        cases = [*every_behaviour_held(), case("unit", Outcome.FAILED, node="tests.unit.test_x::test_y")]
        result = pyramid_result(cases, ("unit",))
        assert [f.node for f in result.failures] == ["tests.unit.test_x::test_y"]
        assert not result.passed
        assert matrix_lines(result)[-1].startswith("FAILED (1 failed tests)")

    def test_ids_the_catalogue_lacks_are_reported(self) -> None:
        """XML from another version of the catalogue: its unknown ids are listed, not dropped silently."""
        _, uncatalogued = build_rows([case("unit", Outcome.PASSED, "breaker.gone")], ("unit",))
        assert uncatalogued == ["breaker.gone"]


@pytest.mark.behaviour("harness.pyramid")
class TestSeededBugs:
    def test_the_catalogue_has_the_fifteen_faults_of_the_issue(self) -> None:
        """Fifteen bugs, unique ids, each breaking catalogued behaviours."""
        assert len(SEEDED_BUGS) == 15
        assert len({bug.id for bug in SEEDED_BUGS}) == 15
        assert seeded_bugs(["toxic.latency_10x", "breaker.never_opens"]) == (SEEDED_BUGS[0], SEEDED_BUGS[-1])

    def test_every_bug_applies_to_this_source_exactly_once(self) -> None:
        """A refactor that moves a patched line shows up here as a broken entry."""
        assert check_bugs(SEEDED_BUGS, ROOT) == {}

    @pytest.mark.parametrize(("text", "found"), [("nowhere in the file", 0), ("def ", 2)])
    def test_a_patch_that_does_not_apply_exactly_once_is_refused(
        self, tmp_path: Path, text: str, found: int
    ) -> None:
        """Absent or ambiguous: refused with the count, and the file is left as it was."""
        (tmp_path / "m.py").write_text("def a(): pass\ndef b(): pass\n")
        bug = SeededBug("x.y", "d", ("breaker.opens",), (Patch("m.py", text, "X"),))
        with pytest.raises(PatchRefused, match=f"occurs {found} times in m.py"):
            apply_bug(bug, tmp_path)
        assert (tmp_path / "m.py").read_text() == "def a(): pass\ndef b(): pass\n"
        assert check_bugs([bug], tmp_path) == {"x.y": str(PatchRefused("x.y", "m.py", found, text))}

    def test_patches_of_one_file_apply_in_order(self, tmp_path: Path) -> None:
        """The second patch sees what the first left."""
        (tmp_path / "m.py").write_text("a = 1\n")
        bug = SeededBug(
            "x.y", "d", ("breaker.opens",), (Patch("m.py", "a = 1", "a = 2"), Patch("m.py", "a = 2", "a = 3"))
        )
        assert patched_texts(bug, tmp_path) == {"m.py": "a = 3\n"}

    def test_a_bugs_copy_differs_from_the_source_only_where_patched(self, tmp_path: Path) -> None:
        """The copy has the bug, the source does not; caches and version control stay behind."""
        source = tmp_path / "source"
        (source / "pkg" / "__pycache__").mkdir(parents=True)
        (source / ".git").mkdir()
        (source / "pkg" / "m.py").write_text("LIMIT = 10\nOTHER = 1\n")
        (source / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"\0")
        bug = SeededBug("x.y", "d", ("breaker.opens",), (Patch("pkg/m.py", "LIMIT = 10", "LIMIT = 1000"),))
        copy = copy_source(source, tmp_path / "copy")
        assert apply_bug(bug, copy) == [copy / "pkg" / "m.py"]
        assert (copy / "pkg" / "m.py").read_text() == "LIMIT = 1000\nOTHER = 1\n"
        assert (source / "pkg" / "m.py").read_text() == "LIMIT = 10\nOTHER = 1\n"
        assert not (copy / ".git").exists()
        assert not (copy / "pkg" / "__pycache__").exists()

    def test_a_real_bug_changes_the_copy_of_this_project(self, tmp_path: Path) -> None:
        """The latency toxic's copy divides by 100; this project's file still divides by 1000."""
        bug = seeded_bugs(["toxic.latency_10x"])[0]
        relative = "harness/faults/_toxics.py"
        copy = tmp_path / "copy"
        (copy / "harness/faults").mkdir(parents=True)
        (copy / relative).write_text((ROOT / relative).read_text())
        apply_bug(bug, copy)
        assert "return delay / 100.0\n" in (copy / relative).read_text()
        assert "return delay / 100.0\n" not in (ROOT / relative).read_text()

    def test_an_unknown_bug_is_named_with_the_known_ones(self) -> None:
        """--bugs with a typo: a configuration error listing the catalogue."""
        with pytest.raises(
            ConfigError, match=r"unknown seeded bug breaker\.nope; known: breaker\.never_opens"
        ):
            seeded_bugs(["breaker.nope"])


def level_run(tmp_path: Path, exit_code: int | None, xml: str | None) -> LevelRun:
    junit = tmp_path / "unit.xml"
    if xml is not None:
        junit.write_text(xml)
    return LevelRun("unit", exit_code, 3.21, junit, tmp_path / "unit.log")


@pytest.mark.behaviour("harness.pyramid")
class TestVerdicts:
    def test_a_failed_test_catches_the_bug_and_is_named(self, tmp_path: Path) -> None:
        """The first failing test is what caught it."""
        verdict = judge(level_run(tmp_path, 1, JUNIT))
        assert (verdict.verdict, verdict.test, verdict.seconds) == (
            Catch.CAUGHT, "tests.unit.test_breaker.TestOpen::test_rejects", 3.2,
        )  # fmt: skip

    def test_a_clean_run_missed_it(self, tmp_path: Path) -> None:
        """Exit 0 and no failure: the level did not see the bug."""
        passing = (
            '<testsuites><testsuite><testcase classname="tests.unit.t" name="a"/></testsuite></testsuites>'
        )
        assert judge(level_run(tmp_path, 0, passing)).verdict is Catch.MISSED

    def test_a_run_stopped_at_its_deadline_or_broken_is_no_catch(self, tmp_path: Path) -> None:
        """Timed out, or a usage error without any failed test: neither counts as caught."""
        assert judge(level_run(tmp_path, None, None)).verdict is Catch.TIMED_OUT
        assert judge(level_run(tmp_path, 4, None)).verdict is Catch.ERROR

    def test_the_cheapest_catch_is_the_lowest_level(self) -> None:
        """Levels are listed bottom up; the cheapest is the first that caught the bug."""
        levels = [
            LevelVerdict(level="unit", verdict=Catch.MISSED, seconds=10, exit_code=0),
            LevelVerdict(level="integration", verdict=Catch.CAUGHT, seconds=40, exit_code=1, test="t"),
            LevelVerdict(level="chaos", verdict=Catch.CAUGHT, seconds=90, exit_code=1, test="u"),
        ]
        bug = BugResult(id="b", description="d", behaviours=[], files=[], levels=levels)
        assert bug.caught_by == ["integration", "chaos"]
        assert bug.cheapest == levels[1]
        missed = BugResult(id="m", description="d", behaviours=[], files=[], levels=levels[:1])
        result = MutantsResult(command="c", started=T0, ended=T0, cheapest_only=False, levels=["unit",
                               "integration", "chaos"], bugs=[bug, missed])  # fmt: skip
        assert result.missed == ["m"]
        assert not result.passed
        lines = mutants_lines(result)
        assert any("integration (40.0 s)" in line for line in lines)
        assert lines[-1] == "FAILED (not caught: m): 1 of 2 seeded bugs caught"


@pytest.mark.behaviour("harness.pyramid")
class TestLevels:
    def test_known_levels_in_pyramid_order_then_new_ones(self, tmp_path: Path) -> None:
        """A new level folder with tests is a column too, after the known ones."""
        for name in ("e2e", "unit", "smoke", "_helpers", "empty"):
            (tmp_path / "tests" / name).mkdir(parents=True)
        for name in ("e2e", "unit", "smoke", "_helpers"):
            (tmp_path / "tests" / name / "test_a.py").write_text("")
        assert discover_levels(tmp_path) == ("unit", "e2e", "smoke")
        assert discover_levels(ROOT) == KNOWN_LEVELS

    def test_an_unknown_level_is_named_with_the_real_ones(self) -> None:
        """--levels with a typo: a configuration error."""
        with pytest.raises(ConfigError, match="unknown level units; the levels here: unit, chaos"):
            choose_levels(("unit", "chaos"), ["units"])
        assert choose_levels(("unit", "chaos"), ["chaos", "unit"]) == ("unit", "chaos")

    def test_each_level_is_one_pytest_with_junit_xml(self, tmp_path: Path) -> None:
        """Mutant runs stop at the first failing test; the root leads the import path of every process."""
        command = pytest_command("chaos", tmp_path / "chaos.xml", fail_fast=True)
        assert command[1:5] == ["-m", "pytest", "tests/chaos", f"--junitxml={tmp_path / 'chaos.xml'}"]
        assert command[-1] == "-x"
        assert "-x" not in pytest_command("chaos", tmp_path / "chaos.xml", fail_fast=False)
        ignoring = pytest_command("unit", tmp_path / "unit.xml", fail_fast=True, ignore=MACHINERY_TESTS)
        assert "--ignore-glob=tests/*/test_pyramid*.py" in ignoring
        env = level_environment(tmp_path, {"PYTHONPATH": "/elsewhere"})
        assert env["PYTHONPATH"].split(":") == [str(tmp_path), "/elsewhere"]


@pytest.mark.behaviour("harness.pyramid")
class TestResults:
    def test_a_matrix_round_trips_through_its_json(self, tmp_path: Path) -> None:
        """Versioned JSON, read back equal; a field it does not know is refused."""
        result = pyramid_result(every_behaviour_held(), ("unit",))
        path = write_result(result, tmp_path)
        assert path.name == "pyramid.json"
        assert json.loads(path.read_text())["schema_version"] == 1
        assert read_pyramid(path) == result
        with pytest.raises(ValidationError):
            PyramidResult.model_validate({**result.model_dump(), "extra": 1})

    def test_the_report_shows_the_matrix_and_the_seeded_bugs(self) -> None:
        """One page: the behaviour x level table, holes marked, and per bug its catching levels."""
        report = a_pyramid_report_with_a_hole_and_a_caught_bug()
        html = render_report(report)
        assert report.verdict == "deviated"  # the hole
        assert "Behaviour x level" in html
        assert "HOLE" in html
        assert "breaker.never_opens" in html
        assert "unit (4.2 s)" in html

    def test_the_job_summary_is_markdown_tables(self) -> None:
        """For $GITHUB_STEP_SUMMARY: the matrix with its holes, the levels, and the bugs with the cheapest."""
        pyramid = pyramid_result(every_behaviour_held()[1:], ("unit",))
        text = "\n".join(pyramid_markdown(pyramid))
        assert f"| `{BEHAVIOURS[0].id}` | - | **HOLE** |" in text
        assert f"| `{BEHAVIOURS[1].id}` | 1 |  |" in text
        verdict = LevelVerdict(level="unit", verdict=Catch.CAUGHT, seconds=4.2, exit_code=1, test="t")
        bug = BugResult(id="b", description="d", behaviours=[], files=[], levels=[verdict])
        mutants = MutantsResult(
            command="c", started=T0, ended=T0, cheapest_only=True, levels=["unit"], bugs=[bug]
        )
        assert "| `b` | caught 4 s | unit (4.2 s) |" in mutants_markdown(mutants)
