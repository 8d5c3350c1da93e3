"""What every /v1 module shares: its router factory (with the NUL character check), tenant
transactions and running store work off the event loop.

``tenant_tx`` is the one way handlers get a transaction: in a mutating request it belongs to the
request's unit of work, so a change commits with its audit entry (see api/_route.py).
"""

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
from api._unit import current_unit

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
def tenant_tx(
    db: store.Database, principal: Principal, *, customer: bool = True, named_customer: bool = False
) -> Iterator[store.Tx]:
    """A transaction bound to the caller's organization and, with ``customer``, to the customer
    its credentials are limited to (with ``named_customer``, to the customer the request names,
    whatever the credentials). Row-level security then enforces the same scope as the code.

    In a mutating request a transaction that wrote does not commit when the block ends: it commits
    with the request's audit entry (and idempotency record) when the response exists, when the
    next transaction begins, or when the ``in_thread`` step that opened it returns. Elsewhere it
    commits when the block ends.
    """
    if named_customer:
        customer_id = principal.customer_id
    else:
        customer_id = principal.customer_id if (customer and principal.bound_customer) else None
    unit = current_unit()
    if unit is None:
        with db.tenant(principal.org_id, customer_id) as tx:
            yield tx
        return
    with unit.transaction(db, principal, customer_id) as tx:
        yield tx


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking store work off the event loop. In a mutating request, what the step changed
    through ``tenant_tx`` commits (with the audit entry) when it returns, and is rolled back when
    it raises: the handler may go on to wait for other work, which must not hold a transaction."""

    def step() -> T:
        unit = current_unit()
        try:
            result = function(*args)
        except BaseException:
            if unit is not None:
                unit.discard()
            raise
        if unit is not None:
            unit.step_returned(result)
        return result

    return await anyio.to_thread.run_sync(step)
