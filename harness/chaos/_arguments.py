"""The types of the harness's activity parameters, with what a value must be beyond its Python type: an
instance or service of the topology, a toxic the fault proxy knows with attributes in its ranges, a traffic
or condition setting its model accepts. Validation reads the parameters' annotations, so one rule checks
every action and probe before a run; at run time they are the plain values Chaos Toolkit passes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationError, ValidationInfo

from harness._documents import error_parts, key_error
from harness._fault_values import fault_refusal
from harness.faults import FaultSchedule, ToxicType

NAMES = "harness_names"
"""The validation context's key for the topology's ``Names``; without it names are not checked."""


@dataclass(frozen=True)
class Names:
    """What an experiment may name: the topology's instances (and the registry and fault proxy), its
    services."""

    instances: frozenset[str]
    services: frozenset[str]


def _names(info: ValidationInfo) -> Names | None:
    context = info.context if isinstance(info.context, Mapping) else {}
    found = context.get(NAMES)
    return found if isinstance(found, Names) else None


def _instance(value: str, info: ValidationInfo) -> str:
    names = _names(info)
    if names is not None and value not in names.instances:
        raise ValueError(f"no instance named {value!r}; known: {', '.join(sorted(names.instances))}")
    return value


def _service(value: str, info: ValidationInfo) -> str:
    names = _names(info)
    if names is not None and value not in names.services:
        raise ValueError(f"no service named {value!r}; known: {', '.join(sorted(names.services))}")
    return value


def _toxic_type(value: str) -> str:
    if value not in ToxicType.__members__.values():
        raise ValueError(f"unknown toxic {value!r}; known: {', '.join(ToxicType)}")
    return value


def _toxic_attributes(
    value: dict[str, int | str] | None, info: ValidationInfo
) -> dict[str, int | str] | None:
    kind = info.data.get("type")
    refusal = fault_refusal(kind, value) if isinstance(kind, str) else None  # no type: refused itself
    if refusal is not None:
        where, _, message = refusal.partition(": ")
        raise key_error(where.removeprefix("attributes."), message) if "." in where else ValueError(message)
    return value


def _windows(value: list[dict[str, Any]], info: ValidationInfo) -> list[dict[str, Any]]:
    try:
        schedule = FaultSchedule.model_validate({"windows": value})
    except ValidationError as exc:
        where, message = error_parts(exc.errors()[0])
        raise key_error(where.removeprefix("windows"), message) if where else ValueError(message) from None
    names = _names(info)
    for index, window in enumerate(schedule.windows):
        fault = window.fault
        if names is not None and fault.instance not in names.instances:
            known = ", ".join(sorted(names.instances))
            raise key_error(
                f"[{index}].fault.instance", f"no instance named {fault.instance!r}; known: {known}"
            )
        refusal = fault_refusal(fault.kind, fault.attributes, fault.toxicity)
        if refusal is not None:
            where, _, message = refusal.partition(": ")
            raise key_error(f"[{index}].fault.{where}", message)
    return value


def field_of(model: type[BaseModel]) -> AfterValidator:
    """A parameter that is a field of ``model`` by the same name: checked as the model checks it."""

    def check(value: object, info: ValidationInfo) -> object:
        try:
            model.model_validate({info.field_name: value})
        except ValidationError as exc:
            raise ValueError(error_parts(exc.errors()[0])[1]) from None
        return value

    return AfterValidator(check)


def model_of(
    model: type[BaseModel], *, instances: tuple[str, ...] = (), services: tuple[str, ...] = ()
) -> AfterValidator:
    """A parameter that is a whole ``model``, given as an object; its fields named in ``instances`` and
    ``services`` must name the topology's."""

    def check(value: object, info: ValidationInfo) -> object:
        try:
            checked = model.model_validate(value)
        except ValidationError as exc:
            where, message = error_parts(exc.errors()[0])
            raise key_error(where, message) if where else ValueError(message) from None
        for key, check_name in [(k, _instance) for k in instances] + [(k, _service) for k in services]:
            name = getattr(checked, key)
            if isinstance(name, str):
                try:
                    check_name(name, info)
                except ValueError as exc:
                    raise key_error(key, str(exc)) from None
        return value

    return AfterValidator(check)


Instance = Annotated[str, AfterValidator(_instance)]
"""An instance of the topology (``users-2``), or ``registry`` or ``toxiproxy``."""
Service = Annotated[str, AfterValidator(_service)]
"""A service of the topology (``users``)."""
Toxic = Annotated[str, AfterValidator(_toxic_type)]
"""A toxic type the fault proxy has."""
ToxicAttributes = Annotated[dict[str, int | str] | None, AfterValidator(_toxic_attributes)]
"""The attributes of the toxic named by the activity's ``type``, by the fault proxy's own bounds."""
Toxicity = Annotated[float, Field(ge=0.0, le=1.0)]
"""The probability a toxic applies to a connection (or request)."""
FaultWindows = Annotated[list[dict[str, Any]], AfterValidator(_windows)]
"""Fault windows (a ``FaultSchedule``'s), each on an instance of the topology, with values the proxy takes."""
