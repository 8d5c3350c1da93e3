"""List routes' cursors: a forged cursor is refused with 422 naming ``cursor``; issued ones page
through every sort without repeats."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

import store
from support.platform import Tenant, make_tenant

CONNECTOR = {
    "id": "listed",
    "name": "Listed",
    "base_url": "https://api.example.invalid",
    "auth": {"type": "bearer"},
    "actions": {"list": {"method": "GET", "path": "/things"}},
}


@pytest.fixture(scope="module")
def acme(db: store.Database, http: httpx.Client) -> Tenant:
    tenant = make_tenant(db, "Acme")
    # Something in the audit log to page through.
    created = http.post("/v1/connectors", headers=tenant.headers(), json={"spec": CONNECTOR})
    assert created.status_code == 201, created.text
    return tenant


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "sort", "cursor"),
    [
        ("/v1/customers", None, _cursor("-created_at", "not a time", "x")),
        ("/v1/customers", None, _cursor("-created_at", {"a": 1}, "x")),
        ("/v1/customers", None, _cursor("-created_at", [1, 2], "x")),
        ("/v1/customers", None, _cursor("-created_at", 5, "x")),
        ("/v1/customers", None, _cursor("-created_at", True, "x")),
        ("/v1/customers", None, _cursor("-created_at", None, "x")),
        ("/v1/customers", None, _cursor("-created_at", {"t": "garbage"}, "x")),
        ("/v1/customers", "name", _cursor("name", 10**30, "x")),
        ("/v1/audit-log", "id", _cursor("id", "abc", "x")),
        ("/v1/audit-log", "-at", _cursor("-at", {"t": "2026-01-01T00:00:00+00:00"}, "not-a-number")),
    ],
)
def test_a_forged_cursor_is_refused_with_422(http: httpx.Client, acme: Tenant, path: str, sort: str | None, cursor: str) -> None:
    params = {"cursor": cursor} | ({"sort": sort} if sort else {})
    response = http.get(path, headers=acme.headers(), params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "cursor"


def test_issued_cursors_still_page(http: httpx.Client, acme: Tenant) -> None:
    for sort in ("-created_at", "name", "id"):
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 1, "sort": sort}
        while True:
            page = http.get("/v1/customers", headers=acme.headers(), params=params)
            assert page.status_code == 200, page.text
            seen += [c["id"] for c in page.json()["items"]]
            if not page.json()["next_cursor"]:
                break
            params["cursor"] = page.json()["next_cursor"]
        assert len(seen) == len(set(seen)) >= 2
    audit = http.get("/v1/audit-log", headers=acme.headers(), params={"limit": 1, "sort": "id"}).json()
    if audit["next_cursor"]:
        following = http.get("/v1/audit-log", headers=acme.headers(), params={"limit": 1, "sort": "id", "cursor": audit["next_cursor"]})
        assert following.status_code == 200, following.text
