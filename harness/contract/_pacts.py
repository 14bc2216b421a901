"""Pact files as the harness reads them: who is consumer and provider, which interactions, and a stable form.

The stable form drops what varies between machines and runs (the pact library versions in ``metadata``)
and sorts interactions, so a committed file changes only when a contract does.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from harness.contract._errors import PactFileError

# Metadata written by the pact libraries that says how a file was made, not what it promises.
VOLATILE_METADATA = ("pactRust", "pactPython", "pact-python", "pact_python")


class InteractionKind(StrEnum):
    HTTP = "http"
    MESSAGE = "message"


class PactInteraction(BaseModel):
    """One interaction of a pact: its description and provider states name it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    states: tuple[str, ...] = ()
    kind: InteractionKind = InteractionKind.HTTP

    @property
    def label(self) -> str:
        given = f" (given {', '.join(self.states)})" if self.states else ""
        return f"{self.description}{given}"


class PactFile(BaseModel):
    """A committed pact: one consumer, one provider, its interactions and the digest of its stable form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    consumer: str
    provider: str
    interactions: tuple[PactInteraction, ...]
    sha256: str

    @property
    def pair(self) -> str:
        return f"{self.consumer} -> {self.provider}"


def interaction_key(interaction: dict[str, Any]) -> str:
    """What identifies an interaction within a pact: its description and its provider states."""
    states = [state.get("name", "") for state in interaction.get("providerStates", [])]
    return json.dumps([interaction.get("description", ""), states])


def normalise(document: dict[str, Any]) -> dict[str, Any]:
    """The stable form: volatile metadata removed, interactions sorted by description and states."""
    stable = dict(document)
    metadata = {k: v for k, v in document.get("metadata", {}).items() if k not in VOLATILE_METADATA}
    stable["metadata"] = metadata
    stable["interactions"] = sorted(document.get("interactions", []), key=interaction_key)
    return stable


def render(document: dict[str, Any]) -> str:
    """The stable form as text: sorted keys, two-space indent, one trailing newline."""
    return json.dumps(normalise(document), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_document(path: Path) -> dict[str, Any]:
    """The JSON of a pact file; PactFileError when it is missing or is not a pact."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PactFileError(f"pact file {path} does not exist", path=path) from exc
    except (OSError, ValueError) as exc:
        raise PactFileError(f"pact file {path} is not readable JSON: {exc}", path=path) from exc
    if not isinstance(document, dict) or not {"consumer", "provider", "interactions"} <= document.keys():
        raise PactFileError(f"{path} is not a pact (no consumer, provider and interactions)", path=path)
    return document


def load_pact(path: Path) -> PactFile:
    """Read one pact file."""
    document = read_document(path)
    try:
        interactions = tuple(
            PactInteraction(
                description=item["description"],
                states=tuple(state["name"] for state in item.get("providerStates", [])),
                kind=InteractionKind.HTTP if "request" in item else InteractionKind.MESSAGE,
            )
            for item in document["interactions"]
        )
        return PactFile(
            path=path,
            consumer=document["consumer"]["name"],
            provider=document["provider"]["name"],
            interactions=interactions,
            sha256=hashlib.sha256(render(document).encode()).hexdigest(),
        )
    except (KeyError, TypeError) as exc:
        raise PactFileError(f"{path} is not a pact: missing {exc}", path=path) from exc


def load_pacts(directory: Path, *, provider: str | None = None) -> list[PactFile]:
    """Every pact in ``directory`` (``*.json``), sorted by file name; only ``provider``'s when given."""
    if not directory.is_dir():
        raise PactFileError(f"pact directory {directory} does not exist", path=directory)
    pacts = [load_pact(path) for path in sorted(directory.glob("*.json"))]
    return [pact for pact in pacts if provider is None or pact.provider == provider]
