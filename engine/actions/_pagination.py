"""Walking the pages of a list action (cursor, page number, offset, Link header)."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from ..errors import ActionInputInvalid, Problem, ResponseInvalid
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

    ``send`` may return None to stop the walk (a page that was not a success).
    The walk stops at a missing next cursor or link, an empty page (page and
    offset styles; a cursor API may send an empty page with a next cursor), a
    page identical to the one before (the API ignores the page parameter), a
    cursor that repeats, or ``max_pages`` (the smaller of the argument and the
    spec's bound). A short page does not end the walk: APIs cap page sizes
    below what was asked. When ``max_pages`` stopped a walk that had more to
    fetch, the result says ``"truncated": true``.
    """
    if pagination.style == "cursor" and pagination.cursor_in == "body" and first.json is not None and not isinstance(first.json, dict):
        raise ActionInputInvalid(connector, action, [Problem("/body", "a cursor in the body needs a JSON object body")])
    limit = min(max_pages or pagination.max_pages, pagination.max_pages)
    request = copy.deepcopy(first)
    # The first page already asks for the size and position (set on the copy here).
    size = _initial_size(pagination, request)
    position = _initial_position(pagination, request)
    items: list[Any] = []
    seen_cursors: set[str] = set()
    previous: list[Any] | None = None
    pages = 0
    truncated = False
    while True:
        page = await send(request)
        if page is None:
            break
        pages += 1
        batch = page_items(pagination, page.body, connector, action)
        if batch and batch == previous and pagination.style in ("page", "offset"):
            break
        items.extend(batch)
        previous = batch
        if not batch and pagination.style in ("page", "offset"):
            break
        following = _next_request(pagination, request, page, batch, size, position, seen_cursors)
        if following is None:
            break
        if pages >= limit:
            truncated = True
            break
        request, position = following
    result: dict[str, Any] = {"items": items, "pages": pages}
    if truncated:
        result["truncated"] = True
    return result


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
        try:
            target = urljoin(request.url, page.next_link)
            here, there = urlsplit(request.url), urlsplit(target)
            # A next link to another origin (or down to http) would carry the credentials there.
            if (there.scheme, there.hostname, there.port) != (here.scheme, here.hostname, here.port):
                return None
        except ValueError:
            return None  # a malformed Link header ends the walk
        following.url = target.split("?", 1)[0]
        following.params = parse_qsl(urlsplit(target).query, keep_blank_values=True)
        return following, position
    if pagination.style == "page":
        _set_param(following, pagination.page_param or "", position + 1)
        return following, position + 1
    if pagination.style == "offset":
        _set_param(following, pagination.offset_param or "", position + len(batch))
        return following, position + len(batch)
    return None
