"""Inferring an action's pagination from its parameters and response schema.

Only the obvious cases are inferred; anything unclear gets no pagination (the
action still works, one page at a time). Every style needs the page's records
to be identifiable: the response is an array, or it has one array property
(or one of the usual names: results, data, items, ...).

* cursor: a cursor parameter (``after``, ``cursor``, ``pageToken``, ...) in the
  query, or ``cursor`` in the JSON body, and a next-cursor field in the response
  (HubSpot ``paging.next.after``, Google ``nextPageToken``, 1Password ``cursor``
  with ``has_more``); or Stripe-style ``after``/``starting_after`` with
  ``has_more`` and records that have an ``id`` (Resend): the next cursor is the
  last record's id;
* page: ``page`` and a size (``limit``, ``per_page``, ``page_size``, ...), any case (Cin7 ``Page``/``Limit``);
* offset: ``offset`` and a size (``limit``, ``count``) (Postmark ``count``/``offset``).
"""

from __future__ import annotations

import re
from typing import Any

from collections.abc import Mapping

from ..expressions import quote_field
from ..specs import deref
from ._document import Operation

_CURSOR_PARAMS = ("after", "cursor", "starting_after", "page_token", "pagetoken", "next_token", "nexttoken",
                  "continuation", "continuation_token", "page_cursor", "next_cursor")
_STRIPE_CURSORS = ("after", "starting_after")
_NEXT_FIELDS = ("next_cursor", "nextcursor", "next_page_token", "nextpagetoken", "next_token", "nexttoken",
                "cursor", "next")
_HAS_MORE = ("has_more", "hasmore", "has_next", "hasnext", "more")
_PAGE_PARAMS = ("page", "page_number", "pagenumber", "pageno")
_SIZE_PARAMS = ("limit", "per_page", "perpage", "page_size", "pagesize", "size", "count", "max_results",
                "maxresults", "top")
_ITEM_NAMES = ("results", "data", "items", "records", "entries", "elements", "values", "list")


def infer_pagination(op: Operation, output: dict | None, defs: Mapping[str, Any] | None = None
                     ) -> dict[str, Any] | None:
    """A ``Pagination`` mapping for ``op`` when its style is obvious, else None.

    ``defs`` are the shared schemas ``output`` and the body may refer to (``#/$defs/<name>``).
    """
    if not output:
        return None
    shapes = _Shapes(defs)
    _properties = shapes.properties
    items = _items_expression(shapes, output)
    if items is None:
        return None
    query = {_norm(p.name): p.name for p in op.parameters if p.in_ == "query"}
    size = next((query[n] for n in _SIZE_PARAMS if n in query), None)

    cursor = next((query[n] for n in _CURSOR_PARAMS if n in query), None)
    if cursor is not None:
        following = _next_cursor(shapes, output, cursor, items)
        if following is not None:
            return {"style": "cursor", "items": items, "next": following, "cursor_param": cursor}
    # 1Password: the body is oneOf [a cursor, a reset-cursor query]
    body = op.request_body
    body_props = _properties(body.schema, alternatives=True) if body and body.content_type.endswith("json") else {}
    if "cursor" in body_props:
        following = _next_cursor(shapes, output, "cursor", items)
        if following is not None:
            return {"style": "cursor", "items": items, "next": following, "cursor_param": "cursor",
                    "cursor_in": "body"}
    if cursor is not None:
        return None  # a cursor we cannot follow: page/offset guesses would be wrong
    page = next((query[n] for n in _PAGE_PARAMS if n in query), None)
    if page is not None and size is not None:
        return {"style": "page", "items": items, "page_param": page, "size_param": size, "start": 1}
    if "offset" in query and size is not None:
        return {"style": "offset", "items": items, "offset_param": query["offset"], "size_param": size}
    return None


def _norm(name: str) -> str:
    return re.sub(r"[-\s]", "_", name).lower()


class _Shapes:
    """Reads schemas that may refer to shared ones: every node is followed through ``deref``."""

    def __init__(self, defs: Mapping[str, Any] | None):
        self.defs = defs

    def properties(self, schema: Any, alternatives: bool = False, depth: int = 0) -> dict[str, Any]:
        """Properties of an object schema, including those of its allOf parts (and oneOf/anyOf ones if asked)."""
        schema = deref(schema, self.defs)
        if not isinstance(schema, dict) or depth > 16:  # allOf parts may refer back to their whole
            return {}
        found: dict[str, Any] = {}
        for part in schema.get("allOf") or []:
            found.update(self.properties(part, alternatives, depth + 1))
        for part in (schema.get("oneOf") or []) + (schema.get("anyOf") or []) if alternatives else []:
            found.update(self.properties(part, alternatives, depth + 1))
        if isinstance(schema.get("properties"), dict):
            found.update(schema["properties"])
        return found

    def is_array(self, schema: Any) -> bool:
        return _is_array(deref(schema, self.defs))

    def scalar(self, schema: Any) -> bool:
        return _scalar(deref(schema, self.defs))


def _is_array(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    declared = schema.get("type")
    return declared == "array" or (isinstance(declared, list) and "array" in declared) or (
        declared is None and "items" in schema)


def _items_expression(shapes: _Shapes, output: dict) -> str | None:
    if shapes.is_array(output):
        return "$"
    props = shapes.properties(output)
    arrays = [name for name, sub in props.items() if shapes.is_array(sub)]
    if len(arrays) == 1:
        return quote_field(arrays[0])
    named = [name for name in arrays if name.lower() in _ITEM_NAMES]
    return quote_field(named[0]) if len(named) == 1 else None


def _next_cursor(shapes: _Shapes, output: dict, cursor_param: str, items: str) -> str | None:
    """Expression giving the next cursor from a response, or None when there is no obvious one."""
    _properties = shapes.properties
    props = _properties(output)
    lowered = {name.lower(): name for name in props}
    has_more = next((lowered[n] for n in _HAS_MORE if n in lowered), None)

    # HubSpot: paging.next.after (the cursor parameter's name under a 'next' object)
    for container, sub in props.items():
        next_obj = _properties(sub).get("next")
        if next_obj is not None and cursor_param in _properties(next_obj):
            return ".".join(quote_field(p) for p in (container, "next", cursor_param))
    # Google: pageToken -> nextPageToken; next_<param>; the usual next-cursor names
    wanted = ["next" + cursor_param.lower(), "next_" + cursor_param.lower(), *_NEXT_FIELDS]
    for name in wanted:
        if name in lowered and not shapes.is_array(props[lowered[name]]) and shapes.scalar(props[lowered[name]]):
            field = quote_field(lowered[name])
            return f"{quote_field(has_more)} ? {field}" if has_more else field
    # Stripe style (Resend): after=<id of the last record>, while has_more
    if cursor_param.lower() in _STRIPE_CURSORS and has_more and items != "$":
        records = deref(props.get(items.strip("`"), {}), shapes.defs)
        if "id" in _properties(records.get("items") if isinstance(records, dict) else None):
            return f"{quote_field(has_more)} ? {items}[-1].id"
    return None


def _scalar(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return True
    declared = schema.get("type")
    names = declared if isinstance(declared, list) else [declared]
    return not ({"object", "array"} & set(n for n in names if n))
