"""Walking the pages of a list action (cursor, page number, offset, Link header)."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from ..errors import ResponseInvalid
from ..expressions import as_text, evaluate
from ..specs import Pagination
from ._request import PreparedRequest


@dataclass(frozen=True)
class Page:
    """One response as pagination needs it."""

    body: Any
    next_link: str | None  # the Link header's rel="next" URL, when the server sent one


Send = Callable[[PreparedRequest], Awaitable[Page]]


def page_items(pagination: Pagination, body: Any, connector: str, action: str) -> list[Any]:
    """The records of one page, selected by ``pagination.items``.

    Raises:
        ResponseInvalid: the expression does not give a list (or nothing).
    """
    if body is not None and not isinstance(body, (dict, list)):
        raise ResponseInvalid(connector, action, f"a page must be a JSON object or array, not {type(body).__name__}; its items are not a list")
    items = evaluate(pagination.items, body if body is not None else {}, f"/actions/{action}/pagination/items")
    if items is None:
        return []
    if isinstance(items, dict):
        # JSONata collapses a one-element sequence to the element itself.
        return [items]
    if not isinstance(items, list):
        raise ResponseInvalid(connector, action, f"pagination items {pagination.items!r} gave {type(items).__name__}, not a list")
    return items


def _set_param(request: PreparedRequest, name: str, value: Any) -> None:
    request.params = [(k, v) for k, v in request.params if k != name] + [(name, as_text(value))]


def _param(request: PreparedRequest, name: str) -> str | None:
    return next((v for k, v in request.params if k == name), None)


async def paginate(
    pagination: Pagination,
    first: PreparedRequest,
    send: Send,
    *,
    connector: str,
    action: str,
    max_pages: int | None = None,
) -> dict[str, Any]:
    """Fetch pages until the last one and return ``{"items": [...], "pages": n}``.

    The walk stops at an empty page, a missing next cursor or link, a short page
    (fewer records than the requested size), or ``max_pages`` (the smaller of
    the argument and the spec's bound). A cursor that repeats ends the walk
    instead of looping forever.
    """
    limit = min(max_pages or pagination.max_pages, pagination.max_pages)
    request = copy.deepcopy(first)
    size = _initial_size(pagination, request)
    position = _initial_position(pagination, request)
    items: list[Any] = []
    seen_cursors: set[str] = set()
    pages = 0
    while pages < limit:
        page = await send(request)
        pages += 1
        batch = page_items(pagination, page.body, connector, action)
        items.extend(batch)
        if not batch:
            break
        following = _next_request(pagination, request, page, batch, size, position, seen_cursors)
        if following is None:
            break
        request, position = following
    return {"items": items, "pages": pages}


def _initial_size(pagination: Pagination, request: PreparedRequest) -> int | None:
    if pagination.size_param:
        given = _param(request, pagination.size_param)
        if given is not None and given.isdigit():
            return int(given)
        if pagination.size:
            _set_param(request, pagination.size_param, pagination.size)
            return pagination.size
    return pagination.size


def _initial_position(pagination: Pagination, request: PreparedRequest) -> int:
    if pagination.style == "page" and pagination.page_param:
        given = _param(request, pagination.page_param)
        if given is not None and given.lstrip("-").isdigit():
            return int(given)
        _set_param(request, pagination.page_param, pagination.start)
        return pagination.start
    if pagination.style == "offset" and pagination.offset_param:
        given = _param(request, pagination.offset_param)
        return int(given) if given is not None and given.isdigit() else 0
    return 0


def _next_request(
    pagination: Pagination,
    request: PreparedRequest,
    page: Page,
    batch: list[Any],
    size: int | None,
    position: int,
    seen_cursors: set[str],
) -> tuple[PreparedRequest, int] | None:
    following = copy.deepcopy(request)
    if pagination.style == "cursor":
        cursor = evaluate(pagination.next or "", page.body if page.body is not None else {})
        if cursor in (None, "") or str(cursor) in seen_cursors:
            return None
        seen_cursors.add(str(cursor))
        if pagination.cursor_in == "body":
            body = dict(following.json or {})
            body[pagination.cursor_param] = cursor
            following.json = body
        else:
            _set_param(following, pagination.cursor_param or "", cursor)
        return following, position
    if pagination.style == "link":
        if not page.next_link:
            return None
        target = urljoin(request.url, page.next_link)
        # A next link elsewhere would carry the connection's credentials to another host.
        if urlsplit(target).netloc != urlsplit(request.url).netloc:
            return None
        following.url = target.split("?", 1)[0]
        following.params = parse_qsl(urlsplit(target).query, keep_blank_values=True)
        return following, position
    if size is not None and len(batch) < size:
        return None
    if pagination.style == "page":
        _set_param(following, pagination.page_param or "", position + 1)
        return following, position + 1
    if pagination.style == "offset":
        _set_param(following, pagination.offset_param or "", position + len(batch))
        return following, position + len(batch)
    return None
