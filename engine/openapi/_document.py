"""Reading an OpenAPI 2.0 / 3.0 / 3.1 document into one version-neutral model.

:func:`load_openapi` reads the document (path, URL, text, bytes or a parsed
mapping), refuses what cannot be imported safely (not an OpenAPI document,
an unsupported version, no paths, references to files that are not there),
runs openapi-spec-validator and keeps each of its findings as a warning with
a JSON pointer, inlines every ``$ref`` (see :mod:`._refs`; with ``keep_refs``
schema references stay references into :attr:`OpenAPIDocument.schemas`) and
turns every schema into draft 2020-12 JSON Schema (see :mod:`._schemas`).

Swagger 2.0 is normalised into the 3.x shape here (host + basePath + schemes
become servers; ``body`` and ``formData`` parameters become a request body;
``produces``/``consumes`` pick content types; ``securityDefinitions`` become
3.x security schemes), so nothing downstream looks at the version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ..errors import OpenAPIImportError, Problem
from ..http import EgressPolicy
from ..http import Resolver as HostResolver
from ._refs import Resolver, join, jsonable
from ._source import read_source
from ._schemas import checked
from ._validate import validation_warnings

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM_LOCATIONS = ("path", "query", "header", "cookie")
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_JSON = "application/json"


@dataclass(frozen=True)
class Parameter:
    """One path, query, header or cookie parameter; ``schema`` is draft 2020-12 JSON Schema."""

    name: str
    in_: str
    required: bool
    schema: dict
    description: str | None = None


@dataclass(frozen=True)
class RequestBody:
    """The body an operation takes, in its preferred content type (JSON, then form, then multipart, else the first)."""

    content_type: str
    schema: dict
    required: bool
    content_types: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Response:
    """One declared response; ``status`` is always text ("200", "2XX", "default")."""

    status: str
    description: str | None
    content_type: str | None
    schema: dict | None
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One operation (or webhook, or callback) with every reference inlined and inherited settings applied.

    ``parameters`` merges path-level and operation-level ones; ``security`` and
    ``servers`` are the effective ones (the operation's, else the path's, else
    the document's); ``pointer`` is the operation's JSON pointer in the document.
    ``callbacks`` maps a callback name to the requests the API sends back.
    """

    path: str
    method: str
    operation_id: str | None
    summary: str | None
    description: str | None
    tags: list[str]
    parameters: list[Parameter]
    request_body: RequestBody | None
    responses: dict[str, Response]
    security: list[dict[str, list[str]]]
    servers: list[str]
    pointer: str
    deprecated: bool = False
    callbacks: dict[str, list["Operation"]] = field(default_factory=dict)


@dataclass
class OpenAPIDocument:
    """A loaded OpenAPI document: its operations, webhooks, security and the problems found on the way.

    ``raw`` is the parsed document (keys as text); ``security_schemes`` are in
    the 3.x shape whatever the version; ``servers`` are base URLs with
    variables substituted (absolute where the document names a host).
    ``schemas`` is None when every reference is inlined; loaded with
    ``keep_refs``, it holds each schema the operations refer to (as
    ``{"$ref": "#/$defs/<name>"}``) once, by name, as JSON Schema.
    """

    raw: dict
    openapi_version: str
    title: str
    version: str
    servers: list[str]
    security_schemes: dict[str, dict]
    security: list[dict[str, list[str]]]
    operations: list[Operation]
    webhooks: list[Operation]
    warnings: list[Problem]
    source: str = "<document>"
    description: str | None = None
    schemas: dict[str, dict] | None = None
    _resolver: Resolver | None = field(default=None, repr=False, compare=False)

    def schema(self, pointer: str) -> dict:
        """Return the schema at ``pointer`` (e.g. ``/components/schemas/Pet``), refs inlined, as JSON Schema.

        Raises:
            KeyError: nothing is at ``pointer``.
        """
        assert self._resolver is not None
        problems: list[Problem] = []
        result = checked(self._resolver.resolve_at(pointer), pointer, problems)
        return result if isinstance(result, dict) else {}


def load_openapi(source: str | Path | dict | bytes, *, source_name: str | None = None,
                 egress: EgressPolicy | None = None, resolver: HostResolver | None = None, keep_refs: bool = False) -> OpenAPIDocument:
    """Load an OpenAPI 2.0, 3.0 or 3.1 document.

    ``source`` is a file path, an http(s) URL, YAML or JSON text, bytes, or an
    already-parsed mapping; ``source_name`` names it in errors and warnings.
    A URL is fetched through the SSRF guard with ``egress`` as its allow-list
    (default: none), without following redirects; its host is resolved once, by
    ``resolver`` (default: the system's), and the connection goes to the address vetted.
    ``keep_refs`` keeps references to schemas (see :attr:`OpenAPIDocument.schemas`) instead
    of inlining them: a document that reuses its schemas stays its size.

    Returns the document with its operations; problems that still allow a
    safe import are in ``warnings``, each with a JSON pointer.

    Raises:
        OpenAPIImportError: the source cannot be read or parsed, is not an
            OpenAPI/Swagger document, has an unsupported version, has no paths,
            or has references to other documents that cannot be followed,
            or is nested too deeply; ``EgressDenied`` for a refused URL.
    """
    try:
        return _load(source, source_name, egress, resolver, keep_refs)
    except RecursionError:
        name = source_name or (str(source) if isinstance(source, (str, Path)) and len(str(source)) < 300 else "<document>")
        raise OpenAPIImportError(name, "", "the document is nested too deeply to import") from None


def _load(source: Any, source_name: str | None, egress: EgressPolicy | None,
          resolver: HostResolver | None = None, keep_refs: bool = False) -> OpenAPIDocument:
    data, name, base_dir, base_url = read_source(source, source_name, egress, resolver)
    if not isinstance(data, dict):
        got = type(data).__name__
        raise OpenAPIImportError(name, "", f"not an OpenAPI document: expected a mapping at the top, got {got}")
    raw = jsonable(data)
    version = _version(raw, name)
    if not isinstance(raw.get("paths"), dict) or not raw["paths"]:
        if not (isinstance(raw.get("webhooks"), dict) and raw["webhooks"]):
            raise OpenAPIImportError(name, "/paths", "the document has no paths, so there is nothing to import")
    refs = Resolver(raw, source=name, base_dir=base_dir, version=version, keep_schema_refs=keep_refs)
    refs.check_external()
    warnings = validation_warnings(raw, source_path=_source_path(source, base_dir), cacheable=not refs.has_external)
    builder = _Builder(raw, version, refs, base_url)
    document = builder.build(name)
    if keep_refs:
        document.schemas = builder.shared_schemas()
    document.warnings = _dedupe(warnings + refs.warnings + builder.warnings)
    return document


def _source_path(source: Any, base_dir: Path | None) -> Path | None:
    if base_dir is None:
        return None
    return Path(source).resolve()


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _version(raw: dict, name: str) -> str:
    if "openapi" in raw:
        version = str(raw["openapi"]).strip()
        if not re.match(r"^3\.[012](\.|$)", version):
            raise OpenAPIImportError(
                name, "/openapi", f"unsupported OpenAPI version {version!r} (supported: 2.0, 3.0, 3.1)")
        return version
    if "swagger" in raw:
        version = str(raw["swagger"]).strip()
        if version not in ("2.0", "2"):
            raise OpenAPIImportError(name, "/swagger", f"unsupported Swagger version {version!r} (supported: 2.0)")
        return "2.0"
    raise OpenAPIImportError(
        name, "", "not an OpenAPI document: it has neither an 'openapi' nor a 'swagger' field at the top level"
    )


class _Builder:
    """Builds the version-neutral model from a document whose refs a Resolver inlines."""

    def __init__(self, raw: dict, version: str, resolver: Resolver, base_url: str | None):
        self.raw = raw
        self.version = version
        self.v2 = version.startswith("2")
        self.resolver = resolver
        self.base_url = base_url
        self.warnings: list[Problem] = []

    def build(self, name: str) -> OpenAPIDocument:
        raw = self.raw
        info = raw.get("info") if isinstance(raw.get("info"), dict) else {}
        schemes = self._security_schemes()
        security = self._requirements(raw.get("security"), "/security", schemes) if "security" in raw else []
        servers = self._document_servers()
        operations: list[Operation] = []
        for path, item in (raw.get("paths") or {}).items():
            operations += self._path_item(path, item, join("/paths", path), servers, security, schemes)
        webhooks: list[Operation] = []
        for hook, item in (raw.get("webhooks") or {}).items() if isinstance(raw.get("webhooks"), dict) else ():
            webhooks += self._path_item(hook, item, join("/webhooks", hook), [], security, schemes)
        return OpenAPIDocument(
            raw=raw, openapi_version=self.version, title=str(info.get("title") or ""),
            version=str(info.get("version") or ""), servers=servers, security_schemes=schemes,
            security=security, operations=operations, webhooks=webhooks, warnings=[], source=name,
            description=info.get("description"), _resolver=self.resolver,
        )

    def shared_schemas(self) -> dict[str, dict]:
        """The schemas the operations refer to, by ``$defs`` name, as JSON Schema (sorted by name)."""
        schemas = {name: _as_dict(checked(schema, where, self.warnings))
                   for name, (where, schema) in self.resolver.shared_schemas().items()}
        return dict(sorted(schemas.items()))

    # -- security -----------------------------------------------------------
    def _security_schemes(self) -> dict[str, dict]:
        if self.v2:
            found = self.raw.get("securityDefinitions") or {}
            base = "/securityDefinitions"
        else:
            found = (self.raw.get("components") or {}).get("securitySchemes") or {}
            base = "/components/securitySchemes"
        schemes: dict[str, dict] = {}
        for scheme_name, scheme in found.items() if isinstance(found, dict) else ():
            resolved = self.resolver.resolve(scheme, join(base, scheme_name))
            if isinstance(resolved, dict):
                schemes[scheme_name] = _v2_scheme(resolved) if self.v2 else resolved
        return schemes

    def _requirements(self, value: Any, pointer: str, schemes: dict[str, dict]) -> list[dict[str, list[str]]]:
        if not isinstance(value, list):
            return []
        requirements = []
        for index, requirement in enumerate(value):
            if not isinstance(requirement, dict):
                continue
            for scheme_name in requirement:
                if scheme_name not in schemes:
                    self.warnings.append(Problem(
                        join(pointer, index, scheme_name),
                        f"security requirement names the scheme {scheme_name!r}, which the document does not define",
                    ))
            requirements.append({k: [str(s) for s in (v or [])] for k, v in requirement.items()})
        return requirements

    # -- servers -------------------------------------------------------------
    def _document_servers(self) -> list[str]:
        if self.v2:
            host = self.raw.get("host")
            base_path = str(self.raw.get("basePath") or "")
            if base_path and not base_path.startswith("/"):
                base_path = "/" + base_path
            if not host:
                return [self._absolute(base_path or "/")]
            declared = [s for s in self.raw.get("schemes") or [] if s in ("https", "http")]
            order = sorted(declared, key=lambda s: s != "https") or [
                (self.base_url or "https://").split(":", 1)[0].lower()
            ]
            return [f"{scheme}://{host}{base_path}".rstrip("/") or "/" for scheme in order]
        return self._servers(self.raw.get("servers"), "/servers")

    def _servers(self, value: Any, pointer: str) -> list[str]:
        urls: list[str] = []
        for index, server in enumerate(value if isinstance(value, list) else []):
            if not isinstance(server, dict) or not isinstance(server.get("url"), str):
                continue
            url = server["url"]
            variables = server.get("variables") if isinstance(server.get("variables"), dict) else {}
            for var, spec in variables.items():
                default = spec.get("default") if isinstance(spec, dict) else None
                if default is None:
                    self.warnings.append(
                        Problem(join(pointer, index, "variables", var), "server variable has no default"))
                    continue
                url = url.replace("{" + var + "}", str(default))
            urls.append(self._absolute(url))
        return urls

    def _absolute(self, url: str) -> str:
        # relative server URLs are relative to where the document was fetched from (OpenAPI 3: 4.8.5)
        if self.base_url and not re.match(r"^[a-z][a-z0-9+.-]*://", url, re.IGNORECASE):
            return urljoin(self.base_url, url)
        return url

    # -- operations ----------------------------------------------------------
    def _path_item(self, path: str, item: Any, pointer: str, servers: list[str], security: list,
                   schemes: dict, resolved: bool = False) -> list[Operation]:
        if not resolved:  # a callback's path item was resolved with its operation
            item = self.resolver.resolve(item, pointer)
        if not isinstance(item, dict):
            return []
        path_servers = self._servers(item.get("servers"), join(pointer, "servers")) or servers
        shared = item.get("parameters") if isinstance(item.get("parameters"), list) else []
        operations = []
        for method, op in item.items():  # document order, so actions read as the document does
            if method in METHODS and isinstance(op, dict):
                operations.append(self._operation(path, method, op, join(pointer, method), shared,
                                                  join(pointer, "parameters"), path_servers, security, schemes))
        return operations

    def _operation(self, path: str, method: str, op: dict, pointer: str, shared: list, shared_pointer: str,
                   servers: list[str], security: list, schemes: dict) -> Operation:
        merged: dict[tuple[str, str], tuple[dict, str]] = {}
        for origin, params in ((shared_pointer, shared), (join(pointer, "parameters"), op.get("parameters") or [])):
            for index, param in enumerate(params if isinstance(params, list) else []):
                at = join(origin, index)
                if not isinstance(param, dict) or not param.get("name") or not param.get("in"):
                    if param != {}:  # {} is a dangling $ref, already reported
                        self.warnings.append(Problem(at, "parameter without a name or location is ignored"))
                    continue
                merged[(str(param["name"]), str(param["in"]))] = (param, at)
        parameters: list[Parameter] = []
        body_params: list[tuple[dict, str]] = []
        for (param_name, location), (param, at) in merged.items():
            if location in ("body", "formData") and self.v2:
                body_params.append((param, at))
            elif location in _PARAM_LOCATIONS:
                parameters.append(self._parameter(param_name, location, param, at))
            else:
                self.warnings.append(Problem(join(at, "in"), f"unknown parameter location {location!r}; ignored"))
        if self.v2:
            request_body = self._v2_body(body_params, op)
        else:
            request_body = self._body(op.get("requestBody"), join(pointer, "requestBody"))
        responses = self._responses(op, pointer)
        op_security = (self._requirements(op["security"], join(pointer, "security"), schemes)
                       if "security" in op else security)
        op_servers = self._servers(op.get("servers"), join(pointer, "servers")) or servers
        callbacks: dict[str, list[Operation]] = {}
        for cb_name, cb in (op.get("callbacks") or {}).items() if isinstance(op.get("callbacks"), dict) else ():
            cb_pointer = join(pointer, "callbacks", cb_name)
            for expression, cb_item in (cb.items() if isinstance(cb, dict) else ()):
                callbacks.setdefault(cb_name, []).extend(
                    self._path_item(expression, cb_item, join(cb_pointer, expression), [], [], schemes,
                                    resolved=True))
        tags = [str(t) for t in op.get("tags") or [] if isinstance(t, (str, int))]
        operation_id = op.get("operationId")
        return Operation(
            path=path, method=method.upper(),
            operation_id=str(operation_id) if operation_id not in (None, "") else None,
            summary=_text(op.get("summary")), description=_text(op.get("description")), tags=tags,
            parameters=parameters, request_body=request_body, responses=responses, security=op_security,
            servers=op_servers, pointer=pointer, deprecated=bool(op.get("deprecated")), callbacks=callbacks,
        )

    def _parameter(self, name: str, location: str, param: dict, at: str) -> Parameter:
        required = bool(param.get("required"))
        if location == "path" and not required:
            self.warnings.append(Problem(at, f"path parameter {name!r} is not marked required: true "
                                             "(path parameters always are; treated as required)"))
            required = True
        if self.v2:
            raw_schema = _v2_schema(param)
        elif isinstance(param.get("schema"), dict):
            raw_schema = param["schema"]
        elif isinstance(param.get("content"), dict) and param["content"]:
            media = next(iter(param["content"].values()))
            raw_schema = media.get("schema", {}) if isinstance(media, dict) else {}
        else:
            raw_schema = {}
        schema_at = join(at, "schema")
        schema = checked(raw_schema, schema_at, self.warnings)
        return Parameter(name=name, in_=location, required=required, schema=_as_dict(schema),
                         description=_text(param.get("description")))

    def _body(self, body: Any, pointer: str) -> RequestBody | None:
        if not isinstance(body, dict):
            return None
        content = body.get("content") if isinstance(body.get("content"), dict) else {}
        if not content:
            return None
        content_type = _pick_content_type(list(content))
        media = content[content_type] if isinstance(content[content_type], dict) else {}
        schema = checked(media.get("schema", {}), join(pointer, "content", content_type, "schema"), self.warnings)
        return RequestBody(content_type=content_type, schema=_as_dict(schema), required=bool(body.get("required")),
                           content_types=list(content))

    def _v2_body(self, params: list[tuple[dict, str]], op: dict) -> RequestBody | None:
        consumes = [str(c) for c in (op.get("consumes") or self.raw.get("consumes") or [])]
        body = [(p, at) for p, at in params if p.get("in") == "body"]
        if body:
            param, at = body[0]
            content_type = _pick_content_type(consumes or [_JSON], prefer_form=False)
            schema = checked(param.get("schema", {}), join(at, "schema"), self.warnings)
            return RequestBody(content_type=content_type, schema=_as_dict(schema),
                               required=bool(param.get("required")), content_types=consumes or [_JSON])
        form = [(p, at) for p, at in params if p.get("in") == "formData"]
        if not form:
            return None
        has_file = any(p.get("type") == "file" for p, _ in form)
        content_type = _MULTIPART if has_file or (_MULTIPART in consumes and _FORM not in consumes) else _FORM
        properties, required = {}, []
        for param, at in form:
            properties[str(param["name"])] = _as_dict(checked(_v2_schema(param), at, self.warnings))
            if param.get("required"):
                required.append(str(param["name"]))
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return RequestBody(content_type=content_type, schema=schema, required=bool(required),
                           content_types=consumes or [content_type])

    def _responses(self, op: dict, pointer: str) -> dict[str, Response]:
        declared = op.get("responses")
        if not isinstance(declared, dict) or not declared:
            self.warnings.append(Problem(pointer, "operation declares no responses; its output schema is unknown"))
            return {}
        produces = [str(c) for c in (op.get("produces") or self.raw.get("produces") or [])]
        responses: dict[str, Response] = {}
        for status, response in declared.items():
            at = join(pointer, "responses", status)
            if not isinstance(response, dict):
                continue
            if self.v2:
                responses[status] = self._v2_response(str(status), response, at, produces)
                continue
            content = response.get("content") if isinstance(response.get("content"), dict) else {}
            content_type = _pick_content_type(list(content)) if content else None
            schema = None
            if content_type and isinstance(content[content_type], dict) and "schema" in content[content_type]:
                schema = _as_dict(checked(content[content_type]["schema"],
                                          join(at, "content", content_type, "schema"), self.warnings))
            responses[str(status)] = Response(
                status=str(status), description=_text(response.get("description")), content_type=content_type,
                schema=schema, headers=self._headers(response.get("headers"), join(at, "headers")),
            )
        return responses

    def _v2_response(self, status: str, response: dict, at: str, produces: list[str]) -> Response:
        schema = None
        content_type = None
        if "schema" in response:
            schema = _as_dict(checked(response["schema"], join(at, "schema"), self.warnings))
            content_type = _pick_content_type(produces or [_JSON], prefer_form=False)
        headers = {}
        for header, spec in (response.get("headers") or {}).items():
            if isinstance(spec, dict):
                headers[header] = {"description": spec.get("description"),
                                   "schema": _as_dict(checked(_v2_schema(spec), join(at, "headers", header),
                                                              self.warnings))}
        return Response(status=status, description=_text(response.get("description")), content_type=content_type,
                        schema=schema, headers=headers)

    def _headers(self, value: Any, pointer: str) -> dict:
        headers = {}
        for header, spec in (value.items() if isinstance(value, dict) else ()):
            if isinstance(spec, dict):
                schema = spec.get("schema", {})
                headers[header] = {"description": spec.get("description"), "required": bool(spec.get("required")),
                                   "schema": _as_dict(checked(schema, join(pointer, header, "schema"), self.warnings))}
        return headers


def _pick_content_type(types: list[str], prefer_form: bool = True) -> str:
    """JSON first (``application/json`` or any ``+json``), then url-encoded form, then multipart, else the first."""
    lowered = [t.split(";")[0].strip().lower() for t in types]
    for wanted in (lambda t: t == _JSON, lambda t: t.endswith("+json") or t.endswith("/json"),
                   lambda t: t == _FORM, lambda t: t == _MULTIPART):
        for original, low in zip(types, lowered):
            if wanted(low):
                return original
    return types[0]


def _v2_schema(param: dict) -> dict:
    """The schema of a Swagger 2.0 non-body parameter or header (its type keywords sit on the parameter itself)."""
    keys = ("type", "format", "items", "enum", "default", "minimum", "maximum", "exclusiveMinimum",
            "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems",
            "multipleOf", "x-nullable")
    schema = {k: param[k] for k in keys if k in param}
    if isinstance(schema.get("items"), dict):
        schema["items"] = _v2_schema(schema["items"])
    return schema


def _v2_scheme(scheme: dict) -> dict:
    """A Swagger 2.0 security definition in the 3.x shape."""
    kind = scheme.get("type")
    if kind == "basic":
        return {"type": "http", "scheme": "basic", **_describe(scheme)}
    if kind == "oauth2":
        flow_name = {"implicit": "implicit", "password": "password", "application": "clientCredentials",
                     "accessCode": "authorizationCode"}.get(str(scheme.get("flow")), str(scheme.get("flow")))
        flow = {"scopes": scheme.get("scopes") or {}}
        if scheme.get("authorizationUrl"):
            flow["authorizationUrl"] = scheme["authorizationUrl"]
        if scheme.get("tokenUrl"):
            flow["tokenUrl"] = scheme["tokenUrl"]
        return {"type": "oauth2", "flows": {flow_name: flow}, **_describe(scheme)}
    return dict(scheme)


def _describe(scheme: dict) -> dict:
    return {"description": scheme["description"]} if scheme.get("description") else {}


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _as_dict(schema: dict | bool) -> dict:
    if isinstance(schema, dict):
        return schema
    return {} if schema else {"not": {}}
