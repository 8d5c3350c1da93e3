"""What every /v1 module shares: its router factory, tenant transactions and time formatting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter

import store
from api._auth import Principal
from api._route import PlatformRoute

T = TypeVar("T")


def router(tag: str) -> APIRouter:
    """A router whose routes are audited ``PlatformRoute``s, grouped under ``tag`` in the docs."""
    return APIRouter(route_class=PlatformRoute, tags=[tag])


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
