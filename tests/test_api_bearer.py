"""Console users: Authorization: Bearer <JWT> from an OIDC issuer, through the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import store
from support.oidc import OidcTestIssuer
from support.platform import Tenant, app_database, client, make_tenant, running_platform


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcTestIssuer]:
    with OidcTestIssuer() as running:
        yield running


@pytest.fixture(scope="module")
def platform(migrated_database_url: str, issuer: OidcTestIssuer) -> Iterator[str]:
    with running_platform(
        migrated_database_url, oidc_issuer=issuer.issuer, oidc_audience=issuer.audience
    ) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def tenants(migrated_database_url: str) -> Iterator[tuple[Tenant, Tenant, store.Database]]:
    with app_database(migrated_database_url) as db:
        yield make_tenant(db, "Acme"), make_tenant(db, "Globex"), db


def _invite(db: store.Database, org_id: str, email: str, role: str, status: str = "invited") -> dict:
    with db.tenant(org_id) as tx:
        return store.Users(tx).invite(org_id, email, role, status=status)


def test_an_invited_user_signs_in_with_a_verified_email(platform: str, issuer: OidcTestIssuer, tenants) -> None:
    acme, _, db = tenants
    _invite(db, acme.org_id, "ada@acme.test", "viewer")
    token = issuer.issue("sub-ada", org_id=acme.org_id, email="ada@acme.test", extra={"email_verified": True})
    with client(platform) as http:
        listed = http.get("/v1/customers", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        assert sorted(c["id"] for c in listed.json()["items"]) == sorted(acme.customers)
        # A viewer reads but does not write; the refusal names the permission.
        refused = http.post("/v1/customers", headers={"Authorization": f"Bearer {token}"}, json={"name": "X"})
        assert refused.status_code == 403 and refused.json()["permission"] == "customers:write"
    with db.tenant(acme.org_id) as tx:
        user = [u for u in store.Users(tx).list(acme.org_id, store.ListQuery()).items if u["email"] == "ada@acme.test"][0]
    assert user["status"] == "active" and user["oidc_subject"] == "sub-ada"


def test_an_unverified_email_does_not_claim_an_invitation(platform: str, issuer: OidcTestIssuer, tenants) -> None:
    acme, _, db = tenants
    _invite(db, acme.org_id, "bob@acme.test", "owner")
    token = issuer.issue("sub-mallory", org_id=acme.org_id, email="bob@acme.test")
    with client(platform) as http:
        response = http.get("/v1/customers", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_tokens_are_bound_to_their_organization(platform: str, issuer: OidcTestIssuer, tenants) -> None:
    acme, globex, db = tenants
    _invite(db, acme.org_id, "cy@acme.test", "owner")
    token = issuer.issue("sub-cy", org_id=acme.org_id, email="cy@acme.test", extra={"email_verified": True})
    with client(platform) as http:
        other = http.get("/v1/customers", headers={"Authorization": f"Bearer {token}", "x-fastn-account-id": globex.org_id})
        assert other.status_code == 403
        # Another organization's customer cannot be named as the tenant.
        foreign = http.get(
            "/v1/customers",
            headers={"Authorization": f"Bearer {token}", "x-fastn-account-tenant-id": globex.customers[0]},
        )
        assert foreign.status_code == 400 and foreign.json()["header"] == "x-fastn-account-tenant-id"
        # Without an org claim the account header picks the organization, where the user must exist.
        no_claim = issuer.issue("sub-cy", email="cy@acme.test", extra={"email_verified": True})
        stranger = http.get("/v1/customers", headers={"Authorization": f"Bearer {no_claim}", "x-fastn-account-id": globex.org_id})
        assert stranger.status_code == 401
        mine = http.get("/v1/customers", headers={"Authorization": f"Bearer {no_claim}", "x-fastn-account-id": acme.org_id})
        assert mine.status_code == 200


def test_bad_tokens_are_401_without_echoing_them(platform: str, issuer: OidcTestIssuer, tenants) -> None:
    acme, _, db = tenants
    expired = issuer.issue("sub-ada", org_id=acme.org_id, expires_in=-3600)
    with client(platform) as http:
        for token, reason in ((expired, "expired"), ("not.a.jwt", "malformed")):
            response = http.get("/v1/customers", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
            assert reason in response.json()["detail"]
            assert token not in response.text
        basic = http.get("/v1/customers", headers={"Authorization": "Basic YTpi"})
        assert basic.status_code == 401 and "Bearer" in basic.json()["detail"]


def test_a_disabled_user_is_refused(platform: str, issuer: OidcTestIssuer, tenants) -> None:
    acme, _, db = tenants
    user = _invite(db, acme.org_id, "dee@acme.test", "owner")
    with db.tenant(acme.org_id) as tx:
        store.Users(tx).update(acme.org_id, user["id"], {"status": "disabled"})
    token = issuer.issue("sub-dee", org_id=acme.org_id, email="dee@acme.test", extra={"email_verified": True})
    with client(platform) as http:
        assert http.get("/v1/customers", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_an_end_user_acts_only_for_their_own_customer(platform: str, issuer: OidcTestIssuer, tenants) -> None:
    acme, _, db = tenants
    mine, other = acme.customers
    with client(platform) as http:
        owner = acme.headers()
        unbound = http.post("/v1/users", headers=owner, json={"email": "eu@acme.test", "role": "end_user"})
        assert unbound.status_code == 422 and unbound.json()["field"] == "customer"
        invited = http.post(
            "/v1/users", headers=owner, json={"email": "eu@acme.test", "role": "end_user", "customer": mine}
        )
        assert invited.status_code == 201 and invited.json()["customer_id"] == mine
        token = issuer.issue("sub-eu", org_id=acme.org_id, email="eu@acme.test", extra={"email_verified": True})
        bearer = {"Authorization": f"Bearer {token}"}
        assert [c["id"] for c in http.get("/v1/customers", headers=bearer).json()["items"]] == [mine]
        refused = http.get("/v1/connections", headers=bearer | {"x-fastn-account-tenant-id": other})
        assert refused.status_code == 403
        assert http.get(f"/v1/customers/{other}", headers=bearer).status_code == 404
        # An existing console user cannot be turned into an End User without a customer.
        viewer = http.post("/v1/users", headers=owner, json={"email": "v2@acme.test", "role": "viewer"}).json()
        demoted = http.patch(f"/v1/users/{viewer['id']}", headers=owner, json={"role": "end_user"})
        assert demoted.status_code == 422 and demoted.json()["field"] == "role"
