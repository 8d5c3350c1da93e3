"""The sandbox as an ASGI (Starlette) application.

Every path is handed to :class:`Sandbox`, except the admin routes, which live
under ``/__sandbox`` (at the root and under the document's base path, so
``base_url + "/__sandbox/state"`` works too) where no real API puts anything:

* ``GET  /__sandbox/state``     every stored record by collection path
* ``POST /__sandbox/reset``     back to the seed
* ``POST /__sandbox/seed``      replace the seed with the JSON body, then reset
* ``GET  /__sandbox/describe``  the resources and the role of each operation
* ``POST /__sandbox/change``    ``{"collection": "/saleList", "record": {...}}``: create or change
  one record as the app's own users would (its updated stamps move); see :meth:`Sandbox.change`
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import SandboxSetupError
from ..openapi import OpenAPIDocument
from ._requests import IncomingRequest
from ._sandbox import ADMIN_PREFIX, Reply, Sandbox

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]


def create_sandbox_app(
    document: OpenAPIDocument | str | Path | Sandbox,
    *,
    seed: dict | str | Path | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """Build the ASGI app of a sandbox for ``document`` (a loaded document, a path/URL/text, or a ready :class:`Sandbox`).

    ``seed`` preloads records (a mapping, or a YAML/JSON file); ``clock`` is
    injected into the record store. The :class:`Sandbox` is at ``app.state.sandbox``.

    Raises:
        OpenAPIImportError: the document cannot be loaded.
        SandboxSetupError: the seed does not fit the document.
    """
    sandbox = document if isinstance(document, Sandbox) else Sandbox(document, seed=seed, clock=clock)

    async def endpoint(request: Request) -> Response:
        path = request.url.path
        admin = _admin_action(path, sandbox.base_path)
        if admin is not None:
            return await _admin(sandbox, admin, request)
        incoming = IncomingRequest(
            method=request.method,
            path=path,
            query=list(request.query_params.multi_items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            cookies=dict(request.cookies),
            body=await request.body(),
        )
        return _render(sandbox.handle(incoming))

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=_METHODS)])
    app.state.sandbox = sandbox
    return app


def _admin_action(path: str, base_path: str) -> str | None:
    for prefix in (ADMIN_PREFIX, base_path + ADMIN_PREFIX):
        if path.startswith(prefix + "/"):
            return path[len(prefix) + 1:].strip("/")
    return None


async def _admin(sandbox: Sandbox, action: str, request: Request) -> Response:
    if action == "state" and request.method == "GET":
        return JSONResponse({"collections": sandbox.state()})
    if action == "describe" and request.method == "GET":
        return JSONResponse(sandbox.describe())
    if action == "reset" and request.method == "POST":
        sandbox.reset()
        return JSONResponse({"reset": True, "collections": sandbox.state()})
    if action == "seed" and request.method == "POST":
        try:
            data = json.loads(await request.body() or b"{}")
            if not isinstance(data, dict):
                return _problem(422, "seed_invalid", f"a seed is an object of collections to records, not {type(data).__name__}")
            sandbox.load_seed(data)
        except json.JSONDecodeError as exc:
            return _problem(400, "malformed_request", f"body is not valid JSON: {exc.msg}")
        except SandboxSetupError as exc:
            return _problem(exc.http_status, exc.code, str(exc))
        return JSONResponse({"seeded": True, "collections": sandbox.state()})
    if action == "change" and request.method == "POST":
        try:
            data = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            return _problem(400, "malformed_request", f"body is not valid JSON: {exc.msg}")
        if not isinstance(data, dict) or not isinstance(data.get("collection"), str):
            return _problem(422, "change_invalid", "the body is {\"collection\": \"/path\", \"record\": {...}}")
        try:
            record = sandbox.change(data["collection"], data.get("record"))
        except SandboxSetupError as exc:
            return _problem(exc.http_status, exc.code, str(exc))
        return Response(_dumps({"record": record}), media_type="application/json")
    return _problem(404, "not_found", f"no sandbox admin route {request.method} {ADMIN_PREFIX}/{action}")


def _problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "status": status, "message": message, "problems": []}}, status_code=status)


def _render(reply: Reply) -> Response:
    if reply.body is None or reply.status in (204, 304):
        return Response(status_code=reply.status, headers=reply.headers)
    if reply.media_type is not None:
        return Response(str(reply.body), status_code=reply.status, headers=reply.headers, media_type=reply.media_type)
    return Response(_dumps(reply.body), status_code=reply.status, headers=reply.headers, media_type="application/json")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
