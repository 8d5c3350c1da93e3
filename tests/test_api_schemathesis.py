"""The API keeps the promises of its OpenAPI document: schemathesis generates requests for every
operation the document lists (whatever routes exist when the tests are collected) and checks
each response: no 5xx, a documented status code and content type, documented headers, and a body
that validates against the documented schema.

Real parts only: the platform is served over HTTP on 127.0.0.1 against the session's Postgres,
and every request carries a real tenant's credentials and customer header, so the cases reach
the handlers rather than stopping at 401 (that customer's quotas are lifted so they do not stop
at 429 either). The cases are generated from the document the app builds, one pytest item per
operation collected before any server runs, and a test checks that the running server serves
exactly that document at ``/openapi.json``. (``schemathesis.pytest.from_fixture``, which would
load it from the server, fails under pytest 9.2: it renames items through ``Function._nodeid``,
which pytest 9.2 removed.)

Bounded and reproducible: a few examples per operation, derandomized generation with a fixed
seed, no example database, no shrinking. A failure names the operation and prints a ``curl`` to
reproduce it.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api._openapi import add_problem_responses
from support.contract import CONTRACT_SEED, api_document, contract_config, unlimited_quotas, without_auth_parameters
from support.platform import Tenant, app_database, make_tenant

# Per operation: with some 90 operations, each case costs about 0.1 s of generation, request and
# validation, so 3 keeps the module near 20 s (5 took near 40 s). For hunting defects by hand:
# SWITCHBOARD_CONTRACT_DEEP=1 runs many more cases, with the boundary values of the coverage
# phase, and SWITCHBOARD_CONTRACT_SEED=<int> generates other cases than the fixed seed.
DEEP = os.environ.get("SWITCHBOARD_CONTRACT_DEEP") == "1"
SEED = int(os.environ.get("SWITCHBOARD_CONTRACT_SEED") or CONTRACT_SEED)
MAX_EXAMPLES = 25 if DEEP else 3

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# "/{param}": what an item route adds to the path of its list.
ITEM_OF = re.compile(r"/\{[a-z_]+\}")

DOCUMENT = api_document()
schema = schemathesis.openapi.from_dict(
    without_auth_parameters(DOCUMENT), config=contract_config(max_examples=MAX_EXAMPLES, coverage=DEEP, seed=SEED)
)


@pytest.fixture(scope="module")
def tenant(migrated_database_url: str) -> Tenant:
    with app_database(migrated_database_url) as db:
        tenant = make_tenant(db, "Schemathesis")
        unlimited_quotas(db, tenant.org_id, tenant.customers[0])
    return tenant


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_the_server_serves_the_document_the_cases_come_from(platform: str, http: requests.Session) -> None:
    response = http.get(f"{platform}/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case, platform: str, tenant: Tenant, http: requests.Session
) -> None:
    # The tenant's headers replace whatever was generated for the documented auth headers.
    case.call_and_validate(
        base_url=platform, session=http, headers=tenant.headers(tenant.customers[0]), checks=CHECKS, timeout=30
    )


def test_every_listed_resource_is_served_as_documented(platform: str, tenant: Tenant, http: requests.Session) -> None:
    """Generated ids rarely exist, so the run above sees mostly 404s from item routes. Here each
    top-level list (after the run, which created some resources, beside the tenant's own) gives
    an id to every ``GET <list>/{id}`` route, whose 200 must conform to the document too."""
    headers = tenant.headers(tenant.customers[0])
    checked = []
    for path, item in DOCUMENT["paths"].items():
        if not path.startswith("/v1/") or "{" in path or "get" not in item:
            continue
        children = [
            child
            for child, child_item in DOCUMENT["paths"].items()
            if child.startswith(path) and ITEM_OF.fullmatch(child[len(path) :]) and "get" in child_item
        ]
        if not children:
            continue
        listing = http.get(f"{platform}{path}", headers=headers, params={"limit": 1}, timeout=30)
        assert listing.status_code == 200, (path, listing.text)
        items = listing.json()["items"]
        if not items:
            continue
        for child in children:
            url = platform + path + "/" + quote(str(items[0]["id"]), safe="")
            response = http.get(url, headers=headers, timeout=30)
            assert response.status_code == 200, (child, response.text)
            schema[child]["GET"].validate_response(response)
            checked.append(child)
    # Whatever the run created, the tenant's own customers and environments are there.
    assert {"/v1/customers/{customer_id}", "/v1/environments/{environment_id}"} <= set(checked), checked


def test_the_document_describes_its_problems() -> None:
    """The run above is only as strict as the document: every /v1 operation must document its
    error responses as problem+json, or status-code conformance would pass vacuously."""
    problem = DOCUMENT["components"]["schemas"]["ProblemDetails"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
    operations = [
        (path, method, operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if path.startswith("/v1/")
    ]
    assert operations
    for path, method, operation in operations:
        responses = operation["responses"]
        for status in ("400", "401", "403", "422", "429"):
            content = responses[status]["content"]
            assert list(content) == ["application/problem+json"], (method, path, status)
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}
        if any(p["in"] == "path" for p in operation.get("parameters", ())):
            assert "404" in responses, (method, path)
        assert not any(code.startswith("5") or code == "default" for code in responses), (method, path)


# Defects the contract run found, pinned as plain examples so they stay fixed whatever it generates.


def test_text_with_nul_characters_is_refused_naming_the_place(
    platform: str, tenant: Tenant, http: requests.Session
) -> None:
    headers = tenant.headers(tenant.customers[0])
    created = http.post(
        f"{platform}/v1/customers",
        headers=headers,
        json={"name": "a\x00b", "metadata": {"k\x00": 1, "list": ["ok", "x\x00"]}},
        timeout=30,
    )
    assert created.status_code == 422, created.text
    assert created.headers["content-type"].startswith("application/problem+json")
    pointers = sorted(error["pointer"] for error in created.json()["errors"])
    assert pointers == ["/body/metadata/k\x00", "/body/metadata/list/1", "/body/name"]
    for url in (f"{platform}/v1/customers/a%00b", f"{platform}/v1/customers?q=a%00b"):
        response = http.get(url, headers=headers, timeout=30)
        assert response.status_code == 422, (url, response.text)
        assert [e["pointer"] for e in response.json()["errors"]] in (["/path/customer_id"], ["/query/q"])
    # The same texts without NUL go through.
    fine = http.post(
        f"{platform}/v1/customers", headers=headers, json={"name": "a b", "metadata": {"k": "\\u0000"}}, timeout=30
    )
    assert fine.status_code == 201, fine.text
    assert fine.json()["metadata"] == {"k": "\\u0000"}


def test_routes_keep_the_responses_they_document_and_a_colliding_model_is_refused() -> None:
    declared = {"description": "No such widget.", "content": {"application/problem+json": {"schema": {}}}}
    document = {
        "paths": {
            "/v1/widgets/{widget_id}": {
                "get": {"parameters": [{"name": "widget_id", "in": "path"}], "responses": {"200": {}, "404": declared}}
            },
            "/health": {"get": {"responses": {"200": {}}}},
        }
    }
    add_problem_responses(document)
    responses = document["paths"]["/v1/widgets/{widget_id}"]["get"]["responses"]
    assert responses["404"] is declared
    assert sorted(responses) == ["200", "400", "401", "403", "404", "422", "429"]
    assert document["paths"]["/health"]["get"]["responses"] == {"200": {}}
    assert add_problem_responses(copy.deepcopy(document)) == document  # applying twice changes nothing
    with pytest.raises(ValueError, match="ProblemDetails"):
        add_problem_responses({"components": {"schemas": {"ProblemDetails": {"type": "object"}}}, "paths": {}})
