"""Request size limits, enforced before a body is read, parsed or authenticated.

A pure ASGI middleware, the outermost one, so nothing behind it (FastAPI's body
parsing, authentication, the routes) ever holds more than the limit of one request:

* a ``Content-Length`` above the limit is answered 413 at once, without reading a byte of the body;
* a body without one (chunked, or streamed by an HTTP/2 peer) is counted as it arrives, and the
  request is stopped with 413 as soon as the count passes the limit.

The limit depends on the route: ``max_spec_request_bytes`` for routes whose body model declares
``body_limit = "spec"`` (specs and OpenAPI documents), ``max_request_bytes`` for every other one.
The 413 is a problem+json document naming the limit and the setting that sets it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Union, get_args, get_origin

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_response

SPEC_LIMIT = "spec"
REQUEST_TOO_LARGE = "request_too_large"
_SETTINGS = {None: "max_request_bytes", SPEC_LIMIT: "max_spec_request_bytes"}


class _TooLarge(Exception):
    """Raised into the app from ``receive`` when a streamed body passes the limit. Coded, so the
    error mapping inside treats it as a client error (not a logged 500); the middleware drops
    whatever the app answers and sends its own 413."""

    code = REQUEST_TOO_LARGE
    http_status = 413


def _body_models(route: APIRoute) -> Iterable[Any]:
    for param in route.dependant.body_params:
        annotation = param.field_info.annotation
        if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
            yield from get_args(annotation)
        else:
            yield annotation


def route_limit_kind(route: BaseRoute) -> str | None:
    """``"spec"`` when a body model of ``route`` declares ``body_limit = "spec"``, else None."""
    if not isinstance(route, APIRoute):
        return None
    for model in _body_models(route):
        if getattr(model, "body_limit", None) == SPEC_LIMIT:
            return SPEC_LIMIT
    return None


def _limit_text(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


class BodyLimitMiddleware:
    """Refuse request bodies larger than the route's limit with 413, before reading them.

    ``routes`` returns each route with its full path; it is read on the first request, once every
    router has been included.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int,
        spec_limit: int,
        routes: Callable[[], Iterable[tuple[BaseRoute, str]]],
    ) -> None:
        self.app = app
        self.limits: dict[str | None, int] = {None: default_limit, SPEC_LIMIT: spec_limit}
        self._routes = routes
        self._spec_routes: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def _kind(self, scope: Scope) -> str | None:
        if self._spec_routes is None:
            self._spec_routes = [
                (compile_path(path)[0], frozenset(getattr(route, "methods", None) or ()))
                for route, path in self._routes()
                if route_limit_kind(route) == SPEC_LIMIT
            ]
        path, method = scope.get("path", ""), scope.get("method", "")
        for pattern, methods in self._spec_routes:
            if method in methods and pattern.match(path):
                return SPEC_LIMIT
        return None

    def _refusal(self, scope: Scope, kind: str | None, length: int | None) -> Any:
        limit = self.limits[kind]
        setting = _SETTINGS[kind]
        size = f"of {length} bytes " if length is not None else ""
        return problem_response(
            413,
            REQUEST_TOO_LARGE,
            f"the request body {size}is larger than this route's limit of {_limit_text(limit)} "
            f"({limit} bytes, setting {setting}, env SWITCHBOARD_{setting.upper()})",
            instance=scope.get("path"),
            # The rest of the body is not read: the connection cannot carry another request.
            headers={"Connection": "close"},
            limit=limit,
            setting=setting,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = self._kind(scope)
        limit = self.limits[kind]
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refusal(scope, kind, declared)(scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Stop here: the app never sees this chunk, and the rest is never read.
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app answers to the interrupted read, the answer is the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refusal(scope, kind, None)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


def _full_paths(app: FastAPI) -> Iterator[tuple[BaseRoute, str]]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazily included routers: app.routes is flat
        for route in app.routes:
            yield route, getattr(route, "path", "")
        return
    for context in iter_route_contexts(app.routes):
        yield context.original_route, context.path_format


def install(app: FastAPI, *, default_limit: int, spec_limit: int) -> None:
    """Add the body limits to ``app``; install them last, so they run before every other
    middleware (the error mapping, quota headers) and before routing."""
    app.add_middleware(
        BodyLimitMiddleware, default_limit=default_limit, spec_limit=spec_limit, routes=lambda: _full_paths(app)
    )
