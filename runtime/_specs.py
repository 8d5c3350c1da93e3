"""Specs as the runtime reads them: validated with the engine's models, refused with JSON pointers,
and connector specs parsed once per stored version (:class:`SpecCache`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

import store
from engine.errors import Problem, SpecValidationError
from engine.specs import ConnectorSpec, load_model
from runtime.errors import SpecInvalid

M = TypeVar("M", bound=BaseModel)

# Connector versions never change once stored (each edit is a new version), so a parsed spec can
# be kept by version id; parsing checks every action's JSON Schemas and costs more than the query.
SPEC_CACHE_SIZE = 256


def problems_out(problems: Iterable[Problem]) -> list[dict[str, str]]:
    """Engine problems as ``{"pointer", "reason"}`` (the shape of every validation error)."""
    return [{"pointer": p.pointer, "reason": p.message} for p in problems]


def validated(model: type[M], data: dict[str, Any], kind: str) -> M:
    """``data`` validated as ``model``; ``SpecInvalid`` naming each JSON pointer otherwise."""
    try:
        return load_model(model, data, kind)
    except SpecValidationError as exc:
        raise SpecInvalid(kind, problems_out(exc.problems)) from None
    except (RecursionError, ValidationError) as exc:
        raise SpecInvalid(kind, [{"pointer": "", "reason": f"cannot be validated: {type(exc).__name__}"}]) from None


def stored(spec: BaseModel) -> dict[str, Any]:
    """The JSON a validated spec is stored as (aliases, defaults left implicit)."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def loaded(model: type[M], data: dict[str, Any], kind: str) -> M:
    """A stored spec read back; a spec that no longer validates (the engine's models changed) is a 422."""
    return validated(model, data, kind)


class SpecCache:
    """Parsed connector specs by (organization, version id), least recently used dropped first.

    Shared by the runs of a process: callers must not change the specs it hands out. Thread-safe,
    since plans are read in worker threads.
    """

    def __init__(self, size: int = SPEC_CACHE_SIZE) -> None:
        self._size = size
        self._parsed: OrderedDict[tuple[str, str], ConnectorSpec] = OrderedDict()
        self._lock = threading.Lock()

    def parsed(self, org_id: str, row: dict[str, Any]) -> ConnectorSpec:
        """The spec of a stored connector version ``row`` (``id``, ``spec``), parsed once."""
        key = (org_id, row["id"])
        with self._lock:
            spec = self._parsed.get(key)
            if spec is not None:
                self._parsed.move_to_end(key)
                return spec
        spec = loaded(ConnectorSpec, row["spec"], "connector")
        with self._lock:
            self._parsed[key] = spec
            while len(self._parsed) > self._size:
                self._parsed.popitem(last=False)
        return spec

    def connectors(self, tx: store.Tx, org_id: str, keys: Iterable[str], *, published_only: bool) -> dict[str, ConnectorSpec]:
        """The specs of the connectors ``keys`` that exist: each one's latest published version, or
        with ``published_only=False`` its latest version of any status (see ``store.Connectors.specs``)."""
        rows = store.Connectors(tx).specs(org_id, sorted(set(keys)), published_only=published_only)
        return {key: self.parsed(org_id, row) for key, row in rows.items()}

    def __len__(self) -> int:
        return len(self._parsed)
