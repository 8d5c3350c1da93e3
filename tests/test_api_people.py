"""Users, roles and the permission vocabulary through the API: validation, permissions, tenancy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import store
from support.platform import Tenant, make_tenant


@pytest.fixture(scope="module")
def two(db: store.Database) -> tuple[Tenant, Tenant]:
    return make_tenant(db, "Acme", customers=1), make_tenant(db, "Globex", customers=1)


def key_with_role(http: httpx.Client, tenant: Tenant, role: str) -> str:
    response = http.post("/v1/api-keys", headers=tenant.headers(), json={"name": f"{role} key", "role": role})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def invite(http: httpx.Client, tenant: Tenant, email: str, role: str = "viewer", **extra) -> dict:
    response = http.post("/v1/users", headers=tenant.headers(), json={"email": email, "role": role, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_invite_list_filter_update_and_delete_users(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    ada = invite(http, acme, "ada@acme.test", "developer", name="Ada Lovelace")
    assert (ada["status"], ada["role_id"], ada["sso_linked"], ada["last_seen_at"]) == ("invited", "developer", False, None)
    grace = invite(http, acme, "grace@acme.test")
    assert grace["role_id"] == "viewer"

    def emails(**params) -> list[str]:
        response = http.get("/v1/users", headers=acme.headers(), params=params)
        assert response.status_code == 200, response.text
        return [u["email"] for u in response.json()["items"]]

    assert emails(sort="email") == ["ada@acme.test", "grace@acme.test"]
    assert emails(role="developer") == ["ada@acme.test"]
    assert emails(q="LOVELACE") == ["ada@acme.test"]
    assert emails(q="%") == []  # a LIKE wildcard is searched for literally
    assert emails(status="active") == []
    page = http.get("/v1/users", headers=acme.headers(), params={"limit": 1, "sort": "-email"}).json()
    assert [u["email"] for u in page["items"]] == ["grace@acme.test"] and page["next_cursor"]

    path = f"/v1/users/{ada['id']}"
    updated = http.patch(path, headers=acme.headers(), json={"role": "operator", "status": "active"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["role_id"], updated.json()["status"]) == ("operator", "active")
    assert emails(status="active") == ["ada@acme.test"]
    assert http.get(path, headers=acme.headers()).json()["role_id"] == "operator"

    # Another organization sees none of it.
    assert http.get("/v1/users", headers=globex.headers()).json()["items"] == []
    assert http.get(path, headers=globex.headers()).status_code == 404
    assert http.patch(path, headers=globex.headers(), json={"name": "x"}).status_code == 404
    assert http.delete(path, headers=globex.headers()).status_code == 404
    # The same email may be a user of another organization.
    invite(http, globex, "ada@acme.test")

    assert http.delete(path, headers=acme.headers()).status_code == 204
    assert http.get(path, headers=acme.headers()).status_code == 404
    assert http.delete(path, headers=acme.headers()).status_code == 404


def test_bad_user_input_names_the_field(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    headers = acme.headers()
    not_email = http.post("/v1/users", headers=headers, json={"email": "not an email"})
    assert not_email.status_code == 422
    assert [e["pointer"] for e in not_email.json()["errors"]] == ["/body/email"]
    extra = http.post("/v1/users", headers=headers, json={"email": "x@acme.test", "admin": True})
    assert extra.status_code == 422 and extra.json()["errors"][0]["pointer"] == "/body/admin"
    unknown_role = http.post("/v1/users", headers=headers, json={"email": "x@acme.test", "role": "wizard"})
    assert unknown_role.status_code == 404 and unknown_role.json()["resource"] == "role"
    invite(http, acme, "dup@acme.test")
    duplicate = http.post("/v1/users", headers=headers, json={"email": "DUP@acme.test"})
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "email"
    assert http.get("/v1/users", headers=headers, params={"status": "asleep"}).status_code == 422
    assert http.get("/v1/users", headers=headers, params={"sort": "role"}).json()["field"] == "sort"
    user = invite(http, acme, "status@acme.test")
    bad_status = http.patch(f"/v1/users/{user['id']}", headers=headers, json={"status": "invited"})
    assert bad_status.status_code == 422 and bad_status.json()["errors"][0]["pointer"] == "/body/status"
    bad_role = http.patch(f"/v1/users/{user['id']}", headers=headers, json={"role": "wizard"})
    assert bad_role.status_code == 404


def test_invitations_are_limited_to_the_email_domains(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Domains", customers=0)
    settings = http.patch("/v1/organization", headers=tenant.headers(), json={"email_domains": ["domains.test"]})
    assert settings.status_code == 200, settings.text
    outside = http.post("/v1/users", headers=tenant.headers(), json={"email": "eve@elsewhere.test"})
    assert outside.status_code == 422
    assert outside.json()["field"] == "email" and "domains.test" in outside.json()["detail"]
    # A subdomain is another domain.
    assert http.post("/v1/users", headers=tenant.headers(), json={"email": "eve@x.domains.test"}).status_code == 422
    assert invite(http, tenant, "Bob@Domains.TEST")["email"] == "Bob@Domains.TEST"
    http.patch("/v1/organization", headers=tenant.headers(), json={"email_domains": []})
    invite(http, tenant, "eve@elsewhere.test")


def test_the_last_active_owner_stays(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Owners", customers=0)
    headers = tenant.headers()
    first = invite(http, tenant, "first@owners.test", "owner")
    path = f"/v1/users/{first['id']}"
    # An invited owner is not yet an active one; nothing to protect.
    assert http.patch(path, headers=headers, json={"role": "admin"}).status_code == 200
    assert http.patch(path, headers=headers, json={"role": "owner", "status": "active"}).status_code == 200
    for change in ({"role": "admin"}, {"status": "disabled"}):
        refused = http.patch(path, headers=headers, json=change)
        assert refused.status_code == 409, refused.text
        assert "last active owner" in refused.json()["detail"]
    assert http.delete(path, headers=headers).status_code == 409
    assert http.patch(path, headers=headers, json={"name": "Still owner"}).status_code == 200

    second = invite(http, tenant, "second@owners.test", "owner")
    assert http.patch(f"/v1/users/{second['id']}", headers=headers, json={"status": "active"}).status_code == 200
    assert http.patch(path, headers=headers, json={"role": "admin"}).status_code == 200
    assert http.delete(f"/v1/users/{second['id']}", headers=headers).status_code == 409
    assert http.get(path, headers=headers).json()["role_id"] == "admin"


def test_roles_list_system_and_custom_with_their_matrix(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    created = http.post(
        "/v1/roles",
        headers=acme.headers(),
        json={"name": "Auditor", "description": "Reads the log", "permissions": {"audit": ["read"], "people": ["read", "read"]}},
    )
    assert created.status_code == 201, created.text
    role = created.json()
    assert role["system"] is False and role["id"].startswith("rol_")
    assert role["permissions"]["audit"] == ["read"] and role["permissions"]["people"] == ["read"]
    assert role["permissions"]["connectors"] == []

    listed = http.get("/v1/roles", headers=acme.headers(), params={"limit": 200}).json()["items"]
    ids = [r["id"] for r in listed]
    assert {"owner", "admin", "developer", "operator", "viewer", "end_user"} <= set(ids) and role["id"] in ids
    owner = next(r for r in listed if r["id"] == "owner")
    assert owner["system"] and owner["permissions"]["workflows"] == ["read", "write", "publish", "execute"]
    custom = http.get("/v1/roles", headers=acme.headers(), params={"system": "false"}).json()["items"]
    assert [r["id"] for r in custom] == [role["id"]]
    assert http.get(f"/v1/roles/{role['id']}", headers=acme.headers()).json() == role

    # Globex sees the system roles, not Acme's.
    theirs = [r["id"] for r in http.get("/v1/roles", headers=globex.headers(), params={"limit": 200}).json()["items"]]
    assert role["id"] not in theirs and "owner" in theirs
    for method in ("GET", "PATCH", "DELETE"):
        response = http.request(method, f"/v1/roles/{role['id']}", headers=globex.headers(), json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, response.text)

    renamed = http.patch(f"/v1/roles/{role['id']}", headers=acme.headers(), json={"permissions": {"audit": ["read"]}})
    assert renamed.status_code == 200 and renamed.json()["permissions"]["people"] == []
    # A role someone holds cannot go.
    holder = invite(http, acme, "auditor@acme.test", role["id"])
    assert http.delete(f"/v1/roles/{role['id']}", headers=acme.headers()).status_code == 409
    assert http.patch(f"/v1/users/{holder['id']}", headers=acme.headers(), json={"role": "viewer"}).status_code == 200
    assert http.delete(f"/v1/roles/{role['id']}", headers=acme.headers()).status_code == 204
    assert http.get(f"/v1/roles/{role['id']}", headers=acme.headers()).status_code == 404


def test_bad_roles_are_refused(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    headers = acme.headers()

    def create(permissions, name: str = "Broken") -> httpx.Response:
        return http.post("/v1/roles", headers=headers, json={"name": name, "permissions": permissions})

    cases = {
        "permissions/bogus": {"bogus": ["read"]},
        "permissions/people": {"people": ["fly"]},
        "permissions/secrets": {"secrets": ["publish"]},  # publish does not apply to secrets
    }
    for field, permissions in cases.items():
        response = create(permissions)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
    not_a_list = create({"people": "read"})
    assert not_a_list.status_code == 422 and not_a_list.json()["errors"][0]["pointer"].startswith("/body/permissions/people")
    for taken in ("Owner", "end_user"):
        clash = create({}, name=taken)
        assert clash.status_code == 409 and clash.json()["field"] == "name"
    assert create({}, name="Nobody").status_code == 201
    assert create({}, name="nobody").status_code == 409
    for role in ("owner", "viewer"):
        assert http.patch(f"/v1/roles/{role}", headers=headers, json={"name": "Mine"}).status_code == 409
        assert http.delete(f"/v1/roles/{role}", headers=headers).status_code == 409
    assert http.get("/v1/roles/owner", headers=headers).json()["name"] == "Owner"


def test_the_permission_vocabulary_is_listable(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    http.post("/v1/roles", headers=acme.headers(), json={"name": "Vocabulary", "permissions": {"billing": ["read"]}})
    body = http.get("/v1/permissions", headers=acme.headers()).json()
    assert body["areas"] == list(store.AREAS) and body["actions"] == list(store.ACTIONS)
    assert body["area_actions"]["connectors"] == ["read", "write", "publish"]
    assert body["area_actions"]["people"] == ["read", "write"]
    names = [r["name"] for r in body["roles"]]
    assert names[:6] == ["Owner", "Admin", "Developer", "Operator", "Viewer", "End User"]
    assert "Vocabulary" in names
    assert next(r for r in body["roles"] if r["id"] == "viewer")["permissions"]["secrets"] == ["read"]
    assert body["caller"]["id"] == "owner"
    assert "Vocabulary" not in [r["name"] for r in http.get("/v1/permissions", headers=globex.headers()).json()["roles"]]


def test_a_viewer_reads_but_cannot_change_people(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    viewer = acme.headers(key=key_with_role(http, acme, "viewer"))
    assert http.get("/v1/users", headers=viewer).status_code == 200
    assert http.get("/v1/permissions", headers=viewer).json()["caller"]["id"] == "viewer"
    writes = [
        ("POST", "/v1/users", {"email": "v@acme.test"}),
        ("POST", "/v1/roles", {"name": "V", "permissions": {}}),
        ("PATCH", "/v1/users/usr_x", {"name": "x"}),
        ("DELETE", "/v1/roles/rol_x", None),
    ]
    for method, path, body in writes:
        response = http.request(method, path, headers=viewer, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["permission"] == "people:write"
    end_user = acme.headers(key=key_with_role(http, acme, "end_user"))
    denied = http.get("/v1/users", headers=end_user)
    assert denied.status_code == 403 and denied.json()["permission"] == "people:read"


def test_nobody_grants_more_than_they_hold(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    operator = acme.headers(key=key_with_role(http, acme, "operator"))
    # Operators manage people but do not write connectors; owners do.
    escalate = http.post("/v1/users", headers=operator, json={"email": "boss@acme.test", "role": "owner"})
    assert escalate.status_code == 403 and escalate.json()["permission"] == "connectors:write"
    assert http.post("/v1/users", headers=operator, json={"email": "peer@acme.test", "role": "operator"}).status_code == 201
    role = http.post("/v1/roles", headers=operator, json={"name": "Publisher", "permissions": {"workflows": ["publish"]}})
    assert role.status_code == 403 and role.json()["permission"] == "workflows:publish"
    owner = invite(http, acme, "owner-user@acme.test", "owner")
    touch = http.patch(f"/v1/users/{owner['id']}", headers=operator, json={"status": "disabled"})
    assert touch.status_code == 403
    assert http.delete(f"/v1/users/{owner['id']}", headers=operator).status_code == 403


class _BoundMeanwhile:
    """A psycopg connection on which, right after the first lookup of a user by OIDC subject,
    a concurrent first sign-in of the same identity binds it (committed on another connection)."""

    def __init__(self, tx: Any, bind: Any) -> None:
        self._tx = tx
        self._bind = bind

    def execute(self, statement: str, params: Any = None) -> Any:
        cursor = self._tx.execute(statement, params)
        if statement.startswith("SELECT * FROM users WHERE org_id = %s AND oidc_subject") and self._bind is not None:
            bind, self._bind = self._bind, None
            bind()
        return cursor


def test_two_first_sign_ins_at_once_both_find_the_user(db: store.Database) -> None:
    tenant = make_tenant(db, "SignIn")
    org = tenant.org_id
    with db.tenant(org) as tx:
        invited = store.Users(tx).invite(org, "ada@example.com", "developer")

    def bind() -> None:
        with db.tenant(org) as other:
            assert store.Users(other).by_subject(org, "sub-ada", "ada@example.com")["id"] == invited["id"]

    with db.tenant(org) as tx:
        user = store.Users(_BoundMeanwhile(tx, bind)).by_subject(org, "sub-ada", "ada@example.com")
    assert user is not None and user["id"] == invited["id"] and user["status"] == "active"
