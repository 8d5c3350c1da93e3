"""What every /v1 module shares: its router factory (with the NUL character check), tenant
transactions and running store work off the event loop."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError

import store
from api._auth import Principal
from api._route import PlatformRoute

T = TypeVar("T")

NUL_REASON = "must not contain the NUL character (U+0000)"


def _nul_locations(value: Any, location: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        if "\x00" in value:
            yield location
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield (*location, key)
            yield from _nul_locations(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_locations(item, (*location, index))


async def refuse_nul_characters(request: Request) -> None:
    """Refuse (422, naming each place) a path, query or JSON body text containing U+0000.

    JSON and URLs can carry it, but Postgres text and jsonb cannot store it: without this check
    such a value would reach SQL and fail there as a server error.
    """
    places = [("path", name) for name, value in request.path_params.items() if "\x00" in str(value)]
    places += [("query", name) for name, value in request.query_params.multi_items() if "\x00" in name + value]
    if "json" in request.headers.get("content-type", ""):
        body = await request.body()
        if b"\\u0000" in body or b"\x00" in body:
            try:
                places += list(_nul_locations(json.loads(body), ("body",)))
            except ValueError:
                pass  # not JSON: the route's own validation says so
    if places:
        raise RequestValidationError([{"loc": place, "msg": NUL_REASON, "type": "value_error"} for place in places])


def router(tag: str) -> APIRouter:
    """A router whose routes are audited ``PlatformRoute``s, grouped under ``tag`` in the docs,
    and refuse text with NUL characters."""
    return APIRouter(route_class=PlatformRoute, tags=[tag], dependencies=[Depends(refuse_nul_characters)])


@contextmanager
def tenant_tx(db: store.Database, principal: Principal, *, customer: bool = True) -> Iterator[store.Tx]:
    """A transaction bound to the caller's organization and, with ``customer``, to the customer
    its credentials are limited to. Row-level security then enforces the same scope as the code."""
    customer_id = principal.customer_id if (customer and principal.bound_customer) else None
    with db.tenant(principal.org_id, customer_id) as tx:
        yield tx


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking store work off the event loop."""
    return await anyio.to_thread.run_sync(function, *args)
