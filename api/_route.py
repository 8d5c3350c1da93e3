"""The route class of /v1: every mutation is audited, and creating POSTs honour Idempotency-Key.

Auditing lives in the route class rather than in each handler so no route can forget it. Each
route is named ``<resource_type>.<verb>`` (``customer.create``); that name is the audit action.
The entry is written after the handler, in its own transaction, with the outcome: success, or
the error code the client received. Unauthenticated requests are not attributable to a tenant
and are not audited.

Idempotency: a POST whose name ends in ``.create`` (or that sets ``openapi_extra={"x-idempotent": true}``;
``false`` opts a creating route out) accepts an ``Idempotency-Key`` header. The key is claimed before the handler runs (in its own
transaction, so a concurrent retry sees it), the 2xx response is stored, and a failure releases
the claim.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio.to_thread
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

import store
from api._auth import Principal, authenticate

IDEMPOTENCY_HEADER = "idempotency-key"
MAX_IDEMPOTENCY_KEY = 255
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_logger = logging.getLogger("switchboard.api.audit")


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


def _resource_id(request: Request, body: Any) -> str | None:
    ids = [value for name, value in request.path_params.items() if name.endswith("_id") or name == "id"]
    if ids:
        return str(ids[-1])
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

        async def handler(request: Request) -> Response:
            claim = None
            if idempotent and request.headers.get(IDEMPOTENCY_HEADER):
                claim = await self._claim(request)
                if isinstance(claim, Response):
                    return claim
            try:
                response = await original(request)
            except Exception as exc:
                code, status = _error_code(exc)
                if claim:
                    await self._release(request, claim)
                await self._audit(request, action, resource_type, None, "error", code, status)
                raise
            body = _response_body(response)
            ok = response.status_code < 400
            if claim:
                if ok:
                    await self._complete(request, claim, response.status_code, body)
                else:
                    await self._release(request, claim)
            code = None if ok else (body or {}).get("code") if isinstance(body, dict) else f"http_{response.status_code}"
            await self._audit(
                request, action, resource_type, _resource_id(request, body),
                "success" if ok else "error", code, response.status_code,
            )
            return response

        return handler

    async def _claim(self, request: Request) -> tuple[str, str] | Response:
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
        db: store.Database = request.app.state.db

        def claim() -> Any:
            with db.tenant(principal.org_id) as tx:
                return store.IdempotencyKeys(tx).claim(
                    principal.org_id, key, principal.actor_id, request.method, request.url.path, digest
                )

        stored = await anyio.to_thread.run_sync(claim)
        if stored is not None:
            return JSONResponse(stored["response"], status_code=stored["status"], headers={"Idempotent-Replayed": "true"})
        return principal.org_id, key

    async def _complete(self, request: Request, claim: tuple[str, str], status: int, body: Any) -> None:
        db: store.Database = request.app.state.db

        def complete() -> None:
            with db.tenant(claim[0]) as tx:
                store.IdempotencyKeys(tx).complete(claim[0], claim[1], status, body)

        await anyio.to_thread.run_sync(complete)

    async def _release(self, request: Request, claim: tuple[str, str]) -> None:
        db: store.Database = request.app.state.db

        def release() -> None:
            with db.tenant(claim[0]) as tx:
                store.IdempotencyKeys(tx).release(claim[0], claim[1])

        try:
            await anyio.to_thread.run_sync(release)
        except store.StoreError:
            _logger.warning("could not release an idempotency key", exc_info=True)

    async def _audit(
        self,
        request: Request,
        action: str,
        resource_type: str,
        resource_id: str | None,
        outcome: str,
        error_code: str | None,
        status: int,
    ) -> None:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            return
        resource_id = resource_id or _resource_id(request, None)
        db: store.Database = request.app.state.db

        def record() -> None:
            with db.tenant(principal.org_id) as tx:
                store.AuditLog(tx).record(
                    principal.org_id,
                    actor_type=principal.actor_type,
                    actor_id=principal.actor_id,
                    action=action,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    customer_id=principal.customer_id,
                    outcome=outcome,
                    error_code=error_code,
                    status=status,
                    detail={"method": request.method, "path": request.url.path},
                )

        await anyio.to_thread.run_sync(record)
