"""The pyramid's errors, in the harness's one tree: a catalogue or seeded-bug mistake is a configuration
error (exit code 2)."""

from __future__ import annotations

from harness.errors import ConfigError


class UnknownBehaviour(ConfigError):
    """A test (or a seeded bug) names a behaviour that is not in the catalogue."""

    def __init__(self, id: str, nearest: tuple[str, ...] = ()) -> None:
        hint = f"; known in its area: {', '.join(nearest)}" if nearest else ""
        super().__init__(f"unknown behaviour {id!r} (not in harness/pyramid/_catalogue.py){hint}")
        self.id = id
        self.nearest = nearest


class PatchRefused(ConfigError):
    """A seeded bug's patch does not apply exactly once: the catalogue entry is broken, not the code."""

    def __init__(self, bug: str, path: str, found: int, text: str) -> None:
        first = text.strip().splitlines()[0] if text.strip() else text
        super().__init__(
            f"seeded bug {bug!r}: the text to replace occurs {found} times in {path} (expected exactly "
            f"once): {first!r}"
        )
        self.bug = bug
        self.path = path
        self.found = found
