"""The sync step: match source records to target records by a key, then create or update.

Rules (DESIGN.md's "matching by email"):

- The target records come from ``target.list`` (called with ``paginate``): a
  paginated result ``{"items": [...], "pages": n}`` gives its items; a list is
  used as is; an object with exactly one list-valued property gives that list;
  anything else is a :class:`~engine.errors.SyncConfigError`.
- ``match.target`` is evaluated with each target record as the JSONata input and
  may give one key or several (Cin7 keeps emails in ``Contacts[]``, so
  ``Contacts.Email`` gives a list): each indexes the record. When two targets
  share a key, the first listed keeps it. ``match.source`` is evaluated on each
  source record; a list of keys matches on any of them.
- Keys are compared trimmed and, unless ``case_sensitive``, case-folded;
  numbers compare by value. A record without a key is skipped ("no match key").
- ``fields`` = ``map`` rendered with ``source`` and ``target`` (null when
  unmatched). A matched target already holding ``fields`` (a deep subset: dict
  keys equal recursively, a missing key equal to null, list elements compared
  by position) is ``unchanged`` when ``skip_unchanged``; otherwise it is updated.
  An unmatched record is created. A later source record with the same key
  matches what an earlier one created or updated, so duplicates never create twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import StepValueError, SyncConfigError
from ..expressions import evaluate, is_template, render
from ..specs import SyncSpec

DEFAULT_WRITE_INPUT = {"body": "{{ fields }}"}
# Source records compared in one worker-thread hop: a hop costs about as much as mapping a
# record, and the budget's meter is charged from inside every evaluation all the same.
SYNC_BATCH = 256
ID_FIELDS = ("id", "ID", "Id", "_id")


class SyncEnv(Protocol):
    """What the sync step needs from the interpreter (see ``_interpreter._StepEnv``)."""

    run_id: str
    step_id: str
    pointer: str

    def context(self) -> dict[str, Any]: ...

    def with_secrets(self, context: dict[str, Any]) -> dict[str, Any]:
        """``context`` with the run's secrets added: only for the inputs sent to the target's actions."""
        ...

    async def evaluate(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` through the run's expression evaluator (off the event loop unless trivial)."""
        ...

    async def call(self, action: str, input: Any, sub_path: str, *, paginate: bool) -> Any: ...


def as_records(value: Any, run_id: str, step_id: str, pointer: str) -> list[Any]:
    """A template's value as a list: a list as is, one object as ``[obj]``, null as ``[]``.

    Raises:
        StepValueError: for any other value (a string, a number).
    """
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    got = f"{type(value).__name__} {_short(value)}"
    raise StepValueError(run_id, step_id, pointer, f"expected a list of records, got {got}")


def expression(text: str, context: Any, pointer: str) -> Any:
    """Evaluate a field that holds a bare expression, accepting ``{{ }}`` around it too."""
    if is_template(text):
        return render(text, context, pointer)
    return evaluate(text, context, pointer)


def is_subset(fields: Any, target: Any) -> bool:
    """Whether ``target`` already holds ``fields`` (see the module docstring)."""
    if isinstance(fields, dict):
        if not isinstance(target, dict):
            return False
        return all(is_subset(v, target[k]) if k in target else v is None for k, v in fields.items())
    if isinstance(fields, list):
        if not isinstance(target, list) or len(fields) > len(target):
            return False
        return all(is_subset(f, t) for f, t in zip(fields, target, strict=False))
    if isinstance(fields, bool) or isinstance(target, bool):
        return type(fields) is type(target) and fields == target
    return fields == target


def match_keys(value: Any) -> list[Any]:
    """The usable keys in an evaluated match expression: non-empty scalars, lists flattened."""
    if isinstance(value, list):
        return [k for v in value for k in match_keys(v)]
    if value is None or isinstance(value, dict):
        return []
    if isinstance(value, str) and not value.strip():
        return []
    return [value]


def normalise_key(key: Any, case_sensitive: bool) -> str:
    """The form keys are compared in."""
    if isinstance(key, str):
        key = key.strip()
        return key if case_sensitive else key.casefold()
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    return json.dumps(key)


def target_records(listed: Any, env: SyncEnv, list_action: str) -> list[Any]:
    """The records in a list action's result (see the module docstring)."""
    if isinstance(listed, list):
        return listed
    if isinstance(listed, dict):
        if listed.get("truncated") is True:
            # Records past the last page fetched would look new and be created again.
            raise SyncConfigError(env.run_id, env.step_id, f"list action {list_action} stopped at its page limit "
                                  f"({listed.get('pages')} pages) with more records to fetch; raise the action's "
                                  "pagination max_pages rather than sync against part of the target")
        if isinstance(listed.get("items"), list) and "pages" in listed:
            return listed["items"]
        enveloped = _sole_list(listed)
        if enveloped is not None:
            return enveloped
        arrays = [k for k, v in listed.items() if isinstance(v, list)]
        shape = f"an object with list properties {arrays}" if arrays else f"an object with keys {sorted(listed)[:10]}"
    else:
        shape = f"{type(listed).__name__} {_short(listed)}"
    raise SyncConfigError(
        env.run_id, env.step_id,
        f"list action {list_action} gave {shape}; expected a list, paginated items, "
        "or an object with exactly one list property",
    )


def _written(result: Any, fallback: dict, keep_id: Any) -> Any:
    """The record a create or update answered with, for later source records with the same key.

    Apps answer writes in several shapes: the record, an envelope around it (Cin7 Core's
    ``{"CustomerList": [...]}``), a list, or nothing. The record is taken out of an
    envelope by the same rule as lists; without one, the written fields stand in,
    keeping the matched record's id.
    """
    record = result
    if isinstance(result, dict) and _record_id(result) is None:
        result = _sole_list(result)
    if isinstance(result, list):
        record = result[0] if len(result) == 1 and isinstance(result[0], dict) else None
    if isinstance(record, dict) and _record_id(record) is not None:
        return record
    merged = dict(fallback)
    if isinstance(keep_id, dict):
        for name in ID_FIELDS:
            if keep_id.get(name) is not None:
                merged.setdefault(name, keep_id[name])
                break
    return merged


def _sole_list(envelope: dict) -> list | None:
    """The one list property of an object (``{"Total": 1, "CustomerList": [...]}``), else None."""
    arrays = [v for v in envelope.values() if isinstance(v, list)]
    return arrays[0] if len(arrays) == 1 else None


def _record_id(record: Any) -> Any:
    if isinstance(record, dict):
        for name in ID_FIELDS:
            if record.get(name) is not None:
                return record[name]
    return None


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Slot:
    """A target record as the sync currently knows it; every key of the record points at one slot."""

    record: Any


async def run_sync(spec: SyncSpec, env: SyncEnv) -> dict[str, Any]:
    """Run a sync step; return ``{created, updated, unchanged, skipped, results}``.

    Raises:
        SyncConfigError: a needed create/update action is missing, or the list result has no records.
        StepValueError: the source is not a list of records.
        ExpressionError: a template or match expression failed (the interpreter names the step).
        StepFailed: an action call failed.
    """
    pointer = env.pointer + "/sync"
    base = env.context()
    source = await env.evaluate(lambda: as_records(render(spec.source, base, pointer + "/source"), env.run_id,
                                                   env.step_id, pointer + "/source"))
    target = spec.target
    list_input = await env.evaluate(render, target.list_input, env.with_secrets(base), pointer + "/target/list_input")
    listed = await env.call(target.list, list_input, "list", paginate=True)

    case_sensitive = spec.match.case_sensitive
    records = target_records(listed, env, target.list)

    def build_index() -> dict[str, _Slot]:
        index: dict[str, _Slot] = {}
        for record in records:
            slot = _Slot(record)
            for key in match_keys(expression(spec.match.target, record, pointer + "/match/target")):
                index.setdefault(normalise_key(key, case_sensitive), slot)
        return index

    index = await env.evaluate(build_index)

    def match(record: Any) -> tuple[list[Any], list[str], _Slot | None, Any]:
        # reads the index only: the loop below changes it between calls, never during one
        keys = match_keys(expression(spec.match.source, record, pointer + "/match/source"))
        if not keys:
            return keys, [], None, None
        normalised = [normalise_key(k, case_sensitive) for k in keys]
        slot = next((index[k] for k in normalised if k in index), None)
        fields = render(spec.map, {**base, "source": record, "target": slot.record if slot else None},
                        pointer + "/map")
        return keys, normalised, slot, fields

    def compare(start: int) -> tuple[list[dict[str, Any]], int, Any]:
        """Match and map records from ``start`` on, in one worker-thread hop, until one needs a
        write or the batch ends; returns the results of those that need none, the position
        reached, and the match of the record there (None at the end of the batch).

        Pure until it returns (the index is read, never changed), as ``Evaluator.run`` needs:
        it may run once inline and again in a thread."""
        done: list[dict[str, Any]] = []
        end = min(len(source), start + SYNC_BATCH)
        position = start
        while position < end:
            record = source[position]
            matched = match(record)
            keys, _, slot, fields = matched
            if not keys:
                done.append({"index": position, "key": None, "op": "skipped"})
            elif slot is not None and spec.skip_unchanged and is_subset(fields, slot.record):
                entry = {"index": position, "key": keys[0], "op": "unchanged"}
                target_id = _record_id(slot.record)
                if target_id is not None:
                    entry["target_id"] = target_id
                done.append(entry)
            else:
                return done, position, matched
            position += 1
        return done, position, None

    counts = {"created": 0, "updated": 0, "unchanged": 0}
    skipped: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    position = 0
    while position < len(source):
        done, position, pending = await env.evaluate(compare, position)
        for entry in done:
            if entry["op"] == "skipped":
                skipped.append({"index": entry["index"], "reason": "no match key"})
            else:
                counts["unchanged"] += 1
        results.extend(done)
        if pending is None:
            continue
        record = source[position]
        keys, normalised, slot, fields = pending
        current = slot.record if slot else None
        write_context = env.with_secrets({**base, "source": record, "target": current, "fields": fields})
        if slot is not None:
            if not target.update:
                raise SyncConfigError(env.run_id, env.step_id, f"source record {position} (key {keys[0]!r}) matches "
                                      "a target record that needs changes, but target.update names no action")
            write_input = await env.evaluate(_write_input, target.update_input, write_context,
                                             pointer + "/target/update_input")
            result = await env.call(target.update, write_input, f"update/{position}", paginate=False)
            slot.record = _written(result, _merged(current, fields), keep_id=current)
            op = "updated"
        else:
            if not target.create:
                raise SyncConfigError(env.run_id, env.step_id, f"source record {position} (key {keys[0]!r}) has no "
                                      "matching target record, but target.create names no action")
            write_input = await env.evaluate(_write_input, target.create_input, write_context,
                                             pointer + "/target/create_input")
            result = await env.call(target.create, write_input, f"create/{position}", paginate=False)
            slot = _Slot(_written(result, fields, keep_id=None))
            op = "created"
        for key in normalised:
            index.setdefault(key, slot)

        counts[op] += 1
        entry: dict[str, Any] = {"index": position, "key": keys[0], "op": op}
        target_id = _record_id(slot.record)
        if target_id is not None:
            entry["target_id"] = target_id
        results.append(entry)
        position += 1

    return {**counts, "skipped": skipped, "results": results}


def _write_input(template: Any, context: dict[str, Any], pointer: str) -> Any:
    if template is None:
        return render(DEFAULT_WRITE_INPUT, context, pointer)
    return render(template, context, pointer)


def _merged(current: Any, fields: Any) -> Any:
    if isinstance(current, dict) and isinstance(fields, dict):
        return {**current, **fields}
    return fields
