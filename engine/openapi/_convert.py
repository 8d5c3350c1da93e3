"""An OpenAPI document -> a ConnectorSpec.

Every operation becomes an action; webhooks and callbacks become webhook
events; the security schemes become the connector's auth (see
:mod:`._security`); the first server becomes ``base_url``.

Action input: one property per parameter (named as the parameter, prefixed
with its location on a clash, e.g. ``header_X``) plus ``body`` for the request
body; templates read them with :func:`engine.expressions.quote_field`, so
names such as Google's ``$.xgafv`` work. Header parameters that the chosen
auth already sets (``api_key`` in swagger-petstore) are not inputs.

Schemas the document reuses are not copied into every action that uses them:
the document is loaded with its schema references kept, and each schema they
name is in the connector's ``$defs`` once (``{"$ref": "#/$defs/<name>"}``),
so a connector stays about its document's size (see :mod:`._refs`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..errors import OpenAPIImportError, Problem, SpecValidationError
from ..expressions import quote_field
from ..specs import ConnectorSpec, deref, load_model
from ..specs._connector import ACTION_NAME_PATTERN, ID_PATTERN
from ._document import OpenAPIDocument, Operation, load_openapi
from ._paging import infer_pagination
from ._refs import join
from ._schemas import SharedSchemas, unrequire
from ._security import AuthChoice, action_auth, choose_auth, credential_headers, header_auth, looks_like_credential

PLACEHOLDER_HOST = "https://api.example.com"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_MAX_NAME = 128


@dataclass
class ImportResult:
    """The imported connector and every warning (document problems first, then conversion choices)."""

    connector: ConnectorSpec
    warnings: list[Problem] = field(default_factory=list)


def import_connector(doc: OpenAPIDocument | str | Path | dict | bytes, *, connector_id: str | None = None
                     ) -> ImportResult:
    """Turn an OpenAPI document (loaded, or anything :func:`load_openapi` reads) into a connector spec.

    ``connector_id`` defaults to a slug of the document's title.

    Raises:
        OpenAPIImportError: the document cannot be loaded (see :func:`load_openapi`), or the
            resulting connector does not validate (a bug here or an id that is not allowed).
    """
    if not isinstance(doc, OpenAPIDocument):
        doc = load_openapi(doc, keep_refs=True)
    warnings: list[Problem] = list(doc.warnings)
    connector_id = connector_id or slug(doc.title)
    if not re.match(ID_PATTERN, connector_id):
        raise OpenAPIImportError(doc.source, "", f"connector id {connector_id!r} must match {ID_PATTERN}")

    base_url = _base_url(doc.servers, "/servers", warnings)
    auth = choose_auth(doc, base_url, warnings)
    if auth.auth["type"] == "none" and not doc.security_schemes:
        headers = credential_headers(doc)
        if headers:
            auth = header_auth(headers)
            for header, pointer in headers:
                warnings.append(Problem(pointer, (
                    f"header parameter {header!r} carries a credential but the document declares no security "
                    f"scheme; the connector sends it through api_key auth (credential "
                    f"{auth.auth['keys'][[h for h, _ in headers].index(header)]['credential']!r}) instead of "
                    "taking it as an action input")))

    shared = SharedSchemas(doc.schemas or {})
    actions: dict[str, dict] = {}
    collections = collection_paths(doc.operations)
    for op in doc.operations:
        name = _unique(action_name(op, collections), actions)
        actions[name] = _action(op, base_url, auth, doc, shared, warnings)

    events: dict[str, dict] = {}
    for hook in doc.webhooks:
        events[_unique(_identifier(hook.path) or "webhook", events)] = _event(hook)
    for op in doc.operations:
        for callback, requests in op.callbacks.items():
            for request in requests:
                base = _identifier(f"{action_name(op, collections)}_{callback}")
                events[_unique(base, events)] = _event(request)

    spec = {
        "id": connector_id, "version": 1, "name": doc.title or None, "description": doc.description,
        "base_url": base_url, "auth": auth.auth, "actions": actions, "events": events,
        "source": {"format": "openapi", "openapi": doc.openapi_version, "title": doc.title,
                   "version": doc.version, "document": doc.source},
        # only what the actions and events use: error responses and other media types named more
        "$defs": shared.reachable([*(a.get(k) for a in actions.values() for k in ("input", "output")),
                                   *(e.get("payload") for e in events.values())]) or None,
    }
    spec = {k: v for k, v in spec.items() if v is not None}
    try:
        connector = load_model(ConnectorSpec, spec, "connector", doc.source)
    except SpecValidationError as exc:
        first = exc.problems[0] if exc.problems else Problem("", str(exc))
        raise OpenAPIImportError(doc.source, first.pointer, f"the imported connector is invalid: {exc}") from None
    return ImportResult(connector, warnings)


def slug(title: str) -> str:
    """A connector id from a title: ``"Cin7 Core (DEAR) API v2"`` -> ``"cin7-core-dear-api-v2"``."""
    text = re.sub(r"[^a-z0-9_.]+", "-", title.lower()).strip("-._")
    return text[:100].rstrip("-._") or "imported"


def action_name(op: Operation, collections: frozenset[str] = frozenset()) -> str:
    """The action name for an operation.

    A real operationId (``listCustomers``) becomes snake case. Where there is
    none, or it only repeats the method and path (HubSpot's
    ``get-/crm/v3/objects/contacts``), the name is built the way people name
    REST calls: ``list_contacts``, ``create_contact``, ``get_contact``,
    ``update_contact``, ``delete_contact``, ``search_contacts``, with the
    parent resource in front for nested paths (``get_email_attachment``).
    ``collections`` are the document's collection paths (see
    :func:`collection_paths`), which tell a resource from a verb segment.
    """
    if op.operation_id and "/" not in op.operation_id:
        name = _identifier(op.operation_id)
        if name:
            return name
    return _rest_name(op, collections) or _path_name(op)


def _path_name(op: Operation) -> str:
    parts = [op.method.lower()]
    for segment in op.path.split("/"):
        match = re.fullmatch(r"\{(.+)\}", segment)
        parts.append(f"by_{match.group(1)}" if match else segment)
    return _identifier("_".join(parts)) or op.method.lower()


_VERSION = re.compile(r"^(v\d+(\.\d+)*|api|rest|\d+(\.\d+)*)$", re.I)
_ITEM_VERBS = {"GET": "get", "PUT": "update", "PATCH": "update", "DELETE": "delete", "HEAD": "check", "OPTIONS": "options"}
_COLLECTION_VERBS = {"GET": "list", "POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete_all"}


def collection_paths(operations: list[Operation]) -> frozenset[str]:
    """Paths that name a collection: the parent of an item path (``/pets`` for ``/pets/{id}``),
    or a literal path both listed (GET) and created into (POST)."""
    found = set()
    methods: dict[str, set[str]] = {}
    for op in operations:
        match = re.match(r"^(.*)/\{[^}]+\}$", op.path)
        if match and match.group(1):
            found.add(match.group(1))
        methods.setdefault(op.path, set()).add(op.method)
    found |= {path for path, verbs in methods.items() if {"GET", "POST"} <= verbs}
    return frozenset(found)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _rest_name(op: Operation, collections: frozenset[str]) -> str:
    segments = [s for s in op.path.split("/") if s]
    # The resource is the deepest collection the path starts with; what follows it
    # (other than its item parameter) is a verb such as /search or /batch/archive.
    resource_end = -1
    for index in range(len(segments)):
        if "/" + "/".join(segments[: index + 1]) in collections:
            resource_end = index
    if resource_end < 0:
        literals = [i for i, s in enumerate(segments) if not s.startswith("{")]
        if not literals:
            return ""
        resource_end = literals[-1]
    resource = segments[resource_end]
    if resource.startswith("{") or _VERSION.match(resource):
        return ""
    rest = segments[resource_end + 1:]
    item = bool(rest) and rest[0].startswith("{")
    if item:
        rest = rest[1:]
    parents = [s for s in segments[:resource_end] if not s.startswith("{") and not _VERSION.match(s)]
    # Only a parent that owns this resource through an id (/emails/{id}/attachments) is named.
    parent = ""
    if resource_end >= 2 and segments[resource_end - 1].startswith("{") and parents:
        parent = _singular(parents[-1]) + "_"
    verbs = [s for s in rest if not s.startswith("{")]
    if verbs and item and op.method != "POST":
        # GET/PATCH /contacts/{id}/topics: a property of the item, not a verb.
        return _identifier(f"{_ITEM_VERBS.get(op.method, op.method.lower())}_{parent}{_singular(resource)}_" + "_".join(verbs))
    if verbs:
        target = parent + (_singular(resource) if item else resource)
        return _identifier("_".join(verbs) + "_" + target)
    if item:
        return _identifier(f"{_ITEM_VERBS.get(op.method, op.method.lower())}_{parent}{_singular(resource)}")
    verb = _COLLECTION_VERBS.get(op.method, op.method.lower())
    noun = _singular(resource) if op.method == "POST" else resource
    return _identifier(f"{verb}_{parent}{noun}")


def _identifier(text: str) -> str:
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    snake = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", snake)
    snake = re.sub(r"[^A-Za-z0-9]+", "_", snake).strip("_").lower()
    if snake and snake[0].isdigit():
        snake = "op_" + snake
    snake = snake[:_MAX_NAME].rstrip("_")
    return snake if re.match(ACTION_NAME_PATTERN, snake) else ""


def _unique(name: str, taken: dict) -> str:
    if name not in taken:
        return name
    index = 2
    while True:
        suffix = f"_{index}"
        candidate = name[: _MAX_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        index += 1


def _base_url(servers: list[str], pointer: str, warnings: list[Problem]) -> str:
    if not servers:
        warnings.append(Problem(pointer, f"the document names no server; base_url is the placeholder "
                                         f"{PLACEHOLDER_HOST}: set the real one (or pass --base-url when testing)"))
        return PLACEHOLDER_HOST
    url = servers[0].rstrip("/")
    if re.match(r"^https?://", url, re.IGNORECASE):
        return url
    path = urlsplit(url).path.rstrip("/")
    if not path.startswith("/"):
        path = "/" + path if path else ""
    warnings.append(Problem(pointer, f"server URL {servers[0]!r} is relative; base_url is {PLACEHOLDER_HOST + path!r} "
                                     "with a placeholder host: set the real one (or pass --base-url when testing)"))
    return PLACEHOLDER_HOST + path


def _action(op: Operation, base_url: str, auth: AuthChoice, doc: OpenAPIDocument, shared: SharedSchemas,
            warnings: list[Problem]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    templates: dict[str, dict[str, Any]] = {"path": {}, "query": {}, "header": {}}
    cookies: list[str] = []
    own_auth = action_auth(op, auth, doc, base_url, warnings)
    auth_headers = auth.header_names | (own_auth.header_names if own_auth else frozenset())
    for index, param in enumerate(op.parameters):
        at = join(op.pointer, "parameters", index)
        if param.in_ == "header" and param.name.lower() in auth_headers:
            continue  # the connector's (or the action's own) auth sets this header
        if param.in_ == "header" and looks_like_credential(param.name):
            warnings.append(Problem(at, f"header parameter {param.name!r} looks like a credential; it stays an "
                                        "action input, so keep its value in a secret"))
        key = param.name
        if key in properties or key == "body":
            key = f"{param.in_}_{param.name}"
        properties[key] = _describe(param.schema, param.description)
        if param.required:
            required.append(key)
        value = "{{ input." + quote_field(key) + " }}"
        if param.in_ == "cookie":
            cookies.append(f"{param.name}={value}")
            if not param.required:
                warnings.append(Problem(at, f"optional cookie parameter {param.name!r} is always sent (cookies are "
                                            "sent as one Cookie header)"))
        else:
            templates[param.in_][param.name] = value
    if cookies:
        templates["header"]["Cookie"] = "; ".join(cookies)

    action: dict[str, Any] = {
        "title": op.operation_id or op.summary,
        "description": "\n\n".join(t for t in (op.summary if op.operation_id else None, op.description) if t) or None,
        "method": op.method if op.method != "TRACE" else "GET",
        "path": op.path,
        "path_params": templates["path"], "query": templates["query"], "headers": templates["header"],
        "tags": op.tags,
    }
    if op.method == "TRACE":
        warnings.append(Problem(op.pointer, "TRACE operations are not supported; imported as GET"))
    if op.request_body is not None:
        body = op.request_body
        properties["body"] = unrequire(body.schema, "readOnly", shared)
        if body.required:
            required.append("body")
        action["body"] = "{{ input.body }}"
        action["body_type"] = _body_type(body.content_type, op, warnings)
        _warn_body_credentials(op, shared, warnings)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    action["input"] = schema

    if own_auth is not None:
        action["auth"] = own_auth.auth
    redirects = _redirect_only(op)
    if redirects:
        # Twilio's fetch_day documents only a 307 (with a JSON body naming the download):
        # for such an operation the redirect is the success.
        action["success_statuses"] = redirects
    output = _output(op, "3" if redirects else "2")
    if output is not None:
        output = unrequire(output, "writeOnly", shared)
        action["output"] = output
        pagination = infer_pagination(op, output, shared.defs)
        if pagination is not None:
            action["pagination"] = pagination
    if op.servers and op.servers != doc.servers:
        # per-path or per-operation servers (Twilio): the action keeps its own base URL
        server = _base_url(op.servers, op.pointer, warnings)
        if server != base_url:
            action["base_url"] = server
    return {k: v for k, v in action.items() if v is not None}


def _describe(schema: dict, description: str | None) -> dict:
    if description and "description" not in schema:
        return {**schema, "description": description}
    return schema


def _body_type(content_type: str, op: Operation, warnings: list[Problem]) -> str:
    lowered = content_type.split(";")[0].strip().lower()
    if lowered == "application/json" or lowered.endswith("+json") or lowered.endswith("/json"):
        return "json"
    if lowered == "multipart/form-data":
        return "multipart"
    if lowered in _FORM_TYPES:
        return "form"
    return "raw"


def _warn_body_credentials(op: Operation, shared: SharedSchemas, warnings: list[Problem]) -> None:
    assert op.request_body is not None
    schema = deref(op.request_body.schema, shared.defs)
    properties = schema.get("properties") if isinstance(schema, dict) else None
    secrets = [name for name in (properties or {}) if looks_like_credential(name)]
    if secrets:
        warnings.append(Problem(join(op.pointer, "requestBody"), (
            f"the request body carries credentials ({', '.join(secrets)}); they stay action inputs "
            "(auth schemes cannot place body fields), so pass them from secrets")))


def _redirect_only(op: Operation) -> list[int]:
    """The documented 3xx statuses of an operation that documents no 2xx (nor default) response."""
    if any(status.startswith("2") or status == "default" for status in op.responses):
        return []
    return sorted(int(status) for status in op.responses if status.startswith("3") and status.isdigit())


def _output(op: Operation, family: str = "2") -> dict | None:
    """The schema of the first success (2xx, or 3xx for redirect-only operations) response with a JSON body."""
    def order(status: str) -> tuple[int, str]:
        return (0 if status[:1] == family and status[1:].isdigit() else 1, status)

    for status in sorted(op.responses, key=order):
        response = op.responses[status]
        if not status.startswith(family) or response.schema is None or not response.content_type:
            continue
        lowered = response.content_type.split(";")[0].strip().lower()
        if lowered == "application/json" or lowered.endswith("+json") or lowered.endswith("/json") or lowered == "*/*":
            return response.schema
    return None


def _event(op: Operation) -> dict[str, Any]:
    event: dict[str, Any] = {"kind": "webhook", "title": op.summary or op.operation_id, "description": op.description}
    if op.request_body is not None:
        event["payload"] = op.request_body.schema
    return {k: v for k, v in event.items() if v is not None}


def connector_document(connector: ConnectorSpec) -> dict[str, Any]:
    """The connector as plain data, as written to a file (aliases used, unset optional fields left out)."""
    return connector.model_dump(mode="json", by_alias=True, exclude_none=True)


class _NoAliasDumper(yaml.SafeDumper):
    """Shared schema objects are written out in full, never as YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_connector(connector: ConnectorSpec, fmt: str = "yaml") -> str:
    """Serialise a connector as ``yaml`` or ``json`` text."""
    data = connector_document(connector)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=120)


def import_to_file(source: OpenAPIDocument | str | Path | dict | bytes, out: Path | None,
                   connector_id: str | None = None) -> ImportResult:
    """Import ``source`` and write the connector to ``out`` (JSON for ``.json``, else YAML); stdout when None.

    The file is replaced atomically, so a failed import leaves an earlier file intact.

    Raises:
        OpenAPIImportError: as :func:`import_connector`, or ``out`` cannot be written.
    """
    result = import_connector(source, connector_id=connector_id)
    if out is None:
        sys.stdout.write(dump_connector(result.connector))
        return result
    out = Path(out)
    text = dump_connector(result.connector, "json" if out.suffix.lower() == ".json" else "yaml")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OpenAPIImportError(str(out), "", f"cannot write the connector: {exc.strerror or exc}") from None
    return result
