"""Listing records the way the API's own parameters ask.

Paging parameters are recognised by name (case and separators ignored):
page (``page``, ``pageNumber``), size (``limit``, ``pageSize``, ``per_page``,
``maxResults``, ``count``), offset (``offset``, ``skip``) and cursor
(``after``, ``cursor``, ``pageToken``, ``starting_after``). Cursors are
offsets written as text, so they are stable and deterministic. Every other
query parameter that names a field of the records filters by equality (a list
value matches any of its items); a record without the field matches only
when the parameter asks for its documented default (HubSpot's ``archived=false``).

A date-time parameter named ``<something>Since`` (Cin7's ``UpdatedSince`` and
``ModifiedSince``, ``modified_since``) keeps the records changed at or after
it: those whose updated stamp (the record's date-time field labelled updated,
modified, lastModified...) is at or after the given time. Inclusive, as the
APIs that document it say "since": a poller sees its last record again and
must dedupe it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import RequestProblem, SandboxRequestInvalid
from ..openapi import Operation
from ._model import Defs, Resource, norm, properties, resolved
from ._requests import CheckedRequest, IncomingRequest

_DEFAULT_LIMIT = 100
_PAGE_NAMES = ("page", "pagenumber", "pageno")
_LIMIT_NAMES = ("limit", "pagesize", "perpage", "maxresults", "count", "size", "top")
_OFFSET_NAMES = ("offset", "skip", "start")
_CURSOR_NAMES = ("after", "cursor", "pagetoken", "startingafter", "nexttoken", "continuationtoken")
_PAGING_NAMES = frozenset((*_PAGE_NAMES, *_LIMIT_NAMES, *_OFFSET_NAMES, *_CURSOR_NAMES))
# Labels (normalised) of the date-time fields a sandbox stamps when a record changes.
UPDATED_LABELS = ("updated", "modified", "lastmodified", "datemodified", "dateupdated")


def updated_field(resource: Resource, defs: Defs = None) -> str | None:
    """The record field holding when it last changed (a date-time field labelled updated/modified), or None."""
    for name, schema in properties(resource.item_schema, defs).items():
        schema = resolved(schema, defs) if isinstance(schema, dict) else {}
        if schema.get("format") == "date-time" and any(p in norm(name) for p in UPDATED_LABELS):
            return name
    return None


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _since(records: list[dict], stamp: str, value: Any) -> list[dict]:
    since = _instant(value)
    if since is None:
        return records
    kept = []
    for record in records:
        at = _instant(record.get(stamp))
        if at is not None and (at.tzinfo is None) == (since.tzinfo is None) and at >= since:
            kept.append(record)
    return kept


def filter_key(c: CheckedRequest) -> tuple:
    """The query parameters that filter a listing (paging aside), as a hashable key."""
    return tuple(sorted((name, repr(value)) for name, value in c.query.items() if norm(name) not in _PAGING_NAMES))


def filter_records(operation: Operation, resource: Resource, c: CheckedRequest, records: list[dict],
                   defs: Defs = None) -> list[dict]:
    """Keep the records whose fields equal the query parameters that name them (paging parameters aside)."""
    defaults = {p.name: resolved(p.schema, defs).get("default") for p in operation.parameters if isinstance(p.schema, dict)}
    stamp = updated_field(resource, defs)
    for name, value in c.query.items():
        if norm(name) in _PAGING_NAMES:
            continue
        if stamp is not None and norm(name).endswith("since") and norm(name) != norm(stamp):
            records = _since(records, stamp, value)
            continue
        wanted = value if isinstance(value, list) else [value]
        wanted_text = {_text(v) for v in wanted}
        wanted_name = norm(name)
        declared = any(norm(f) == wanted_name for f in properties(resource.item_schema, defs))
        kept = []
        applies = False
        for record in records:
            field_name = name if name in record else next((f for f in record if norm(f) == wanted_name), None)
            if field_name is None and (not declared or value == defaults.get(name, object())):
                # not a field of these records, or absent and asked for its default (HubSpot's archived=false)
                kept.append(record)
                continue
            applies = True
            current = record.get(field_name) if field_name else None
            if isinstance(current, (dict, list)):
                kept.append(record)
            elif _text(current) in wanted_text:
                kept.append(record)
        records = kept if applies else records
    return records

def paging(operation: Operation, c: CheckedRequest, req: IncomingRequest,
           defs: Defs = None) -> tuple[int, int | None, int, bool]:
    """(offset, limit or None for everything, page number, whether the API pages by cursor) for a list request.

    Raises:
        SandboxRequestInvalid: a cursor this sandbox did not issue.
    """
    params = {norm(p.name): p for p in operation.parameters if p.in_ == "query"}

    def find(names: tuple[str, ...]):
        return next((params[n] for n in names if n in params), None)

    page_p, limit_p, offset_p, cursor_p = find(_PAGE_NAMES), find(_LIMIT_NAMES), find(_OFFSET_NAMES), find(_CURSOR_NAMES)
    if not any((page_p, limit_p, offset_p, cursor_p)):
        return 0, None, 1, False
    limit = _DEFAULT_LIMIT
    if limit_p is not None:
        default = resolved(limit_p.schema, defs).get("default") if isinstance(limit_p.schema, dict) else None
        limit = c.query.get(limit_p.name, default if isinstance(default, int) else _DEFAULT_LIMIT)
        limit = max(int(limit), 1)
    offset, page = 0, 1
    if cursor_p is not None and c.query.get(cursor_p.name) not in (None, ""):
        cursor = str(c.query[cursor_p.name])
        if not cursor.isdigit():
            raise SandboxRequestInvalid(req.method, req.path, "unknown paging cursor",
                                        [RequestProblem("query", "not a cursor this sandbox issued", name=cursor_p.name)])
        offset = int(cursor)
        page = offset // limit + 1
    elif page_p is not None:
        first = resolved(page_p.schema, defs).get("minimum", 1) if isinstance(page_p.schema, dict) else 1
        first = 0 if first == 0 else 1
        page = int(c.query.get(page_p.name, first))
        offset = max(page - first, 0) * limit
    elif offset_p is not None:
        offset = max(int(c.query.get(offset_p.name, 0)), 0)
        page = offset // limit + 1
    return offset, limit, page, cursor_p is not None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
