"""The stateful fake of one API: requests in, documented responses out.

:class:`Sandbox` is independent of any web framework (``_app.py`` adapts it to
ASGI): it matches the route, checks credentials and the request, and acts on
its records according to the operation's role (see ``_model.py``). Every
response body is fitted to the documented response schema and checked
against it before it leaves.

A document loaded with shared schemas (``load_openapi(keep_refs=True)``, what
a path given here is loaded as) stays its size: its ``$ref``s are followed
into ``document.schemas`` where a schema is read, and each schema validated
carries the shared schemas it reaches (``schema_view`` keeps only those).
Xero's accounting document inlined is over a hundred megabytes.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import rstr

from .._samples import is_valid, merge_all_of, sample_from_schema, schema_view, validator_for
from ..errors import (
    RequestProblem,
    SandboxConflict,
    SandboxError,
    SandboxNotFound,
    SandboxRequestError,
    SandboxRequestInvalid,
    SandboxSetupError,
)
from ..openapi import OpenAPIDocument, Operation, load_openapi
from ..specs import with_defs
from ._listing import filter_key, filter_records, paging
from ._model import Binding, Resource, _types, build_model, norm, properties, root_defs
from ._requests import CheckedRequest, IncomingRequest, check_request, check_security, coerce
from ._routes import RouteTable, server_path
from ._seed import read_seed, resolve_seed_key
from ._shaping import conform, envelope, strip_flagged
from ._store import Entry, RecordStore, Scope

ADMIN_PREFIX = "/__sandbox"
_VIRTUAL_PAGE = 2
_LISTINGS_KEPT = 16  # listings kept between changes (a few list requests with different filters)
_STAMP_CREATED = ("created", "datecreated", "createdat", "createdon", "createddate", "creationdate", "inserted")
_STAMP_UPDATED = ("updated", "modified", "lastmodified", "datemodified", "dateupdated")
_UUID_NAMESPACE = uuid.UUID("6f1c1f5e-56a3-4d1c-9a51-7c3c3e0b5a10")


@dataclass
class Reply:
    """A response: status, JSON-able body (None for none), extra headers, and the media type when not JSON."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str | None = None


def _error_reply(error: SandboxRequestError) -> Reply:
    headers: dict[str, str] = {}
    if error.http_status == 405:
        headers["Allow"] = ", ".join(getattr(error, "allowed", []))
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="sandbox"'
    body = {"error": {"code": error.code, "status": error.http_status, "message": error.reason,
                      "problems": [p.to_json() for p in error.problems]}}
    return Reply(error.http_status, body, headers)


class Sandbox:
    """A stateful fake of the API an OpenAPI document describes.

    ``document`` is an :class:`OpenAPIDocument` or anything ``load_openapi``
    reads; ``seed`` a mapping (or a YAML/JSON file) of collection -> records;
    ``clock`` returns the time stamped into created/updated fields (default:
    a deterministic clock from 2024-01-01T00:00:00Z, one second per reading).

    Raises:
        OpenAPIImportError: the document cannot be loaded (e.g. references to files that are not there).
        SandboxSetupError: the seed does not fit the document.
    """

    def __init__(
        self,
        document: OpenAPIDocument | str | Path,
        *,
        seed: dict | str | Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.document = document if isinstance(document, OpenAPIDocument) else load_openapi(document, keep_refs=True)
        self.defs = self.document.schemas
        self.base_path = server_path(self.document.servers)
        self.routes = RouteTable(self.document.operations, self.document.servers)
        self.resources, self.bindings = build_model(self.document)
        self.store = RecordStore(clock)
        self.namespace = f"{self.document.title}:{self.document.version}"
        self._views: dict[int, Any] = {}
        self._listings: dict[tuple, list[dict]] = {}
        self._listings_version = -1
        self._requirements: list[dict[str, list[str]]] = []
        for requirement in [*self.document.security, *(r for o in self.document.operations for r in o.security)]:
            if requirement and requirement not in self._requirements:
                self._requirements.append(requirement)
        self.load_seed(seed)

    # -- public ------------------------------------------------------------

    @property
    def warnings(self) -> list:
        """Problems found in the document while loading it (each with a JSON pointer)."""
        return list(self.document.warnings)

    def load_seed(self, seed: dict | str | Path | None) -> None:
        """Replace the seed with ``seed`` and reset every collection to it.

        Raises:
            SandboxSetupError: a key names no collection, or a record does not fit the record schema.
        """
        data = read_seed(seed)
        prepared: dict[str, list[Entry]] = {}
        staging = RecordStore(self.store.clock)
        for key, records in data.items():
            resource, scope = resolve_seed_key(str(key), self.resources, self.base_path)
            if isinstance(records, dict):
                records = [records]
            for index, record in enumerate(records):
                pointer = "/" + str(key).replace("~", "~0").replace("/", "~1") + f"/{index}"
                entry = self._seed_entry(resource, scope, record, pointer, staging)
                staging.put(resource.key, entry.scope, entry.key, entry.data)
                prepared.setdefault(resource.key, []).append(entry)
        self.store.set_seed(prepared)

    def reset(self) -> None:
        """Back to the seed: records, id counters and the default clock."""
        self.store.reset()

    def state(self) -> dict[str, list[dict]]:
        """Every stored record by collection path (path parameters of nested collections filled in)."""
        out: dict[str, list[dict]] = {r.key: [] for r in self.resources if not r.virtual}
        for resource_key, entries in self.store.snapshot().items():
            for entry in entries:
                path = resource_key
                for name, value in entry.scope:
                    path = path.replace("{" + name + "}", value)
                out.setdefault(path, []).append(entry.data)
        return out

    def describe(self) -> dict[str, Any]:
        """The sandbox's reading of the document: base path, resources and each operation's role."""
        return {
            "base_path": self.base_path,
            "resources": [r.describe() for r in self.resources],
            "operations": [
                {"method": method, "path": template, "operation_id": b.operation.operation_id, "role": b.role.value,
                 "collection": b.resource.key if b.resource else None, "status": b.status}
                for (method, template), b in sorted(self.bindings.items(), key=lambda kv: (kv[0][1], kv[0][0]))
            ],
        }

    def change(self, collection: str, record: dict) -> dict:
        """Create or change one record of ``collection`` (a collection path, as in a seed) the way the
        app would when one of its users edits it: a record whose key field names a stored (or, for a
        virtual collection, synthesised) record is merged into it, any other is created; its
        updated stamps move either way. For read-only lists (Cin7's ``/saleList``) that no API call
        can change, so a poller has something new to find. Returns the stored record.

        Raises:
            SandboxSetupError: no such collection, or the record does not fit its schema.
        """
        resource, scope = resolve_seed_key(collection, self.resources, self.base_path)
        if resource.singleton:
            raise SandboxSetupError("change", "/collection", f"{collection} is a single object, not a collection")
        if not isinstance(record, dict):
            raise SandboxSetupError("change", "/record", "a record is a JSON object")
        # The fields given must fit (required ones aside: a change names only what changes).
        errors = sorted((e for e in validator_for(self._view(resource.item_schema)).iter_errors(record)
                         if e.validator != "required"), key=lambda e: list(e.absolute_path))
        if errors:
            at = "".join("/" + str(p) for p in errors[0].absolute_path)
            raise SandboxSetupError("change", "/record" + at, errors[0].message)
        with self.store.lock:
            key_field = resource.key_field
            key = str(record[key_field]) if key_field and record.get(key_field) not in (None, "") else None
            current = self._fetch(resource, scope, key) if key is not None else None
            if current is not None:
                changes = {k: v for k, v in record.items() if k != key_field}
                return self._updated(resource, scope, key, current, changes)
            id_field = resource.id_field
            if resource.virtual and id_field and record.get(id_field) in (None, ""):
                # Past the synthesised records' numbers: a new record must not replace one of them.
                number = self.store.next_number(resource.key)
                while number <= _VIRTUAL_PAGE or self.store.is_taken(resource.key, str(self._id_value(resource, number))):
                    number = self.store.next_number(resource.key)
                record = {**record, id_field: self._id_value(resource, number)}
            request = IncomingRequest(method="POST", path=f"{ADMIN_PREFIX}/change", query=[], headers={},
                                      cookies={}, body=b"")
            created, new_key = self._new_record(resource, scope, record, request)
            self.store.put(resource.key, scope, new_key, created)
            return created

    def handle(self, request: IncomingRequest) -> Reply:
        """Answer one request (never raises for a bad request: errors become 4xx replies)."""
        try:
            _, operation, _ = self.routes.match(request.method, request.path)
            check_security(operation, self.document.security_schemes, request, self._requirements)
            operation, checked, raw_params = self._first_fitting(self.routes.alternatives(request.method, request.path),
                                                                 request)
            binding = self.bindings[(operation.method.upper(), operation.path.rstrip("/") or "/")]
            for parent, names in binding.parents:
                self._require_parent(parent, names, raw_params, request)
            with self.store.lock:
                return getattr(self, "_" + binding.role.value)(binding, checked, raw_params, request)
        except SandboxRequestError as error:
            return _error_reply(error)
        except Exception as error:  # noqa: BLE001 - a fake API answers 500 with the reason instead of dropping the connection
            body = {"error": {"code": "sandbox_internal_error", "status": 500,
                              "message": f"{type(error).__name__}: {error}", "problems": []}}
            return Reply(500, body)

    def _first_fitting(self, candidates: list[tuple[Operation, dict[str, str]]],
                       request: IncomingRequest) -> tuple[Operation, CheckedRequest, dict[str, str]]:
        """The first operation whose parameters and body the request fits, the checked request and its path parameters.

        Raises the first operation's refusal when none fits.
        """
        refusal: SandboxRequestError | None = None
        for operation, raw in candidates:
            try:
                return operation, check_request(operation, raw, request, self.defs), raw
            except SandboxRequestInvalid as error:
                refusal = refusal or error
        assert refusal is not None
        raise refusal

    # -- roles -------------------------------------------------------------

    def _list(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource = b.resource
        assert resource is not None
        scope = self._scope(resource, raw)
        records = self._listing(b, resource, scope, c)
        offset, limit, page, has_cursor = paging(b.operation, c, req, self.defs)
        window = records[offset: offset + limit] if limit else records[offset:]
        more = limit is not None and offset + limit < len(records)
        next_cursor = str(offset + limit) if more and (has_cursor or b.list_shape and b.list_shape.cursor_path) else None
        if more and next_cursor is None and b.list_shape and b.list_shape.has_more_prop:
            next_cursor = str(offset + limit)
        return self._records_reply(b, window, total=len(records), page=page, limit=limit or len(records),
                                   next_cursor=next_cursor if more else None, seed=req.path)

    def _create(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource = b.resource
        assert resource is not None
        if not isinstance(c.body, (dict, type(None))):
            return self._action(b, c, raw, req)
        scope = self._scope(resource, raw)
        body = self._incoming(b, resource, c.body)
        record, key = self._new_record(resource, scope, body, req)
        self.store.put(resource.key, scope, key, record)
        return self._records_reply(b, [record], total=1, page=1, limit=1, next_cursor=None, seed=req.path)

    def _get(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource, scope, key = self._item_address(b, raw)
        record = self._fetch_or_404(resource, scope, key, req)
        return self._records_reply(b, [record], total=1, page=1, limit=1, next_cursor=None, seed=req.path)

    def _replace(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource, scope, key = self._item_address(b, raw)
        current = self._fetch_or_404(resource, scope, key, req)
        body = self._incoming(b, resource, c.body)
        kept = self._server_fields(resource, current)
        record = self._finish(resource, scope, {**body, **kept}, created=False, seed=f"{resource.key}|{key}")
        self.store.put(resource.key, scope, key, record)
        return self._records_reply(b, [record], total=1, page=1, limit=1, next_cursor=None, seed=req.path)

    def _merge(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource, scope, key = self._item_address(b, raw)
        current = self._fetch(resource, scope, key)
        if current is None:
            if b.operation.method.upper() == "POST" and resource.virtual and not self.store.buried(resource.key, scope, key):
                current = {}
            else:
                raise SandboxNotFound(req.method, req.path, f"no record with {resource.key_field or 'key'} {key!r}")
        body = self._incoming(b, resource, c.body)
        if not body and c.query:
            # form-style updates in the query (swagger-petstore's POST /pet/{petId}?name=..&status=..)
            fields = {norm(n): n for n in properties(resource.item_schema, self.defs)}
            body = {fields[norm(k)]: v for k, v in c.query.items() if norm(k) in fields}
        record = self._updated(resource, scope, key, current, body)
        return self._records_reply(b, [record], total=1, page=1, limit=1, next_cursor=None, seed=req.path)

    def _update_by_body(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource = b.resource
        assert resource is not None and resource.key_field is not None
        scope = self._scope(resource, raw)
        body = c.body if isinstance(c.body, dict) else {}
        field_name = next((n for n in body if norm(n) == norm(resource.key_field)), None)
        if field_name is None or body[field_name] in (None, ""):
            raise SandboxRequestInvalid(req.method, req.path, "the record to update is not named",
                                        [RequestProblem("body", f"'{resource.key_field}' is required to name the record",
                                                        pointer="/" + resource.key_field)])
        key = str(body[field_name])
        current = self._fetch_or_404(resource, scope, key, req)
        changes = self._incoming(b, resource, body)
        changes.pop(field_name, None)
        record = self._updated(resource, scope, key, current, changes)
        return self._records_reply(b, [record], total=1, page=1, limit=1, next_cursor=None, seed=req.path)

    def _delete(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource, scope, key = self._item_address(b, raw)
        record = self._fetch_or_404(resource, scope, key, req)
        self.store.delete(resource.key, scope, key)
        if resource.virtual:
            self.store.bury(resource.key, scope, key)
        success = self._success_schema(b) or {}
        gone = {**record, "deleted": True} if "deleted" in properties(success, root_defs(success)) else record
        return self._records_reply(b, [gone], total=1, page=1, limit=1, next_cursor=None, seed=req.path)

    def _singleton_get(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource = b.resource
        assert resource is not None
        record = self._fetch_or_404(resource, self._scope(resource, raw), "", req)
        return self._value_reply(b, record, seed=req.path)

    def _singleton_update(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource = b.resource
        assert resource is not None
        scope = self._scope(resource, raw)
        current = self._fetch(resource, scope, "") or {}
        body = self._incoming(b, resource, c.body)
        record = self._finish(resource, scope, merge_patch(current, body), created=False, seed=f"{resource.key}|{scope}")
        self.store.put(resource.key, scope, "", record)
        return self._value_reply(b, record, seed=req.path)

    def _singleton_delete(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        resource = b.resource
        assert resource is not None
        scope = self._scope(resource, raw)
        record = self._fetch_or_404(resource, scope, "", req)
        self.store.delete(resource.key, scope, "")
        self.store.bury(resource.key, scope, "")
        return self._value_reply(b, record, seed=req.path)

    def _action(self, b: Binding, c: CheckedRequest, raw: dict, req: IncomingRequest) -> Reply:
        schema = self._success_schema(b)
        if schema is None:
            return Reply(b.status)
        return self._value_reply(b, sample_from_schema(schema, seed=f"{b.operation.method} {b.operation.path}"),
                                 seed=req.path)

    # -- records -----------------------------------------------------------

    def _incoming(self, b: Binding, resource: Resource, body: Any) -> dict:
        """A request body as record fields: readOnly fields dropped, names aligned to the record's."""
        body = body if isinstance(body, dict) else {}
        return self._align(resource, strip_flagged(body, self._request_schema(b.operation), "readOnly", self.defs))

    def _align(self, resource: Resource, body: dict) -> dict:
        """Rename body fields to the record's spelling when they differ only in case and separators.

        Twilio takes ``FriendlyName`` in a form and answers ``friendly_name``; the record keeps one name.
        """
        fields: dict[str, list[str]] = {}
        for name in properties(resource.item_schema, self.defs):
            fields.setdefault(norm(name), []).append(name)
        out = {}
        for name, value in body.items():
            matches = fields.get(norm(name), [])
            out[matches[0] if name not in matches and len(matches) == 1 else name] = value
        return out

    def _scope(self, resource: Resource, raw: dict[str, str]) -> Scope:
        return tuple((name, str(raw[name])) for name in resource.scope_params if name in raw)

    def _item_address(self, b: Binding, raw: dict[str, str]) -> tuple[Resource, Scope, str]:
        resource = b.resource
        assert resource is not None and resource.item_param is not None
        scope = self._scope(resource, raw)
        if b.lookup is None:
            return resource, scope, str(raw[resource.item_param])
        # an alternate key (``/Contacts/{ContactNumber}``): the record whose field holds the value, else (for
        # a virtual resource, where every key has a record) the value as the key
        param, field_name = b.lookup
        value = str(raw[param])
        found = next((e.key for e in self._all(resource, scope) if field_name in e.data
                      and _text(e.data[field_name]) == value), None)
        return resource, scope, found if found is not None else value

    def _listing(self, b: Binding, resource: Resource, scope: Scope, c: CheckedRequest) -> list[dict]:
        """The records a list request selects, before paging; reused page after page until the store changes
        (each page would otherwise scan and filter every record: quadratic in the collection's size)."""
        key = (id(b.operation), resource.key, scope, filter_key(c))
        if self._listings_version != self.store.version:
            self._listings.clear()
            self._listings_version = self.store.version
        records = self._listings.get(key)
        if records is None:
            records = [e.data for e in self._all(resource, scope)]
            records = filter_records(b.operation, resource, c, records, self.defs)
            if len(self._listings) >= _LISTINGS_KEPT:
                self._listings.clear()
            self._listings[key] = records
        return records

    def _all(self, resource: Resource, scope: Scope) -> list[Entry]:
        stored = self.store.entries(resource.key, scope)
        if not resource.virtual:
            return stored
        keys = [e.key for e in stored]
        synthesised = []
        for number in range(1, _VIRTUAL_PAGE + 1):
            key = str(self._id_value(resource, number))
            if key not in keys and not self.store.buried(resource.key, scope, key):
                synthesised.append(Entry(key, scope, self._synthesise(resource, scope, key)))
        return synthesised + stored

    def _fetch(self, resource: Resource, scope: Scope, key: str) -> dict | None:
        entry = self.store.find(resource.key, scope, key)
        if entry is not None:
            return entry.data
        if resource.virtual and not self.store.buried(resource.key, scope, key):
            return self._synthesise(resource, scope, key)
        return None

    def _fetch_or_404(self, resource: Resource, scope: Scope, key: str, req: IncomingRequest) -> dict:
        record = self._fetch(resource, scope, key)
        if record is None:
            what = f"{resource.key_field or 'key'} {key!r}" if key else "record"
            raise SandboxNotFound(req.method, req.path, f"no {resource.name} with {what}")
        return record

    def _require_parent(self, parent: Resource, names: dict[str, str], raw: dict[str, str], req: IncomingRequest) -> None:
        """404 unless the parent record this path names exists (``names``: the parent's parameters as named here)."""
        here = names.get(parent.item_param or "")
        if here is None or here not in raw:
            return
        scope = tuple((name, str(raw[names[name]])) for name in parent.scope_params if names.get(name) in raw)
        self._fetch_or_404(parent, scope, str(raw[here]), req)

    def _synthesise(self, resource: Resource, scope: Scope, key: str) -> dict:
        schema = self._view(resource.item_schema)
        record = sample_from_schema(schema, seed=f"{self.namespace}|{resource.key}|{scope}|{key}")
        if not isinstance(record, dict):
            record = {}
        if key and resource.key_field:
            record[resource.key_field] = self._typed(resource, resource.key_field, key)
        self._fill_scope(resource, scope, record, override=True)
        return conform(record, schema, seed=f"{resource.key}|{key}")

    def _new_record(self, resource: Resource, scope: Scope, body: dict, req: IncomingRequest) -> tuple[dict, str]:
        record = copy.deepcopy(body)
        key_field, id_field = resource.key_field, resource.id_field
        key: str | None = None
        if key_field and record.get(key_field) not in (None, ""):
            key = str(record[key_field])
            if self.store.find(resource.key, scope, key) is not None:
                raise SandboxConflict(req.method, req.path, f"a {resource.name} with {key_field} {key!r} already exists",
                                      [RequestProblem("body", "already exists", pointer="/" + key_field)])
        if id_field and record.get(id_field) in (None, ""):
            number = self.store.next_number(resource.key)
            value = self._id_value(resource, number)
            while self.store.is_taken(resource.key, str(value)):
                number = self.store.next_number(resource.key)
                value = self._id_value(resource, number)
            record[id_field] = value
        if key is None:
            key = str(record[key_field]) if key_field and key_field in record else str(self.store.next_number(resource.key))
        self._fill_scope(resource, scope, record)
        return self._finish(resource, scope, record, created=True, seed=f"{resource.key}|{key}"), key

    def _updated(self, resource: Resource, scope: Scope, key: str, current: dict, changes: dict) -> dict:
        kept = self._server_fields(resource, current)
        record = self._finish(resource, scope, {**merge_patch(current, changes), **kept}, created=False,
                              seed=f"{resource.key}|{key}")
        self.store.put(resource.key, scope, key, record)
        return record

    def _server_fields(self, resource: Resource, current: dict) -> dict:
        """Fields a client cannot change: the id and key, and every readOnly field."""
        names = {resource.id_field, resource.key_field}
        names |= {n for n, s in properties(resource.item_schema, self.defs).items()
                  if isinstance(s, dict) and merge_all_of(s, self.defs).get("readOnly")}
        return {n: current[n] for n in names if n and n in current}

    def _finish(self, resource: Resource, scope: Scope, record: dict, *, created: bool, seed: str) -> dict:
        now = None
        for name, sub in properties(resource.item_schema, self.defs).items():
            merged = merge_all_of(sub, self.defs) if isinstance(sub, dict) else {}
            if merged.get("format") != "date-time":
                continue
            label = norm(name)
            stamp_created = created and any(label.startswith(p) or label.endswith(p) for p in _STAMP_CREATED)
            stamp_updated = any(p in label for p in _STAMP_UPDATED)
            if (stamp_created and name not in record) or stamp_updated:
                now = now or self.store.now()
                record[name] = now
        return conform(record, self._view(resource.item_schema), seed=seed)

    def _fill_scope(self, resource: Resource, scope: Scope, record: dict, *, override: bool = False) -> None:
        fields = {norm(n): n for n in properties(resource.item_schema, self.defs)}
        for name, value in scope:
            target = fields.get(norm(name))
            if target and (override or target not in record):
                record[target] = self._typed(resource, target, value)

    def _typed(self, resource: Resource, field_name: str, text: str) -> Any:
        schema = properties(resource.item_schema, self.defs).get(field_name, {})
        value = coerce([text], schema, self.defs)
        return value if is_valid(value, with_defs(schema, self.defs)) or not isinstance(value, str) else text

    def _id_value(self, resource: Resource, number: int) -> Any:
        schema = merge_all_of(properties(resource.item_schema, self.defs).get(resource.id_field or "", {}) or {}, self.defs)
        kinds = _types(schema)
        if not (schema.get("format") or schema.get("pattern") or "integer" in kinds):
            # the path parameter may say more about ids than the record does (Resend: uuid in the path only)
            param = merge_all_of(resource.item_param_schema or {}, self.defs)
            if param.get("format") or param.get("pattern") or "integer" in _types(param):
                schema, kinds = param, _types(param)
        seed = f"{self.namespace}:{resource.key}:{number}"
        if "integer" in kinds or ("number" in kinds and "string" not in kinds):
            return number
        if schema.get("format") == "uuid":
            return str(uuid.uuid5(_UUID_NAMESPACE, seed))
        if schema.get("format") == "date":
            return (date(2024, 1, 1) + timedelta(days=number - 1)).isoformat()
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                candidate = rstr.Rstr(random.Random(seed)).xeger(pattern)
                if is_valid(candidate, with_defs(schema, self.defs)):
                    return candidate
            except Exception:  # noqa: BLE001 - an unusual pattern falls back to a counter
                pass
        return str(number)

    # -- replies -----------------------------------------------------------

    def _view(self, schema: Any) -> Any:
        """The response view of a schema of the document, standalone (with the shared schemas it reaches)."""
        key = id(schema)
        if key not in self._views:
            self._views[key] = (schema, schema_view(with_defs(schema, self.defs), for_request=False))
        return self._views[key][1]

    def _request_schema(self, operation: Operation) -> dict:
        body = operation.request_body
        return body.schema if body is not None and isinstance(body.schema, dict) else {}

    def _success_schema(self, b: Binding) -> Any:
        if b.success is None or not isinstance(b.success.schema, dict) or b.status == 204:
            return None
        return self._view(b.success.schema)

    def _records_reply(self, b: Binding, records: list[dict], *, total: int, page: int, limit: int,
                       next_cursor: str | None, seed: str) -> Reply:
        schema = self._success_schema(b)
        if schema is None:
            return Reply(b.status)
        if b.list_shape is not None:
            body = envelope(records, b.list_shape, schema, seed=seed, total=total, page=page, limit=limit,
                            next_cursor=next_cursor)
            return self._value_reply(b, body, seed=seed)
        record = records[0] if records else {}
        if b.record_prop and b.resource is not None and b.resource.enveloped:
            record = {b.record_prop: record}
        elif b.record_prop:
            # an API that answers bare records elsewhere (HubSpot's GET) but documents an envelope here: the
            # record fills the envelope and stays at the top level, where clients of the real API read it
            record = {**record, b.record_prop: record}
        return self._value_reply(b, record, seed=seed)

    def _value_reply(self, b: Binding, value: Any, *, seed: str) -> Reply:
        schema = self._success_schema(b)
        if schema is None:
            return Reply(b.status)
        body = conform(value, schema, seed=seed)
        if not is_valid(body, schema):
            body = sample_from_schema(schema, seed=seed)
        media = b.success.content_type if b.success is not None else None
        if media and "json" not in media.lower():
            return Reply(b.status, body if isinstance(body, str) else str(body), media_type=media)
        return Reply(b.status, body)

    def _seed_entry(self, resource: Resource, scope: Scope, record: dict, pointer: str, staging: RecordStore) -> Entry:
        schema = self._view(resource.item_schema)
        if resource.singleton:
            data = copy.deepcopy(record)
            key = ""
        else:
            data = copy.deepcopy(record)
            if resource.id_field and data.get(resource.id_field) in (None, ""):
                number = staging.next_number(resource.key)
                while staging.is_taken(resource.key, str(self._id_value(resource, number))):
                    number = staging.next_number(resource.key)
                data[resource.id_field] = self._id_value(resource, number)
            self._fill_scope(resource, scope, data)
            key_field = resource.key_field
            key = str(data[key_field]) if key_field and key_field in data else str(staging.next_number(resource.key))
        defs = root_defs(schema)
        for name in (merge_all_of(schema, defs).get("required", []) if isinstance(schema, dict) else []):
            if name not in data:
                data[name] = sample_from_schema(with_defs(properties(schema, defs).get(name, {}), defs),
                                                seed=f"{pointer}/{name}", required_only=True)
        errors = sorted(validator_for(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            error = errors[0]
            at = "".join("/" + str(p) for p in error.absolute_path)
            raise SandboxSetupError("seed", pointer + at, f"record does not fit {resource.key}: {error.message}")
        return Entry(key, scope, data)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


__all__ = ["ADMIN_PREFIX", "Reply", "Sandbox", "SandboxError", "merge_patch"]
