"""The route class of /v1: every mutation is audited, and creating POSTs honour Idempotency-Key.

Auditing lives in the route class rather than in each handler so no route can forget it. Each
route is named ``<resource_type>.<verb>`` (``customer.create``); that name is the audit action,
and the entry records the outcome: success, or the error code the client received.
Unauthenticated requests are not attributable to a tenant and are not audited.

**The audit entry commits with the change, by construction.** A mutating request runs inside
a ``RequestUnit`` (api/_unit.py), made current in a context variable. ``tenant_tx``
(api/_v1/_common.py), the one way handlers get a transaction, opens its transactions through
the unit, and a transaction that wrote anything (Postgres has assigned it a transaction id)
does not commit when its ``with`` block ends: the unit keeps it open, and commits it only after
writing the request's audit entry into it. When it commits:

* a sync handler's transaction, once the response exists (after the handler returned and its
  value was serialized): the entry has the final status and the created resource's id, and an
  idempotent request's stored response is written in the same transaction;
* when the handler opens another transaction, the earlier one commits first (with the entry,
  if no earlier commit carried it: one entry per request);
* an async handler's step run by ``in_thread`` commits when the step returns, since the handler
  may then wait on the network (a run); the entry then names the resource the step returned.

So a change without its entry cannot commit: the commit that makes the change durable is the
one that inserts the entry. A failed request rolls back what is still open and its entry (an
error) is written in a transaction of its own: it changed nothing, except steps that already
committed with their own entry. A transaction opened with ``db.tenant`` directly, outside
``tenant_tx``, is not covered: the entry of such a request is written after the handler, in its
own transaction, as a fallback.

**Idempotency.** A POST whose name ends in ``.create`` (or that sets
``openapi_extra={"x-idempotent": true}``; ``false`` opts a creating route out, as routes whose
response shows a secret once do) accepts an ``Idempotency-Key`` header. Before the handler runs,
a completed request with that key is answered from the store (``Idempotent-Replayed: true``),
and a key used for a different request is refused (409). For sync handlers the 2xx response is
then recorded in the transaction of the change, so a retry after a crash finds either both or
neither; a concurrent request with the same key waits for the first to commit, rolls back its
own change and replays the first one's response (also when its change failed on what the first
one created: a name taken, say). An async handler commits in steps before its
response exists, so its key is claimed up front in its own transaction (a concurrent retry is
refused as in progress), completed after the response and released on failure.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Any

import anyio.to_thread
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

import store
from api._auth import Principal, authenticate
from api._unit import Idempotency, Replay, RequestUnit

IDEMPOTENCY_HEADER = "idempotency-key"
MAX_IDEMPOTENCY_KEY = 255
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _error_code(exc: BaseException) -> tuple[str, int]:
    code = getattr(type(exc), "code", None)
    status = getattr(type(exc), "http_status", None)
    if isinstance(code, str) and isinstance(status, int):
        return code, status
    status_code = getattr(exc, "status_code", None)
    if isinstance(status_code, int):
        return ("request_invalid" if status_code == 422 else f"http_{status_code}"), status_code
    if type(exc).__name__ == "RequestValidationError":
        return "request_invalid", 422
    return "internal_error", 500


def _path_resource_id(request: Request) -> str | None:
    ids = [value for name, value in request.path_params.items() if name.endswith("_id") or name == "id"]
    return str(ids[-1]) if ids else None


def _resource_id(request: Request, body: Any) -> str | None:
    path_id = _path_resource_id(request)
    if path_id is not None:
        return path_id
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return body["id"]
    return None


def _response_body(response: Response) -> Any:
    if not isinstance(response, JSONResponse) and response.media_type != "application/json":
        return None
    try:
        return json.loads(bytes(response.body))
    except (ValueError, TypeError, AttributeError):
        return None


def _replayed(stored: dict[str, Any]) -> JSONResponse:
    return JSONResponse(stored["response"], status_code=stored["status"], headers={"Idempotent-Replayed": "true"})


class PlatformRoute(APIRoute):
    """APIRoute that audits mutations and replays idempotent creations.

    In the OpenAPI document the route's name is its ``operationId`` and the first line of its
    docstring its summary, so the document reads like the code.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if kwargs.get("summary") is None and endpoint.__doc__:
            kwargs["summary"] = endpoint.__doc__.strip().splitlines()[0].rstrip(".")
        if kwargs.get("operation_id") is None and kwargs.get("name"):
            kwargs["operation_id"] = kwargs["name"]
        super().__init__(path, endpoint, **kwargs)

    def _idempotent(self) -> bool:
        extra = self.openapi_extra or {}
        if "x-idempotent" in extra:
            # Explicit either way: a route whose response shows a secret once opts out, since a
            # stored response would keep that secret in plaintext.
            return "POST" in self.methods and bool(extra["x-idempotent"])
        return "POST" in self.methods and self.name.endswith(".create")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        if not (self.methods & _MUTATING):
            return original
        action = self.name
        resource_type = action.split(".", 1)[0]
        idempotent = self._idempotent()
        # An async handler commits in steps before its response exists (see the module docstring).
        claim_up_front = inspect.iscoroutinefunction(self.dependant.call)

        async def handler(request: Request) -> Response:
            unit = RequestUnit(request, action, resource_type, _path_resource_id(request))
            with unit.current():
                if idempotent and request.headers.get(IDEMPOTENCY_HEADER):
                    stored = await self._begin_idempotent(request, unit, claim_up_front)
                    if stored is not None:
                        return _replayed(stored)
                try:
                    response = await original(request)
                except Exception as exc:
                    stored = await anyio.to_thread.run_sync(unit.completed_by_another)
                    if stored is not None:
                        return _replayed(stored)
                    await anyio.to_thread.run_sync(unit.fail, *_error_code(exc))
                    raise
                body = _response_body(response)
                ok = response.status_code < 400
                code = None if ok else body.get("code") if isinstance(body, dict) else f"http_{response.status_code}"
                try:
                    await anyio.to_thread.run_sync(
                        unit.finish, response.status_code, body, code, _resource_id(request, body)
                    )
                except Replay as replay:
                    return _replayed(replay.stored)
                except Exception as exc:
                    # The commit failed: the change is rolled back, and the client must not be
                    # told it succeeded.
                    await anyio.to_thread.run_sync(unit.fail, *_error_code(exc))
                    raise
                return response

        return handler

    async def _begin_idempotent(self, request: Request, unit: RequestUnit, claim_up_front: bool) -> dict[str, Any] | None:
        """Look the key up (or claim it); returns the stored response to replay, or None to go on."""
        key = request.headers[IDEMPOTENCY_HEADER]
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise store.InvalidInput("idempotency_key", "Idempotency-Key", f"is longer than {MAX_IDEMPOTENCY_KEY} characters")
        principal: Principal = await authenticate(
            request,
            request.headers.get("x-fastn-access-key"),
            request.headers.get("x-fastn-account-id"),
            request.headers.get("x-fastn-account-tenant-id"),
            request.headers.get("authorization"),
        )
        body = await request.body()
        # The customer is part of the request: an organization key retrying for one customer must
        # not be answered with what it created for another (nor create nothing for it).
        digest = hashlib.sha256((principal.customer_id or "").encode() + b"\0" + body).hexdigest()
        entry = Idempotency(
            principal.org_id, key, principal.actor_id, request.method, request.url.path, digest, claim_up_front
        )
        db: store.Database = request.app.state.db

        def begin() -> Any:
            with db.tenant(principal.org_id) as tx:
                keys = store.IdempotencyKeys(tx)
                if claim_up_front:
                    return keys.claim(entry.org_id, entry.key, entry.actor_id, entry.method, entry.path, entry.digest)
                return keys.lookup(entry.org_id, entry.key, entry.actor_id, entry.method, entry.path, entry.digest)

        stored = await anyio.to_thread.run_sync(begin)
        if stored is None:
            unit.idempotency = entry
        return stored
