"""Audit entries and idempotency records commit in the transaction of the change they describe
(api/_route.py): concurrent retries of one creation, entries of multi-step requests, failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import store
from support.platform import Tenant, make_tenant, running_platform

CONCURRENT = 8


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def tenant(db: store.Database) -> Tenant:
    return make_tenant(db, "Units", customers=1)


def _audit(db: store.Database, org_id: str, action: str) -> list[dict[str, Any]]:
    with db.tenant(org_id) as tx:
        return list(tx.execute(
            "SELECT resource_id, outcome, status, error_code, detail FROM audit_log WHERE org_id = %s AND action = %s"
            " ORDER BY id", (org_id, action),
        ))


# Secrets have unique names: the later requests fail on the name the first one took. Customers
# have none: the later requests create theirs, then find the key taken when recording it.
CREATIONS = {
    "secret": ("/v1/secrets", {"name": "together", "value": "v", "environment": "dev"}),
    "customer": ("/v1/customers", {"name": "Together"}),
}


@pytest.mark.parametrize("kind", sorted(CREATIONS))
def test_concurrent_requests_with_one_key_create_once_and_all_get_its_response(
    platform: str, tenant: Tenant, db: store.Database, kind: str
) -> None:
    path, body = CREATIONS[kind]
    barrier = threading.Barrier(CONCURRENT)
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=platform, timeout=30) as http:
            barrier.wait()
            answers.append(http.post(path, headers=tenant.headers() | {"Idempotency-Key": f"together-{kind}"}, json=body))

    threads = [threading.Thread(target=send) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * CONCURRENT, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") != "true" for a in answers) == 1
    entries = [e for e in _audit(db, tenant.org_id, f"{kind}.create") if e["outcome"] == "success"]
    assert [(e["resource_id"], e["status"]) for e in entries] == [(answers[0].json()["id"], 201)]
    if kind == "customer":
        with db.tenant(tenant.org_id) as tx:
            count = tx.execute("SELECT count(*) AS n FROM customers WHERE org_id = %s AND name = 'Together'",
                               (tenant.org_id,)).fetchone()["n"]
        assert count == 1


def test_a_failed_request_is_audited_and_leaves_no_stored_response(platform: str, tenant: Tenant, db: store.Database) -> None:
    headers = tenant.headers() | {"Idempotency-Key": "twice"}
    with httpx.Client(base_url=platform, timeout=30) as http:
        body = {"name": "dup", "value": "v", "environment": "dev"}
        assert http.post("/v1/secrets", headers=tenant.headers(), json=body).status_code == 201
        refused = http.post("/v1/secrets", headers=headers, json=body)
        assert refused.status_code == 409
        # The key was not used up by the failure: the same request is refused again, not replayed.
        again = http.post("/v1/secrets", headers=headers, json=body)
        assert again.status_code == 409 and "Idempotent-Replayed" not in again.headers
    errors = [e for e in _audit(db, tenant.org_id, "secret.create") if e["outcome"] == "error"]
    assert [(e["error_code"], e["status"]) for e in errors][-2:] == [("conflict", 409)] * 2


def test_a_run_has_one_entry_naming_its_execution(platform: str, tenant: Tenant, db: store.Database) -> None:
    """An async handler commits in steps (the execution starts, runs, finishes): the first step
    that changes something carries the entry, and the request has no other."""
    customer = tenant.customers[0]
    with httpx.Client(base_url=platform, timeout=30) as http:
        spec = {"spec": {"id": "compute", "tier": "instant", "steps": [{"id": "a", "map": {"n": "{{ 1 + 1 }}"}}]}}
        assert http.post("/v1/workflows", headers=tenant.headers(), json=spec).status_code == 201
        assert http.post("/v1/workflows/compute/publish", headers=tenant.headers()).status_code == 201
        run = http.post("/v1/workflows/compute/runs", headers=tenant.headers(customer), json={"input": {}})
        assert run.status_code == 201, run.text
    entries = _audit(db, tenant.org_id, "execution.create")
    # Named by the path's workflow reference, as every entry of a route with a path id is.
    assert [(e["resource_id"], e["outcome"]) for e in entries] == [("compute", "success")]
    assert entries[0]["detail"]["committed"] == "before the response"
