"""Values Postgres cannot store (a NUL, an unpaired surrogate): refused with 422 when a client sent
them, replaced when a third-party API did (the run is still recorded); any other database error
stays a server error."""

from __future__ import annotations


import httpx
import pytest

import store
from store.errors import ValueNotStorable
from support.platform import Tenant, make_tenant


@pytest.fixture(scope="module")
def acme(db: store.Database) -> Tenant:
    return make_tenant(db, "Acme")


def test_text_with_a_lone_surrogate_is_refused_with_422(http: httpx.Client, acme: Tenant, db: store.Database) -> None:
    headers = {**acme.headers(), "content-type": "application/json"}
    for raw in (b'{"name": "a", "metadata": {"k\\ud800": 1}}', b'{"name": "a", "metadata": {"k": "\\udfff"}}'):
        response = http.post("/v1/customers", headers=headers, content=raw)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "value_not_storable"
    with pytest.raises(ValueNotStorable), db.tenant(acme.org_id) as tx:
        store.Customers(tx).create(acme.org_id, name="bad \ud800", environment_id="dev")
    with pytest.raises(ValueNotStorable), db.tenant(acme.org_id) as tx:
        store.Customers(tx).create(acme.org_id, name="nul \x00", environment_id="dev")


def test_other_database_errors_stay_server_errors(db: store.Database, acme: Tenant) -> None:
    with pytest.raises(store.QueryFailed), db.tenant(acme.org_id) as tx:
        tx.execute("SELECT 1/0")
    with pytest.raises(store.QueryFailed) as refused, db.tenant(acme.org_id) as tx:
        tx.execute("DELETE FROM audit_log")  # the app role has no DELETE on the append-only log
    assert refused.value.sqlstate == "42501"


def test_a_run_whose_third_party_data_postgres_cannot_store_is_still_recorded(db: store.Database) -> None:
    # Outputs and traces hold what third-party APIs answered: a NUL or an unpaired surrogate
    # escape there must not leave the execution "running" forever.
    tenant = make_tenant(db, "Runs")
    spec = {"id": "review-wf", "name": "Review", "steps": []}
    with db.tenant(tenant.org_id) as tx:
        workflow = store.Workflows(tx).create(tenant.org_id, spec)
        started = store.Executions(tx).start(
            tenant.org_id, customer_id=tenant.customers[0], workflow_id=workflow["id"], version=0, dry_run=True, input={}
        )
    with db.tenant(tenant.org_id) as tx:
        finished = store.Executions(tx).finish(
            tenant.org_id, started["id"], status="failed",
            output={"name": "bad \x00 and \ud800", "k\udfff": ["\x00"]},
            error={"message": "answered \ud83d"}, trace=[{"body": "\x00"}],
        )
    assert finished["status"] == "failed"
    assert finished["output"] == {"name": "bad \ufffd and \ufffd", "k\ufffd": ["\ufffd"]}
    assert finished["error"] == {"message": "answered \ufffd"} and finished["trace"] == [{"body": "\ufffd"}]
    # A valid pair (an emoji) is kept.
    with db.tenant(tenant.org_id) as tx:
        kept = store.Executions(tx).finish(tenant.org_id, started["id"], status="completed", output={"e": "\U0001f600"})
    assert kept["output"] == {"e": "\U0001f600"}
