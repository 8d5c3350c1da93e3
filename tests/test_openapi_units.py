"""OpenAPI import, piece by piece: refs, schemas, naming, auth, pagination, traps, bad input."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml
from jsonschema import Draft202012Validator

import engine.actions
import engine.errors
import engine.openapi
import engine.samples
from engine.errors import OpenAPIImportError, SpecError
from engine.expressions import evaluate, render
from engine.openapi import import_connector, import_to_file, load_openapi
from engine.specs import load_connector
from support.documents import SPECS_DIR

SPECS = SPECS_DIR


def doc(paths: dict, **extra) -> dict:
    return {"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "servers": [{"url": "https://api.test"}],
            "paths": paths, **extra}


def ok(schema: dict | None = None) -> dict:
    body = {"content": {"application/json": {"schema": schema}}} if schema is not None else {}
    return {"200": {"description": "ok", **body}}


def test_public_surface():
    assert sorted(engine.openapi.__all__) == sorted([
        "ImportResult", "OpenAPIDocument", "Operation", "Parameter", "RequestBody", "Response", "action_name",
        "dump_connector", "import_connector", "import_to_file", "load_openapi", "slug"])
    assert issubclass(OpenAPIImportError, SpecError)
    assert (OpenAPIImportError.code, OpenAPIImportError.http_status) == ("openapi_import_failed", 422)


# -- references ----------------------------------------------------------------

def test_recursive_schema_is_cut_not_looped():
    children = {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}
    node = {"type": "object", "properties": {"name": {"type": "string"}, "children": children}}
    loaded = load_openapi(doc({"/nodes": {"get": {"responses": ok({"$ref": "#/components/schemas/Node"})}}},
                              components={"schemas": {"Node": node}}))
    schema = loaded.operations[0].responses["200"].schema
    cut = schema["properties"]["children"]["items"]
    assert cut["type"] == "object" and "recursive reference to #/components/schemas/Node" in cut["description"]
    assert "$ref" not in json.dumps(schema)
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate({"name": "a", "children": [{"name": "b", "children": []}]})


def test_mutual_recursion_and_shared_refs():
    schemas = {"A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
               "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"},
                                                      "leaf": {"$ref": "#/components/schemas/Leaf"}}},
               "Leaf": {"type": "string"}}
    loaded = load_openapi(doc({"/a": {"get": {"responses": ok({"$ref": "#/components/schemas/A"})}},
                               "/b": {"get": {"responses": ok({"$ref": "#/components/schemas/B"})}}},
                              components={"schemas": schemas}))
    a, b = (op.responses["200"].schema for op in loaded.operations)
    cut = "recursive reference to #/components/schemas/"
    assert a["properties"]["b"]["properties"]["a"]["description"].startswith(cut + "A")
    assert b["properties"]["a"]["properties"]["b"]["description"].startswith(cut + "B")
    assert b["properties"]["leaf"] == {"type": "string"}
    assert loaded.schema("/components/schemas/B")["properties"]["leaf"] == {"type": "string"}
    with pytest.raises(KeyError):
        loaded.schema("/components/schemas/Missing")


def test_dangling_ref_warns_with_pointer_and_becomes_empty_schema():
    loaded = load_openapi(doc({"/x": {"get": {"responses": ok(
        {"type": "object", "properties": {"gone": {"$ref": "#/components/schemas/Gone"}}})}}}))
    assert loaded.operations[0].responses["200"].schema["properties"]["gone"] == {}
    pointers = {w.pointer: w.message for w in loaded.warnings}
    where = "/paths/~1x/get/responses/200/content/application~1json/schema/properties/gone"
    assert "dangling" in pointers[where] and "#/components/schemas/Gone" in pointers[where]


def test_pointer_escapes_and_sibling_keys():
    schemas = {"a/b~c": {"type": "integer", "description": "original"}}
    document = doc({"/x": {"get": {"responses": ok(
        {"$ref": "#/components/schemas/a~1b~0c", "description": "sibling wins"})}}}, components={"schemas": schemas})
    document["openapi"] = "3.1.0"
    loaded = load_openapi(document)
    assert loaded.operations[0].responses["200"].schema == {"type": "integer", "description": "sibling wins"}


def test_external_ref_to_a_file_beside_the_document_is_followed(tmp_path: Path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "pet.yaml").write_text(yaml.safe_dump(
        {"type": "object", "properties": {"tag": {"$ref": "#/definitions/Tag"}},
         "definitions": {"Tag": {"type": "string"}}}))
    main = tmp_path / "api.yaml"
    main.write_text(yaml.safe_dump(doc({"/pets": {"get": {"responses": ok({"$ref": "shared/pet.yaml"})}}})))
    schema = load_openapi(main).operations[0].responses["200"].schema
    assert schema["properties"]["tag"] == {"type": "string"}


def test_external_refs_that_cannot_be_followed_are_refused(tmp_path: Path):
    main = tmp_path / "api.yaml"
    main.write_text(yaml.safe_dump(doc({"/pets": {"get": {"responses": ok({"$ref": "missing.yaml#/Pet"})}}})))
    with pytest.raises(OpenAPIImportError) as caught:
        load_openapi(main)
    assert caught.value.pointer == "/paths/~1pets/get/responses/200/content/application~1json/schema"
    assert "'missing.yaml#/Pet'" in caught.value.reason and "does not exist" in caught.value.reason

    remote = doc({"/pets": {"get": {"responses": ok({"$ref": "https://example.org/pet.json"})}}})
    with pytest.raises(OpenAPIImportError, match="by URL"):
        load_openapi(remote)
    with pytest.raises(OpenAPIImportError, match="not read from a file"):
        load_openapi(doc({"/pets": {"get": {"responses": ok({"$ref": "pet.json"})}}}))


# -- schemas as JSON Schema 2020-12 -------------------------------------------

def test_openapi_30_schema_keywords_become_json_schema():
    schema = {"type": "object", "properties": {
        "maybe": {"type": "string", "nullable": True, "example": "x", "xml": {"name": "m"}},
        "choice": {"type": "string", "enum": ["a", "b"], "nullable": True},
        "composed": {"allOf": [{"type": "object"}], "nullable": True},
        "positive": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        "upload": {"type": "file"},
        "broken": {"type": "string", "minLength": -1}}}
    loaded = load_openapi(doc({"/x": {"get": {"responses": ok(schema)}}}))
    out = loaded.operations[0].responses["200"].schema["properties"]
    assert out["maybe"] == {"type": ["string", "null"], "examples": ["x"]}
    assert out["choice"]["enum"] == ["a", "b", None]
    assert out["composed"] == {"anyOf": [{"allOf": [{"type": "object"}]}, {"type": "null"}]}
    assert out["positive"] == {"type": "number", "exclusiveMinimum": 0}
    assert out["upload"] == {"type": "string", "format": "binary"}
    assert out["broken"] == {"type": "string"}
    assert any(w.pointer.endswith("/properties/broken/minLength") for w in loaded.warnings)
    Draft202012Validator.check_schema(loaded.operations[0].responses["200"].schema)


def test_resend_31_mixture_of_nullable_and_type_arrays():
    loaded = load_openapi(SPECS / "resend-api.yaml")
    for op in loaded.operations:
        for response in op.responses.values():
            if response.schema is not None:
                assert '"nullable"' not in json.dumps(response.schema)
    # RetrievedAttachment mixes 3.0 `nullable: true` (filename) with a 3.1 type array elsewhere
    attachment = next(op for op in loaded.operations
                      if op.path == "/emails/{email_id}/attachments/{attachment_id}" and op.method == "GET")
    assert attachment.responses["200"].schema["properties"]["filename"]["type"] == ["string", "null"]
    assert loaded.schema("/components/schemas/RetrievedAttachment")["properties"]["filename"]["type"] == [
        "string", "null"]


# -- the traps listed in INDEX.md ---------------------------------------------

def test_petstore_integer_response_codes_become_text():
    loaded = load_openapi(SPECS / "oai-petstore-v3.0.yaml")
    assert yaml.safe_load((SPECS / "oai-petstore-v3.0.yaml").read_text())["paths"]["/pets"]["get"]["responses"].get(200)
    assert [list(op.responses) for op in loaded.operations] == [["200", "default"], ["201", "default"],
                                                                ["200", "default"]]
    assert all(isinstance(r.status, str) for op in loaded.operations for r in op.responses.values())
    assert not loaded.warnings


def test_google_xgafv_parameter_and_at_me_path():
    connector = import_connector(SPECS / "google-tasks-v1.yaml").connector
    lists = connector.actions["tasks_tasklists_list"]
    assert lists.path == "/tasks/v1/users/@me/lists" and lists.path_params == {}
    assert lists.query["$.xgafv"] == "{{ input.`$.xgafv` }}"
    assert render(lists.query, {"input": {"$.xgafv": "2", "maxResults": 3}})["$.xgafv"] == "2"
    assert lists.input["properties"]["$.xgafv"]["enum"] == ["1", "2"]
    assert lists.pagination.cursor_param == "pageToken" and lists.pagination.next == "nextPageToken"
    assert connector.actions["tasks_tasks_get"].path_params == {"tasklist": "{{ input.tasklist }}",
                                                                "task": "{{ input.task }}"}


def test_twilio_servers_per_path():
    loaded = load_openapi(SPECS / "twilio-bulkexports-v1.yaml")
    assert all(op.servers == ["https://bulkexports.twilio.com"] for op in loaded.operations)
    connector = import_connector(loaded).connector
    # the per-path servers equal the document's, so no action needs its own base URL
    assert all(a.base_url is None for a in connector.actions.values())


def test_servers_per_path_and_operation_that_differ_become_action_base_urls():
    document = doc({
        "/a": {"servers": [{"url": "https://{region}.other.test/v2", "variables": {"region": {"default": "eu"}}}],
               "get": {"responses": ok()},
               "post": {"servers": [{"url": "https://upload.test"}], "responses": ok()}},
        "/b": {"get": {"responses": ok()}}})
    connector = import_connector(document).connector
    assert connector.base_url == "https://api.test"
    assert connector.actions["list_a"].base_url == "https://eu.other.test/v2"
    assert connector.actions["create_a"].base_url == "https://upload.test"
    assert connector.actions["list_b"].base_url is None


def test_resend_without_operation_ids_gets_unique_derived_names():
    result = import_connector(SPECS / "resend-api.yaml")
    actions = result.connector.actions
    assert len(actions) == 86
    assert {"list_emails", "create_email", "get_email", "update_email", "get_email_attachment", "cancel_email",
            "get_contact_topics", "update_contact_topics"} <= set(actions)
    assert actions["get_email"].path_params == {"email_id": "{{ input.email_id }}"}
    assert actions["list_emails"].pagination.next == "has_more ? data[-1].id"
    page = {"has_more": True, "data": [{"id": "e1"}, {"id": "e2"}]}
    assert evaluate(actions["list_emails"].pagination.next, page) == "e2"
    assert evaluate(actions["list_emails"].pagination.next, {**page, "has_more": False}) is None
    assert len(result.connector.events) == 17


def test_path_like_operation_ids_get_rest_names():
    actions = import_connector(SPECS / "hubspot-crm-contacts-v3.json").connector.actions
    assert set(actions) == {
        "list_contacts", "create_contact", "get_contact", "update_contact", "delete_contact", "search_contacts",
        "merge_contacts", "gdpr_delete_contacts", "batch_archive_contacts", "batch_create_contacts",
        "batch_read_contacts", "batch_update_contacts", "batch_upsert_contacts"}
    assert actions["list_contacts"].title == "get-/crm/v3/objects/contacts"


def test_1password_lists_with_post_and_a_cursor_in_the_body():
    actions = import_connector(SPECS / "1password-events.yaml").connector.actions
    usages = actions["get_item_usages"]
    assert usages.method == "POST" and usages.body == "{{ input.body }}"
    assert usages.pagination.model_dump(exclude_none=True, exclude_defaults=True) == {
        "style": "cursor", "items": "items", "next": "has_more ? cursor", "cursor_param": "cursor",
        "cursor_in": "body"}
    assert evaluate(usages.pagination.next, {"cursor": "c2", "has_more": True, "items": []}) == "c2"
    assert evaluate(usages.pagination.next, {"cursor": "c2", "has_more": False, "items": []}) is None
    assert actions["get_auth_introspect"].pagination is None


def test_postmark_token_header_becomes_api_key_auth():
    result = import_connector(SPECS / "postmark-account-v0.9-swagger.yaml")
    connector = result.connector
    assert [(k.credential, k.in_, k.name) for k in connector.auth.keys] == [
        ("postmark_account_token", "header", "X-Postmark-Account-Token")]
    for action in connector.actions.values():
        assert "X-Postmark-Account-Token" not in action.input["properties"]
        assert "X-Postmark-Account-Token" not in action.headers
    assert [w.pointer for w in result.warnings if "X-Postmark-Account-Token" in w.message] == [
        "/paths/~1domains/get/parameters/0"]
    listing = connector.actions["list_domains"]
    assert listing.pagination.style == "offset" and listing.pagination.size_param == "count"
    create = connector.actions["create_domain"]
    assert create.body_type == "json" and "body" in create.input["properties"]


def test_vonage_form_body_with_credentials_is_kept_and_warned():
    result = import_connector(SPECS / "vonage-sms.yml")
    action = result.connector.actions["send_an_sms"]
    assert action.body_type == "form" and action.path_params == {"format": "{{ input.format }}"}
    body = result.connector.deref(action.input["properties"]["body"])
    assert {"api_key", "api_secret"} <= set(body["properties"])
    assert any("api_key" in w.message and w.pointer == "/paths/~1{format}/post/requestBody"
               for w in result.warnings)


def test_callbacks_and_webhooks_become_webhook_events():
    callbacks = import_connector(SPECS / "oai-callback-example-v3.0.yaml").connector
    event = callbacks.events["create_stream_on_data"]
    assert event.kind == "webhook" and set(callbacks.deref(event.payload)["properties"]) == {"timestamp", "userData"}
    hooks = import_connector(SPECS / "oai-webhook-example-v3.1.yaml").connector
    assert hooks.deref(hooks.events["new_pet"].payload)["required"] == ["id", "name"]


# -- naming, inputs, auth choices ------------------------------------------------

def test_names_inputs_and_collisions():
    document = doc({
        "/items/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": {"operationId": "getItem", "parameters": [
                {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                {"name": "id", "in": "query", "schema": {"type": "string"}},
                {"name": "body", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "session", "in": "cookie", "required": True, "schema": {"type": "string"}}],
                "responses": ok({"type": "object"})},
            "put": {"operationId": "getItem", "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}},
                "responses": ok()}},
        "/2fa": {"post": {"operationId": "2FA.Enable!", "responses": ok()}}})
    result = import_connector(document, connector_id="items")
    actions = result.connector.actions
    assert set(actions) == {"get_item", "get_item_2", "op_2_fa_enable"}
    get = actions["get_item"]
    assert get.title == "getItem"
    assert set(get.input["properties"]) == {"id", "X-Trace", "query_id", "query_body", "session"}
    assert get.input["required"] == ["id", "query_body", "session"]
    assert get.query == {"id": "{{ input.query_id }}", "body": "{{ input.query_body }}"}
    assert get.headers == {"X-Trace": "{{ input.`X-Trace` }}", "Cookie": "session={{ input.session }}"}
    assert get.output == {"type": "object"} and get.input["additionalProperties"] is False
    put = actions["get_item_2"]
    assert put.body_type == "json" and put.input["required"] == ["id", "body"]
    assert put.input["properties"]["body"]["properties"] == {"a": {"type": "string"}}


def _auth_doc(schemes: dict, security: list | None = None) -> dict:
    extra = {"components": {"securitySchemes": schemes}}
    if security is not None:
        extra["security"] = security
    return doc({"/x": {"get": {"responses": ok()}}}, **extra)


def test_auth_choice():
    implicit = {"type": "oauth2", "flows": {"implicit": {"authorizationUrl": "https://auth.test/authorize",
                                                         "scopes": {"read": "r"}}}}
    client = {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}}}
    result = import_connector(_auth_doc({"implicit": implicit}, [{"implicit": ["read"]}]))
    auth = result.connector.auth
    assert (auth.type, auth.flow, auth.authorize_url, auth.scopes) == (
        "oauth2", "authorization_code", "https://auth.test/authorize", ["read"])
    assert any("implicit" in w.message and w.pointer == "/components/securitySchemes/implicit"
               for w in result.warnings)
    # an implicit scheme loses to any other usable scheme; relative token URLs resolve against the server
    auth = import_connector(_auth_doc({"implicit": implicit, "client": client},
                                      [{"implicit": []}, {"client": []}])).connector.auth
    assert (auth.flow, auth.token_url) == ("client_credentials", "https://api.test/oauth/token")
    oidc = import_connector(_auth_doc({"oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://i.test"}}))
    assert oidc.connector.auth.type == "none"
    assert any("openIdConnect" in w.message for w in oidc.warnings)
    both = import_connector(_auth_doc({"a": {"type": "apiKey", "in": "header", "name": "X-A"},
                                       "b": {"type": "apiKey", "in": "query", "name": "b"}}, [{"a": [], "b": []}]))
    assert [(k.credential, k.in_, k.name) for k in both.connector.auth.keys] == [
        ("a", "header", "X-A"), ("b", "query", "b")]
    undefined = import_connector(_auth_doc({"basic": {"type": "http", "scheme": "basic"}},
                                           [{"ghost": []}, {"basic": []}]))
    assert undefined.connector.auth.type == "basic"
    assert [w.pointer for w in undefined.warnings if "ghost" in w.message] == ["/security/0/ghost"]


def test_swagger_2_is_normalised():
    swagger = {
        "swagger": "2.0", "info": {"title": "Old API", "version": "1"}, "host": "old.test", "basePath": "/api",
        "schemes": ["http", "https"], "consumes": ["application/json"],
        "securityDefinitions": {"basic": {"type": "basic"}}, "security": [{"basic": []}],
        "definitions": {"Thing": {"type": "object", "properties": {"n": {"type": "integer", "x-nullable": True}}}},
        "paths": {"/things": {
            "post": {"parameters": [{"in": "body", "name": "thing", "required": True,
                                     "schema": {"$ref": "#/definitions/Thing"}}],
                     "responses": {"201": {"description": "made", "schema": {"$ref": "#/definitions/Thing"}}}},
            "put": {"consumes": ["application/x-www-form-urlencoded"],
                    "parameters": [{"in": "formData", "name": "n", "type": "integer", "required": True},
                                   {"in": "query", "name": "tags", "type": "array", "items": {"type": "string"}}],
                    "responses": {"204": {"description": "done"}}}}}}
    loaded = load_openapi(swagger)
    assert loaded.servers == ["https://old.test/api", "http://old.test/api"]
    post, put = loaded.operations
    assert post.request_body.schema["properties"]["n"] == {"type": ["integer", "null"]}
    assert post.responses["201"].content_type == "application/json"
    assert put.request_body.content_type == "application/x-www-form-urlencoded"
    assert put.request_body.schema == {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert put.parameters[0].schema == {"type": "array", "items": {"type": "string"}}
    connector = import_connector(loaded).connector
    assert connector.id == "old-api" and connector.auth.type == "basic"
    assert connector.actions["replace_things"].body_type == "form"


# -- sources and bad input ---------------------------------------------------------

@pytest.mark.parametrize(("source", "reason"), [
    ("[1, 2, 3]\n", "expected a mapping"),
    ("openapi: [unclosed\n  x: {\n", "not valid YAML or JSON"),
    ('{"openapi": "3.0.0", "info": ', "not valid YAML or JSON"),
    ("title: not an api\nversion: 1\n", "neither an 'openapi' nor a 'swagger' field"),
    ("swagger: '1.2'\npaths: {}\n", "unsupported Swagger version '1.2'"),
    ("openapi: 4.0.0\npaths: {/x: {}}\n", "unsupported OpenAPI version '4.0.0'"),
    ("openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\n", "no paths"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
])
def test_bad_documents_are_refused_clearly(source, reason):
    with pytest.raises(OpenAPIImportError) as caught:
        import_connector(source)
    assert reason in str(caught.value)
    assert caught.value.source == "<document>"


def test_missing_file_is_refused(tmp_path: Path):
    with pytest.raises(OpenAPIImportError, match="file not found") as caught:
        load_openapi(tmp_path / "nope.yaml")
    assert caught.value.source == str(tmp_path / "nope.yaml")


def test_text_bytes_and_dict_sources_agree():
    document = doc({"/x": {"get": {"operationId": "getX", "responses": ok({"type": "string"})}}})
    from_dict = import_connector(document).connector
    assert import_connector(json.dumps(document)).connector == from_dict
    assert import_connector(yaml.safe_dump(document).encode()).connector == from_dict


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server serving tmp_path."""
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_source_and_relative_servers(tmp_path: Path, served: str):
    document = doc({"/x": {"get": {"responses": ok()}}})
    document["servers"] = [{"url": "/v3"}]
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "openapi.yaml").write_text(yaml.safe_dump(document))
    from engine.errors import EgressDenied
    from engine.http import EgressPolicy

    # A URL goes through the SSRF guard: loopback is refused unless allow-listed.
    with pytest.raises(EgressDenied):
        load_openapi(f"{served}/api/openapi.yaml")
    local = EgressPolicy(allow=("127.0.0.1",))
    loaded = load_openapi(f"{served}/api/openapi.yaml", egress=local)
    # relative server URLs are relative to where the document came from
    assert loaded.servers == [f"{served}/v3"]
    assert import_connector(loaded).connector.base_url == f"{served}/v3"
    with pytest.raises(OpenAPIImportError, match="HTTP 404"):
        load_openapi(f"{served}/missing.yaml", egress=local)


def test_hostile_documents_are_refused_in_one_line(tmp_path: Path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    (tmp_path / "bomb.yaml").write_text("openapi: 3.0.0\n" + bomb)
    with pytest.raises(OpenAPIImportError, match="aliases expand"):
        load_openapi(tmp_path / "bomb.yaml")
    deep = {"type": "object"}
    for _ in range(3000):
        deep = {"type": "object", "properties": {"x": deep}}
    document = doc({"/x": {"get": {"responses": ok(deep)}}})
    (tmp_path / "deep.json").write_text(json.dumps(document))
    with pytest.raises(OpenAPIImportError, match="nested too deeply"):
        load_openapi(tmp_path / "deep.json")


def test_relative_server_in_a_file_gets_a_placeholder_host_and_a_warning():
    document = doc({"/x": {"get": {"responses": ok()}}})
    document["servers"] = [{"url": "/v3"}]
    result = import_connector(document)
    assert result.connector.base_url == "https://api.example.com/v3"
    assert any(w.pointer == "/servers" and "placeholder" in w.message for w in result.warnings)


def test_import_to_file_writes_yaml_or_json_and_keeps_the_old_file_on_failure(tmp_path: Path, capsys):
    document = doc({"/x": {"get": {"operationId": "getX", "responses": ok({"type": "string"})}}})
    out = tmp_path / "out" / "t.yaml"
    result = import_to_file(document, out, connector_id="tee")
    assert load_connector(out) == result.connector and result.connector.id == "tee"
    assert "&id" not in out.read_text()  # no YAML anchors
    as_json = tmp_path / "t.json"
    import_to_file(document, as_json)
    assert json.loads(as_json.read_text())["actions"]["get_x"]["method"] == "GET"
    before = out.read_text()
    with pytest.raises(OpenAPIImportError):
        import_to_file("not: [an api\n", out)
    assert out.read_text() == before
    import_to_file(document, None)
    assert "get_x:" in capsys.readouterr().out
    with pytest.raises(OpenAPIImportError, match="must match"):
        import_connector(document, connector_id="Bad Id")


def test_read_only_properties_are_not_required_in_input_nor_write_only_in_output():
    thing = {"type": "object", "required": ["id", "name", "secret"], "properties": {
        "id": {"type": "integer", "readOnly": True}, "name": {"type": "string"},
        "secret": {"type": "string", "writeOnly": True}}}
    document = doc({"/things": {"post": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": thing}}},
        "responses": ok(thing)}}})
    action = import_connector(document).connector.actions["create_thing"]
    assert action.input["properties"]["body"]["required"] == ["name", "secret"]
    assert "id" in action.input["properties"]["body"]["properties"]  # may still be sent
    assert action.output["required"] == ["id", "name"]


def test_cin7_update_keeps_its_required_read_only_id():
    connector = import_connector(SPECS / "cin7-core-v2-subset.yaml").connector
    body = connector.deref(connector.actions["update_customer"].input["properties"]["body"])
    assert body["allOf"][1]["required"] == ["ID"]
    assert connector.deref(body["allOf"][0])["properties"]["ID"]["readOnly"] is True


def test_default_response_and_properties_named_like_data_keys_are_resolved():
    document = doc({"/x": {"get": {"responses": {
        "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
        "default": {"$ref": "#/components/responses/Problem"}}}}})
    document["components"] = {
        "schemas": {"Thing": {"type": "object", "properties": {"default": {"$ref": "#/components/schemas/Flag"}}},
                    "Flag": {"type": "boolean", "default": {"$ref": "not a ref: example data"}}},
        "responses": {"Problem": {"description": "bad", "content": {"application/json": {"schema": {"type": "object"}}}}}}
    op = load_openapi(document).operations[0]
    assert op.responses["default"].schema == {"type": "object"}
    flag = op.responses["200"].schema["properties"]["default"]
    assert flag["type"] == "boolean" and flag["default"] == {"$ref": "not a ref: example data"}


def test_operations_secured_by_another_scheme_get_their_own_auth():
    result = import_connector(SPECS / "swagger-petstore-v3.yaml")
    actions = result.connector.actions
    assert result.connector.auth.type == "api_key"
    assert actions["get_inventory"].auth is None  # the connector's api_key satisfies it
    assert actions["add_pet"].auth.model_dump() == {"type": "bearer", "credential": "petstore_auth", "scheme": "Bearer"}
    assert result.connector.credential_fields() == ["api_key", "petstore_auth"]
    assert any("implicit flow" in w.message for w in result.warnings)
    # Alternatives listed in one requirement (Google) do not make overrides.
    assert all(a.auth is None for a in import_connector(SPECS / "google-tasks-v1.yaml").connector.actions.values())


def test_multipart_bodies_are_multipart():
    actions = import_connector(SPECS / "resend-api.yaml").connector.actions
    assert actions["create_import"].body_type == "multipart"


def test_external_refs_cannot_leave_the_documents_folder(tmp_path):
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "config.yaml").write_text("type: object\nproperties: {aws_secret: {const: AKIASECRET}}\n")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "shared.yaml").write_text("type: object\n")
    for ref in ("../private/config.yaml", str(tmp_path / "private" / "config.yaml")):
        document = doc({"/x": {"get": {"responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": {"$ref": ref}}}}}}}})
        path = tmp_path / "api" / "doc.json"
        path.write_text(json.dumps(document))
        with pytest.raises(OpenAPIImportError, match="outside the document's folder") as info:
            load_openapi(path)
        assert "AKIASECRET" not in str(info.value)
    document["paths"]["/x"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {"$ref": "shared.yaml"}
    path.write_text(json.dumps(document))
    assert load_openapi(path).operations[0].responses["200"].schema == {"type": "object"}


# -- shared schemas in the connector ($defs) --------------------------------------

def _pets_document() -> dict:
    pet = {"type": "object", "required": ["id", "name"], "properties": {
        "id": {"type": "integer", "readOnly": True}, "name": {"type": "string"},
        "tag": {"$ref": "#/components/schemas/Tag"}}}
    return doc({
        "/pets": {
            "get": {"responses": ok({"type": "array", "items": {"$ref": "#/components/schemas/Pet"}})},
            "post": {"requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Pet"}}}},
                "responses": {**ok({"$ref": "#/components/schemas/Pet"}),
                              "400": {"description": "bad", "content": {"application/json": {
                                  "schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/pets/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": True,
                                               "schema": {"type": "integer"}}],
                               "responses": ok({"$ref": "#/components/schemas/Pet", "nullable": True})}}},
        components={"schemas": {"Pet": pet, "Tag": {"type": "string", "maxLength": 10},
                                "Error": {"type": "object", "properties": {"message": {"type": "string"}}}}})


def test_shared_schemas_are_kept_once_and_referred_to():
    connector = import_connector(_pets_document()).connector
    actions = connector.actions
    assert actions["list_pets"].output == {"type": "array", "items": {"$ref": "#/$defs/Pet"}}
    assert actions["create_pet"].output == {"$ref": "#/$defs/Pet"}
    # 3.0 nullable beside a reference: the reference or null
    assert actions["get_pet"].output == {"anyOf": [{"$ref": "#/$defs/Pet"}, {"type": "null"}]}
    # only what actions and events use: the 400 response's Error is not kept
    assert set(connector.defs) == {"Pet", "Pet.request", "Tag"}
    assert connector.defs["Pet"]["properties"]["tag"] == {"$ref": "#/$defs/Tag"}
    dumped = json.loads(engine.openapi.dump_connector(connector, "json"))
    assert dumped["$defs"]["Tag"] == {"type": "string", "maxLength": 10}
    assert load_connector(dumped) == connector
    output = connector.standalone(actions["get_pet"].output)
    Draft202012Validator(output).validate(None)
    with pytest.raises(jsonschema.ValidationError, match="not valid under any"):
        Draft202012Validator(output).validate({"id": 1, "name": "a", "tag": "x" * 11})


def test_a_shared_schema_requiring_a_read_only_property_gets_a_request_view():
    connector = import_connector(_pets_document()).connector
    create = connector.actions["create_pet"]
    assert create.input["properties"]["body"] == {"$ref": "#/$defs/Pet.request"}
    assert connector.defs["Pet.request"]["required"] == ["name"]  # id is read-only: not required in a request
    assert connector.defs["Pet"]["required"] == ["id", "name"]  # the response still has it
    engine.actions.validate_input(connector, "create_pet", create, {"body": {"name": "Rex", "tag": "dog"}})
    with pytest.raises(engine.errors.ActionInputInvalid) as caught:
        engine.actions.validate_input(connector, "create_pet", create, {"body": {"name": "Rex", "tag": "x" * 11}})
    assert [p.pointer for p in caught.value.problems] == ["/body/tag"]


def test_views_follow_references_and_recursion_needs_no_cut():
    line = {"type": "object", "required": ["id", "sku"], "properties": {
        "id": {"type": "string", "readOnly": True}, "sku": {"type": "string"},
        "parts": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}}}}
    order = {"type": "object", "required": ["lines"], "properties": {
        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
        "note": {"$ref": "#/components/schemas/Note"}}}
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}}
    document = doc({"/orders": {"post": {"requestBody": body, "responses": ok({"$ref": "#/components/schemas/Order"})}}},
                   components={"schemas": {"Order": order, "Line": line, "Note": {"type": "string"}}})
    connector = import_connector(document).connector
    defs = connector.defs
    # Order needs a request view only because the Line it holds does; Note needs none
    assert connector.actions["create_order"].input["properties"]["body"] == {"$ref": "#/$defs/Order.request"}
    assert defs["Order.request"]["properties"]["lines"]["items"] == {"$ref": "#/$defs/Line.request"}
    assert defs["Order.request"]["properties"]["note"] == {"$ref": "#/$defs/Note"}
    # a recursive schema refers to itself (its view to its view): nothing is cut
    assert defs["Line"]["properties"]["parts"]["items"] == {"$ref": "#/$defs/Line"}
    assert defs["Line.request"]["properties"]["parts"]["items"] == {"$ref": "#/$defs/Line.request"}
    assert "recursive reference" not in json.dumps(defs)
    deep = {"lines": [{"sku": "a", "parts": [{"sku": "b", "parts": [{"sku": "c"}]}]}]}
    action = connector.actions["create_order"]
    engine.actions.validate_input(connector, "create_order", action, {"body": deep})
    with pytest.raises(engine.errors.ActionInputInvalid) as caught:
        engine.actions.validate_input(connector, "create_order", action,
                                      {"body": {"lines": [{"sku": "a", "parts": [{"parts": []}]}]}})
    assert caught.value.problems[0].pointer == "/body/lines/0/parts/0"
    # walkers end: a sample of the recursive output validates
    output = connector.standalone(connector.actions["create_order"].output)
    Draft202012Validator(output).validate(engine.samples.sample_from_schema(output, seed="x"))


def test_external_schema_files_become_shared_schemas(tmp_path: Path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "pet.yaml").write_text(yaml.safe_dump(
        {"type": "object", "properties": {"tag": {"$ref": "#/definitions/Tag"}},
         "definitions": {"Tag": {"type": "string"}}}))
    main = tmp_path / "api.yaml"
    main.write_text(yaml.safe_dump(doc({"/pets": {"get": {"responses": ok({"$ref": "shared/pet.yaml"})}}})))
    connector = import_connector(main).connector
    assert connector.actions["list_pets"].output == {"$ref": "#/$defs/pet"}
    assert connector.defs["pet"]["properties"]["tag"] == {"$ref": "#/$defs/Tag"}
    assert connector.defs["Tag"] == {"type": "string"}


def test_load_openapi_keeps_refs_only_when_asked():
    document = _pets_document()
    inlined = load_openapi(document)
    assert inlined.schemas is None
    assert inlined.operations[0].responses["200"].schema["items"]["properties"]["name"] == {"type": "string"}
    kept = load_openapi(document, keep_refs=True)
    assert kept.operations[0].responses["200"].schema == {"type": "array", "items": {"$ref": "#/$defs/Pet"}}
    assert {"Pet", "Tag", "Error"} <= set(kept.schemas)
    # schema() inlines whatever the mode: the sandbox reads whole schemas
    assert kept.schema("/components/schemas/Pet")["properties"]["tag"] == {"type": "string", "maxLength": 10}
