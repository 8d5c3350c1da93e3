"""Fitting stored records to the document's response schemas.

A record is what clients sent plus what the sandbox assigned (id, timestamps).
A response schema may ask for more (HubSpot's required ``createdAt``), less,
or a different wrapping (Cin7 answers a create with a one-record
``CustomerList``). :func:`conform` keeps every value of the record that fits
the schema, fills what is required and missing from a deterministic sample,
and drops what the schema forbids, so a response always validates while
showing the client's data. :func:`envelope` wraps records in a list response.

A schema given here is standalone: its references point into its own root
``$defs`` (a sandbox's response views carry the shared schemas they reach),
and every part of it is read and validated against that root.
"""

from __future__ import annotations

import copy
from typing import Any

from .._samples import is_valid, merge_all_of, sample_from_schema
from ..specs import with_defs
from ._model import Defs, ListShape, _types, properties, root_defs


def conform(value: Any, schema: Any, *, seed: str) -> Any:
    """Return ``value`` adjusted to validate against ``schema`` (response view), keeping what fits."""
    if not isinstance(schema, dict) or not schema:
        return value
    defs = root_defs(schema)
    result = _conform(value, schema, seed, 0, defs)
    if is_valid(result, schema):
        return result
    return sample_from_schema(schema, seed=seed, required_only=True)


def _conform(value: Any, schema: dict, seed: str, depth: int, defs: Defs) -> Any:
    if depth > 32:
        return value
    whole = with_defs(schema, defs)
    if is_valid(value, whole) and not _has_write_only(schema, value, defs):
        return value
    merged = merge_all_of(schema, defs)
    branches = merged.get("oneOf") or merged.get("anyOf")
    if isinstance(branches, list) and branches:
        base = {k: v for k, v in merged.items() if k not in ("oneOf", "anyOf")}
        first = None
        for index, branch in enumerate(branches):
            if not isinstance(branch, dict):
                continue
            candidate = _conform(value, merge_all_of({"allOf": [base, branch]}, defs), f"{seed}|{index}", depth + 1, defs)
            first = candidate if first is None else first
            if is_valid(candidate, whole):
                return candidate
        return first
    kinds = _types(merged)
    if value is None and "null" in kinds:
        return None
    if isinstance(value, dict) and ("object" in kinds or (not kinds and "properties" in merged)):
        return _object(value, merged, seed, depth, defs)
    if isinstance(value, list) and "array" in kinds:
        items = merged.get("items") if isinstance(merged.get("items"), dict) else {}
        out = [_conform(v, items, f"{seed}/{i}", depth + 1, defs) for i, v in enumerate(value)]
        high = merged.get("maxItems")
        if isinstance(high, int):
            out = out[:high]
        while len(out) < int(merged.get("minItems", 0)):
            out.append(sample_from_schema(with_defs(items, defs), seed=f"{seed}/{len(out)}", required_only=True))
        return out
    coerced = _coerce_scalar(value, merged)
    if coerced is not None and is_valid(coerced, with_defs(merged, defs)):
        return coerced
    return sample_from_schema(whole, seed=seed, required_only=True)


def _has_write_only(schema: dict, value: Any, defs: Defs = None) -> bool:
    if not isinstance(value, dict):
        return False
    return any(isinstance(sub, dict) and sub.get("writeOnly") is True and name in value
               for name, sub in properties(schema, defs).items())


def _object(value: dict, schema: dict, seed: str, depth: int, defs: Defs) -> dict:
    props = properties(schema, defs)
    extra = schema.get("additionalProperties")
    out: dict[str, Any] = {}
    for name, item in value.items():
        sub = props.get(name)
        if isinstance(sub, dict):
            if sub.get("writeOnly") is True:
                continue
            out[name] = _conform(item, sub, f"{seed}/{name}", depth + 1, defs)
        elif name in props:
            out[name] = item
        elif extra is False:
            continue
        elif isinstance(extra, dict):
            out[name] = _conform(item, extra, f"{seed}/{name}", depth + 1, defs)
        else:
            out[name] = item
    for name in schema.get("required", []) or []:
        if name not in out:
            sub = props.get(name, extra if isinstance(extra, dict) else {})
            out[name] = sample_from_schema(with_defs(sub, defs), seed=f"{seed}/{name}", required_only=True)
    return out


def _coerce_scalar(value: Any, schema: dict) -> Any:
    kinds = _types(schema)
    if isinstance(value, str):
        if "integer" in kinds:
            try:
                return int(value)
            except ValueError:
                return None
        if "number" in kinds:
            try:
                return float(value)
            except ValueError:
                return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "string" in kinds:
        return str(value)
    return None


def envelope(records: list[dict], shape: ListShape, schema: dict, *, seed: str, total: int, page: int, limit: int,
             next_cursor: str | None) -> Any:
    """A list response holding ``records``: the bare array, or the envelope with paging fields filled."""
    item_schema = with_defs(shape.item_schema, root_defs(schema))
    items = [conform(r, item_schema, seed=f"{seed}/{i}") for i, r in enumerate(records)]
    if shape.items_prop is None:
        return conform(items, schema, seed=seed)
    body: dict[str, Any] = {shape.items_prop: items}
    if shape.total_prop:
        body[shape.total_prop] = total
    if shape.page_prop:
        body[shape.page_prop] = page
    if shape.limit_prop:
        body[shape.limit_prop] = limit
    if shape.has_more_prop:
        body[shape.has_more_prop] = next_cursor is not None
    if shape.cursor_path and next_cursor is not None:
        node = body
        for name in shape.cursor_path[:-1]:
            node = node.setdefault(name, {})
        node[shape.cursor_path[-1]] = next_cursor
    return conform(body, schema, seed=seed)


def strip_flagged(body: Any, schema: Any, flag: str, defs: Defs = None) -> Any:
    """``body`` without the top-level properties ``schema`` marks with ``flag`` (readOnly on the way in)."""
    if not isinstance(body, dict):
        return body
    flagged = {n for n, sub in properties(schema, defs).items()
               if isinstance(sub, dict) and merge_all_of(sub, defs).get(flag) is True}
    return {k: copy.deepcopy(v) for k, v in body.items() if k not in flagged}
