"""One description of a process the harness starts, and the one place it becomes a command line.

A ``ProcessSpec`` says what runs (a reference service, the fault proxy, or a user's own command), under
which instance name, where (host, port), with which settings and environment. The stack, the contract
providers, the demo, the benchmarks and the tests all describe their processes this way; ``argv`` and
``environment`` below are the only code that turns a description into what ``exec`` gets.
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

SettingValue = str | int | float | bool | Path | None
"""A setting of a reference service: ``--name value``; True is a bare flag, False and None are left out."""

PLACEHOLDERS = ("host", "port", "instance", "workdir", "python")
"""What an own command and its environment may name in braces: ``{port}`` is the port the instance must
bind, ``{instance}`` its name (``inventory-2``), ``{workdir}`` the stack's folder, ``{python}`` the
interpreter running the harness."""

_SUBCOMMANDS: Mapping[str, tuple[str, ...]] = {"toxiproxy": ("toxiproxy",)}
"""Kinds that are a command of their own; every other kind is ``harness serve <kind>``."""
_SETTING_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ProcessSpec:
    """One process, as data: ``kind`` names a ``harness serve`` service (or ``toxiproxy``) unless ``command``
    is given, a user's own executable with ``{port}`` and the other ``PLACEHOLDERS`` in its arguments.

    ``settings`` are the service's flags by name (``{"check_interval": 0.5}`` is ``--check-interval 0.5``);
    ``port`` 0 lets a harness child pick a free port and report it in its port file (an own command gets
    its port chosen beforehand). ``env`` is added to the harness's environment; ``cwd`` is where an own
    command runs (its topology file's folder).
    """

    name: str
    kind: str
    settings: Mapping[str, SettingValue] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    cwd: Path | None = None
    ready_path: str = "/health"
    workdir: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"{self.name}: port {self.port} is not 0 to 65535")
        for name in self.settings:
            if not _SETTING_NAME.match(name):
                raise ValueError(f"{self.name}: setting {name!r} is not a snake_case flag name")
        if self.command is not None:
            if not self.command:
                raise ValueError(f"{self.name}: an own command needs at least the executable")
            if self.settings:
                raise ValueError(f"{self.name}: an own command takes its settings in the command itself")
            for part in (*self.command, *self.env.values()):
                unknown_placeholders(part)  # raises on a placeholder nobody fills
        if not self.ready_path.startswith("/"):
            raise ValueError(f"{self.name}: the ready path {self.ready_path!r} must start with '/'")

    @property
    def own(self) -> bool:
        """A user's own executable, rather than a harness command."""
        return self.command is not None

    def with_port(self, port: int) -> ProcessSpec:
        """The same process pinned to ``port`` (a restart keeps its address)."""
        return replace(self, port=port)

    def with_settings(self, **settings: SettingValue) -> ProcessSpec:
        """The same process with more (or other) settings."""
        return replace(self, settings={**self.settings, **settings})

    def argv(self, port_file: Path | None = None) -> list[str]:
        """The command line: ``python -m harness serve <kind> --host H --port P --port-file F`` and a flag
        per setting, or the own command with its placeholders filled."""
        if self.command is not None:
            if self.port == 0:
                raise ValueError(f"{self.name}: an own command is started on a port chosen beforehand")
            return [self._fill(part) for part in self.command]
        subcommand = _SUBCOMMANDS.get(self.kind, ("serve", self.kind))
        where = ["--host", self.host, "--port", str(self.port)]
        if port_file is not None:
            where += ["--port-file", str(port_file)]
        return [sys.executable, "-m", "harness", *subcommand, *where, *flags(self.settings)]

    def environment(self) -> dict[str, str]:
        """What the process gets on top of the harness's own environment, placeholders filled."""
        return {key: self._fill(value) for key, value in self.env.items()}

    def _fill(self, text: str) -> str:
        values = {"host": self.host, "port": str(self.port), "instance": self.name,
                  "workdir": str(self.workdir or Path.cwd()), "python": sys.executable}  # fmt: skip
        return text.format_map(values)


def flags(settings: Mapping[str, SettingValue]) -> list[str]:
    """Settings as command-line flags, in their order: ``--name value``, a bare ``--name`` for True."""
    argv: list[str] = []
    for name, value in settings.items():
        option = "--" + name.replace("_", "-")
        if value is True:
            argv.append(option)
        elif value is not None and value is not False:
            argv += [option, str(value)]
    return argv


def unknown_placeholders(text: str) -> None:
    """Raise ValueError when ``text`` names a placeholder other than ``PLACEHOLDERS`` or is malformed."""
    try:
        fields = [name for _literal, name, _spec, _conv in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc} (write a literal brace as {{{{ or }}}})") from exc
    for name in fields:
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"{text!r} names {{{name}}}; the placeholders are {known}")
