"""The test pyramid as evidence: which behaviour each level holds, and which seeded bugs each level catches.

``run_pyramid`` runs every level (one pytest each, with JUnit XML) or reads their XML, and builds the
behaviour x level matrix, holes included; ``run_mutants`` runs the levels against each seeded bug in a
patched copy of the source. Tests declare behaviours with ``@pytest.mark.behaviour(...)``, checked at
collection against ``BEHAVIOURS`` (``behaviours_of``) and written into the XML (``junit_properties``).
"""

from harness.pyramid._bugs import SEEDED_BUGS, Patch, SeededBug, seeded_bugs
from harness.pyramid._catalogue import BEHAVIOURS, Behaviour, Group, behaviour
from harness.pyramid._errors import PatchRefused, UnknownBehaviour
from harness.pyramid._junit import CaseResult, Outcome, read_junit
from harness.pyramid._levels import (
    KNOWN_LEVELS,
    LevelRun,
    choose_levels,
    discover_levels,
    level_environment,
    pytest_command,
    run_level,
)
from harness.pyramid._markdown import mutants_markdown, pyramid_markdown
from harness.pyramid._markers import MARKER, MARKER_HELP, behaviours_of, junit_properties
from harness.pyramid._matrix import build_rows
from harness.pyramid._mutants import MutantSettings, judge, run_mutants
from harness.pyramid._patch import apply_bug, check_bugs, copy_source, patched_texts
from harness.pyramid._render import matrix_lines, mutants_lines
from harness.pyramid._report import write_pyramid_report
from harness.pyramid._results import (
    BehaviourRow,
    BugResult,
    Catch,
    Cell,
    LevelSummary,
    LevelVerdict,
    MutantsResult,
    PyramidResult,
    read_mutants,
    read_pyramid,
    write_result,
)
from harness.pyramid._run import PyramidSettings, run_pyramid

__all__ = [
    "BEHAVIOURS",
    "KNOWN_LEVELS",
    "MARKER",
    "MARKER_HELP",
    "SEEDED_BUGS",
    "Behaviour",
    "BehaviourRow",
    "BugResult",
    "CaseResult",
    "Catch",
    "Cell",
    "Group",
    "LevelRun",
    "LevelSummary",
    "LevelVerdict",
    "MutantSettings",
    "MutantsResult",
    "Outcome",
    "Patch",
    "PatchRefused",
    "PyramidResult",
    "PyramidSettings",
    "SeededBug",
    "UnknownBehaviour",
    "apply_bug",
    "behaviour",
    "behaviours_of",
    "build_rows",
    "check_bugs",
    "choose_levels",
    "copy_source",
    "discover_levels",
    "judge",
    "junit_properties",
    "level_environment",
    "matrix_lines",
    "mutants_lines",
    "mutants_markdown",
    "patched_texts",
    "pyramid_markdown",
    "pytest_command",
    "read_junit",
    "read_mutants",
    "read_pyramid",
    "run_level",
    "run_mutants",
    "run_pyramid",
    "seeded_bugs",
    "write_pyramid_report",
    "write_result",
]
