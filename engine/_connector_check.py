"""``connector test``: call every action of a connector against a base URL and report.

Each action is called once with a sample input generated from its input
schema, in the order the resource graph of its paths gives (see
``_resource_graph.py``): creates first, parents before children, then reads,
other writes, and deletes in reverse. The id a create answers (whatever its
envelope and casing) fills the path parameters that name its collection in
the later calls; ids first seen in a list fill them when nothing creates.

Every action ends in one of three outcomes:

* ``passed``: a success status and a body that fits the documented output schema;
* ``drift``: a success status, but the body contradicts the output schema (each
  contradiction listed with its JSON pointer). The app works; its document is off;
* ``failed``, with a category saying why:

  - ``transport``: the request could not be made or its answer not read
    (connection refused, timeout, egress denied, credentials missing);
  - ``input_refused``: the sample input was refused, by the engine before sending
    or by the app (400, 422);
  - ``no_id``: a path parameter had no known id (nothing created or listed that
    collection, or its create failed), the sample sent instead was not found;
  - ``status``: any other non-success status.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable

from ._resource_graph import IdBook, ResourceGraph, Slot, path_slots, shape
from .actions import ActionExecutor
from .errors import ActionInputInvalid, EngineError, ExpressionError, SpecError
from .samples import merge_all_of, sample_from_schema
from .specs import ActionSpec, ConnectorSpec, deref, with_defs

_INPUT_FIELD = re.compile(r"^\{\{\s*input\.(?:`([^`]+)`|([^\s}]+))\s*\}\}$")
_BODY_ID_KEYS = ("id", "ID", "Id", "uuid", "key")
MAX_REASON = 240
MAX_DRIFT = 5

PASSED, DRIFT, FAILED = "passed", "drift", "failed"
TRANSPORT, STATUS, INPUT_REFUSED, NO_ID = "transport", "status", "input_refused", "no_id"
CATEGORIES = (NO_ID, STATUS, INPUT_REFUSED, TRANSPORT)


@dataclass
class ActionCheck:
    """The outcome of calling one action.

    ``outcome`` is ``passed``, ``drift`` or ``failed``; a failure has a
    ``category`` (``transport``, ``status``, ``input_refused``, ``no_id``) and a
    ``reason``; drift lists ``{"pointer", "message"}`` contradictions of the
    output schema; ``notes`` say what the check chose for this call (an id that
    did not fit its parameter, replaced by a sample).
    """

    action: str
    method: str
    path: str
    sent: bool
    status: int | None
    schema_ok: bool | None
    passed: bool
    reason: str | None = None
    outcome: str = FAILED
    category: str | None = None
    drift: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ConnectorCheckReport:
    """Every action's outcome, in the order they were called."""

    connector: str
    checks: list[ActionCheck]

    @property
    def passed(self) -> int:
        return sum(1 for c in self.checks if c.outcome == PASSED)

    @property
    def failed(self) -> list[ActionCheck]:
        return [c for c in self.checks if c.outcome == FAILED]

    @property
    def drifted(self) -> list[ActionCheck]:
        return [c for c in self.checks if c.outcome == DRIFT]

    def categories(self) -> dict[str, int]:
        """Failures counted by category, in :data:`CATEGORIES` order (empty categories left out)."""
        counts = Counter(c.category for c in self.failed)
        return {name: counts[name] for name in CATEGORIES if counts[name]}

    def summary(self) -> dict[str, Any]:
        """``{"actions", "passed", "drift": [{action, problems}], "failed": [{action, category, reason}], "categories", "notes"}``.

        ``categories`` counts the failures by category; ``notes`` lists
        ``{action, note}`` for what the check chose on an action's behalf.
        """
        return {
            "actions": len(self.checks),
            "passed": self.passed,
            "drift": [{"action": c.action, "problems": c.drift} for c in self.drifted],
            "failed": [{"action": c.action, "category": c.category, "reason": c.reason} for c in self.failed],
            "categories": self.categories(),
            "notes": [{"action": c.action, "note": note} for c in self.checks for note in c.notes],
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "connector": self.connector, "results": [asdict(c) for c in self.checks]}


def _input_field(template: Any) -> str | None:
    match = _INPUT_FIELD.match(template) if isinstance(template, str) else None
    return (match.group(1) or match.group(2)) if match else None


def _coerce(value: Any, schema: Any) -> Any:
    """An id as the input schema types it (an API may answer 7 where its path parameter is a string)."""
    kind = merge_all_of(schema).get("type") if isinstance(schema, dict) else None
    if kind == "string" and not isinstance(value, str):
        return str(value)
    if kind == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _misfit(value: Any, schema: Any) -> str | None:
    """Why ``value`` does not fit ``schema`` (None when it does, or when the schema cannot be applied)."""
    if not isinstance(schema, dict) or not schema:
        return None
    try:
        # formats count here: a path parameter that says uuid is refused by the app when it is not one
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        error = next(iter(validator.iter_errors(value)), None)
    except (re.error, TypeError, LookupError, ValueError, Unresolvable):
        return None
    return error.message if error is not None else None


@dataclass
class _Prepared:
    value: Any
    notes: list[str] = field(default_factory=list)
    missing: list[tuple[Slot, str, str | None]] = field(default_factory=list)  # (slot, sample sent, why no id fit)


def _prepare(name: str, action: ActionSpec, ids: IdBook | None, defs: dict[str, Any] | None = None) -> _Prepared:
    # Required inputs only: optional filters with made-up values narrow lists to nothing,
    # and opaque paging cursors cannot be made up at all. The body is sampled in full.
    value = sample_from_schema(with_defs(action.input, defs), seed=name, for_request=True, required_only=True)
    prepared = _Prepared(value)
    if not isinstance(value, dict):
        return prepared
    properties = action.input.get("properties") or {}
    body_schema = properties.get("body")
    if body_schema is not None and action.body is not None:
        value["body"] = sample_from_schema(with_defs(body_schema, defs), seed=name, for_request=True)
    slots = {slot.param: slot for slot in path_slots(action.path)}
    for param, template in action.path_params.items():
        input_name = _input_field(template)
        if not input_name or input_name not in properties:
            continue
        schema = deref(properties[input_name], defs)
        slot = slots.get(param)
        known = ids.lookup(slot) if ids is not None and slot is not None else None
        misfit = None
        if known is not None:
            candidate = _coerce(known.value, schema)
            problem = _misfit(candidate, schema)
            if problem is None:
                value[input_name] = candidate
                continue
            misfit = f"the id {known.value!r} from {known.source} does not fit the parameter ({problem})"
            prepared.notes.append(f"{param}: {misfit}; sent a sample that does")
        # The same sample for a parameter in every action, so records made under it are found again.
        value[input_name] = sample_from_schema(with_defs(properties[input_name], defs), seed=f"param:{param}",
                                               for_request=True)
        if slot is not None:
            prepared.missing.append((slot, str(value[input_name]), misfit))
    body = value.get("body")
    if ids is not None and action.method in ("PUT", "PATCH") and isinstance(body, dict) and not action.path.rstrip("/").endswith("}"):
        # Update on the collection path with the id in the body (Cin7 Core's PUT /customer).
        known = ids.ids.get(shape(action.path))
        props = merge_all_of(body_schema or {}, defs).get("properties") or {}
        key = next((k for k in _BODY_ID_KEYS if k in props), None)
        if known is not None and key is not None:
            body[key] = _coerce(known.value, deref(props[key], defs))
    return prepared


def sample_input(name: str, action: ActionSpec, ids: IdBook | None = None, defs: dict[str, Any] | None = None) -> Any:
    """A sample input for ``action``: required inputs and a full body, ids of records known so far filled in.

    Without ``ids`` every path parameter gets a schema-valid sample (the same
    one for a parameter name across actions).
    """
    return _prepare(name, action, ids, defs).value


async def check_connector(
    connector: ConnectorSpec,
    executor: ActionExecutor,
    *,
    on_result: Callable[[ActionCheck], None] | None = None,
) -> ConnectorCheckReport:
    """Call every action of ``connector`` through ``executor`` and report per action.

    The executor carries the base URL override and the credentials (real
    ones, or placeholders of the right shape); nothing here raises for a
    failing action: the failure is the action's category and reason in the
    report. ``on_result`` is called with each action's outcome as it is known
    (a progress bar).
    """
    graph = ResourceGraph(connector)
    ids = IdBook(graph)
    checks: list[ActionCheck] = []
    for name in graph.order():
        action = connector.actions[name]
        check = ActionCheck(action=name, method=action.method, path=action.path, sent=False, status=None,
                            schema_ok=None, passed=False)
        checks.append(check)
        await _check_one(connector, executor, name, action, graph, ids, check)
        if check.outcome == FAILED and name in graph.creates:
            ids.missed(graph.creates[name], f"{name} failed ({check.category})")
        if on_result is not None:
            on_result(check)
    return ConnectorCheckReport(connector=connector.id, checks=checks)


async def _check_one(connector: ConnectorSpec, executor: ActionExecutor, name: str, action: ActionSpec,
                     graph: ResourceGraph, ids: IdBook, check: ActionCheck) -> None:
    try:
        prepared = _prepare(name, action, ids, connector.defs)
        check.notes = prepared.notes
        response = await executor.call(connector.id, name, prepared.value, paginate_pages=False, raise_for_status=False)
    except EngineError as exc:
        refused = isinstance(exc, (ActionInputInvalid, ExpressionError, SpecError))
        _fail(check, INPUT_REFUSED if refused else TRANSPORT, f"{exc.code}: {exc}")
        return
    check.sent, check.status = True, response.status
    if not response.ok:
        detail = _detail(response.body)
        if response.status in (404, 410) and prepared.missing:
            slot, sample, misfit = prepared.missing[0]
            _fail(check, NO_ID, f"no id for {slot.param} ({misfit or ids.why_missing(slot)}); the sample {sample!r} "
                                f"was answered {response.status}: {detail}")
        elif response.status in (400, 422):
            _fail(check, INPUT_REFUSED, f"status {response.status}: {detail}")
        else:
            _fail(check, STATUS, f"status {response.status}: {detail}")
        return
    check.drift = _contradictions(connector.standalone(action.output), response.body)
    check.schema_ok = not check.drift
    check.outcome = PASSED if check.schema_ok else DRIFT
    check.passed = check.schema_ok
    if check.drift:
        first = check.drift[0]
        more = f" (+{len(check.drift) - 1} more)" if len(check.drift) > 1 else ""
        check.category = DRIFT
        check.reason = f"response contradicts the output schema at {first['pointer'] or '/'}: {first['message']}{more}"[:MAX_REASON]
    if name in graph.creates:
        for slot, sample, _ in prepared.missing:
            ids.pin(slot.collection, sample, name)
        ids.remember(graph.creates[name], response.body, name, created=True)
    elif name in graph.lists:
        # ids first seen in a list address records nothing here creates (read-only APIs, seeded apps)
        ids.remember(graph.lists[name], response.body, name, created=False)


def _fail(check: ActionCheck, category: str, reason: str) -> None:
    check.outcome, check.category, check.reason, check.passed = FAILED, category, reason[:MAX_REASON], False


def _detail(body: Any) -> str:
    """The app's own words for a failure when it gives them (``error.message``), else the body as JSON."""
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else body.get("message") or body.get("detail")
        if isinstance(message, str):
            problems = error.get("problems") if isinstance(error, dict) else None
            if isinstance(problems, list) and problems:
                message += " " + json.dumps(problems[:2], default=str)
            return message
    return body if isinstance(body, str) else json.dumps(body, default=str)


def _contradictions(schema: dict | None, body: Any) -> list[dict[str, str]]:
    """Where ``body`` contradicts ``schema``: up to :data:`MAX_DRIFT` ``{"pointer", "message"}``, one per place."""
    if not schema:
        return []
    try:
        errors = sorted(Draft202012Validator(schema).iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    except (re.error, TypeError, LookupError, ValueError, Unresolvable) as exc:
        return [{"pointer": "", "message": f"the output schema cannot be applied: {exc}"}]
    found: dict[str, str] = {}
    for error in errors:
        pointer = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.absolute_path)
        found.setdefault(pointer, error.message[:MAX_REASON])
        if len(found) >= MAX_DRIFT:
            break
    return [{"pointer": p, "message": m} for p, m in found.items()]
