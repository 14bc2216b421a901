"""``harness pyramid`` as CI runs it: two seeded bugs caught at the unit level (the smoke check that the
machinery works), a mutated copy that every child process imports, the matrix from JUnit XML, a test
naming an unknown behaviour refused at collection, and bad arguments."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.pyramid import apply_bug, copy_source, level_environment, run_level, seeded_bugs

from ._run import harness

ROOT = Path(__file__).parents[2]
# Each with the test file that must catch it (not the pyramid's own tests, which are left out of mutant runs).
SMOKE_BUGS = {
    "breaker.never_opens": "tests.unit.test_breaker.",
    "toxic.latency_10x": "tests.unit.test_toxics.",
}


@pytest.mark.behaviour("harness.pyramid")
class TestSeededBugs:
    def test_two_seeded_bugs_are_caught_at_the_unit_level(self, tmp_path: Path) -> None:
        """The CI smoke check: each bug in its own copy, caught by the unit level, results and report kept."""
        report = tmp_path / "report"
        done = harness(
            "pyramid", "--root", str(ROOT), "--mutants", "--bugs", ",".join(SMOKE_BUGS), "--levels", "unit",
            "--cheapest", "--report", str(report), timeout=300,
        )  # fmt: skip
        print(done.stdout)
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads((report / "mutants.json").read_text())
        assert result["schema_version"] == 1
        assert [bug["id"] for bug in result["bugs"]] == list(SMOKE_BUGS)
        for bug in result["bugs"]:
            [level] = bug["levels"]
            assert (level["level"], level["verdict"]) == ("unit", "caught"), bug
            assert level["test"].startswith(SMOKE_BUGS[bug["id"]]), bug
        assert "PASSED: 2 of 2 seeded bugs caught" in done.stdout
        assert "breaker.never_opens" in (report / "report.html").read_text()

    def test_every_process_of_a_level_imports_the_mutated_copy(self, tmp_path: Path) -> None:
        """A process started as the services are (``python -m``, elsewhere, the level's environment) runs the
        copy's code: the health checker that only the registry process has comes with its bug."""
        [bug] = seeded_bugs(["registry.ignores_health_checks"])
        copy = copy_source(ROOT, tmp_path / "copy")
        apply_bug(bug, copy)
        probe = "import reference_services.registry._checker as m, pathlib; print(pathlib.Path(m.__file__))"
        elsewhere = tmp_path / "cwd"
        elsewhere.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd=elsewhere, env=level_environment(copy), capture_output=True,
            text=True, timeout=60, check=True,
        )  # fmt: skip
        imported = Path(done.stdout.strip())
        assert imported == copy / "reference_services" / "registry" / "_checker.py"
        assert "passed=True, reason=reason)" in imported.read_text()


@pytest.mark.behaviour("harness.pyramid")
@pytest.mark.behaviour("harness.pyramid")
def test_a_level_hears_ctrl_c_even_when_the_pyramid_was_started_ignoring_it(tmp_path: Path) -> None:
    """A pyramid run as a script's background job inherits SIGINT ignored; its levels still get Ctrl-C at
    its default, or the SIGINT that stops a level, and the ones its tests send, would go unheard."""
    root = tmp_path / "root"
    (root / "tests" / "probe").mkdir(parents=True)
    (root / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:locust\nasyncio_default_fixture_loop_scope = function\n"
    )
    (root / "tests" / "probe" / "test_sigint.py").write_text(
        "import signal\n\n\ndef test_ctrl_c_is_a_keyboard_interrupt() -> None:\n"
        "    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
    )
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        done = run_level("probe", root=root, junit=tmp_path / "probe.xml", log=tmp_path / "probe.log")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert done.exit_code == 0, done.log.read_text()


class TestMatrix:
    def test_a_level_run_then_the_same_xml_read_back(self, tmp_path: Path) -> None:
        """--levels unit: holes shown but not judged (exit 0); --from its XML: a whole pyramid of one level,
        so the behaviours only higher levels hold are holes (exit 1, named)."""
        report = tmp_path / "report"
        ran = harness(
            "pyramid", "--root", str(ROOT), "--levels", "unit", "--report", str(report), timeout=300
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "unit: running tests/unit (1/1)" in ran.stdout
        assert "holes (not judged: only some levels were run)" in ran.stdout
        matrix = json.loads((report / "pyramid.json").read_text())
        opens = next(row for row in matrix["rows"] if row["id"] == "breaker.opens")
        assert opens["cells"]["unit"]["passed"] >= 5
        assert matrix["failures"] == []
        read = harness("pyramid", "--from", str(report / "junit"), "--report", str(tmp_path / "again"))
        assert read.returncode == 1, read.stdout + read.stderr
        assert "FAILED (" in read.stdout
        again = json.loads((tmp_path / "again" / "pyramid.json").read_text())
        assert again["holes_judged"] is True
        latency = next(
            row for row in again["rows"] if row["id"] == "experiment.latency_on_one_users_instance"
        )
        assert latency["cells"] == {"unit": {"passed": 0, "failed": 0, "skipped": 0}}
        assert "harness: error: the pyramid has failures or holes" in read.stderr

    def test_a_test_naming_an_unknown_behaviour_fails_collection(self, tmp_path: Path) -> None:
        """The project's conftest refuses the marker's unknown id, naming the test and the id (exit 4)."""
        tests = tmp_path / "tests"
        (tests / "unit").mkdir(parents=True)
        shutil.copy(ROOT / "tests" / "conftest.py", tests / "conftest.py")
        (tests / "unit" / "test_typo.py").write_text(
            "import pytest\n\n\n@pytest.mark.behaviour('breaker.half_open_probe')\ndef test_x() -> None:\n"
            "    pass\n"
        )
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests"], cwd=tmp_path,
            env=level_environment(ROOT), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 4, done.stdout + done.stderr
        assert "test_typo.py::test_x: unknown behaviour 'breaker.half_open_probe'" in done.stderr


@pytest.mark.behaviour("harness.pyramid", "harness.exit_codes")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--levels", "unit,nope"), "unknown level nope", id="unknown-level"),
        pytest.param(
            ("--bugs", "breaker.never_opens"), "--bugs and --cheapest go with --mutants", id="no-mutants"
        ),
        pytest.param(
            ("--mutants", "--bugs", "breaker.nope"), "unknown seeded bug breaker.nope", id="unknown-bug"
        ),
        pytest.param(("--mutants", "--from", "."), "--mutants runs the levels itself", id="mutants-from"),
    ],
)
def test_bad_arguments_are_exit_2_in_one_line(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    """Refused before anything runs."""
    done = harness("pyramid", "--root", str(ROOT), "--report", str(tmp_path), *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
