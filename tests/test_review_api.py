"""Review of the /v1 routes: permissions that fit what a route does, Idempotency-Key replays per
customer, malformed bodies, and the executions filter's name."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import store
from support.platform import Tenant, client, make_tenant

TINY = {
    "id": "tiny",
    "name": "Tiny",
    "base_url": "https://api.tiny.example/v1",
    "auth": {"type": "bearer"},
    "actions": {"list_things": {"method": "GET", "path": "/things"}},
}
ECHO = {"id": "echo", "steps": [{"id": "greet", "map": {"hello": "{{ input.name }}"}}]}


@pytest.fixture(scope="module")
def http(platform: str) -> Iterator[httpx.Client]:
    with client(platform) as c:
        yield c


@pytest.fixture(scope="module")
def acme(db: store.Database, http: httpx.Client) -> Tenant:
    tenant = make_tenant(db, "Review")
    for path, spec in (("/v1/connectors", TINY), ("/v1/workflows", ECHO)):
        assert http.post(path, headers=tenant.headers(), json={"spec": spec}).status_code == 201
    assert http.post("/v1/workflows/echo/publish", headers=tenant.headers()).status_code == 201
    return tenant


def issue(http: httpx.Client, tenant: Tenant, **body: str) -> dict:
    response = http.post("/v1/api-keys", headers=tenant.headers(), json={"name": "review key", **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_an_idempotency_key_is_not_replayed_for_another_customer(http: httpx.Client, acme: Tenant) -> None:
    first, second = acme.customers
    body = {"connector": "tiny", "name": "review", "auth": {"type": "bearer", "token": "tok-review-1234"}}
    key = {"Idempotency-Key": "review-connect-once"}
    created = http.post("/v1/connections", headers=acme.headers(first) | key, json=body)
    assert created.status_code == 201 and created.json()["customer_id"] == first
    # The same key and body for another customer is another request, not a retry of this one.
    other = http.post("/v1/connections", headers=acme.headers(second) | key, json=body)
    assert other.status_code == 409, other.text
    assert "idempotent-replayed" not in other.headers and created.json()["id"] not in other.text
    assert other.json()["field"] == "Idempotency-Key"
    listed = http.get("/v1/connections", headers=acme.headers(second), params={"connector": "tiny"}).json()["items"]
    assert listed == []
    retry = http.post("/v1/connections", headers=acme.headers(first) | key, json=body)
    assert retry.headers["idempotent-replayed"] == "true" and retry.json()["id"] == created.json()["id"]


@pytest.mark.parametrize("text", [b'{"name": ', b"{bad", b'{"name": "x",}'])
def test_a_body_that_is_not_json_points_at_the_body(http: httpx.Client, acme: Tenant, text: bytes) -> None:
    headers = acme.headers() | {"content-type": "application/json"}
    response = http.post("/v1/customers", headers=headers, content=text)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    # A character offset is not a JSON pointer into the body.
    assert error["pointer"] == "/body"
    assert "JSON" in error["reason"] and "character" in error["reason"]


def test_validating_a_workflow_needs_only_read(http: httpx.Client, acme: Tenant) -> None:
    viewer = acme.headers(key=issue(http, acme, role="viewer")["key"])
    checked = http.post("/v1/workflows/echo/validate", headers=viewer)
    assert checked.status_code == 200, checked.text
    assert checked.json() == {"valid": True, "problems": []}
    proposed = http.post("/v1/workflows/echo/validate", headers=viewer, json={"spec": {**ECHO, "steps": []}})
    assert proposed.status_code == 200 and proposed.json()["valid"] is False
    # Changing it still needs write.
    refused = http.put("/v1/workflows/echo/draft", headers=viewer, json={"spec": ECHO})
    assert refused.status_code == 403 and refused.json()["permission"] == "workflows:write"


def test_a_lower_role_cannot_revoke_a_higher_roles_key(http: httpx.Client, acme: Tenant) -> None:
    owner_key = issue(http, acme, role="owner")
    operator = acme.headers(key=issue(http, acme, role="operator")["key"])
    refused = http.post(f"/v1/api-keys/{owner_key['id']}/revoke", headers=operator)
    assert refused.status_code == 403, refused.text
    assert refused.json()["permission"] == "connectors:write"
    assert http.get("/v1/organization", headers=acme.headers(key=owner_key["key"])).status_code == 200
    peer = issue(http, acme, role="viewer")
    assert http.post(f"/v1/api-keys/{peer['id']}/revoke", headers=operator).status_code == 200


def test_executions_are_filtered_by_workflow(http: httpx.Client, acme: Tenant) -> None:
    first = acme.customers[0]
    ran = http.post("/v1/workflows/echo/runs", headers=acme.headers(first), json={"input": {"name": "Ada"}})
    assert ran.status_code == 201, ran.text
    for params in ({"workflow": "echo"}, {"workflow": ran.json()["workflow_id"]}, {"workflow_id": "echo"}):
        listed = http.get("/v1/executions", headers=acme.headers(), params=params)
        assert listed.status_code == 200, listed.text
        assert ran.json()["id"] in [e["id"] for e in listed.json()["items"]], params
    assert http.get("/v1/executions", headers=acme.headers(), params={"workflow": "nope"}).json()["items"] == []
    both = http.get("/v1/executions", headers=acme.headers(), params={"workflow": "echo", "workflow_id": "other"})
    assert both.status_code == 422 and both.json()["field"] == "workflow"


def test_general_settings_and_their_bad_input(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Settings", customers=0)
    headers = tenant.headers()
    changed = http.patch("/v1/organization", headers=headers,
                         json={"name": "Renamed", "timezone": "Europe/Berlin", "email_domains": ["settings.test"], "auto_approve": True})
    assert changed.status_code == 200, changed.text
    shown = http.get("/v1/organization", headers=headers).json()
    assert (shown["name"], shown["timezone"], shown["email_domains"], shown["auto_approve"]) == (
        "Renamed", "Europe/Berlin", ["settings.test"], True)
    for body, pointer in (
        ({"timezone": "Mars/Base"}, "/body/timezone"),
        ({"email_domains": ["Not A Domain"]}, "/body/email_domains/0"),
        ({"name": ""}, "/body/name"),
        ({"plan": "enterprise"}, "/body/plan"),  # the plan is billing's, not a general setting
        ({"onboarding": {"step": 3}}, "/body/onboarding"),
    ):
        refused = http.patch("/v1/organization", headers=headers, json=body)
        assert refused.status_code == 422, refused.text
        assert [e["pointer"] for e in refused.json()["errors"]] == [pointer]
    assert http.get("/v1/organization", headers=headers).json() == shown  # nothing refused was stored
    reset = http.post("/v1/organization/reset-onboarding", headers=headers)
    assert reset.status_code == 200 and reset.json()["onboarding"] == {}

    viewer = tenant.headers(key=issue(http, tenant, role="viewer")["key"])
    assert http.get("/v1/organization", headers=viewer).status_code == 200
    for method, path, body in (("PATCH", "/v1/organization", {"name": "x"}), ("POST", "/v1/organization/reset-onboarding", None),
                               ("POST", "/v1/environments", {"slug": "qa", "name": "QA"}), ("DELETE", "/v1/environments/dev", None)):
        refused = http.request(method, path, headers=viewer, json=body)
        assert refused.status_code == 403 and refused.json()["permission"] == "settings:write", (method, path)
    end_user = tenant.headers(key=issue(http, tenant, role="end_user")["key"])
    assert http.get("/v1/organization", headers=end_user).json()["permission"] == "settings:read"


def test_environments_and_their_bad_input(http: httpx.Client, db: store.Database) -> None:
    tenant, other = make_tenant(db, "Envs", customers=1), make_tenant(db, "Other envs", customers=0)
    headers = tenant.headers()
    created = http.post("/v1/environments", headers=headers, json={"slug": "qa", "name": "QA"})
    assert created.status_code == 201, created.text
    qa = created.json()
    assert http.get("/v1/environments/qa", headers=headers).json() == qa
    assert http.get(f"/v1/environments/{qa['id']}", headers=headers).json() == qa
    slugs = [e["slug"] for e in http.get("/v1/environments", headers=headers, params={"sort": "slug"}).json()["items"]]
    assert slugs == ["dev", "production", "qa", "staging"]
    bad_slug = http.post("/v1/environments", headers=headers, json={"slug": "Bad Slug", "name": "x"})
    assert bad_slug.status_code == 422 and bad_slug.json()["errors"][0]["pointer"] == "/body/slug"
    taken = http.post("/v1/environments", headers=headers, json={"slug": "dev", "name": "Again"})
    assert taken.status_code == 409 and taken.json()["field"] == "slug"
    lived_in = http.delete("/v1/environments/dev", headers=headers)  # the tenant's customer lives in dev
    assert lived_in.status_code == 409 and lived_in.json()["code"] == "conflict"
    for method in ("GET", "DELETE"):
        assert http.request(method, f"/v1/environments/{qa['id']}", headers=other.headers()).status_code == 404
    assert http.delete(f"/v1/environments/{qa['id']}", headers=headers).status_code == 204
    assert http.get("/v1/environments/qa", headers=headers).status_code == 404


def test_an_execution_is_read_in_the_scope_the_header_names(http: httpx.Client, acme: Tenant) -> None:
    """As with connections and the executions list: naming a customer scopes the request to it."""
    first, second = acme.customers
    ran = http.post("/v1/workflows/echo/runs", headers=acme.headers(second), json={"input": {"name": "Grace"}})
    assert ran.status_code == 201, ran.text
    path = f"/v1/executions/{ran.json()['id']}"
    assert http.get(path, headers=acme.headers()).status_code == 200
    assert http.get(path, headers=acme.headers(second)).json()["customer_id"] == second
    listed = http.get("/v1/executions", headers=acme.headers(first), params={"limit": 200}).json()["items"]
    assert ran.json()["id"] not in [e["id"] for e in listed]
    hidden = http.get(path, headers=acme.headers(first))
    assert hidden.status_code == 404 and hidden.json()["resource"] == "execution"
    asked = http.get("/v1/executions", headers=acme.headers(first), params={"customer": second}).json()["items"]
    assert asked == []
    theirs = http.get("/v1/executions", headers=acme.headers(), params={"customer": second, "limit": 200}).json()["items"]
    assert ran.json()["id"] in [e["id"] for e in theirs]
