"""Turning an action and its input into an HTTP request (before auth)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote, unquote, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from ..errors import ActionInputInvalid, Problem, UnknownAction
from ..expressions import as_text, render
from ..specs import ActionSpec, ConnectorSpec, with_defs


@dataclass
class PreparedRequest:
    """An HTTP request built from an action: everything but credentials."""

    method: str
    url: str
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    content: bytes | None = None

    @property
    def body_size(self) -> int:
        if self.content is not None:
            return len(self.content)
        if self.json is not None:
            return len(json.dumps(self.json, separators=(",", ":")).encode())
        if self.data:
            return sum(len(k) + len(v) + 2 for k, v in self.data.items())
        return 0


class InputValidators:
    """Compiled input validators, one per action input schema (and connector ``$defs``) it has seen.

    Compiling checks the schema against the JSON Schema meta-schema, which costs
    more than validating an input: an executor keeps one of these so that each
    action's schema is checked and compiled once, not on every call. Entries are
    keyed by the schema's identity and keep the schema alive, so an ``id()`` is
    never reused for another; at most ``limit`` are kept (then it starts over),
    since specs loaded afresh are new objects.
    """

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self._found: dict[tuple[int, int], tuple[dict, Any, Draft202012Validator]] = {}

    def __len__(self) -> int:
        return len(self._found)

    def get(self, schema: dict, defs: dict[str, Any] | None = None) -> Draft202012Validator:
        """The validator of ``schema`` with ``defs`` beside it, compiled on first use.

        Raises:
            SchemaError: ``schema`` is not a JSON Schema (nothing is kept).
        """
        key = (id(schema), id(defs))
        found = self._found.get(key)
        if found is None or found[0] is not schema or found[1] is not defs:
            validator = _validator(schema, defs)
            if len(self._found) >= self.limit:
                self._found.clear()
            found = self._found[key] = (schema, defs, validator)
        return found[2]


def validate_input(connector: ConnectorSpec, name: str, action: ActionSpec, value: Any,
                   validators: InputValidators | None = None) -> None:
    """Check ``value`` against the action's input schema.

    ``validators`` keeps compiled validators between calls (an executor's); without it the
    schema is checked and compiled for this call.

    Raises:
        ActionInputInvalid: listing each problem with its JSON pointer in the input.
    """
    try:
        validator = validators.get(action.input, connector.defs) if validators is not None \
            else _validator(action.input, connector.defs)
    except SchemaError as exc:
        raise ActionInputInvalid(connector.id, name, [Problem("/input", f"the action's input schema is invalid: {exc.message}")]) from None
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except (re.error, TypeError, LookupError, ValueError, Unresolvable) as exc:
        # An unresolvable $ref or a pattern Python cannot compile, met while validating.
        raise ActionInputInvalid(connector.id, name, [Problem("/input", f"the action's input schema cannot be applied: {exc}")]) from None
    if errors:
        problems = [Problem(_pointer(e.absolute_path), e.message) for e in errors[:20]]
        raise ActionInputInvalid(connector.id, name, problems)


def _validator(schema: dict, defs: dict[str, Any] | None = None) -> Draft202012Validator:
    # The shared schemas were checked when the connector loaded: only the action's own is here.
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(with_defs(schema, defs))


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else "/"


RAW_REQUEST = "_request"
RAW_REQUEST_INPUT: dict[str, Any] = {
    "type": "object",
    "required": ["method", "path"],
    "additionalProperties": False,
    "properties": {
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]},
        "path": {"type": "string", "pattern": "^/(?!/)", "description": "below the connector's base URL"},
        "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "integer", "boolean", "array"]}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {},
        "body_type": {"enum": ["json", "form", "multipart", "raw"], "default": "json"},
    },
}
_RAW_CONNECTOR_ACTION = ActionSpec(method="GET", path="/", input=RAW_REQUEST_INPUT)


def build_raw_request(
    connector: ConnectorSpec,
    value: Any,
    *,
    base_url: str | None = None,
    connection: Mapping[str, Any] | None = None,
    validators: InputValidators | None = None,
) -> PreparedRequest:
    """The escape hatch: a request to any path below the connector's base URL.

    Values are taken literally (no templates are evaluated in them: they come
    from a run's data, and data must not become code). The path must stay below
    the base URL: no ``..`` segments, no other host.

    Raises:
        ActionInputInvalid: the input does not match :data:`RAW_REQUEST_INPUT`, or the path leaves the base URL.
    """
    validate_input(connector, RAW_REQUEST, _RAW_CONNECTOR_ACTION, value, validators)
    path = value["path"]
    segments = [unquote(s) for s in urlsplit(path).path.split("/")]
    if any(s in (".", "..") for s in segments) or "?" in path or "#" in path:
        raise ActionInputInvalid(connector.id, RAW_REQUEST, [Problem("/path", "the path must stay below the base URL "
                                                                     "(no '.' or '..' segments; put the query in 'query')")])
    base = effective_base_url(connector, _RAW_CONNECTOR_ACTION, base_url, connection or {})
    request = PreparedRequest(method=value["method"], url=base + path)
    for name, item in (value.get("query") or {}).items():
        for one in item if isinstance(item, list) else [item]:
            request.params.append((name, as_text(one)))
    request.headers.update(value.get("headers") or {})
    _set_body(request, value.get("body"), value.get("body_type", "json"), connector.id, RAW_REQUEST)
    return request


def effective_base_url(connector: ConnectorSpec, action: ActionSpec, override: str | None, connection: Mapping[str, Any]) -> str:
    """The base URL one action calls: an override (a sandbox) replaces the connector's.

    An action with its own base URL (OpenAPI per-path servers) keeps the part of
    its URL that extends the connector's, re-rooted on the override.
    """
    # Connection settings (a customer's subdomain) are percent-encoded before they enter a
    # URL: "evil.example#" must not turn https://{{ connection.subdomain }}.zendesk.com into another host.
    context = {"connection": {k: quote(as_text(v), safe="") if v is not None else None for k, v in connection.items()}}
    connector_base = str(render(connector.base_url, context)).rstrip("/")
    action_base = str(render(action.base_url, context)).rstrip("/") if action.base_url else None
    if override is None:
        return action_base or connector_base
    override = override.rstrip("/")
    if not action_base or action_base == connector_base:
        return override
    if action_base.startswith(connector_base + "/"):
        return override + action_base[len(connector_base):]
    # A different host: keep the action's path under the override's origin.
    parts = urlsplit(override)
    return f"{parts.scheme}://{parts.netloc}{urlsplit(action_base).path}".rstrip("/")


def build_request(
    connector: ConnectorSpec,
    name: str,
    value: Any,
    *,
    base_url: str | None = None,
    connection: Mapping[str, Any] | None = None,
    validators: InputValidators | None = None,
) -> PreparedRequest:
    """Render action ``name`` of ``connector`` with input ``value`` into a request.

    Path parameters are percent-encoded as one segment each; query parameters
    and headers whose template renders to nothing are left out, so optional
    inputs stay optional.

    Raises:
        ActionInputInvalid: the input does not match the action's input schema,
            or a path parameter renders to nothing.
        ExpressionError: a template fails, naming its JSON pointer in the action.
    """
    if name not in connector.actions:
        raise UnknownAction(connector.id, name, sorted(connector.actions))
    action = connector.actions[name]
    validate_input(connector, name, action, value, validators)
    context = {"input": value, "connection": dict(connection or {})}
    where = f"/actions/{name}"

    path = action.path
    for param, template in action.path_params.items():
        rendered = render(template, context, f"{where}/path_params/{param}")
        if rendered is None or rendered == "":
            raise ActionInputInvalid(connector.id, name, [Problem(f"/{param}", "path parameter has no value")])
        if as_text(rendered) in (".", ".."):
            # quote() leaves dots alone and URLs resolve dot segments: /users/../orders.
            raise ActionInputInvalid(connector.id, name, [Problem(f"/{param}", "a path parameter cannot be '.' or '..'")])
        path = path.replace("{" + param + "}", quote(as_text(rendered), safe=""))

    request = PreparedRequest(method=action.method, url=effective_base_url(connector, action, base_url, context["connection"]) + path)
    for param, template in action.query.items():
        rendered = render(template, context, f"{where}/query/{param}")
        for item in rendered if isinstance(rendered, list) else [rendered]:
            if item is not None:
                request.params.append((param, as_text(item)))
    for header, template in action.headers.items():
        rendered = render(template, context, f"{where}/headers/{header}")
        if rendered is not None:
            request.headers[header] = as_text(rendered)

    if action.body is not None:
        _set_body(request, render(action.body, context, f"{where}/body"), action.body_type, connector.id, name)
    return request


def _set_body(request: PreparedRequest, body: Any, body_type: str, connector: str, action: str) -> None:
    """Encode ``body`` into ``request`` as JSON, a form, multipart fields or raw content."""
    if body is None:
        return
    if body_type == "json":
        request.json = body
    elif body_type in ("form", "multipart"):
        if not isinstance(body, Mapping):
            raise ActionInputInvalid(connector, action, [Problem("/body", f"a {body_type} body must be an object")])
        fields = {k: as_text(v) for k, v in body.items() if v is not None}
        if body_type == "form":
            request.data = fields
        else:
            request.content, request.headers["Content-Type"] = encode_multipart(fields)
    else:
        request.content = body.encode() if isinstance(body, str) else json.dumps(body).encode()


def encode_multipart(fields: Mapping[str, str]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body of text fields and its content type.

    The boundary is derived from the content, so the same input gives the same
    bytes (a run's requests stay reproducible).
    """
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
    boundary = f"switchboard-{digest}"
    parts = []
    for name, value in fields.items():
        safe = name.replace('"', "%22").replace("\r", "").replace("\n", "")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{safe}"\r\n\r\n{value}\r\n')
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"
