"""``connector test``: call every action of a connector against a base URL and report.

Each action is called once with a sample input generated from its input
schema. The order is chosen so that a stateful app (a sandbox, or a real
test account) can answer: actions that create records run first and the ids
they return are fed to the actions that read, update or delete those
records; deletes run last. An action passes when the app answers with a
success status and the body matches the action's output schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable

from .actions import ActionExecutor
from .errors import EngineError
from .samples import merge_all_of, sample_from_schema
from .specs import ActionSpec, ConnectorSpec, deref, with_defs

_INPUT_FIELD = re.compile(r"^\{\{\s*input\.(?:`([^`]+)`|([^\s}]+))\s*\}\}$")
_ID_KEYS = ("id", "ID", "Id", "uuid", "key")
MAX_REASON = 240


@dataclass
class ActionCheck:
    """The outcome of calling one action."""

    action: str
    method: str
    path: str
    sent: bool
    status: int | None
    schema_ok: bool | None
    passed: bool
    reason: str | None = None


@dataclass
class ConnectorCheckReport:
    """Every action's outcome, in the order they were called."""

    connector: str
    checks: list[ActionCheck]

    @property
    def passed(self) -> int:
        return sum(1 for c in self.checks if c.passed)

    def summary(self) -> dict[str, Any]:
        """``{"actions": N, "passed": N, "failed": [{"action": ..., "reason": ...}]}``."""
        return {
            "actions": len(self.checks),
            "passed": self.passed,
            "failed": [{"action": c.action, "reason": c.reason} for c in self.checks if not c.passed],
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "connector": self.connector, "results": [asdict(c) for c in self.checks]}


def _collection(path: str) -> str:
    """``/pets/{petId}`` -> ``/pets``; a path that ends in a literal is its own collection."""
    return re.sub(r"/\{[^}]+\}$", "", path)


def _creates(connector: ConnectorSpec) -> set[str]:
    """Actions that create records: a POST on a collection path (one that is also listed, or has item paths)."""
    collections = {_collection(a.path) for a in connector.actions.values() if a.path != _collection(a.path)}
    listed = {a.path for a in connector.actions.values() if a.method == "GET"}
    return {
        name for name, a in connector.actions.items()
        if a.method == "POST" and a.path == _collection(a.path) and (a.path in collections or a.path in listed)
    }


def _order(connector: ConnectorSpec) -> list[str]:
    creates = _creates(connector)

    def rank(name: str) -> tuple[int, int, str]:
        action = connector.actions[name]
        depth = action.path.count("/")
        if name in creates:
            return (0, depth, name)  # parents before children
        if action.method == "DELETE":
            return (3, -depth, name)  # children before parents
        if action.method in ("PUT", "PATCH"):
            return (2, depth, name)
        return (1, depth, name)

    return sorted(connector.actions, key=rank)


def _find_id(body: Any, hints: tuple[str, ...] = ()) -> Any:
    if isinstance(body, dict):
        for key in hints + _ID_KEYS:
            if isinstance(body.get(key), (str, int)) and body.get(key) != "":
                return body[key]
        for value in body.values():  # an envelope: {"CustomerList": [{...}]}
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return _find_id(value[0], hints)
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return _find_id(body[0], hints)
    return None


def _input_field(template: Any) -> str | None:
    match = _INPUT_FIELD.match(template) if isinstance(template, str) else None
    return (match.group(1) or match.group(2)) if match else None


class _Created:
    """Ids of records made (or first seen) during a check, by collection path and by item parameter name."""

    def __init__(self, connector: ConnectorSpec):
        self.by_collection: dict[str, Any] = {}
        self.by_param: dict[str, Any] = {}
        self._item_params: dict[str, list[str]] = {}
        for action in connector.actions.values():
            match = re.search(r"/\{([^}]+)\}$", action.path)
            if match:
                self._item_params.setdefault(_collection(action.path), []).append(match.group(1))

    def __contains__(self, collection: str) -> bool:
        return collection in self.by_collection

    def remember(self, collection: str, body: Any) -> None:
        params = tuple(self._item_params.get(collection, ()))
        found = _find_id(body, params)
        if found is None:
            return
        self.by_collection[collection] = found
        for param in params:
            # Nested APIs name a parent by the same parameter under other paths
            # (Google Tasks: /users/@me/lists/{tasklist} and /lists/{tasklist}/tasks).
            self.by_param.setdefault(param, found)

    def for_param(self, path: str, param: str) -> Any:
        prefix = path.split("{" + param + "}")[0].rstrip("/")
        if prefix in self.by_collection:
            return self.by_collection[prefix]
        return self.by_param.get(param)


def _coerce(value: Any, schema: Any) -> Any:
    """An id as the input schema types it (an API may answer 7 where its path parameter is a string)."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "string" and not isinstance(value, str):
        return str(value)
    if kind == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def sample_input(name: str, action: ActionSpec, created: _Created, defs: dict[str, Any] | None = None) -> Any:
    """A sample input for ``action``, with ids of records created earlier filled in.

    ``defs`` are the connector's shared schemas (``ConnectorSpec.defs``), which the action's schemas may name.
    """
    # Required inputs only: optional filters with made-up values narrow lists to nothing,
    # and opaque paging cursors cannot be made up at all. The body is sampled in full.
    value = sample_from_schema(with_defs(action.input, defs), seed=name, for_request=True, required_only=True)
    if not isinstance(value, dict):
        return value
    properties = action.input.get("properties") or {}
    body_schema = properties.get("body")
    if body_schema is not None and action.body is not None:
        value["body"] = sample_from_schema(with_defs(body_schema, defs), seed=name, for_request=True)
    for param, template in action.path_params.items():
        field = _input_field(template)
        known = created.for_param(action.path, param)
        if field and known is not None:
            value[field] = _coerce(known, deref(properties.get(field), defs))
        elif field and field in properties:
            # The same parent id in every action, so records made under it are found again.
            value[field] = sample_from_schema(with_defs(properties[field], defs), seed=f"param:{param}",
                                              for_request=True)
    collection = _collection(action.path)
    body = value.get("body")
    if action.method in ("PUT", "PATCH") and collection == action.path and collection in created and isinstance(body, dict):
        # Update on the collection path with the id in the body (Cin7 Core's PUT /customer).
        props = merge_all_of(body_schema or {}, defs).get("properties") or {}
        for key in _ID_KEYS:
            if key in props:
                body[key] = _coerce(created.by_collection[collection], deref(props[key], defs))
                break
    return value


async def check_connector(connector: ConnectorSpec, executor: ActionExecutor) -> ConnectorCheckReport:
    """Call every action of ``connector`` through ``executor`` and report per action.

    The executor carries the base URL override and the credentials (real
    ones, or placeholders of the right shape); nothing here raises for a
    failing action: the failure is the action's reason in the report.
    """
    checks: list[ActionCheck] = []
    created = _Created(connector)
    creates = _creates(connector)
    for name in _order(connector):
        action = connector.actions[name]
        check = ActionCheck(action=name, method=action.method, path=action.path, sent=False, status=None, schema_ok=None, passed=False)
        checks.append(check)
        try:
            value = sample_input(name, action, created, connector.defs)
            response = await executor.call(connector.id, name, value, paginate_pages=False, raise_for_status=False)
        except EngineError as exc:
            check.reason = f"{exc.code}: {exc}"[:MAX_REASON]
            continue
        check.sent, check.status = True, response.status
        if not response.ok:
            detail = response.body if isinstance(response.body, str) else json.dumps(response.body, default=str)
            check.reason = f"status {response.status}: {detail}"[:MAX_REASON]
            continue
        check.schema_ok, problem = _matches(connector.standalone(action.output), response.body)
        if not check.schema_ok:
            check.reason = f"response does not match the output schema: {problem}"[:MAX_REASON]
            continue
        check.passed = True
        # A create's answer names the new record; a create that answers without a
        # body (petstore's 201) leaves the id to be read from the collection's list.
        if name in creates or (action.method == "GET" and action.path not in created):
            created.remember(action.path, response.body)
    return ConnectorCheckReport(connector=connector.id, checks=checks)


def _matches(schema: dict | None, body: Any) -> tuple[bool, str | None]:
    if not schema:
        return True, None
    try:
        error = next(iter(Draft202012Validator(schema).iter_errors(body)), None)
    except (re.error, TypeError, LookupError, ValueError, Unresolvable) as exc:
        return False, f"the output schema cannot be applied: {exc}"
    if error is None:
        return True, None
    where = "/" + "/".join(str(p) for p in error.absolute_path)
    return False, f"{where}: {error.message}"
