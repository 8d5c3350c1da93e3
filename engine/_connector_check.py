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

from .actions import ActionExecutor
from .errors import EngineError
from .samples import sample_from_schema
from .specs import ActionSpec, ConnectorSpec

_INPUT_FIELD = re.compile(r"^\{\{\s*input\.(`?)([^`]+)\1\s*\}\}$")
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


def _order(connector: ConnectorSpec) -> list[str]:
    item_paths = {a.path for a in connector.actions.values() if a.path != _collection(a.path)}
    collections = {_collection(p) for p in item_paths}

    def rank(name: str) -> tuple[int, int, str]:
        action = connector.actions[name]
        is_create = action.method == "POST" and action.path in collections
        if is_create:
            return (0, action.path.count("/"), name)
        if action.method == "DELETE":
            return (3, -action.path.count("/"), name)  # children before parents
        if action.method in ("PUT", "PATCH"):
            return (2, action.path.count("/"), name)
        return (1, action.path.count("/"), name)

    return sorted(connector.actions, key=rank)


def _find_id(body: Any, hints: tuple[str, ...]) -> Any:
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
    return match.group(2) if match else None


def sample_input(name: str, action: ActionSpec, created: dict[str, Any]) -> Any:
    """A sample input for ``action``, with ids of records created earlier filled in."""
    value = sample_from_schema(action.input, seed=name, for_request=True)
    if not isinstance(value, dict):
        return value
    collection = _collection(action.path)
    for param, template in action.path_params.items():
        field = _input_field(template)
        prefix = action.path.split("{" + param + "}")[0].rstrip("/")
        if field and prefix in created:
            value[field] = created[prefix]
    body = value.get("body")
    if action.method in ("PUT", "PATCH") and collection == action.path and collection in created and isinstance(body, dict):
        # Update on the collection path with the id in the body (Cin7 Core's PUT /customer).
        props = ((action.input.get("properties") or {}).get("body") or {}).get("properties") or {}
        for key in _ID_KEYS:
            if key in props:
                body[key] = created[collection]
                break
    return value


async def check_connector(connector: ConnectorSpec, executor: ActionExecutor) -> ConnectorCheckReport:
    """Call every action of ``connector`` through ``executor`` and report per action.

    The executor carries the base URL override and the credentials (real
    ones, or placeholders of the right shape); nothing here raises for a
    failing action: the failure is the action's reason in the report.
    """
    checks: list[ActionCheck] = []
    created: dict[str, Any] = {}
    for name in _order(connector):
        action = connector.actions[name]
        check = ActionCheck(action=name, method=action.method, path=action.path, sent=False, status=None, schema_ok=None, passed=False)
        checks.append(check)
        try:
            value = sample_input(name, action, created)
            response = await executor.call(connector.id, name, value, paginate_pages=False, raise_for_status=False)
        except EngineError as exc:
            check.reason = f"{exc.code}: {exc}"[:MAX_REASON]
            continue
        check.sent, check.status = True, response.status
        if not response.ok:
            detail = response.body if isinstance(response.body, str) else json.dumps(response.body, default=str)
            check.reason = f"status {response.status}: {detail}"[:MAX_REASON]
            continue
        check.schema_ok, problem = _matches(action.output, response.body)
        if not check.schema_ok:
            check.reason = f"response does not match the output schema: {problem}"[:MAX_REASON]
            continue
        check.passed = True
        if action.method == "POST" and action.path == _collection(action.path):
            params = re.findall(r"\{([^}]+)\}", next((a.path for a in connector.actions.values() if _collection(a.path) == action.path and a.path != action.path), ""))
            found = _find_id(response.body, tuple(params))
            if found is not None:
                created[action.path] = found
    return ConnectorCheckReport(connector=connector.id, checks=checks)


def _matches(schema: dict | None, body: Any) -> tuple[bool, str | None]:
    if not schema:
        return True, None
    error = next(iter(Draft202012Validator(schema).iter_errors(body)), None)
    if error is None:
        return True, None
    where = "/" + "/".join(str(p) for p in error.absolute_path)
    return False, f"{where}: {error.message}"
