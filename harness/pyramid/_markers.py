"""The ``behaviour`` marker: what a test says it holds, checked against the catalogue, written to JUnit XML.

pytest's own ``record_property`` warns under the default ``xunit2`` family (and ``filterwarnings = error``
turns that into a failure), so the ids go into ``item.user_properties`` from a collection hook instead:
the JUnit writer puts those in each test case's ``<properties>`` for every family, without a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.errors import ConfigError
from harness.pyramid._catalogue import known

MARKER = "behaviour"
MARKER_HELP = (
    "behaviour(*ids, by_id={param id: id or [ids]}): the catalogued behaviours this test holds "
    "(harness/pyramid/_catalogue.py; shown by `harness pyramid`)"
)
LEVEL_PROPERTY = "level"
BEHAVIOUR_PROPERTY = "behaviour"

MarkArgs = tuple[Sequence[Any], Mapping[str, Any]]


def behaviours_of(marks: Iterable[MarkArgs], param_id: str | None = None) -> tuple[str, ...]:
    """The behaviour ids that ``marks`` (each marker's args and kwargs) give a test, each once, in order.

    ``by_id`` maps the ids of a parametrized test's cases to their own behaviours (``param_id`` is the
    case's id): a case the mapping does not name is an error, so a new case cannot go untagged unseen.
    Raises ConfigError (UnknownBehaviour for an id not in the catalogue).
    """
    ids: list[str] = []
    for args, kwargs in marks:
        if extra := sorted(set(kwargs) - {"by_id"}):
            raise ConfigError(f"the behaviour marker takes ids and by_id=..., not {', '.join(extra)}")
        for arg in args:
            if not isinstance(arg, str):
                raise ConfigError(f"behaviour ids are strings, got {arg!r}")
            ids.append(arg)
        by_id = kwargs.get("by_id")
        if by_id is None:
            continue
        if param_id is None:
            raise ConfigError("behaviour(by_id=...) marks a test that is not parametrized")
        if param_id not in by_id:
            raise ConfigError(f"behaviour(by_id=...) names no behaviour for the case {param_id!r}")
        chosen = by_id[param_id]
        ids.extend([chosen] if isinstance(chosen, str) else chosen)
    return known(ids)


def junit_properties(level: str, behaviours: Iterable[str]) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs a test case carries into JUnit XML: its level and each behaviour."""
    return [(LEVEL_PROPERTY, level), *((BEHAVIOUR_PROPERTY, id) for id in behaviours)]
