"""Quota enforcement at the API edge.

* ``charge_api_call(request, principal)``: called by ``api._auth.authenticate`` (through
  ``app.state.charge_api_call``, set by ``install``) for every request that names a customer;
  counts one API call for that customer, or raises ``store.QuotaExceeded`` (HTTP 429, with
  ``Retry-After``) without counting when a hard limit is reached.
* ``charge_event(request, principal, customer_id)``: called by whatever starts a workflow run
  (run now, webhooks, schedules) before it starts; counts one event or raises ``QuotaExceeded``.
* ``charge(db, org_id, customer_id, kind, now)``: the same without a request (schedulers, workers).

Warn-mode limits let the request through; the dimensions over their limit are kept in
``request.state.quota_warnings`` and ``QuotaWarningMiddleware`` reports them in the
``X-Quota-Warning`` response header (comma-separated dimensions).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import store
from api._auth import Principal
from api.errors import Forbidden

WARNING_HEADER = "X-Quota-Warning"
_STATE_KEY = "quota_warnings"


def charge(db: store.Database, org_id: str, customer_id: str, kind: str, now: datetime) -> store.Charge:
    """Count one ``kind`` (``api_calls`` or ``events``) for ``customer_id`` of ``org_id`` at ``now``,
    in its own transaction. Raises ``store.QuotaExceeded`` (nothing counted) at a hard limit and
    ``store.NotFound`` for an unknown customer."""
    return store.charge_quota(db, org_id, customer_id, kind, now)


def _note_warnings(request: Request, result: store.Charge) -> None:
    if result.warnings:
        noted = getattr(request.state, _STATE_KEY, None) or []
        request.state.quota_warnings = noted + [w for w in result.warnings if w not in noted]


def charge_api_call(request: Request, principal: Principal) -> None:
    """Count one API call for the customer the request names (``principal.customer_id``).

    Blocking (runs SQL): call it from a worker thread. Raises ``store.QuotaExceeded`` when a hard
    limit refuses the call.
    """
    if not principal.customer_id:
        return
    result = charge(request.app.state.db, principal.org_id, principal.customer_id, "api_calls", request.app.state.clock())
    _note_warnings(request, result)


def charge_event(request: Request, principal: Principal, customer_id: str) -> None:
    """Count one event (a workflow run about to start) for ``customer_id``.

    Blocking (runs SQL). Raises ``store.QuotaExceeded`` at a hard limit (the run must not start),
    ``store.NotFound`` for a customer not in the caller's organization, and ``Forbidden`` when the
    caller's key is limited to another customer.
    """
    if principal.bound_customer and principal.customer_id != customer_id:
        raise Forbidden(None, "this key is limited to one customer and cannot run workflows for another")
    result = charge(request.app.state.db, principal.org_id, customer_id, "events", request.app.state.clock())
    _note_warnings(request, result)


class QuotaWarningMiddleware:
    """Adds ``X-Quota-Warning`` to responses of requests that went past a warn-mode limit.

    The charge happens inside a dependency, which cannot set response headers; it leaves the
    dimensions in the request state, which this middleware reads when the response starts.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_warning(message: Message) -> None:
            if message["type"] == "http.response.start":
                warnings = state.get(_STATE_KEY)
                if warnings:
                    MutableHeaders(scope=message).append(WARNING_HEADER, ", ".join(warnings))
            await send(message)

        await self.app(scope, receive, send_with_warning)


def install(app: FastAPI) -> None:
    """Enforce quotas in ``app``: charge API calls on authentication and report warnings."""
    app.state.charge_api_call = charge_api_call
    app.add_middleware(QuotaWarningMiddleware)
