"""Every document Prism serves gets a working sandbox: a create/list/get/update/delete cycle where the
document has one, and every operation answered with a response valid against its documented schema."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from support.sandbox import SPECS_DIR, load_spec, running_sandbox

from engine.errors import OpenAPIImportError
from engine.openapi import Operation
from engine.samples import sample_from_schema, schema_view
from engine.sandbox import Binding, Role, Sandbox, SandboxServer

from engine._samples import validator_for

SERVED = sorted(
    p.name for p in SPECS_DIR.iterdir()
    if p.suffix in (".yaml", ".yml", ".json")
    and p.name not in ("oai-callback-example-v3.0.yaml", "oai-petstore-separate-extref-v2.json")
)


def credentials(operation: Operation, schemes: dict[str, dict]) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters satisfying the operation's first definable security requirement."""
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    for requirement in operation.security:
        if not all(name in schemes for name in requirement):
            continue
        for name in requirement:
            scheme = schemes[name]
            if scheme.get("type") == "apiKey":
                target = headers if scheme.get("in") == "header" else params
                target[scheme["name"]] = "test-key"
            elif scheme.get("type") == "http" and str(scheme.get("scheme")).lower() == "basic":
                headers["Authorization"] = "Basic dXNlcjpwYXNz"
            else:
                headers["Authorization"] = "Bearer test-token"
        break
    return headers, params


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(as_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def path_sample(operation: Operation, name: str) -> str:
    schema = next((p.schema for p in operation.parameters if p.in_ == "path" and p.name == name), {})
    return as_text(sample_from_schema(schema, seed=name, for_request=True))


class Caller:
    """Builds valid requests for an operation from its schemas and checks the answers against the document."""

    def __init__(self, server: SandboxServer, name: str):
        self.server = server
        self.name = name
        self.sandbox: Sandbox = server.sandbox
        self.client = httpx.Client(base_url=server.origin, timeout=10)

    def url(self, operation: Operation, path_values: dict[str, str]) -> str:
        path = operation.path
        for parameter in operation.parameters:
            if parameter.in_ == "path":
                value = path_values.get(parameter.name)
                if value is None:
                    value = as_text(sample_from_schema(parameter.schema, seed=parameter.name, for_request=True))
                path = path.replace("{" + parameter.name + "}", value)
        servers = operation.servers or self.sandbox.document.servers
        from engine.sandbox._routes import server_path

        return server_path(servers) + path

    def call(self, binding: Binding, path_values: dict[str, str], body: Any = None, query: dict | None = None) -> httpx.Response:
        operation = binding.operation
        headers, params = credentials(operation, self.sandbox.document.security_schemes)
        for parameter in operation.parameters:
            if not parameter.required or parameter.in_ == "path":
                continue
            value = as_text(sample_from_schema(parameter.schema, seed=parameter.name, for_request=True))
            (headers if parameter.in_ == "header" else params)[parameter.name] = value
        params.update(query or {})
        kwargs: dict[str, Any] = {"headers": headers, "params": params}
        spec = operation.request_body
        if spec is not None and (spec.required or body is not None):
            if body is None:
                body = sample_from_schema(spec.schema, seed=f"{self.name}:{operation.path}", for_request=True)
            if "form" in spec.content_type:
                kwargs["data"] = {k: as_text(v) for k, v in body.items()}
            elif "json" in spec.content_type:
                kwargs["json"] = body
            else:
                kwargs["content"] = b"opaque"
                headers["Content-Type"] = spec.content_type
        return self.client.request(operation.method, self.url(operation, path_values), **kwargs)

    def check(self, binding: Binding, response: httpx.Response, expected: int | None = None) -> Any:
        assert response.status_code == (expected or binding.status), (
            f"{binding.operation.method} {binding.operation.path}: {response.status_code} {response.text[:500]}"
        )
        if binding.success is None or binding.success.schema is None or response.status_code == 204:
            return None
        assert response.content, f"{binding.operation.method} {binding.operation.path}: empty body"
        body = response.json() if "json" in (binding.success.content_type or "application/json") else response.text
        schema = schema_view(binding.success.schema, for_request=False)
        errors = list(validator_for(schema).iter_errors(body))
        assert not errors, f"{binding.operation.method} {binding.operation.path}: {errors[0].message} in {body!r:.300}"
        return body


def _bindings(sandbox: Sandbox, resource_key: str) -> dict[Role, Binding]:
    found: dict[Role, Binding] = {}
    for binding in sandbox.bindings.values():
        if binding.resource is not None and binding.resource.key == resource_key:
            found.setdefault(binding.role, binding)
    return found


def _stored_keys(caller: Caller, resource_key: str, key_field: str | None) -> list[str]:
    state = caller.client.get("/__sandbox/state").json()["collections"]
    records = [r for path, rs in state.items() if _same_collection(path, resource_key) for r in rs]
    return [str(r.get(key_field)) for r in records if key_field and key_field in r]


def _same_collection(path: str, template: str) -> bool:
    a, b = path.strip("/").split("/"), template.strip("/").split("/")
    return len(a) == len(b) and all(x == y or y.startswith("{") for x, y in zip(a, b))


@pytest.mark.parametrize("name", SERVED)
def test_crud_cycle_and_every_operation(name: str) -> None:
    document = load_spec(name)
    with running_sandbox(document) as server:
        caller = Caller(server, name)
        cycles = 0
        scope_values: dict[str, str] = {}
        for resource in server.sandbox.resources:
            if resource.virtual or resource.singleton:
                continue
            roles = _bindings(server.sandbox, resource.key)
            create = roles.get(Role.CREATE)
            if create is None:
                continue
            values = {p: path_sample(create.operation, p) for p in resource.scope_params}
            scope_values.update(values)
            # parents must exist: create them first when the collection is nested under a stored item
            body = None
            if create.operation.request_body is not None:
                body = sample_from_schema(create.operation.request_body.schema, seed=f"{name}:create", for_request=True)
            created = caller.check(create, caller.call(create, values, body=body))
            keys = _stored_keys(caller, resource.key, resource.key_field)
            assert keys, f"{name} {resource.key}: nothing stored after create ({created!r:.200})"
            key = keys[-1]
            if resource.item_param:
                values[resource.item_param] = key
            if Role.LIST in roles:
                listed = caller.check(roles[Role.LIST], caller.call(roles[Role.LIST], values))
                assert key in json.dumps(listed), f"{name} {resource.key}: created {key} not listed"
            if Role.GET in roles:
                fetched = caller.check(roles[Role.GET], caller.call(roles[Role.GET], values))
                assert key in json.dumps(fetched)
            for role in (Role.MERGE, Role.REPLACE, Role.UPDATE_BY_BODY):
                if role in roles:
                    update = roles[role]
                    body = None
                    if role is Role.UPDATE_BY_BODY:
                        body = sample_from_schema(update.operation.request_body.schema, seed="update", for_request=True)
                        body[resource.key_field] = server.sandbox._typed(resource, resource.key_field, key)
                    caller.check(update, caller.call(update, values, body=body))
            if Role.DELETE in roles:
                caller.check(roles[Role.DELETE], caller.call(roles[Role.DELETE], values))
                if Role.GET in roles:
                    gone = caller.call(roles[Role.GET], values)
                    assert gone.status_code == 404, gone.text
            cycles += 1
        # every operation answers a valid request with its documented success
        for binding in server.sandbox.bindings.values():
            operation = binding.operation
            response = caller.call(binding, dict(scope_values))
            touches_store = binding.role in (Role.GET, Role.MERGE, Role.REPLACE, Role.DELETE) and not binding.resource.virtual
            if (touches_store or binding.parents or binding.role is Role.UPDATE_BY_BODY) and response.status_code == 404:
                continue  # a sampled id that no record has
            if binding.role in (Role.SINGLETON_GET, Role.SINGLETON_DELETE) and response.status_code == 404:
                continue  # deleted earlier in this sweep
            if binding.role is Role.CREATE and response.status_code == 409:
                continue  # the sampled key was created in the cycle above
            caller.check(binding, response)
        expected_cycles = {"cin7-core-v2-subset.yaml": 2, "hubspot-crm-contacts-v3.json": 1, "oai-petstore-v3.0.yaml": 1,
                           "swagger-petstore-v3.yaml": 3, "google-tasks-v1.yaml": 2, "postmark-account-v0.9-swagger.yaml": 3}
        if name in expected_cycles:
            assert cycles == expected_cycles[name]


def test_callback_example_is_served_with_its_warning() -> None:
    document = load_spec("oai-callback-example-v3.0.yaml")
    assert any("$ref" in str(w) or "ref" in str(w).lower() for w in document.warnings)
    with running_sandbox(document) as server:
        assert server.sandbox.warnings == document.warnings
        caller = Caller(server, "callback")
        binding = next(iter(server.sandbox.bindings.values()))
        response = caller.call(binding, {})
        caller.check(binding, response)


def test_document_with_missing_external_files_is_refused() -> None:
    with pytest.raises(OpenAPIImportError) as caught:
        Sandbox(SPECS_DIR / "oai-petstore-separate-extref-v2.json")
    assert "parameters.json" in str(caught.value) or "not there" in str(caught.value) or "file" in str(caught.value)
