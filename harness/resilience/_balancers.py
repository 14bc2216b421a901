"""Load balancers pick the instance for the next call; `choose()` first skips instances whose breaker says no.

Balancers are pure strategy objects; the candidate list is passed on every pick, so membership changes
from discovery need no extra bookkeeping.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import NoAvailableInstance


@dataclass(frozen=True)
class Candidate:
    """One instance a balancer may pick."""

    id: str
    weight: int = 1

    def __post_init__(self) -> None:
        if self.weight < 1:
            raise ValueError(f"candidate {self.id!r}: weight must be >= 1, got {self.weight}")


class Balancer(abc.ABC):
    """Picks one of a non-empty set of candidates; told when calls start and finish."""

    name: ClassVar[str]

    @abc.abstractmethod
    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        """The candidate for the next call; ValueError if `candidates` is empty or repeats an id."""

    def started(self, candidate_id: str) -> None:  # noqa: B027 (an optional hook, deliberately a no-op)
        """A call to `candidate_id` began."""

    def finished(self, candidate_id: str) -> None:  # noqa: B027 (an optional hook, deliberately a no-op)
        """A call to `candidate_id` ended, whatever its outcome."""


def _checked(candidates: Sequence[Candidate]) -> Sequence[Candidate]:
    if not candidates:
        raise ValueError("cannot pick from an empty list of candidates")
    if len({c.id for c in candidates}) != len(candidates):
        raise ValueError(f"candidate ids must be unique, got {[c.id for c in candidates]}")
    return candidates


class RoundRobin(Balancer):
    """Each candidate in turn, in order of id; resumes after the last pick when the set changes."""

    name = "round_robin"

    def __init__(self) -> None:
        self._last: str | None = None

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        ordered = sorted(_checked(candidates), key=lambda c: c.id)
        # Continue after the last id picked rather than at an index, so a removed instance does not
        # make the rotation skip or repeat a neighbour.
        chosen = ordered[0]
        if self._last is not None:
            chosen = next((c for c in ordered if c.id > self._last), ordered[0])
        self._last = chosen.id
        return chosen


class RandomBalancer(Balancer):
    """Uniformly at random (weights are ignored)."""

    name = "random"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        return self._rng.choice(_checked(candidates))


class WeightedRoundRobin(Balancer):
    """nginx's smooth weighted round robin: shares follow the weights, and each one's picks are spread out."""

    name = "weighted_round_robin"

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        ordered = sorted(_checked(candidates), key=lambda c: c.id)
        present = {c.id for c in ordered}
        # Forget instances that left, so the state stays bounded and a returning instance starts fresh.
        for gone in [cid for cid in self._current if cid not in present]:
            del self._current[gone]
        total = 0
        best: Candidate | None = None
        for candidate in ordered:
            current = self._current.get(candidate.id, 0) + candidate.weight
            self._current[candidate.id] = current
            total += candidate.weight
            if best is None or current > self._current[best.id]:
                best = candidate
        assert best is not None  # candidates are non-empty
        self._current[best.id] -= total
        return best


class LeastOutstanding(Balancer):
    """Power of two choices: of two candidates sampled at random, the one with fewer calls in flight."""

    name = "least_outstanding"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._outstanding: dict[str, int] = {}

    def outstanding(self, candidate_id: str) -> int:
        """Calls to `candidate_id` started and not yet finished."""
        return self._outstanding.get(candidate_id, 0)

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        candidates = _checked(candidates)
        if len(candidates) == 1:
            return candidates[0]
        first, second = self._rng.sample(candidates, 2)
        return second if self.outstanding(second.id) < self.outstanding(first.id) else first

    def started(self, candidate_id: str) -> None:
        self._outstanding[candidate_id] = self.outstanding(candidate_id) + 1

    def finished(self, candidate_id: str) -> None:
        count = self.outstanding(candidate_id) - 1
        # Dropping ids at zero keeps the map bounded by the calls in flight, and an unmatched
        # finished() cannot drive a count negative.
        if count > 0:
            self._outstanding[candidate_id] = count
        else:
            self._outstanding.pop(candidate_id, None)


_BALANCERS: tuple[type[Balancer], ...] = (
    RoundRobin,
    RandomBalancer,
    WeightedRoundRobin,
    LeastOutstanding,
)
BALANCER_NAMES: tuple[str, ...] = tuple(cls.name for cls in _BALANCERS)


_IDS_IN_MESSAGE = 10  # enough to recognise the instances without flooding a log line


def make_balancer(name: str, *, rng: random.Random | None = None) -> Balancer:
    """A new balancer by name (one of BALANCER_NAMES); `rng` seeds the ones that draw at random."""
    if name == RoundRobin.name:
        return RoundRobin()
    if name == RandomBalancer.name:
        return RandomBalancer(rng)
    if name == WeightedRoundRobin.name:
        return WeightedRoundRobin()
    if name == LeastOutstanding.name:
        return LeastOutstanding(rng)
    raise ValueError(f"unknown balancer {name!r}; valid names: {', '.join(BALANCER_NAMES)}")


def choose(
    balancer: Balancer,
    candidates: Sequence[Candidate],
    is_available: Callable[[str], bool],
    *,
    service: str,
    exclude: Collection[str] = (),
) -> Candidate:
    """Pick among the available candidates, preferring ones not in `exclude` (tried in earlier attempts).

    Raises NoAvailableInstance at once when no candidate is available. The caller reports the call's
    start and end to the balancer (`started` / `finished`); choosing alone does not.
    """
    if not candidates:
        raise NoAvailableInstance(f"no instance of service {service!r} is known", service=service)
    available = [c for c in candidates if is_available(c.id)]
    if not available:
        shown = ", ".join(c.id for c in candidates[:_IDS_IN_MESSAGE])
        if len(candidates) > _IDS_IN_MESSAGE:
            shown += ", ..."
        raise NoAvailableInstance(
            f"no instance of service {service!r} is available: {len(candidates)} known, 0 available "
            f"(every breaker is open or has no free probe slot: {shown})",
            service=service,
        )
    fresh = [c for c in available if c.id not in exclude]
    return balancer.pick(fresh or available)
