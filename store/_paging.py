"""Cursor pagination over any list query.

Pages are keyset pages: the cursor records the sort column's value and the id of the last row
served, so a page is stable while rows are inserted before it (no OFFSET drift). The cursor also
records the sort it was made for and is refused under another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from store.errors import InvalidInput

if TYPE_CHECKING:
    from store._database import Tx

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class ListQuery:
    """What a list asks for: ``sort`` names a column (``-name`` for descending) the resource allows."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    sort: str = "-created_at"


@dataclass(frozen=True)
class Page:
    """One page of rows and the cursor of the next (None on the last page)."""

    items: list[dict[str, Any]]
    next_cursor: str | None = None


@dataclass
class Filters:
    """SQL conditions and their parameters, built up by a repository from a request's filters."""

    conditions: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, condition: str, **params: Any) -> None:
        """Add ``condition`` (with ``%(name)s`` placeholders) and its parameters."""
        self.conditions.append(condition)
        self.params.update(params)

    def add_search(self, text: str, *columns: str) -> None:
        """Match rows where any of ``columns`` contains ``text`` (case-insensitive); ``%`` and
        ``_`` in ``text`` are literal, not wildcards."""
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        self.add("(" + " OR ".join(f"{column} ILIKE %(_search)s" for column in columns) + ")", _search=f"%{escaped}%")

    def where(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "true"


def add_time_range(filters: Filters, resource: str, column: str, start: datetime | None, end: datetime | None) -> None:
    """Keep rows whose ``column`` is at or after ``start`` and before ``end`` (either may be None).

    Raises ``InvalidInput`` (field ``from``, the query parameter that names ``start``) when
    ``start`` is not before ``end``, or (field ``from``/``to``) when one names no time zone: a
    naive time would be read in the server's zone.
    """
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.utcoffset() is None:
            raise InvalidInput(resource, name, "must name its time zone (e.g. 2026-01-31T09:00:00Z)")
    if start is not None and end is not None and start >= end:
        raise InvalidInput(resource, "from", "must be before to")
    if start is not None:
        filters.add(f"{column} >= %(_from)s", _from=start)
    if end is not None:
        filters.add(f"{column} < %(_to)s", _to=end)


def _encode(sort: str, value: Any, row_id: str) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps([sort, value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(resource: str, cursor: str, sort: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput(resource, "cursor", "is not a cursor this API issued") from exc
    if made_for != sort:
        raise InvalidInput(resource, "cursor", f"was issued for sort {made_for!r}, not {sort!r}")
    # Only what _encode writes: a text or a number, or a time as {"t": ISO 8601}. The sort columns
    # are NOT NULL, so null never comes from a row either.
    if isinstance(value, dict) and set(value) == {"t"} and isinstance(value["t"], str):
        try:
            value = datetime.fromisoformat(value["t"])
        except ValueError:
            raise InvalidInput(resource, "cursor", "is not a cursor this API issued") from None
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(resource, "cursor", "is not a cursor this API issued")
    if not isinstance(row_id, str):
        raise InvalidInput(resource, "cursor", "is not a cursor this API issued")
    return value, row_id


def fetch_page(
    tx: Tx,
    resource: str,
    table: str,
    query: ListQuery,
    sortable: Mapping[str, str],
    filters: Filters | None = None,
    *,
    id_column: str = "id",
    columns: str = "*",
) -> Page:
    """Run one page of ``SELECT columns FROM table WHERE filters`` ordered by ``query.sort``.

    ``sortable`` maps the sort names the API accepts to NOT NULL column expressions; ``id_column``
    breaks ties. Raises ``InvalidInput`` (field ``sort``, ``limit`` or ``cursor``) for a request
    this resource cannot serve.
    """
    filters = filters or Filters()
    descending = query.sort.startswith("-")
    name = query.sort.lstrip("-")
    if name not in sortable:
        allowed = ", ".join(sorted(sortable))
        raise InvalidInput(resource, "sort", f"cannot sort by {name!r}; choose one of {allowed} (prefix - for descending)")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidInput(resource, "limit", f"must be between 1 and {MAX_LIMIT}")
    expression = sortable[name]
    params = dict(filters.params)
    conditions = [filters.where()]
    if query.cursor:
        value, row_id = _decode(resource, query.cursor, query.sort)
        operator = "<" if descending else ">"
        conditions.append(f"({expression}, {id_column}) {operator} (%(_cursor_value)s, %(_cursor_id)s)")
        params.update(_cursor_value=value, _cursor_id=row_id)
    direction = "DESC" if descending else "ASC"
    statement = (
        f"SELECT {columns}, {expression} AS _sort_value FROM {table} WHERE {' AND '.join(conditions)} "
        f"ORDER BY {expression} {direction}, {id_column} {direction} LIMIT %(_limit)s"
    )
    params["_limit"] = query.limit + 1
    try:
        rows = tx.execute(statement, params).fetchall()
    except (psycopg.errors.DataError, psycopg.errors.UndefinedFunction) as exc:
        # Only a cursor's values can have the wrong type for the sort column or the id (a forged
        # cursor, or one from another list): refuse it rather than fail as the server.
        if not query.cursor:
            raise
        raise InvalidInput(resource, "cursor", "is not a cursor this API issued") from exc
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = _encode(query.sort, last["_sort_value"], str(last[id_column.split(".")[-1]]))
    for row in rows:
        row.pop("_sort_value", None)
    return Page(items=rows, next_cursor=next_cursor)


# The customers of one environment (by slug): what a list leaves out for a caller that may not see it.
CUSTOMERS_OF_ENVIRONMENT = (
    "(SELECT cu.id FROM customers cu JOIN environments e ON e.org_id = cu.org_id AND e.id = cu.environment_id"
    " WHERE cu.org_id = %(org)s AND e.slug = %(hidden_env)s)"
)
