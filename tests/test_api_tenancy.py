"""Authentication, customers, environments and organization settings through the API, and isolation in SQL as the app role."""

from __future__ import annotations

import re

import httpx
import psycopg
import pytest

import store
from support.platform import Tenant, client, make_tenant


@pytest.fixture(scope="module")
def two(db: store.Database) -> tuple[Tenant, Tenant]:
    return make_tenant(db, "Acme"), make_tenant(db, "Globex")


def test_requests_without_credentials_are_401(platform: str) -> None:
    with client(platform) as http:
        response = http.get("/v1/customers")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "x-fastn-access-key" in response.json()["detail"]
    assert response.headers["www-authenticate"] == 'Bearer realm="switchboard"'


def test_a_key_is_refused_for_another_account(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    with client(platform) as http:
        response = http.get("/v1/customers", headers={"x-fastn-access-key": acme.key, "x-fastn-account-id": globex.org_id})
    assert response.status_code == 401


def test_customers_are_listed_per_organization(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    with client(platform) as http:
        mine = http.get("/v1/customers", headers=acme.headers()).json()["items"]
        theirs = http.get("/v1/customers", headers=globex.headers()).json()["items"]
    assert sorted(c["id"] for c in mine) == sorted(acme.customers)
    assert sorted(c["id"] for c in theirs) == sorted(globex.customers)


def test_create_get_update_delete_a_customer(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    with client(platform) as http:
        created = http.post("/v1/customers", headers=acme.headers(), json={"name": "Initech", "residency": "EU"})
        assert created.status_code == 201, created.text
        customer = created.json()
        assert customer["residency"] == "EU"
        path = f"/v1/customers/{customer['id']}"
        assert http.get(path, headers=globex.headers()).status_code == 404
        assert http.patch(path, headers=globex.headers(), json={"name": "x"}).status_code == 404
        assert http.delete(path, headers=globex.headers()).status_code == 404
        updated = http.patch(path, headers=acme.headers(), json={"tier": "pro"})
        assert updated.json()["tier"] == "pro"
        assert http.delete(path, headers=acme.headers()).status_code == 204
        assert http.get(path, headers=acme.headers()).status_code == 404


def test_bad_customer_input_names_the_field(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    with client(platform) as http:
        response = http.post("/v1/customers", headers=acme.headers(), json={"name": "X", "residency": "MARS"})
        assert response.status_code == 422
        assert any(e["pointer"] == "/body/residency" for e in response.json()["errors"])
        unknown_env = http.post("/v1/customers", headers=acme.headers(), json={"name": "X", "environment": "nope"})
        assert unknown_env.status_code == 404
        assert unknown_env.json()["resource"] == "environment"
        duplicate = http.post("/v1/customers", headers=acme.headers(), json={"name": "X", "id": acme.customers[0]})
        assert duplicate.status_code == 409
        assert duplicate.json()["field"] == "id"


def test_pagination_walks_every_customer_once(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Paged", customers=7)
    seen: list[str] = []
    cursor = None
    with client(platform) as http:
        while True:
            params = {"limit": 3, "sort": "name"} | ({"cursor": cursor} if cursor else {})
            page = http.get("/v1/customers", headers=tenant.headers(), params=params).json()
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(tenant.customers) and len(seen) == 7
        wrong_sort = http.get("/v1/customers", headers=tenant.headers(), params={"sort": "-created_at", "cursor": "abc"})
        assert wrong_sort.status_code == 422
        assert wrong_sort.json()["field"] == "cursor"
        bad_sort = http.get("/v1/customers", headers=tenant.headers(), params={"sort": "secret"})
        assert bad_sort.status_code == 422 and "name" in bad_sort.json()["detail"]


def test_idempotency_key_answers_a_retry_once(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    headers = acme.headers() | {"Idempotency-Key": "create-hooli-1"}
    with client(platform) as http:
        first = http.post("/v1/customers", headers=headers, json={"name": "Hooli"})
        again = http.post("/v1/customers", headers=headers, json={"name": "Hooli"})
        other = http.post("/v1/customers", headers=headers, json={"name": "Pied Piper"})
    assert first.status_code == 201
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert other.status_code == 409


def test_app_role_is_bound_by_row_level_security(migrated_database_url: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    conninfo = store.app_conninfo(migrated_database_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False)
        owners = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        ).fetchone()[0]
        assert owners == 0
        with conn.transaction():
            conn.execute("SELECT set_config('app.org_id', %s, true)", (acme.org_id,))
            orgs = {row[0] for row in conn.execute("SELECT org_id FROM customers")}
            assert orgs == {acme.org_id}
            updated = conn.execute("UPDATE customers SET name = 'pwned' WHERE org_id = %s", (globex.org_id,)).rowcount
            assert updated == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("SELECT set_config('app.org_id', %s, true)", (acme.org_id,))
                conn.execute(
                    "INSERT INTO customers (org_id, id, environment_id, name) VALUES (%s, 'x', 'y', 'z')",
                    (globex.org_id,),
                )
        # Without a tenant for the transaction, nothing is visible.
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0


def test_the_docs_page_and_its_assets_are_served_locally(platform: str) -> None:
    with client(platform) as http:
        page = http.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css))["']""", page.text)
        assert assets and all(asset.startswith("/") for asset in assets), assets
        for asset in assets:
            assert http.get(asset).status_code == 200, asset
        document = http.get("/openapi.json").json()
    assert document["info"]["title"] == "Switchboard"
    assert "/v1/customers" in document["paths"]


def test_a_database_failure_is_answered_without_the_databases_words() -> None:
    from api import coded_error_response

    response = coded_error_response(store.QueryFailed("42P01", 'relation "secret_table" does not exist'))
    assert response is not None and response.status_code == 500
    assert b"secret_table" not in response.body
    assert b"query_failed" in response.body


def test_an_environment_with_secrets_is_not_deleted(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Envs")
    with client(platform) as http:
        created = http.post("/v1/environments", headers=tenant.headers(), json={"slug": "qa", "name": "QA"})
        assert created.status_code == 201
        secret = http.post("/v1/secrets", headers=tenant.headers(), json={"name": "TOKEN", "value": "s3cr3t-value", "environment": "qa"})
        assert secret.status_code == 201, secret.text
        refused = http.delete("/v1/environments/qa", headers=tenant.headers())
        assert refused.status_code == 409 and "secret" in refused.json()["detail"]
        assert http.get(f"/v1/secrets/{secret.json()['id']}", headers=tenant.headers()).status_code == 200
        assert http.delete(f"/v1/secrets/{secret.json()['id']}", headers=tenant.headers()).status_code == 204
        assert http.delete("/v1/environments/qa", headers=tenant.headers()).status_code == 204


def test_a_key_bound_to_a_customer_never_changes_the_organization(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Ceiling")
    with client(platform) as http:
        issued = http.post(
            "/v1/api-keys", headers=tenant.headers(), json={"name": "widget", "role": "owner", "customer": tenant.customers[0]}
        )
        assert issued.status_code == 201, issued.text
        bound = tenant.headers(key=issued.json()["key"])
        for method, path, body in (
            ("PATCH", "/v1/organization", {"name": "Taken over"}),
            ("POST", "/v1/secrets", {"name": "X", "value": "v", "environment": "dev"}),
            ("POST", "/v1/users", {"email": "eve@example.com", "role": "owner"}),
            ("PATCH", "/v1/billing", {"plan": "pro"}),
        ):
            refused = http.request(method, path, headers=bound, json=body)
            assert refused.status_code == 403, (path, refused.text)
            assert "bound to one customer" in refused.json()["detail"]
        assert http.get("/v1/users", headers=bound).status_code == 403  # the organization's people stay private
        own = http.get("/v1/customers", headers=bound).json()["items"]
        assert [c["id"] for c in own] == [tenant.customers[0]]
        assert http.get("/v1/organization", headers=tenant.headers()).json()["name"] == "Ceiling"


def test_a_suspended_customer_is_refused_until_reactivated(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Suspend")
    customer = tenant.customers[0]
    with client(platform) as http:
        issued = http.post("/v1/api-keys", headers=tenant.headers(), json={"name": "w", "customer": customer})
        bound = tenant.headers(key=issued.json()["key"])
        assert http.get("/v1/connections", headers=bound).status_code == 200
        assert http.patch(f"/v1/customers/{customer}", headers=tenant.headers(), json={"status": "suspended"}).status_code == 200
        for headers in (bound, tenant.headers(customer)):
            refused = http.get("/v1/connections", headers=headers)
            assert refused.status_code == 403 and "suspended" in refused.json()["detail"]
        # The other customer is unaffected; the organization reactivates.
        assert http.get("/v1/connections", headers=tenant.headers(tenant.customers[1])).status_code == 200
        assert http.patch(f"/v1/customers/{customer}", headers=tenant.headers(), json={"status": "active"}).status_code == 200
        assert http.get("/v1/connections", headers=bound).status_code == 200


def test_search_treats_wildcards_literally(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Search", customers=0)
    with client(platform) as http:
        for name in ("100% Cotton", "Plain_Name", "Plainly"):
            assert http.post("/v1/customers", headers=tenant.headers(), json={"name": name}).status_code == 201
        found = lambda q: sorted(c["name"] for c in http.get("/v1/customers", headers=tenant.headers(), params={"q": q}).json()["items"])  # noqa: E731
        assert found("%") == ["100% Cotton"]
        assert found("n_n") == ["Plain_Name"]
        assert found("PLAIN") == ["Plain_Name", "Plainly"]


def _issue(http: httpx.Client, tenant: Tenant, **body: str) -> dict:
    response = http.post("/v1/api-keys", headers=tenant.headers(), json={"name": "a key", **body})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("text", [b'{"name": ', b"{bad", b'{"name": "x",}'])
def test_a_body_that_is_not_json_points_at_the_body(platform: str, two: tuple[Tenant, Tenant], text: bytes) -> None:
    acme, _ = two
    headers = acme.headers() | {"content-type": "application/json"}
    with client(platform) as http:
        response = http.post("/v1/customers", headers=headers, content=text)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    # A character offset is not a JSON pointer into the body.
    assert error["pointer"] == "/body"
    assert "JSON" in error["reason"] and "character" in error["reason"]


def test_a_customer_bound_key_cannot_create_customers(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Bound")
    with client(platform) as http:
        issued = http.post("/v1/api-keys", headers=tenant.headers(),
                           json={"name": "bound admin", "role": "admin", "customer": tenant.customers[0]})
        assert issued.status_code == 201, issued.text
        bound = tenant.headers(key=issued.json()["key"])
        # Refused by the key's customer ceiling in code; the store refuses it too (RLS, test_store_rls.py).
        refused = http.post("/v1/customers", headers=bound, json={"name": "Sneaky"})
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "forbidden" and refused.json()["permission"] == "customers:write"
        listed = http.get("/v1/customers", headers=tenant.headers(), params={"limit": 200}).json()["items"]
    assert "Sneaky" not in [c["name"] for c in listed]


def test_general_settings_and_their_bad_input(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Settings", customers=0)
    headers = tenant.headers()
    with client(platform) as http:
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

        viewer = tenant.headers(key=_issue(http, tenant, role="viewer")["key"])
        assert http.get("/v1/organization", headers=viewer).status_code == 200
        for method, path, body in (("PATCH", "/v1/organization", {"name": "x"}), ("POST", "/v1/organization/reset-onboarding", None),
                                   ("POST", "/v1/environments", {"slug": "qa", "name": "QA"}), ("DELETE", "/v1/environments/dev", None)):
            refused = http.request(method, path, headers=viewer, json=body)
            assert refused.status_code == 403 and refused.json()["permission"] == "settings:write", (method, path)
        end_user = tenant.headers(key=_issue(http, tenant, role="end_user")["key"])
        assert http.get("/v1/organization", headers=end_user).json()["permission"] == "settings:read"


def test_environments_and_their_bad_input(platform: str, db: store.Database) -> None:
    tenant, other = make_tenant(db, "Envs", customers=1), make_tenant(db, "Other envs", customers=0)
    headers = tenant.headers()
    with client(platform) as http:
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
