"""How a sandbox reads a document: resources, and the role each operation plays.

The rules (documented for users in engine/sandbox/__init__.py):

* An **item path** ends in a single path parameter (``/pets/{petId}``) and has
  GET, PUT, PATCH or DELETE. Its parent (``/pets``) is the **collection**.
* A path is a collection when it has an item path below it or its GET
  returns a list (a JSON array, or an object wrapping an array of objects,
  such as ``{"results": [...]}`` or Cin7's ``{"Total", "Page", "CustomerList"}``).
  Path parameters of the collection (``/lists/{tasklist}/tasks``) scope its records.
* On a collection: GET lists, POST creates, PUT/PATCH with the key field in the
  body update that record (Cin7's ``PUT /customer`` with ``ID``). A GET on a
  sub-path that returns a list of the same records (``/pet/findByStatus``)
  lists with filters too.
* On an item path: GET fetches, PUT replaces, PATCH merges (JSON merge patch),
  DELETE removes, POST merges.
* A path that is neither, whose GET returns an object and that also has a write
  method, is a **singleton** (``/webhooks/v3/{appId}/settings``): GET reads,
  PUT/PATCH/POST merge, DELETE removes.
* A resource without a create operation is **virtual**: its records are
  synthesised from the response schema, seeded by the path, so read-only APIs
  can still be exercised; updates and deletes of virtual records are remembered.
* Everything else is an **action**: the request is validated and answered
  with a deterministic sample of the documented response.
* The record's **id field** is the item parameter when the record has a field of
  that name (``username``, ``job_sid`` for ``{JobSid}``), else ``id``/``ID``,
  else ``<singular>Id`` (``contactId``, ``SaleID``), else ``sid``/``uuid``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from collections.abc import Mapping
from typing import Any

from .._resource_graph import NOT_RECORDS, param_names_collection, pick_id_field
from .._samples import merge_all_of
from ..openapi import OpenAPIDocument, Operation, Response
from ..specs._refs import DEFS_PREFIX, iter_refs
from ._routes import split_template, template_params

_ITEM_METHODS = ("GET", "PUT", "PATCH", "DELETE")
_WRITE_METHODS = ("PUT", "PATCH", "POST", "DELETE")
_ENVELOPE_NAMES = ("results", "data", "items", "records", "list", "value", "values", "elements", "entries", "objects", "rows")
_TOTAL_NAMES = ("total", "totalcount", "totalresults", "totalrecords", "totalitems", "totalsize", "count")
_PAGE_NAMES = ("page", "pagenumber", "currentpage")
_LIMIT_NAMES = ("limit", "pagesize", "perpage")
_HAS_MORE_NAMES = ("hasmore", "more", "hasnextpage")
# A document's shared schemas (``OpenAPIDocument.schemas``, by ``$defs`` name), or None when every reference is inlined.
Defs = Mapping[str, Any] | None
# How deep the reading of a schema's shape follows oneOf/anyOf branches (shared schemas may be recursive)
_MAX_DEPTH = 8
_CURSOR_NAMES = ("after", "cursor", "nextcursor", "nextpagetoken", "pagetoken", "nexttoken", "continuationtoken", "startingafter")


class Role(str, Enum):
    """What an operation does to the sandbox's state."""

    LIST = "list"
    CREATE = "create"
    GET = "get"
    REPLACE = "replace"
    MERGE = "merge"
    UPDATE_BY_BODY = "update_by_body"
    DELETE = "delete"
    SINGLETON_GET = "singleton_get"
    SINGLETON_UPDATE = "singleton_update"
    SINGLETON_DELETE = "singleton_delete"
    ACTION = "action"


@dataclass
class ListShape:
    """Where the records sit in a list response, and which envelope fields carry paging."""

    item_schema: dict
    items_prop: str | None = None
    total_prop: str | None = None
    page_prop: str | None = None
    limit_prop: str | None = None
    has_more_prop: str | None = None
    cursor_path: tuple[str, ...] | None = None


@dataclass
class Resource:
    """A collection (or singleton) of records, keyed by its collection path template (without base path)."""

    key: str
    name: str
    scope_params: list[str]
    item_template: str | None = None
    item_param: str | None = None
    id_field: str | None = None
    key_field: str | None = None
    item_schema: dict = field(default_factory=lambda: {"type": "object"})
    singleton: bool = False
    creatable: bool = False
    item_param_schema: dict = field(default_factory=dict)
    enveloped: bool = False  # its item GET wraps the record (Xero's {"employee": {...}})

    @property
    def virtual(self) -> bool:
        """True when no operation creates records: missing records are synthesised from the schema."""
        return not self.creatable

    def describe(self) -> dict[str, Any]:
        return {
            "collection": self.key, "name": self.name, "item_path": self.item_template, "id_field": self.id_field,
            "key_field": self.key_field, "singleton": self.singleton, "virtual": self.virtual,
        }


@dataclass
class Binding:
    """One operation with its role, resource and documented success response."""

    operation: Operation
    role: Role
    resource: Resource | None
    status: int
    success: Response | None
    list_shape: ListShape | None = None
    # stored parents this path names, each with its parameters' names here (``ConversationSid`` for ``Sid``)
    parents: list[tuple[Resource, dict[str, str]]] = field(default_factory=list)
    record_prop: str | None = None  # the member holding the one record in the answer (Xero's ``employee``)
    # on an alternate item path (``/Contacts/{ContactNumber}``): the parameter and the record field it looks up
    lookup: tuple[str, str] | None = None


_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@functools.lru_cache(maxsize=8192)
def norm(name: str) -> str:
    """A name compared loosely: lower case, letters and digits only (``job_sid`` == ``JobSid``)."""
    # cached: listing compares every field name of every stored record with each query parameter
    return _NOT_ALNUM.sub("", name.lower())


def singular(name: str) -> str:
    low = norm(name)
    for suffix in ("list", "ies", "s"):
        if low.endswith(suffix) and len(low) > len(suffix) + 1:
            return low[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return low


def success_response(operation: Operation) -> tuple[int, Response | None]:
    """The documented success: the lowest 2xx (``2XX`` counts as 200), else ``default``, else the lowest 3xx, else none."""
    codes = sorted(s for s in operation.responses if re.fullmatch(r"2\d\d", s))
    if codes:
        return int(codes[0]), operation.responses[codes[0]]
    if "2XX" in operation.responses or "2xx" in operation.responses:
        return 200, operation.responses.get("2XX") or operation.responses.get("2xx")
    if "default" in operation.responses:
        return 200, operation.responses["default"]
    # only a redirect documented (Twilio's day export answers 307 with the record): answer that, without Location
    redirects = sorted(s for s in operation.responses if re.fullmatch(r"3\d\d", s))
    if redirects:
        return int(redirects[0]), operation.responses[redirects[0]]
    return (204 if operation.method.upper() == "DELETE" else 200), None


def _types(schema: dict) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    if "properties" in schema or "additionalProperties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    return []


def _object_like(schema: Any, defs: Defs = None, depth: int = 0) -> bool:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return False
    schema = merge_all_of(schema, defs)
    if "oneOf" in schema or "anyOf" in schema:
        branches = schema.get("oneOf") or schema.get("anyOf")
        return any(_object_like(b, defs, depth + 1) for b in branches if isinstance(b, dict))
    kinds = _types(schema)
    return "object" in kinds or (not kinds and bool(schema.get("properties")))


def resolved(schema: Any, defs: Defs = None) -> Any:
    """``schema`` with its ``$ref`` followed into ``defs`` and its ``allOf`` merged: a shape to read, not to validate."""
    return merge_all_of(schema, defs) if isinstance(schema, dict) else schema


def root_defs(schema: Any) -> Defs:
    """The shared schemas a standalone schema carries (its root ``$defs``), or None."""
    defs = schema.get("$defs") if isinstance(schema, dict) else None
    return defs if isinstance(defs, dict) else None


def properties(schema: Any, defs: Defs = None) -> dict[str, Any]:
    """The declared properties of an object schema (allOf merged, its ``$ref`` followed into ``defs``).

    The properties' own schemas are given as declared: they may be references (see :func:`resolved`).
    """
    if not isinstance(schema, dict):
        return {}
    merged = merge_all_of(schema, defs)
    props = merged.get("properties")
    return props if isinstance(props, dict) else {}


def _find_prop(props: dict, names: tuple[str, ...], kinds: tuple[str, ...], defs: Defs = None) -> str | None:
    for wanted in names:
        for name, sub in props.items():
            if norm(name) == wanted and isinstance(sub, dict) and any(k in _types(merge_all_of(sub, defs)) for k in kinds):
                return name
    return None


def _cursor_path(props: dict, defs: Defs = None, depth: int = 0) -> tuple[str, ...] | None:
    found = _find_prop(props, _CURSOR_NAMES, ("string",), defs)
    if found:
        return (found,)
    if depth >= 2:
        return None
    for name in sorted(props, key=lambda n: norm(n) not in ("paging", "next", "pagination", "meta", "links")):
        sub = props[name]
        if isinstance(sub, dict) and _object_like(sub, defs) and norm(name) in ("paging", "next", "pagination", "meta", "links", "page"):
            inner = _cursor_path(properties(sub, defs), defs, depth + 1)
            if inner:
                return (name, *inner)
    return None


def list_shape(schema: Any, resource_name: str, id_names: tuple[str, ...] = (), defs: Defs = None) -> ListShape | None:
    """How ``schema`` holds a list of records, or None when it does not look like a list.

    An object with one of ``id_names`` at its top level is a record, not an envelope.
    """
    if not isinstance(schema, dict):
        return None
    merged = merge_all_of(schema, defs)
    kinds = _types(merged)
    if "array" in kinds and "object" not in kinds:
        items = merged.get("items")
        return ListShape(item_schema=items if isinstance(items, dict) else {}) if _object_like(items, defs) or not items else None
    props = properties(merged, defs)
    if not props or any(norm(n) in id_names for n in props):
        return None
    arrays = [n for n, sub in props.items() if isinstance(sub, dict) and "array" in _types(merge_all_of(sub, defs))
              and _object_like(merge_all_of(sub, defs).get("items"), defs)]
    if not arrays:
        return None
    wanted = singular(resource_name)
    chosen = next((n for n in arrays if wanted and (wanted in norm(n) or singular(n) in norm(resource_name))), None)
    chosen = chosen or next((n for n in arrays if norm(n) in _ENVELOPE_NAMES), None)
    if chosen is None and len(arrays) == 1:
        chosen = arrays[0]
    if chosen is None:
        return None
    rest = {n: s for n, s in props.items() if n != chosen}
    return ListShape(
        item_schema=merge_all_of(props[chosen], defs).get("items") or {},
        items_prop=chosen,
        total_prop=_find_prop(rest, _TOTAL_NAMES, ("integer", "number"), defs),
        page_prop=_find_prop(rest, _PAGE_NAMES, ("integer", "number"), defs),
        limit_prop=_find_prop(rest, _LIMIT_NAMES, ("integer", "number"), defs),
        has_more_prop=_find_prop(rest, _HAS_MORE_NAMES, ("boolean",), defs),
        cursor_path=_cursor_path(rest, defs),
    )


def _strictness(schema: Any, defs: Defs = None) -> int:
    if not isinstance(schema, dict) or not schema:
        return 0
    merged = merge_all_of(schema, defs)
    return 1 + bool(merged.get("format")) + bool(merged.get("pattern")) + ("integer" in _types(merged))


def _id_like(name: str) -> bool:
    low = norm(name)
    return low in ("id", "sid", "uuid", "key") or low.endswith(("id", "sid", "uuid"))


def _id_field(resource: Resource, schema: dict, defs: Defs = None) -> str | None:
    props = properties(schema, defs)
    by_norm = {norm(n): n for n in props}
    # the item parameter names the id when the record has that field (Xero's RepeatingInvoiceID beside an ID)
    if resource.item_param and _id_like(resource.item_param) and norm(resource.item_param) in by_norm:
        return by_norm[norm(resource.item_param)]
    candidates = ["id", singular(resource.name) + "id", singular(resource.name) + "sid", "sid", "uuid", "key"]
    for candidate in candidates:
        if candidate in by_norm:
            return by_norm[candidate]
    # a record named otherwise than its path parameter (Xero's statutoryLeaveID for {StatutorySickLeaveID})
    return pick_id_field(list(props), (resource.item_param,), resource.name) if resource.item_param else None


def record_envelope(schema: Any, resource_name: str, id_names: tuple[str, ...], defs: Defs = None) -> str | None:
    """The member of ``schema`` that wraps a single record (Xero's ``{"pagination", "problem", "employee"}``), or None.

    An object with an id of its own is the record itself. Otherwise the wrapper
    is its one object member named after the resource (``employee``, ``data``,
    ``result``), else its one object member that has an id field, else its only
    object member besides paging and error members.
    """
    props = properties(schema, defs)
    if not props or any(norm(n) in id_names for n in props):
        return None
    objects = [n for n, sub in props.items() if isinstance(sub, dict) and norm(n) not in NOT_RECORDS
               and _object_like(sub, defs) and "array" not in _types(merge_all_of(sub, defs))]
    wanted = {singular(resource_name), norm(resource_name), "data", "result", "record", "item", "entity", "object"}
    for chosen in ([n for n in objects if norm(n) in wanted or singular(n) == singular(resource_name)],
                   [n for n in objects if any(norm(p) in id_names for p in properties(props[n], defs))],
                   objects if all(norm(n) in NOT_RECORDS for n in props if n not in objects) else []):
        if len(chosen) == 1:
            return chosen[0]
    return None


def _aligned(prefix: str, template: str) -> dict[str, str] | None:
    """Parameter names of ``prefix`` mapped to ``template``'s at the same places, when ``prefix`` leads ``template``.

    ``/Conversations/{Sid}`` leads ``/Conversations/{ConversationSid}/Messages``: ``{"Sid": "ConversationSid"}``.
    """
    a, b = split_template(prefix), split_template(template)
    if len(a) >= len(b):
        return None
    names: dict[str, str] = {}
    for mine, theirs in zip(a, b):
        ours = re.fullmatch(r"\{([^{}]+)\}", mine), re.fullmatch(r"\{([^{}]+)\}", theirs)
        if ours[0] and ours[1]:
            names[ours[0].group(1)] = ours[1].group(1)
        elif mine != theirs:
            return None
    return names


def _schema_of(response: Response | None) -> dict | None:
    return response.schema if response is not None and isinstance(response.schema, dict) else None


def _fingerprint(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, default=str)


def _is_strict_prefix(prefix: str, path: str) -> bool:
    a, b = split_template(prefix), split_template(path)
    return len(a) < len(b) and b[: len(a)] == a


def _resolve_leftovers(document: OpenAPIDocument, node: Any, depth: int = 0) -> Any:
    """Inline local ``$ref``s engine.openapi left in place (it skips the ``default`` response, taking it for data).

    References to shared schemas (``#/$defs/<name>``, kept by ``load_openapi(keep_refs=True)``) stay: they are
    followed where the schema is read.
    """
    if depth > 64:
        return node
    if isinstance(node, list):
        return [_resolve_leftovers(document, v, depth + 1) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and not ref.startswith(DEFS_PREFIX):
        try:
            target = document.schema(ref[1:])
        except KeyError:
            target = {}
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return {k: (v if k in ("example", "examples", "default", "enum", "const") else _resolve_leftovers(document, v, depth + 1))
            for k, v in node.items()}


def _has_leftover(schema: dict) -> bool:
    return any(not ref.startswith(DEFS_PREFIX) for _, ref in iter_refs(schema))


def _success(document: OpenAPIDocument, operation: Operation) -> tuple[int, Response | None]:
    status, response = success_response(operation)
    if response is not None and isinstance(response.schema, dict) and _has_leftover(response.schema):
        response = dataclasses.replace(response, schema=_resolve_leftovers(document, response.schema))
    return status, response


def build_model(document: OpenAPIDocument) -> tuple[list[Resource], dict[tuple[str, str], Binding]]:
    """Classify a document's operations into resources and roles; bindings are keyed by (METHOD, path template).

    Schemas stay as the document holds them: with shared schemas (``document.schemas``) they may be
    ``$ref``s into it, followed here wherever a shape is read.
    """
    defs = document.schemas

    def _succ(operation: Operation) -> tuple[int, Response | None]:
        return _success(document, operation)

    by_path: dict[str, dict[str, Operation]] = defaultdict(dict)
    for operation in document.operations:
        by_path[operation.path.rstrip("/") or "/"].setdefault(operation.method.upper(), operation)

    items_below: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for template, ops in by_path.items():
        segments = split_template(template)
        if len(segments) >= 2 and re.fullmatch(r"\{[^{}]+\}", segments[-1]) and any(m in ops for m in _ITEM_METHODS):
            parent = "/" + "/".join(segments[:-1])
            items_below[parent].append((template, segments[-1][1:-1]))
    # a collection may be addressed by more than one key (Xero's /Contacts/{ContactID} and
    # /Contacts/{ContactNumber}): the id-like parameter is the item path, the others look records up by field
    item_of: dict[str, tuple[str, str]] = {}
    alternates: dict[str, tuple[str, str]] = {}  # alternate item template -> (collection template, parameter)
    for parent, found in items_below.items():
        ranked = sorted(found, key=lambda tp: not _id_like(tp[1]))
        item_of[parent] = ranked[0]
        alternates.update((template, (parent, param)) for template, param in ranked[1:])

    resources: dict[str, Resource] = {}
    list_shapes: dict[str, ListShape] = {}
    item_paths = {item for item, _ in item_of.values()} | set(alternates)
    for template in sorted(set(by_path) | set(item_of)):
        if template in item_paths and template not in item_of:
            continue
        ops = by_path.get(template, {})
        segments = split_template(template)
        literal = [s for s in segments if "{" not in s]
        name = literal[-1] if literal else "root"
        getter = ops.get("GET")
        shape = list_shape(_schema_of(_succ(getter)[1]), name, defs=defs) if getter else None
        if template in item_of or shape is not None:
            resource = Resource(key=template, name=name, scope_params=template_params(template))
            if template in item_of:
                resource.item_template, resource.item_param = item_of[template]
                # ids must fit the strictest schema any operation gives the parameter (Resend: a plain string on
                # GET /emails/{email_id}, a uuid on /emails/{email_id}/attachments)
                for other, ops in by_path.items():
                    if other != resource.item_template and not _is_strict_prefix(resource.item_template, other):
                        continue
                    for operation in ops.values():
                        for parameter in operation.parameters:
                            if parameter.in_ == "path" and parameter.name == resource.item_param and \
                                    _strictness(parameter.schema, defs) > _strictness(resource.item_param_schema, defs):
                                resource.item_param_schema = parameter.schema
            resources[template] = resource
            if shape is not None:
                list_shapes[template] = shape
        elif getter is not None and any(m in ops for m in _WRITE_METHODS) and _object_like(_schema_of(_succ(getter)[1]) or {}, defs):
            resources[template] = Resource(key=template, name=name, scope_params=template_params(template), singleton=True,
                                           item_schema=_schema_of(_succ(getter)[1]) or {"type": "object"})

    for template, resource in resources.items():
        if resource.singleton:
            continue
        ops = by_path.get(template, {})
        item_ops = by_path.get(resource.item_template or "", {})
        item_status, item_response = _succ(item_ops["GET"]) if "GET" in item_ops else (0, None)
        # a redirect's body (Twilio's day export) describes the redirect, not the record
        item_get = _schema_of(item_response) if item_status < 300 else None
        creator = ops.get("POST")
        listed = list_shapes[template].item_schema if template in list_shapes else None
        body = creator.request_body.schema if creator is not None and creator.request_body is not None else None
        first = next((c for c in (listed, item_get, body) if isinstance(c, dict) and properties(c, defs)), None)
        guess = _id_field(resource, first, defs) if first is not None else None
        ids = tuple(n for n in (guess and norm(guess), resource.item_param and norm(resource.item_param)) if n)
        if item_get is not None and _object_like(item_get, defs):
            # some APIs (SendGrid) wrap even a single record in a list envelope, others (Xero) in an object
            wrapped = list_shape(item_get, resource.name, ids, defs)
            member = record_envelope(item_get, resource.name, ids, defs) if wrapped is None else None
            item_get = wrapped.item_schema if wrapped is not None else properties(item_get, defs)[member] if member else item_get
            resource.enveloped = member is not None
        else:
            item_get = None
        candidates = [item_get, listed, body]
        resource.item_schema = next((c for c in candidates if isinstance(c, dict) and c), {"type": "object"})
        resource.id_field = _id_field(resource, resource.item_schema, defs)
        by_norm = {norm(n): n for n in properties(resource.item_schema, defs)}
        param = norm(resource.item_param) if resource.item_param else None
        resource.key_field = by_norm.get(param) if param else None
        if resource.key_field is None:
            resource.key_field = resource.id_field
        elif resource.id_field is None:
            resource.id_field = resource.key_field
        resource.creatable = creator is not None

    # a GET-only list below a collection that returns the same records (/pet/findByStatus) is a filtered
    # view of that collection, not a resource of its own
    for template, resource in list(resources.items()):
        if resource.creatable or resource.singleton or resource.item_template:
            continue
        for owner in resources.values():
            if owner is not resource and not owner.singleton and _is_strict_prefix(owner.key, template) \
                    and _fingerprint(owner.item_schema) == _fingerprint(resource.item_schema):
                del resources[template]
                list_shapes.pop(template, None)
                break

    id_names = tuple({norm(r.id_field) for r in resources.values() if r.id_field} | {norm(r.key_field) for r in resources.values() if r.key_field})
    bindings: dict[tuple[str, str], Binding] = {}
    item_templates = {r.item_template: r for r in resources.values() if r.item_template}
    lookups: dict[str, tuple[str, str]] = {}
    for template, (parent, param) in alternates.items():
        owner = resources.get(parent)
        if owner is None or owner.singleton or not owner.item_template:
            continue
        item_templates[template] = owner
        field_name = next((n for n in properties(owner.item_schema, defs) if norm(n) == norm(param)), None)
        lookups[template] = (param, field_name or param)
    for template, ops in by_path.items():
        for method, operation in ops.items():
            status, success = _success(document, operation)
            # a fragment variant (Box's PUT /folders/{folder_id}#remove_shared_link) acts on what its path serves
            served = template.split("#", 1)[0] if "#" in template and template.split("#", 1)[0] in by_path else template
            role, resource, shape = _classify(served, method, operation, resources, item_templates, list_shapes, id_names, defs)
            record_prop = None
            if role in (Role.CREATE, Role.UPDATE_BY_BODY, Role.REPLACE, Role.MERGE, Role.GET, Role.DELETE) and resource is not None:
                ids = tuple(norm(n) for n in (resource.id_field, resource.key_field) if n)
                shape = list_shape(_schema_of(success), resource.name, ids, defs)
                if shape is None and _schema_of(success) is not None:
                    record_prop = record_envelope(_schema_of(success), resource.name, ids, defs)
            lookup = lookups.get(served) if role in (Role.GET, Role.REPLACE, Role.MERGE, Role.DELETE) else None
            bindings[(method, template)] = Binding(operation, role, resource, status, success, shape,
                                                   _parents(template, resources), record_prop, lookup)
    return list(resources.values()), bindings


def _parents(template: str, resources: dict[str, Resource]) -> list[tuple[Resource, dict[str, str]]]:
    """Stored resources whose item path leads ``template``, by position: a record is found under every path
    that names its collection, whatever the parameter is called there (``/Conversations/{ConversationSid}/Messages``
    needs the Conversation that ``/Conversations/{Sid}`` serves). A differently named parameter counts only
    when its name names the resource (``ConversationSid``, ``ChatServiceSid``), not a mere ``{scope}``."""
    found = []
    for resource in resources.values():
        if not (resource.creatable and resource.item_template and resource.item_param):
            continue
        names = _aligned(resource.item_template, template)
        if names is None:
            continue
        here = names.get(resource.item_param)
        if here is None or (here != resource.item_param and not param_names_collection(here, resource.name)):
            continue
        found.append((resource, names))
    return found


def _classify(
    template: str,
    method: str,
    operation: Operation,
    resources: dict[str, Resource],
    item_templates: dict[str, Resource],
    list_shapes: dict[str, ListShape],
    id_names: tuple[str, ...],
    defs: Defs = None,
) -> tuple[Role, Resource | None, ListShape | None]:
    item_owner = item_templates.get(template)
    if item_owner is not None:
        role = {"GET": Role.GET, "PUT": Role.REPLACE, "PATCH": Role.MERGE, "DELETE": Role.DELETE, "POST": Role.MERGE}[method] \
            if method in ("GET", "PUT", "PATCH", "DELETE", "POST") else None
        if role is not None:
            return role, item_owner, None
    resource = resources.get(template)
    if resource is not None and resource.singleton:
        role = {"GET": Role.SINGLETON_GET, "DELETE": Role.SINGLETON_DELETE}.get(method, Role.SINGLETON_UPDATE)
        return role, resource, None
    if resource is not None:
        if method == "GET" and template in list_shapes:
            return Role.LIST, resource, list_shapes[template]
        if method == "POST":
            return Role.CREATE, resource, None
        if method in ("PUT", "PATCH") and operation.request_body is not None:
            body_props = {norm(n) for n in properties(operation.request_body.schema, defs)}
            if resource.key_field and norm(resource.key_field) in body_props:
                return Role.UPDATE_BY_BODY, resource, None
        return Role.ACTION, None, None
    if method == "GET":
        status, success = success_response(operation)
        for owner in resources.values():
            if owner.singleton or not _is_strict_prefix(owner.key, template):
                continue
            shape = list_shape(_schema_of(success), owner.name, id_names, defs)
            if shape is not None and _fingerprint(shape.item_schema) == _fingerprint(owner.item_schema):
                return Role.LIST, owner, shape
    return Role.ACTION, None, None
