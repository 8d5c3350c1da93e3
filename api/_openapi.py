"""The error responses of the OpenAPI document: what the API really answers besides success.

FastAPI documents only each route's success status and a 422 whose body (``HTTPValidationError``)
is not what ``api.errors`` sends. ``document_problem_responses(app)`` post-processes the
generated document so it matches the wire:

* every 422 is an RFC 9457 problem (``#/components/schemas/ProblemDetails``, ``application/problem+json``)
  with ``errors[{pointer, reason}]``;
* every /v1 operation documents the problems any /v1 request can get: 400 (a malformed or
  contradicting auth header), 401, 403, 422 and 429 (a customer's quota; with ``Retry-After``),
  plus 404 where the request can name a resource (path parameters, a body, list filters),
  409 on writes (uniqueness, resources in use, idempotency keys) and 413 where there is a
  request body (``api/_limits.py``);
* idempotent creations (``PlatformRoute``) document the ``Idempotency-Key`` header.

Responses a route declares itself are kept; only missing ones are added.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from api._route import IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY, PlatformRoute
from api.errors import PROBLEM_MEDIA_TYPE

# Not "Problem": route modules may have models of that name (a spec validation problem).
PROBLEM_SCHEMA_NAME = "ProblemDetails"
_PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}
_WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
_PAGING_PARAMETERS = frozenset({"limit", "cursor", "sort"})
# FastAPI's schemas for its 422 body (ValidationError is used only by HTTPValidationError),
# dropped once no operation refers to them.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM_SCHEMA_NAME,
    "description": (
        "RFC 9457 problem details. `code` is the stable machine-readable error; extension members "
        "name what was wrong (`field`, `pointer`, `resource`, `resource_id`, `permission`, `header`, "
        "`dimension`, `limit`, `reset_at`, ...)."
    ),
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "`urn:switchboard:problem:<code>`."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What was wrong, for people."},
        "code": {"type": "string", "description": "Error code, snake_case."},
        "instance": {"type": "string", "description": "The request path."},
        "errors": {
            "type": "array",
            "description": "Each invalid part of the request (422).",
            "items": {
                "type": "object",
                "required": ["pointer", "reason"],
                "properties": {
                    "pointer": {"type": "string", "description": "JSON pointer, e.g. `/body/residency`."},
                    "reason": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

_DESCRIPTIONS = {
    "400": "Bad request: a malformed header, or one that contradicts the credentials.",
    "401": "No usable credentials.",
    "403": "The caller's role lacks the permission, or the resource is outside its scope.",
    "404": "A resource the request names does not exist (in this organization).",
    "409": "Conflict: a value that must be unique is taken, the resource is in use, or the idempotency key "
    "belongs to another request.",
    "413": "The request body is larger than the route's limit; `limit` and `setting` say how large it may be "
    "and which setting sets it.",
    "422": "The request is invalid; `errors` points at each invalid part.",
    "429": "A quota of the customer is exhausted; `dimension`, `limit` and `reset_at` say which and until when.",
}


def _problem(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": dict(_PROBLEM_REF)}},
    }
    if status == "429":
        response["headers"] = {
            "Retry-After": {"description": "Seconds until the quota resets.", "schema": {"type": "integer"}}
        }
    return response


def _is_fastapi_422(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref") == "#/components/schemas/HTTPValidationError"


def _names_resource(operation: dict[str, Any]) -> bool:
    """Whether the request can name another resource: a path parameter, a body, or a query
    parameter other than paging (list filters take ids or slugs, and an unknown one is a 404)."""
    if "requestBody" in operation:
        return True
    return any(
        p.get("in") == "path" or (p.get("in") == "query" and p.get("name") not in _PAGING_PARAMETERS)
        for p in operation.get("parameters", ())
    )


def _statuses(method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["400", "401", "403", "422", "429"]
    if _names_resource(operation):
        statuses.append("404")
    if method in _WRITE_METHODS:
        statuses.append("409")
    if "requestBody" in operation:
        statuses.append("413")
    return sorted(statuses)


def _routes(app: FastAPI) -> list[tuple[Any, str | None]]:
    """Each route with its full path as the document writes it (routers included under a prefix)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazily included routers: app.routes is flat
        return [(route, getattr(route, "path_format", None)) for route in app.routes]
    return [(context.original_route, context.path_format) for context in iter_route_contexts(app.routes)]


def _idempotent_operations(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (path, "post")
        for route, path in _routes(app)
        if path is not None and isinstance(route, PlatformRoute) and route._idempotent()
    }


def _document_idempotency_key(operation: dict[str, Any]) -> None:
    parameters = operation.setdefault("parameters", [])
    if any(p.get("in") == "header" and p.get("name", "").lower() == IDEMPOTENCY_HEADER for p in parameters):
        return
    parameters.append(
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Send the same key to retry this creation safely: a completed request is answered again "
            "with its stored response (`Idempotent-Replayed: true`), nothing is created twice.",
            "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
        }
    )


def add_problem_responses(document: dict[str, Any], idempotent: set[tuple[str, str]] = frozenset()) -> dict[str, Any]:
    """Add the problem responses to an OpenAPI ``document`` in place (idempotent) and return it.

    ``idempotent`` names the ``(path, method)`` operations that accept ``Idempotency-Key``.
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if schemas.get(PROBLEM_SCHEMA_NAME, PROBLEM_SCHEMA) != PROBLEM_SCHEMA:
        raise ValueError(f"a model named {PROBLEM_SCHEMA_NAME!r} collides with the problem details schema; rename it")
    schemas[PROBLEM_SCHEMA_NAME] = PROBLEM_SCHEMA
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "422" in responses and _is_fastapi_422(responses["422"]):
                responses["422"] = _problem("422")
            if path == "/v1" or path.startswith("/v1/"):
                for status in _statuses(method, operation):
                    responses.setdefault(status, _problem(status))
            if (path, method) in idempotent:
                _document_idempotency_key(operation)
    if "#/components/schemas/HTTPValidationError" not in json.dumps(document.get("paths", {})):
        for name in _FASTAPI_VALIDATION_SCHEMAS:
            schemas.pop(name, None)
    return document


def document_problem_responses(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` with its problem responses; use as ``app.openapi``.

    Builds on FastAPI's cached document, so it is computed once per app.
    """
    document = FastAPI.openapi(app)
    # FastAPI rebuilds its document when routes change; a rebuilt one lacks our schema object.
    if document.get("components", {}).get("schemas", {}).get(PROBLEM_SCHEMA_NAME) is not PROBLEM_SCHEMA:
        add_problem_responses(document, _idempotent_operations(app))
    return document
