"""OpenAPI import over every real document in tests/data/openapi, checked against INDEX.md.

INDEX.md's table is parsed, not copied: a document added there without a
matching expectation here fails the test, and so does an expectation this
file does not know how to check.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from engine.errors import OpenAPIImportError
from engine.expressions import check_template
from engine.openapi import ImportResult, dump_connector, import_connector
from engine.specs import load_connector
from support.documents import SPECS_DIR


SPECS = SPECS_DIR


def _index() -> dict[str, dict[str, str]]:
    rows = {}
    for line in (SPECS / "INDEX.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.search(r"\.(ya?ml|json)$", cells[0]):
            rows[cells[0]] = {"ops": cells[3], "auth": cells[4], "expected": cells[5]}
    return rows


INDEX = _index()

# INDEX.md's ops column says 7 for the Cin7 subset; the document defines 6 operations
# (GET/POST/PUT /customer, GET/POST /product, GET /saleList). The test counts the
# document's operations independently too, so the figure used here is checked.
INDEX_ERRATA_OPS = {"cin7-core-v2-subset.yaml": 6}

PLACEHOLDER = "https://api.example.com"
# What each document's connector must look like: auth type (and flow/keys where it matters) and base_url.
EXPECTED = {
    "oai-petstore-v2.json": ("none", "http://petstore.swagger.io/v1"),
    "oai-petstore-v3.0.yaml": ("none", "http://petstore.swagger.io/v1"),
    "oai-webhook-example-v3.1.yaml": ("none", PLACEHOLDER),
    "oai-non-oauth-scopes-v3.1.json": ("bearer", PLACEHOLDER),
    "oai-callback-example-v3.0.yaml": ("none", PLACEHOLDER),
    "oai-petstore-separate-extref-v2.json": (None, None),
    "swagger-petstore-v3.yaml": ("api_key", PLACEHOLDER + "/v3"),
    "hubspot-crm-contacts-v3.json": ("oauth2", "https://api.hubapi.com"),
    "hubspot-webhooks-v3.json": ("api_key", "https://api.hubapi.com"),
    "twilio-bulkexports-v1.yaml": ("basic", "https://bulkexports.twilio.com"),
    "sendgrid-api-keys-v3.yaml": ("bearer", "https://api.sendgrid.com"),
    "resend-api.yaml": ("bearer", "https://api.resend.com"),
    "xero-identity.yaml": ("oauth2", "https://api.xero.com"),
    "google-tasks-v1.yaml": ("oauth2", "https://tasks.googleapis.com"),
    "1password-events.yaml": ("bearer", "https://events.1password.com"),
    "vonage-sms.yml": ("none", "https://rest.nexmo.com/sms"),
    "postmark-account-v0.9-swagger.yaml": ("api_key", "https://api.postmarkapp.com"),
    "cin7-core-v2-subset.yaml": ("api_key", "https://inventory.dearsystems.com/ExternalApi/v2"),
}
DOCUMENTS = sorted(p.name for p in SPECS.iterdir() if re.search(r"\.(ya?ml|json)$", p.name))
# Warnings that mean "the document has a problem" (as opposed to notes about conversion choices).
DOCUMENT_PROBLEM = re.compile(r"openapi-spec-validator|dangling|does not define|no responses|not marked required")


@functools.lru_cache(maxsize=None)
def imported(name: str) -> ImportResult:
    return import_connector(SPECS / name)


def _raw_operation_count(name: str) -> int:
    raw = yaml.safe_load((SPECS / name).read_text(encoding="utf-8"))
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return sum(1 for item in raw["paths"].values() for key in item if key in methods)


def test_every_document_is_indexed_and_expected():
    assert DOCUMENTS, "no documents found"
    assert set(DOCUMENTS) == set(INDEX), "INDEX.md and the directory disagree"
    assert set(DOCUMENTS) == set(EXPECTED), "a document has no expectation in this test"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_imports_as_index_says(name: str) -> None:
    expected = INDEX[name]["expected"]
    if expected.startswith("refused"):
        with pytest.raises(OpenAPIImportError) as caught:
            import_connector(SPECS / name)
        error = caught.value
        assert error.code == "openapi_import_failed" and error.http_status == 422
        assert error.pointer.startswith("/paths/")
        assert "$ref" in error.reason and "does not exist" in error.reason
        assert "parameters.json" in str(error) or "Pet.json" in str(error)
        return

    result = imported(name)
    warnings = [str(w) for w in result.warnings]
    if expected == "imported":
        assert not [w for w in warnings if DOCUMENT_PROBLEM.search(w)], warnings
    elif "path parameter without required: true" in expected:
        assert any(w.startswith("/paths/~1pets~1{petId}/get/parameters/0:") and "required" in w for w in warnings)
    elif "operation without responses" in expected:
        assert "/paths/~1users/get: operation declares no responses; its output schema is unknown" in warnings
    elif "dangling $ref" in expected:
        dangling = [w for w in result.warnings if "dangling" in w.message]
        assert len(dangling) == 1
        assert dangling[0].pointer.startswith("/paths/~1streams/post/callbacks/onData/")
        assert dangling[0].pointer.endswith("/properties/userData")
        assert "#/components/schemas/UserLogData" in dangling[0].message
    elif "undefined oauth2_legacy scheme" in expected:
        legacy = [w for w in result.warnings if "'oauth2_legacy'" in w.message]
        assert legacy and all(w.pointer.endswith("/security/0/oauth2_legacy") for w in legacy)
        assert "/paths/~1crm~1v3~1objects~1contacts/get/security/0/oauth2_legacy" in {w.pointer for w in legacy}
    elif "warnings for undefined schemes" in expected:
        undefined = {re.search(r"scheme '([^']+)'", w.message).group(1)
                     for w in result.warnings if "does not define" in w.message}
        assert undefined and not undefined & set(
            yaml.safe_load((SPECS / name).read_text())["components"]["securitySchemes"])
    else:
        pytest.fail(f"unknown expectation in INDEX.md: {expected!r}")


@pytest.mark.parametrize("name", [d for d in DOCUMENTS if not INDEX[d]["expected"].startswith("refused")])
def test_connector_shape(name: str) -> None:
    connector = imported(name).connector
    ops = int(INDEX[name]["ops"].split()[0])
    ops = INDEX_ERRATA_OPS.get(name, ops)
    assert len(connector.actions) == ops == _raw_operation_count(name)
    auth_type, base_url = EXPECTED[name]
    assert connector.auth.type == auth_type
    assert connector.base_url == base_url
    schemas: dict[str, dict] = {}  # distinct schemas, each checked once
    for action_name, action in connector.actions.items():
        assert action.input["type"] == "object"
        for schema in (action.input, action.output):
            if schema is not None:
                schemas.setdefault(json.dumps(schema, sort_keys=True), schema)
        templated = {k: v for k, v in action.model_dump(mode="json", by_alias=True).items()
                     if k in ("path_params", "query", "headers", "body", "base_url")}
        assert not check_template(templated, f"/actions/{action_name}")
        if action.pagination is not None:
            assert not check_template("{{ " + action.pagination.items + " }}")
            assert not check_template("{{ " + (action.pagination.next or "1") + " }}")
    for event in connector.events.values():
        if event.payload is not None:
            schemas.setdefault(json.dumps(event.payload, sort_keys=True), event.payload)
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    # what is written to a file loads back as the same connector
    assert load_connector(yaml.safe_load(dump_connector(connector))) == connector


def test_auth_details_per_document():
    cin7 = imported("cin7-core-v2-subset.yaml").connector.auth
    assert [(k.credential, k.in_, k.name) for k in cin7.keys] == [
        ("account_id", "header", "api-auth-accountid"), ("application_key", "header", "api-auth-applicationkey")]
    hubspot = imported("hubspot-crm-contacts-v3.json").connector.auth
    assert (hubspot.flow, hubspot.authorize_url, hubspot.token_url) == (
        "authorization_code", "https://app.hubspot.com/oauth/authorize", "https://api.hubapi.com/oauth/v1/token")
    assert set(hubspot.scopes) == {"crm.objects.contacts.read", "crm.objects.contacts.write"}
    google = imported("google-tasks-v1.yaml").connector.auth  # the implicit scheme is passed over for the code flow
    assert (google.flow, google.token_url) == ("authorization_code", "https://accounts.google.com/o/oauth2/token")
    petstore = imported("swagger-petstore-v3.yaml").connector.auth  # implicit oauth2 passed over for the api key
    assert [(k.in_, k.name) for k in petstore.keys] == [("header", "api_key")]
    hooks = imported("hubspot-webhooks-v3.json").connector.auth
    assert [(k.in_, k.name) for k in hooks.keys] == [("query", "hapikey")]


def test_hubspot_and_cin7_lists_paginate():
    hubspot = imported("hubspot-crm-contacts-v3.json").connector.actions["list_contacts"]
    assert hubspot.pagination.model_dump(exclude_none=True, exclude_defaults=True) == {
        "style": "cursor", "items": "results", "next": "paging.next.after", "cursor_param": "after"}
    assert hubspot.query["after"] == "{{ input.after }}"
    cin7 = imported("cin7-core-v2-subset.yaml").connector.actions
    assert cin7["list_customers"].pagination.model_dump(exclude_none=True, exclude_defaults=True) == {
        "style": "page", "items": "CustomerList", "page_param": "Page", "size_param": "Limit"}
    assert cin7["list_products"].pagination.items == "Products"
    assert cin7["update_customer"].method == "PUT" and cin7["update_customer"].input["required"] == ["body"]
    assert cin7["create_customer"].body == "{{ input.body }}" and cin7["create_customer"].body_type == "json"
    # a fetch-one action is not paginated
    assert imported("hubspot-crm-contacts-v3.json").connector.actions[
        "get_contact"].pagination is None
