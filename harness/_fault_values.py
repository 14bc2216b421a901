"""Whether a fault's values are ones the fault proxy applies: its kind, each toxic attribute's name, type and
range (the embedded server's own bounds), its toxicity. Experiments and load profiles check their faults
with it while being validated, so what the proxy would refuse mid-run is refused before anything starts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from harness.faults import FaultKind

# The toxics' attribute sets and bounds are the fault proxy's; harness.faults has no public name for them.
from harness.faults._http_toxics import HTTP_TOXICS
from harness.faults._limits import INT64_MAX
from harness.faults._toxics import TOXICS, Toxic

_TOXICS: dict[str, type[Toxic]] = {**TOXICS, **HTTP_TOXICS}


def fault_refusal(kind: str, attributes: Mapping[str, object] | None, toxicity: object = 1.0) -> str | None:
    """Why the fault proxy (or the stack, for a process fault) would refuse this fault, as one phrase that
    starts with the key (``attributes.latency: must be ...``), or None when it would apply it."""
    if kind not in FaultKind.__members__.values():
        return f"kind: unknown fault {kind!r}; known: {', '.join(FaultKind)}"
    if not isinstance(toxicity, int | float) or isinstance(toxicity, bool):
        return f"toxicity: must be a number between 0 and 1, got {toxicity!r}"
    if not 0.0 <= toxicity <= 1.0:
        return f"toxicity: must be between 0 and 1, got {toxicity!r}"
    toxic = _TOXICS.get(kind)
    given = dict(attributes or {})
    if toxic is None:
        return f"attributes: {kind} takes no attributes, got {', '.join(given)}" if given else None
    names = [field.name for field in dataclasses.fields(toxic)]
    for name, value in given.items():
        if name not in names:
            return f"attributes.{name}: {kind} has no such attribute; it has {', '.join(names)}"
        if toxic.go_types[name] == "string":
            if not isinstance(value, str):
                return f"attributes.{name}: must be a string, got {value!r}"
        elif (
            not isinstance(value, int) or isinstance(value, bool) or not -INT64_MAX - 1 <= value <= INT64_MAX
        ):
            bound = toxic.bounds.get(name)
            unit = f" ({bound.unit})" if bound is not None and bound.unit else ""
            shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
            return f"attributes.{name}: must be a whole number{unit}, got {shown}"
    refusal = toxic(**given).refusal()  # each value's type was checked above
    if refusal is None:
        return None
    name = refusal.partition(":")[0]
    return f"attributes.{refusal}, got {given[name]!r}" if name in given else f"attributes.{refusal}"
