"""Wire types every service reads the same way: an integer is what JSON Schema calls one.

The OpenAPI documents amounts and counts as ``"type": "integer"``, and JSON Schema counts any number with
a zero fractional part as an integer (``5.0`` included); serializers that only know doubles send that.
The models stay strict otherwise: ``5.5``, ``"5"`` and ``true`` are still refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def _whole_float_as_int(value: Any) -> Any:
    if type(value) is float and value.is_integer():
        return int(value)
    return value


JsonInteger = BeforeValidator(_whole_float_as_int)
"""Put last in ``Annotated[int, Field(...), JsonInteger]`` (after the bounds, so they stay in the schema)."""
