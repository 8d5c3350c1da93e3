"""Quota enforcement at the API edge, over runtime's :class:`~runtime.Quotas`.

* ``charge_api_call(request, principal)``: called by ``api._auth.authenticate`` (through
  ``app.state.charge_api_call``, set by ``install``) for every request that names a customer;
  counts one API call for that customer, or raises ``store.QuotaExceeded`` (HTTP 429, with
  ``Retry-After``) without counting when a hard limit is reached.
* ``note_warnings(request, warnings)``: what a route that charged an event (a run) reports.

Warn-mode limits let the request through; the dimensions over their limit are kept in
``request.state.quota_warnings`` and ``QuotaWarningMiddleware`` reports them in the
``X-Quota-Warning`` response header (comma-separated dimensions).
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api._deps import get_platform
from runtime import Principal

WARNING_HEADER = "X-Quota-Warning"
_STATE_KEY = "quota_warnings"


def note_warnings(request: Request, warnings: Iterable[str]) -> None:
    """Keep warn-mode dimensions for the ``X-Quota-Warning`` header of this request's response."""
    noted = getattr(request.state, _STATE_KEY, None) or []
    request.state.quota_warnings = noted + [w for w in warnings if w not in noted]


def charge_api_call(request: Request, principal: Principal) -> None:
    """Count one API call for the customer the request names (``principal.customer_id``).

    Blocking (runs SQL): call it from a worker thread. Raises ``store.QuotaExceeded`` when a hard
    limit refuses the call.
    """
    result = get_platform(request).quotas.charge_api_call(principal)
    if result is not None and result.warnings:
        note_warnings(request, result.warnings)


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
