"""Hosted sandboxes through the API: connectors imported from the repository's documents get one
sandbox per organization, seeded, read and reset by the API; test-environment connections target
them (OAuth HubSpot included, with no real account) and the flagship runs end to end against
them, in-process, with the egress guard as strict as before for everything else."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import store
from support.platform import Tenant, app_database, client, make_tenant, running_platform
from support.seed import UNLIMITED
from switchboard import bootstrap
from test_flagship import CIN7_SEED, EXPECTED, HUBSPOT_SEED

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ROOT / "tests" / "data" / "openapi"
WORKFLOW = ROOT / "examples" / "hubspot-contacts-to-cin7.yaml"
WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    # No egress allow-list: loopback stays refused, and sandboxes need none.
    with running_platform(migrated_database_url) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def two(migrated_database_url: str, platform: str) -> tuple[Tenant, Tenant]:
    """Acme imported HubSpot and Cin7 from their documents and published both; Globex has nothing."""
    with app_database(migrated_database_url) as db:
        acme, globex = make_tenant(db, "Acme"), make_tenant(db, "Globex")
        acme.customers.append(bootstrap.create_customer(db, acme.org_id, "Acme live", environment="production")["id"])
    with client(platform) as http:
        for key, name in (("hubspot", "hubspot-crm-contacts-v3.json"), ("cin7", "cin7-core-v2-subset.yaml")):
            imported = http.post("/v1/connectors/import", headers=acme.headers(),
                                 json={"document": (DOCUMENTS / name).read_text(), "id": key})
            assert imported.status_code == 201, imported.text
            assert http.post(f"/v1/connectors/{key}/versions/1/publish", headers=acme.headers()).status_code == 200
        for customer in acme.customers[:1]:
            assert http.put(f"/v1/billing/customers/{customer}/overrides", headers=acme.headers(),
                            json=UNLIMITED).status_code == 200
    return acme, globex


def cin7_customers(http: httpx.Client, tenant: Tenant) -> dict[str, dict]:
    state = http.get("/v1/sandboxes/cin7/state", headers=tenant.headers())
    assert state.status_code == 200, state.text
    return {c["Name"]: {k: c.get(k) for k in ("ID", "Currency", "Contacts")} for c in state.json()["collections"]["/customer"]}


def finished(http: httpx.Client, tenant: Tenant, customer: str, execution_id: str, conninfo: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    with app_database(conninfo) as db:
        while True:
            with db.tenant(tenant.org_id) as tx:
                status = store.Executions(tx).get(tenant.org_id, execution_id)["status"]
            if status not in ("queued", "running") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    return http.get(f"/v1/executions/{execution_id}", headers=tenant.headers(customer)).json()


def test_the_flagship_runs_end_to_end_on_hosted_sandboxes(
    platform: str, two: tuple[Tenant, Tenant], migrated_database_url: str
) -> None:
    acme, _ = two
    customer = acme.customers[0]
    with client(platform) as http:
        for key, seed in (("hubspot", HUBSPOT_SEED), ("cin7", CIN7_SEED)):
            seeded = http.post(f"/v1/sandboxes/{key}/seed", headers=acme.headers(), json=seed)
            assert seeded.status_code == 200, seeded.text
            connection = http.post("/v1/connections", headers=acme.headers(customer),
                                   json={"connector": key, "target": "sandbox"})
            assert connection.status_code == 201, connection.text
            assert connection.json()["target"] == "sandbox" and connection.json()["has_credentials"]
        tested = http.post(f"/v1/connections/{connection.json()['id']}/test", headers=acme.headers(customer))
        assert tested.status_code == 200 and tested.json()["ok"], tested.text
        assert set(cin7_customers(http, acme)) == {"Robert Old", "Carol Jones", "Zed Unrelated"}

        # Instant, so the run is inline in the API's process, which holds the sandboxes' live records
        # (a durable worker in another process would start from the seed: runtime/_sandboxes.py).
        spec = yaml.safe_load(WORKFLOW.read_text()) | {"tier": "instant"}
        created = http.post("/v1/workflows", headers=acme.headers(), json={"spec": spec})
        assert created.status_code == 201, created.text
        assert http.post("/v1/workflows/hubspot-contacts-to-cin7-customers/publish", headers=acme.headers()).status_code == 201
        outputs = []
        for _ in range(2):
            started = http.post("/v1/workflows/hubspot-contacts-to-cin7-customers/runs", headers=acme.headers(customer),
                                json={"input": {"page_size": 2, "currency": "GBP"}})
            assert started.status_code in (201, 202), started.text
            execution = finished(http, acme, customer, started.json()["id"], migrated_database_url)
            assert execution["status"] in ("completed", "succeeded"), execution
            outputs.append(execution["output"])
            urls = {t["url"].split("/")[2] for t in execution["trace"]}
            assert urls == {"sandboxes.switchboard.invalid"}, urls
        got = cin7_customers(http, acme)
        assert set(got) == set(EXPECTED)
        for name, expected in EXPECTED.items():
            assert {k: v for k, v in got[name].items() if k in expected} == expected, name
        # The second run found everything in place.
        assert outputs[0]["created"] == 2 and outputs[0]["updated"] == 1, outputs[0]
        assert (outputs[1]["created"], outputs[1]["updated"]) == (0, 0), outputs[1]

        reset = http.post("/v1/sandboxes/cin7/reset", headers=acme.headers())
        assert reset.status_code == 200
        assert set(cin7_customers(http, acme)) == {"Robert Old", "Carol Jones", "Zed Unrelated"}

        # The sandbox's own API, for clients outside the platform, with the platform's key headers.
        api = f"/sandboxes/{acme.org_id}/cin7/api/ExternalApi/v2/customer"
        listed = http.get(api, headers=acme.headers() | {"api-auth-accountid": "a", "api-auth-applicationkey": "k"})
        assert listed.status_code == 200, listed.text
        assert {c["Name"] for c in listed.json()["CustomerList"]} == {"Robert Old", "Carol Jones", "Zed Unrelated"}
        assert http.get(api, headers=acme.headers()).status_code == 401  # the sandbox checks its own credentials


def test_another_organization_cannot_reach_the_sandbox(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    with client(platform) as http:
        for method, path in (("GET", "state"), ("GET", "describe"), ("POST", "reset"), ("POST", "seed")):
            answer = http.request(method, f"/v1/sandboxes/cin7/{path}", headers=globex.headers(),
                                  json={} if method == "POST" else None)
            assert answer.status_code == 404, (path, answer.text)
        hosted = http.get(f"/sandboxes/{acme.org_id}/cin7/api/ExternalApi/v2/customer", headers=globex.headers())
        assert hosted.status_code == 404
        assert http.get("/v1/sandboxes/cin7/state", headers=acme.headers()).status_code == 200


def test_a_bad_seed_is_refused_with_a_pointer_and_changes_nothing(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    with client(platform) as http:
        before = http.get("/v1/sandboxes/cin7/state", headers=acme.headers()).json()
        bad = http.post("/v1/sandboxes/cin7/seed", headers=acme.headers(), json={"/nowhere": [{"a": 1}]})
        assert bad.status_code == 422 and bad.json()["code"] == "sandbox_seed_invalid", bad.text
        assert bad.json()["pointer"] == "/~1nowhere"
        records = http.post("/v1/sandboxes/cin7/seed", headers=acme.headers(), json={"/customer": "Acme"})
        assert records.status_code == 422 and records.json()["pointer"] == "/~1customer", records.text
        assert http.get("/v1/sandboxes/cin7/state", headers=acme.headers()).json() == before


def test_production_connections_cannot_target_a_sandbox(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    live = acme.customers[-1]
    with client(platform) as http:
        refused = http.post("/v1/connections", headers=acme.headers(live), json={"connector": "cin7", "target": "sandbox"})
        assert refused.status_code == 422, refused.text
        assert (refused.json()["code"], refused.json()["pointer"]) == ("sandbox_target_refused", "/target")
        # A real credential is never stored for a sandbox connection.
        with_auth = http.post("/v1/connections", headers=acme.headers(acme.customers[1]), json={
            "connector": "cin7", "target": "sandbox",
            "auth": {"type": "api_key", "values": {"account_id": "real", "application_key": "real"}}})
        assert with_auth.status_code == 422 and with_auth.json()["pointer"] == "/auth", with_auth.text


def test_a_connector_not_imported_from_a_document_has_no_sandbox(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    spec = {"id": "handmade", "base_url": "http://127.0.0.1:9/api", "auth": {"type": "none"},
            "actions": {"ping": {"method": "GET", "path": "/ping"}}}
    with client(platform) as http:
        assert http.post("/v1/connectors", headers=acme.headers(), json={"spec": spec}).status_code == 201
        answer = http.get("/v1/sandboxes/handmade/state", headers=acme.headers())
        assert answer.status_code == 409 and answer.json()["code"] == "sandbox_unavailable", answer.text
        # An ordinary connection to a loopback API is still refused by the egress guard.
        connection = http.post("/v1/connections", headers=acme.headers(acme.customers[0]),
                               json={"connector": "handmade", "auth": {"type": "none"}})
        assert connection.status_code == 201, connection.text
        tested = http.post(f"/v1/connections/{connection.json()['id']}/test", headers=acme.headers(acme.customers[0]))
        assert tested.status_code == 200 and not tested.json()["ok"], tested.text
        assert "127.0.0.1" in tested.json()["detail"] and "egress" in tested.json()["detail"].lower(), tested.json()


def test_a_mounted_view_routes_only_its_prefix_and_keeps_the_guard() -> None:
    import asyncio

    from engine.errors import EgressDenied
    from engine.http import NO_RETRY, HttpClient

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    async def go() -> None:
        base = HttpClient()
        view = base.mounted({"https://sandboxes.switchboard.invalid/org_a/cin7": httpx.MockTransport(answer)})
        try:
            ok = await view.request("GET", "https://sandboxes.switchboard.invalid/org_a/cin7/customer")
            assert ok.status_code == 200 and seen == ["https://sandboxes.switchboard.invalid/org_a/cin7/customer"]
            for url in ("http://127.0.0.1:9/x", "http://127.0.0.1:9/org_a/cin7/customer", "http://[::1]:9/org_a/cin7"):
                with pytest.raises(EgressDenied):
                    await view.request("GET", url)
            # A sibling path is not under the prefix, and the base client never routes in-process.
            for client_, url in ((view, "https://sandboxes.switchboard.invalid/org_a/cin7x/customer"),
                                 (base, "https://sandboxes.switchboard.invalid/org_a/cin7/customer")):
                with pytest.raises(Exception) as refused:
                    await client_.request("GET", url, retry=NO_RETRY)
                assert type(refused.value).__module__.startswith("engine"), refused.value
            assert len(seen) == 1
        finally:
            await base.aclose()

    asyncio.run(go())
