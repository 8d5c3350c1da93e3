"""API errors and their mapping to RFC 9457 problem details (``application/problem+json``).

Hierarchy::

    ApiError                         root of errors raised by api/ itself; code "api_error", HTTP 500
     +-- InvalidToken                a bearer JWT is refused (401)
     +-- IdentityProviderUnavailable the OIDC issuer's keys cannot be fetched (503)
     +-- OidcConfigInvalid           the configured issuer or JWKS URL cannot be used (500)
     +-- OpenAPIImportRefused        an OpenAPI document cannot be imported (422)

Access and run errors (``Unauthenticated``, ``Forbidden``, ``BadHeader``, ``SpecInvalid``,
``RunRefused``) are ``runtime.errors``'; the engine's and the store's are their own packages'.
Mapping is keyed on attributes, not classes: any exception whose class has ``code`` (str) and
``http_status`` (int) becomes a problem response with that status (an instance's own
``http_status`` wins, as ``StepFailed`` sets its cause's), so ``StoreError``, ``EngineError``,
``ServiceError`` and ``SwitchboardError`` subclasses map without api/ importing each one. A class
may list extra attributes to expose in ``problem_fields`` (e.g. ``("pointer",)``), may set
``public_detail`` to answer with that text instead of its message (the log keeps the message), and an
instance may define ``problem_headers() -> dict[str, str]`` for response headers such as
``Retry-After``. Any other
exception becomes a generic 500 whose details stay in the log. Framework errors (unknown route,
wrong method, request validation) are problem responses too.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:switchboard:problem:"

_logger = logging.getLogger("switchboard.api")


class ApiError(Exception):
    """Root of the errors raised by the API layer itself."""

    code: str = "api_error"
    http_status: int = 500


def _title(code: str) -> str:
    return code.replace("_", " ").capitalize()


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """Build a problem+json response: ``type`` is ``urn:switchboard:problem:<code>``, ``title`` is
    derived from ``code``, and ``extensions`` become extra members (RFC 9457 section 3.2)."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": _title(code),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def coded_error_response(exc: BaseException, instance: str | None = None) -> JSONResponse | None:
    """Return the problem response for an exception whose class has ``code`` and ``http_status``,
    or None when it has not."""
    code = getattr(type(exc), "code", None)
    status = getattr(type(exc), "http_status", None)
    if not isinstance(code, str) or not isinstance(status, int):
        return None
    # An instance may set its own status (``StepFailed`` takes its cause's).
    own = getattr(exc, "http_status", status)
    status = own if isinstance(own, int) else status
    if not 400 <= status <= 599:
        status = 500
    # jsonable_encoder: fields may be datetimes (a quota's reset time) and become ISO 8601 text.
    extensions = jsonable_encoder({name: getattr(exc, name, None) for name in getattr(type(exc), "problem_fields", ())})
    hook = getattr(exc, "problem_headers", None)
    headers = hook() if callable(hook) else None
    # A class may keep its message (internal details) out of the response with ``public_detail``.
    detail = getattr(type(exc), "public_detail", None) or str(exc)
    return problem_response(status, code, detail, instance=instance, headers=headers, **extensions)


def json_pointer(location: tuple[Any, ...] | list[Any]) -> str:
    """RFC 6901 pointer for a validation error location such as ``("body", "steps", 0, "id")``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in location)


class CodedErrorMiddleware:
    """Turns exceptions escaping the routes into problem responses.

    A pure ASGI middleware rather than an exception handler: Starlette sends handlers registered
    for ``Exception`` to its outermost middleware, which re-raises after responding.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # too late to replace the response; let the server log it
            instance = scope.get("path")
            response = coded_error_response(exc, instance)
            if response is None:
                _logger.error("request failed", exc_info=exc, extra={"path": instance})
            elif response.status_code >= 500:
                # A coded 5xx (an upstream that failed, a store that is down) is an expected
                # outcome with a message of its own; its stack adds nothing but volume.
                _logger.warning(
                    "request failed",
                    extra={"path": instance, "status": response.status_code, "error": type(exc).__name__},
                )
            if response is None:
                response = problem_response(500, "internal_error", "internal server error", instance=instance)
            await response(scope, receive, send)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        code = f"http_{exc.status_code}"
    return problem_response(
        exc.status_code, code, str(exc.detail), instance=request.url.path, headers=getattr(exc, "headers", None)
    )


def _validation_problem(err: dict[str, Any]) -> dict[str, str]:
    location = tuple(err.get("loc", ()))
    if err.get("type") == "json_invalid" and location[:1] == ("body",):
        # FastAPI locates a JSON syntax error by character offset: ("body", 12) is no member of
        # the body, so the pointer names the body and the reason says where it broke.
        error = (err.get("ctx") or {}).get("error") or "invalid syntax"
        at = f" at character {location[1]}" if len(location) > 1 else ""
        return {"pointer": "/body", "reason": f"is not valid JSON: {error}{at}"}
    return {"pointer": json_pointer(location), "reason": err.get("msg", "")}


async def _validation_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_validation_problem(err) for err in exc.errors()]
    detail = "; ".join(f"{e['pointer'] or '/'}: {e['reason']}" for e in errors) or "invalid request"
    return problem_response(422, "request_invalid", detail, instance=request.url.path, errors=errors)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of ``app`` a problem+json document."""
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_exception)
    app.add_middleware(CodedErrorMiddleware)


# --- OIDC (api/_oidc.py) ---
# ApiError
#  +-- InvalidToken                 a bearer JWT is refused (401); ``reason`` says why, never the token
#  +-- IdentityProviderUnavailable  the issuer's discovery document or JWKS cannot be fetched (503)
#  +-- OidcConfigInvalid            the configured issuer or JWKS URL cannot be used (500)
class InvalidToken(ApiError):
    """A bearer token was refused: expired, wrong audience or issuer, unknown key, bad signature,
    malformed... ``reason`` is safe to show the caller; the token itself is never included."""

    code = "invalid_token"
    http_status = 401
    problem_fields = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid bearer token: {reason}")

    def problem_headers(self) -> dict[str, str]:
        # RFC 6750 section 3: a refused bearer token is answered with its challenge.
        return {"WWW-Authenticate": 'Bearer realm="switchboard", error="invalid_token"'}


class IdentityProviderUnavailable(ApiError, ConnectionError):
    """The OIDC issuer's discovery document or key set could not be fetched or used."""

    code = "identity_provider_unavailable"
    http_status = 503
    problem_fields = ("issuer",)

    def __init__(self, issuer: str, reason: str) -> None:
        self.issuer = issuer
        self.reason = reason
        super().__init__(f"identity provider {issuer} is unavailable: {reason}")


class OidcConfigInvalid(ApiError, ValueError):
    """An OIDC setting (issuer or JWKS URL) cannot be used as given."""

    code = "oidc_config_invalid"
    http_status = 500

    def __init__(self, setting: str, value: str, reason: str) -> None:
        self.setting = setting
        self.value = value
        self.reason = reason
        super().__init__(f"{setting} {value!r} refused: {reason}")


# --- end OIDC ---





# --- connectors and workflows (api/_v1/connectors.py, api/_v1/workflows.py) ---
# ApiError
#  +-- OpenAPIImportRefused   an OpenAPI document cannot be imported (422); ``pointer`` into the document
class OpenAPIImportRefused(ApiError, ValueError):
    """The OpenAPI document cannot be imported: ``reason``, at ``pointer`` in the document ("" for all of it)."""

    code = "openapi_import_failed"
    http_status = 422
    problem_fields = ("pointer", "reason")

    def __init__(self, pointer: str, reason: str) -> None:
        self.pointer = pointer
        self.reason = reason
        at = f" at {pointer}" if pointer else ""
        super().__init__(f"cannot import the OpenAPI document{at}: {reason}")


# --- end connectors and workflows ---
