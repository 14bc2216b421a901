"""What an experiment must be before Chaos Toolkit or the stack sees it: the shape of the parts the harness
and Chaos Toolkit rely on, the harness's own activities' arguments by their parameters' types (one rule for
every action and probe), the topology's names, loopback targets. Each refusal is one line naming the key.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
)

from harness._documents import KEY_ERROR, error_line, key_name, shown, subkey
from harness.errors import ConfigError
from harness.net import is_loopback_url
from harness.stack import Topology

from ._arguments import NAMES, Names

HARNESS_MODULES = ("harness.chaos.actions", "harness.chaos.probes")
"""The modules of the harness's activities, whose arguments are checked by their parameters' types."""
CONTEXT_PARAMETERS = ("configuration", "secrets")  # given by Chaos Toolkit, never by the file


# The shape: what Chaos Toolkit and the harness read, so that neither meets a list where it expects an
# object. Keys the harness does not read are left to Chaos Toolkit (extra="allow").


class _Shape(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="allow", allow_inf_nan=False)


Text = Annotated[str, Field(min_length=1)]


class _EnvValue(_Shape):
    type: Literal["env"]
    key: Text
    env_var_type: (
        Literal["str", "string", "int", "integer", "float", "number", "bytes", "bool", "json"] | None
    ) = None


def _value_form(value: Any) -> str:
    if isinstance(value, dict):
        return {"env": "(env)", "probe": "(activity)", "action": "(activity)"}.get(
            str(value.get("type")), "(value)"
        )
    return "(value)"


class _PythonProvider(_Shape):
    type: Literal["python"]
    module: Text
    func: Text
    arguments: dict[str, Any] = {}


def one_of(description: str, *kinds: Any) -> AfterValidator:
    """Null, or a value of any of ``kinds`` (checked strictly, in order); else refused as "must be
    <description>", without the names pydantic gives a union's members."""
    adapters = [TypeAdapter(kind, config=ConfigDict(strict=True, allow_inf_nan=False)) for kind in kinds]

    def check(value: Any) -> Any:
        if value is None:
            return None
        for adapter in adapters:
            try:
                return adapter.validate_python(value)
            except ValidationError:
                continue
        raise ValueError(f"must be {description}, got {shown(value)}")

    return AfterValidator(check)


Seconds = Annotated[float, Field(ge=0)]
Template = Annotated[str, Field(pattern=r"^\$\{.+\}$")]
PAUSE = one_of("a number of seconds or a ${...} placeholder", Seconds, Template)
TIMEOUT = one_of("a number of seconds", Seconds)
HTTP_ARGUMENTS = one_of("an object or a string", dict[str, Any], str)
PROCESS_ARGUMENTS = one_of("a string, a list or an object", str, list[Any], dict[str, Any])
HTTP_TIMEOUT = one_of(
    "a number of seconds or a list of two",
    Seconds,
    Annotated[list[Seconds], Field(min_length=2, max_length=2)],
)


def _tolerance(value: Any) -> Any:
    if isinstance(value, bool | int | str | list):
        return value
    if isinstance(value, dict) and value.get("type") in ("probe", "regex", "jsonpath", "range"):
        return value
    raise ValueError(
        "must be true or false, a whole number, a string, a list, or an object of type probe, regex, "
        f"jsonpath or range, got {shown(value)}"
    )


Tolerance = Annotated[Any, AfterValidator(_tolerance)]


class _HttpProvider(_Shape):
    type: Literal["http"]
    url: Text
    method: Text = "GET"
    headers: dict[str, str] = {}
    arguments: Annotated[Any, HTTP_ARGUMENTS] = None
    timeout: Annotated[Any, HTTP_TIMEOUT] = None


class _ProcessProvider(_Shape):
    type: Literal["process"]
    path: Text
    arguments: Annotated[Any, PROCESS_ARGUMENTS] = None
    timeout: Annotated[Any, TIMEOUT] = None


def _provider_form(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "(python)"  # any member says "must be an object"
    kind = value.get("type")
    return f"({kind})" if kind in ("python", "http", "process") else None


Provider = Annotated[
    Annotated[_PythonProvider, Tag("(python)")]
    | Annotated[_HttpProvider, Tag("(http)")]
    | Annotated[_ProcessProvider, Tag("(process)")],
    Discriminator(
        _provider_form,
        custom_error_type=KEY_ERROR,
        custom_error_message="type: must be python, http or process",
        custom_error_context={"where": "type", "message": "must be python, http or process"},
    ),
]


class _Pauses(_Shape):
    before: Annotated[Any, PAUSE] = None
    after: Annotated[Any, PAUSE] = None


class _Activity(_Shape):
    type: Literal["probe", "action"]
    name: Text
    provider: Provider
    pauses: _Pauses | None = None
    background: bool = False
    timeout: Annotated[Any, TIMEOUT] = None
    tolerance: Tolerance = None


class _Ref(_Shape):
    ref: Text


def _step_form(value: Any) -> str:
    return "(ref)" if isinstance(value, dict) and "ref" in value else "(activity)"


Step = Annotated[
    Annotated[_Activity, Tag("(activity)")] | Annotated[_Ref, Tag("(ref)")], Discriminator(_step_form)
]
ConfigValue = Annotated[
    Annotated[_EnvValue, Tag("(env)")]
    | Annotated[_Activity, Tag("(activity)")]
    | Annotated[Any, Tag("(value)")],
    Discriminator(_value_form),
]


class _Probe(_Activity):
    tolerance: Tolerance  # a hypothesis probe is judged by its tolerance


class _Hypothesis(_Shape):
    title: Text
    probes: list[_Probe] = []


class _ControlProvider(_Shape):
    type: Literal["python"]
    module: Text
    arguments: dict[str, Any] = {}


class _Control(_Shape):
    name: Text
    provider: _ControlProvider | None = None
    ref: Text | None = None
    scope: Literal["before", "after"] | None = None
    automatic: bool = True


class _Extension(_Shape):
    name: Annotated[str, Field(pattern=r"\S")]


class _Experiment(_Shape):
    title: Text
    description: Text
    tags: list[Text] = []
    configuration: dict[str, ConfigValue] = {}
    secrets: dict[str, dict[str, ConfigValue]] = {}
    extensions: list[_Extension] = []
    controls: list[_Control] = []
    hypothesis: _Hypothesis | None = Field(default=None, alias="steady-state-hypothesis")
    method: list[Step]
    rollbacks: list[Step] = []


def check_shape(path: Path, experiment: dict[str, Any]) -> None:
    """Refuse, naming the key, an experiment whose parts are not of the kinds Chaos Toolkit and the harness
    read (a method that is not a list of activities, a provider that is not an object, ...)."""
    try:
        _Experiment.model_validate(experiment)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {error_line(exc.errors()[0])}") from exc


# The harness's own activities: their arguments by the types of their parameters.


def check_activities(
    path: Path, experiment: dict[str, Any], allow_remote: bool, topology: Topology | None
) -> None:
    """Each harness activity's arguments as its parameters' types say (names of ``topology``, when
    given); loopback URLs only, unless ``allow_remote``."""
    context = {NAMES: names_of(topology)} if topology is not None else {}
    for where, activity in activities(experiment):
        provider = activity.get("provider", {})
        if provider.get("type") == "http":
            url = str(provider.get("url", ""))
            if not allow_remote and _remote(url):
                raise ConfigError(
                    f"{path}: {where}: {_printable(url)} is not a loopback URL; pass --allow-remote to use it"
                )
        if provider.get("type") == "python" and provider.get("module") in HARNESS_MODULES:
            problem = argument_problem(
                provider["module"], provider["func"], provider.get("arguments", {}), context
            )
            if problem is not None:
                raise ConfigError(f"{path}: {subkey(where, 'provider.arguments')}{problem}")
    for key, value in (experiment.get("configuration") or {}).items():
        remote = isinstance(value, str) and value.startswith(("http://", "https://")) and _remote(value)
        if remote and not allow_remote:
            where = subkey("configuration", key_name(key))
            raise ConfigError(
                f"{path}: {where}: {_printable(value)} is not a loopback URL; pass --allow-remote"
            )


def _remote(url: str) -> bool:
    """Whether the URL leaves this machine (one that cannot be parsed counts as leaving)."""
    try:
        return not is_loopback_url(url)
    except ValueError:
        return True


def _printable(text: str) -> str:
    return text if text.isprintable() else repr(text)


def names_of(topology: Topology) -> Names:
    """What an experiment on ``topology`` may name."""
    kinds = [kind for kind, _name in topology.instances()]
    instances = {"registry", "toxiproxy", *(name for _kind, name in topology.instances())}
    return Names(frozenset(instances), frozenset(kinds))


def activities(experiment: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every activity of the experiment (not references), with where it is."""
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for key, steps in (
        ("steady-state-hypothesis.probes", hypothesis.get("probes", [])),
        ("method", experiment.get("method", [])),
        ("rollbacks", experiment.get("rollbacks", [])),
    ):
        for index, activity in enumerate(steps):
            if isinstance(activity, dict) and "provider" in activity:
                yield f"{key}[{index}]", activity


def argument_problem(
    module: str, func: str, arguments: dict[str, Any], context: dict[str, Any]
) -> str | None:
    """What is wrong with ``arguments`` for the harness activity ``module.func``, as ``.key: problem``
    (``.rate: must be a finite number, got nan``), or None. Arguments holding a ``${...}`` are
    Chaos Toolkit's to substitute at run time and are left out."""
    function = getattr(importlib.import_module(module), func, None)
    if not inspect.isfunction(function) or function.__module__ != module:
        return None  # not one of the module's own activities: Chaos Toolkit's validation says so
    model = _parameters(function)
    templated = {key for key, value in arguments.items() if _templated(value)}
    given = {key: value for key, value in arguments.items() if key not in templated}
    try:
        model.model_validate(given, context=context)
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"] == "missing" and error["loc"][0] in templated:
                continue
            if error["type"] == "extra_forbidden":
                takes = ", ".join(model.model_fields) or "no arguments"
                return f".{error['loc'][0]}: not a parameter of {func}, which takes {takes}"
            return "." + error_line(error)
    return None


@functools.cache
def _parameters(function: Callable[..., Any]) -> type[BaseModel]:
    """A model of the function's parameters (but those Chaos Toolkit gives), from its annotations."""
    hints = typing.get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name in CONTEXT_PARAMETERS:
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (hints.get(name, Any), default)
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    model: type[BaseModel] = create_model(f"{function.__name__}_arguments", __config__=config, **fields)
    return model


def _templated(value: object) -> bool:
    """Whether a ``${...}`` placeholder is in the value, at any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "${" in item:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
