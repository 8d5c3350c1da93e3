"""Checking a request against its operation: credentials, parameters, body.

Order matters and follows real APIs: credentials first (401), then a body
that cannot be parsed (400), then everything the schemas say (422, every
problem at once, each naming the parameter or the JSON pointer in the body).

Credentials are checked for presence only: any value of the right kind is
accepted (an API key header or query parameter, ``Authorization: Bearer``
for bearer, OAuth 2.0 and OpenID Connect, ``Authorization: Basic`` for basic).
An operation is satisfied by any one of its security requirements, or by any
complete requirement another operation of the document states; a scheme the
document names but never defines cannot be satisfied, and when no requirement
can be, none is enforced.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jsonschema

from .._samples import merge_all_of, schema_view, validator_for
from ..errors import RequestProblem, SandboxBadRequest, SandboxRequestInvalid, SandboxUnauthorized
from ..openapi import Operation
from ..specs import with_defs
from ._model import Defs, _types, properties

# OpenAPI: header parameters with these names are ignored (they are described elsewhere)
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})


@dataclass
class IncomingRequest:
    """A request as the sandbox sees it: method, path, decoded query pairs, headers (lower-case names), body bytes."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def query_values(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


@dataclass
class CheckedRequest:
    """A request that passed: parameters coerced to their schema types, body parsed (None when absent)."""

    path_params: dict[str, Any]
    query: dict[str, Any]
    raw_query: dict[str, str]
    body: Any
    has_body: bool


def check_security(
    operation: Operation,
    schemes: dict[str, dict],
    request: IncomingRequest,
    also_accepted: list[dict[str, list[str]]] | None = None,
) -> None:
    """Raise :class:`SandboxUnauthorized` when the operation needs credentials the request does not carry.

    ``also_accepted`` are requirements of other operations of the document: a
    connector carries one kind of credentials for a whole API (swagger-petstore
    asks for an API key on some operations and OAuth on others), so any complete
    set the document asks for anywhere is accepted.
    """
    requirements = operation.security or []
    if not requirements or any(not r for r in requirements):
        return
    satisfiable = [r for r in requirements if all(name in schemes for name in r)]
    if not satisfiable:
        return
    for requirement in satisfiable + [r for r in also_accepted or [] if r and all(n in schemes for n in r)]:
        if all(_present(schemes[name], request) for name in requirement):
            return
    accepted = [" + ".join(_describe(schemes[name]) for name in r) for r in satisfiable]
    problems = [RequestProblem("header", f"send one of: {'; '.join(accepted)}", name="credentials")]
    raise SandboxUnauthorized(request.method, request.path, "credentials required", problems)


def _present(scheme: dict, request: IncomingRequest) -> bool:
    kind = scheme.get("type")
    auth = request.headers.get("authorization", "")
    if kind == "apiKey":
        name = str(scheme.get("name", ""))
        where = scheme.get("in")
        if where == "header":
            return bool(request.headers.get(name.lower()))
        if where == "query":
            return bool(request.query_values(name))
        if where == "cookie":
            return bool(request.cookies.get(name))
        return False
    if kind == "http":
        wanted = str(scheme.get("scheme", "")).lower()
        if wanted in ("bearer", "basic"):
            return auth.lower().startswith(wanted + " ") and len(auth) > len(wanted) + 1
        return bool(auth)
    if kind in ("oauth2", "openIdConnect"):
        return auth.lower().startswith("bearer ") and len(auth) > 7
    return True  # mutualTLS and unknown kinds cannot be checked over plain HTTP


def _describe(scheme: dict) -> str:
    kind = scheme.get("type")
    if kind == "apiKey":
        return f"{scheme.get('in')} {scheme.get('name')}"
    if kind == "http":
        return f"Authorization: {str(scheme.get('scheme', '')).capitalize()} <credentials>"
    return "Authorization: Bearer <token>"


def check_request(operation: Operation, raw_path_params: dict[str, str], request: IncomingRequest,
                  defs: Defs = None) -> CheckedRequest:
    """Validate and coerce parameters and body; ``defs`` are the document's shared schemas its ``$ref``s name.

    Raises:
        SandboxBadRequest: the body is not valid JSON (or form data) while its content type says it is.
        SandboxRequestInvalid: a required parameter or body is missing, or a value violates its schema.
    """
    problems: list[RequestProblem] = []
    path_params: dict[str, Any] = {}
    query: dict[str, Any] = {}
    for parameter in operation.parameters:
        location = parameter.in_
        if location == "header" and parameter.name.lower() in _IGNORED_HEADERS:
            continue
        values = _values(parameter.name, location, raw_path_params, request)
        if not values:
            if parameter.required or location == "path":
                problems.append(RequestProblem(location, "required parameter is missing", name=parameter.name))
            continue
        value = coerce(values, parameter.schema, defs)
        for error in _errors(value, with_defs(parameter.schema, defs)):
            problems.append(RequestProblem(location, error.message, name=parameter.name))
        if location == "path":
            path_params[parameter.name] = value
        elif location == "query":
            query[parameter.name] = value
    for name, value in raw_path_params.items():
        path_params.setdefault(name, value)
    body, has_body = _body(operation, request, problems, defs)
    if problems:
        raise SandboxRequestInvalid(request.method, request.path, "request does not match the document", problems)
    raw_query = {k: v for k, v in request.query}
    return CheckedRequest(path_params, query, raw_query, body, has_body)


def _values(name: str, location: str, path_params: dict[str, str], request: IncomingRequest) -> list[str]:
    if location == "path":
        return [path_params[name]] if name in path_params else []
    if location == "query":
        return request.query_values(name)
    if location == "header":
        value = request.headers.get(name.lower())
        return [value] if value is not None else []
    if location == "cookie":
        value = request.cookies.get(name)
        return [value] if value is not None else []
    return []


def coerce(values: list[str], schema: Any, defs: Defs = None) -> Any:
    """Turn the text of a parameter (repeated or comma-separated for arrays) into its schema's type."""
    merged = merge_all_of(schema, defs) if isinstance(schema, dict) else {}
    kinds = _types(merged)
    if "array" in kinds:
        parts = values if len(values) > 1 else [p for p in values[0].split(",") if p != ""]
        items = merged.get("items") if isinstance(merged.get("items"), dict) else {}
        return [_scalar(p, items, defs) for p in parts]
    return _scalar(values[-1], merged, defs)


def _scalar(text: str, schema: dict, defs: Defs = None) -> Any:
    schema = merge_all_of(schema, defs) if schema else schema
    kinds = _types(schema) if schema else []
    if not kinds and isinstance(schema.get("anyOf") or schema.get("oneOf"), list):
        for branch in schema.get("anyOf") or schema.get("oneOf"):
            kinds += _types(merge_all_of(branch, defs)) if isinstance(branch, dict) else []
    for kind in ("integer", "number", "boolean", "null"):
        if kind not in kinds:
            continue
        if kind == "integer":
            try:
                return int(text)
            except ValueError:
                continue
        if kind == "number":
            try:
                number = float(text)
                return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
            except ValueError:
                continue
        if kind == "boolean" and text.lower() in ("true", "false", "1", "0"):
            return text.lower() in ("true", "1")
        if kind == "null" and text in ("", "null"):
            return None
    return text


def _errors(value: Any, schema: Any) -> list[jsonschema.ValidationError]:
    if not isinstance(schema, dict) or not schema:
        return []
    try:
        return sorted(validator_for(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    except Exception:  # noqa: BLE001 - a schema the validator cannot evaluate does not reject requests
        return []


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _body(operation: Operation, request: IncomingRequest, problems: list[RequestProblem], defs: Defs) -> tuple[Any, bool]:
    spec = operation.request_body
    raw = request.body
    if not raw.strip():
        if spec is not None and spec.required:
            problems.append(RequestProblem("body", "a request body is required", pointer=""))
        return None, False
    media = _media(request.headers.get("content-type", ""))
    declared = _media(spec.content_type) if spec is not None else ""
    if "json" in media or (not media and ("json" in declared or not declared)):
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            reason = f"body is not valid JSON{where}: {exc.msg if isinstance(exc, json.JSONDecodeError) else exc}"
            raise SandboxBadRequest(request.method, request.path, reason,
                                    [RequestProblem("body", reason, pointer="")]) from None
    elif media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise SandboxBadRequest(request.method, request.path, f"form body is not UTF-8: {exc}") from None
        props = properties(spec.schema, defs) if spec is not None else {}
        body = {k: coerce(v, props.get(k, {}), defs) for k, v in pairs.items()}
    else:
        # XML, multipart and binary bodies are accepted as they are: nothing here can check them
        return None, True
    if spec is not None and isinstance(spec.schema, dict) and spec.schema:
        view = schema_view(with_defs(spec.schema, defs), for_request=True)
        for error in _errors(body, view):
            problems.append(_body_problem(error))
    return body, True


def _body_problem(error: jsonschema.ValidationError) -> RequestProblem:
    pointer = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.absolute_path)
    if error.validator == "required":
        # point at the missing member itself, which is what a client needs to add
        try:
            missing = ast.literal_eval(error.message.split(" is a required property")[0])
            pointer += "/" + str(missing).replace("~", "~0").replace("/", "~1")
        except (ValueError, SyntaxError):
            pass
    return RequestProblem("body", error.message, pointer=pointer)
