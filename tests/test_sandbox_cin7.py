"""The Cin7 Core subset: customers created, paged with Page/Limit, updated by ID in the body, filtered, seeded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from support.sandbox import assert_matches_document, load_spec, running_sandbox

from engine.errors import SandboxSetupError
from engine.sandbox import Sandbox, StepClock

DOC = "cin7-core-v2-subset.yaml"
AUTH = {"api-auth-accountid": "acct", "api-auth-applicationkey": "key"}


@pytest.fixture(scope="module")
def document():
    return load_spec(DOC)


def test_create_list_pages_update_and_filter(document) -> None:
    with running_sandbox(document) as server:
        assert server.base_url.endswith("/ExternalApi/v2")
        client = httpx.Client(base_url=server.base_url, headers=AUTH)
        ids = []
        for name, email in (("Acme", "ops@acme.test"), ("Globex", "it@globex.test"), ("Initech", "hi@initech.test")):
            created = client.post("/customer", json={"Name": name, "Currency": "USD", "Contacts": [{"Email": email}]})
            assert created.status_code == 200, created.text
            assert_matches_document(document, "POST", "/customer", 200, created.json())
            # Cin7 answers a create with the list envelope holding the one new customer
            body = created.json()
            assert body["Total"] == 1 and len(body["CustomerList"]) == 1
            customer = body["CustomerList"][0]
            assert customer["Name"] == name and customer["Contacts"] == [{"Email": email}]
            ids.append(customer["ID"])
        assert len(set(ids)) == 3

        first = client.get("/customer", params={"Page": 1, "Limit": 2})
        second = client.get("/customer", params={"Page": 2, "Limit": 2})
        for page in (first, second):
            assert page.status_code == 200
            assert_matches_document(document, "GET", "/customer", 200, page.json())
        assert [c["Name"] for c in first.json()["CustomerList"]] == ["Acme", "Globex"]
        assert [c["Name"] for c in second.json()["CustomerList"]] == ["Initech"]
        assert first.json()["Total"] == second.json()["Total"] == 3
        assert (first.json()["Page"], second.json()["Page"]) == (1, 2)
        assert client.get("/customer", params={"Page": 3, "Limit": 2}).json()["CustomerList"] == []

        updated = client.put("/customer", json={"ID": ids[1], "Name": "Globex Corporation", "Currency": "USD"})
        assert updated.status_code == 200, updated.text
        assert_matches_document(document, "PUT", "/customer", 200, updated.json())
        record = updated.json()["CustomerList"][0]
        assert record["ID"] == ids[1] and record["Name"] == "Globex Corporation"
        assert record["Contacts"] == [{"Email": "it@globex.test"}], "an update keeps fields it does not name"

        by_name = client.get("/customer", params={"Name": "Globex Corporation"}).json()
        assert [c["ID"] for c in by_name["CustomerList"]] == [ids[1]]
        by_id = client.get("/customer", params={"ID": ids[2]}).json()
        assert [c["Name"] for c in by_id["CustomerList"]] == ["Initech"]

        missing = client.put("/customer", json={"ID": "00000000-0000-4000-8000-000000000000", "Name": "X", "Currency": "USD"})
        assert missing.status_code == 404
        no_id = client.put("/customer", json={"Name": "X", "Currency": "USD"})
        assert no_id.status_code == 422 and {"in": "body", "reason": "'ID' is a required property", "pointer": "/ID"} \
            in no_id.json()["error"]["problems"]
        bad_id = client.put("/customer", json={"ID": "not-a-uuid", "Name": "X", "Currency": "USD"})
        assert bad_id.status_code == 422 and bad_id.json()["error"]["problems"][0]["pointer"] == "/ID"

        state = httpx.get(server.admin_url + "/state").json()["collections"]
        assert [c["Name"] for c in state["/customer"]] == ["Acme", "Globex Corporation", "Initech"]


def test_timestamps_come_from_the_injected_clock(document) -> None:
    from datetime import datetime, timezone

    moments = iter([datetime(2030, 5, 1, 12, 0, tzinfo=timezone.utc), datetime(2030, 5, 2, 12, 0, tzinfo=timezone.utc)])
    with running_sandbox(document, clock=lambda: next(moments)) as server:
        client = httpx.Client(base_url=server.base_url, headers=AUTH)
        created = client.post("/customer", json={"Name": "Acme", "Currency": "USD"}).json()["CustomerList"][0]
        assert created["LastModifiedOn"] == "2030-05-01T12:00:00Z"
        updated = client.put("/customer", json={"ID": created["ID"], "Name": "Acme 2", "Currency": "USD"}).json()
        assert updated["CustomerList"][0]["LastModifiedOn"] == "2030-05-02T12:00:00Z"


def test_seed_file_preloads_and_reset_restores(document, tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "/customer:\n"
        "  - {ID: 6f9d3c1e-0000-4000-8000-000000000001, Name: Seeded One, Currency: NZD,"
        " Contacts: [{Email: one@seed.test}]}\n"
        "  - {Name: Seeded Two, Currency: AUD}\n"
        "product:\n"
        "  - {SKU: SKU-1, Name: Widget}\n"
    )
    with running_sandbox(document, seed=seed) as server:
        client = httpx.Client(base_url=server.base_url, headers=AUTH)
        listed = client.get("/customer").json()
        assert_matches_document(document, "GET", "/customer", 200, listed)
        assert [c["Name"] for c in listed["CustomerList"]] == ["Seeded One", "Seeded Two"]
        assert listed["CustomerList"][0]["ID"] == "6f9d3c1e-0000-4000-8000-000000000001"
        assert listed["CustomerList"][1]["ID"], "a seeded record without an id gets one"
        assert [p["SKU"] for p in client.get("/product").json()["Products"]] == ["SKU-1"]

        client.post("/customer", json={"Name": "New", "Currency": "USD"})
        assert client.get("/customer").json()["Total"] == 3
        reset = httpx.post(server.admin_url + "/reset")
        assert reset.status_code == 200
        assert client.get("/customer").json()["Total"] == 2
        # the base-path spelling of the admin routes works too
        assert httpx.get(server.base_url + "/__sandbox/state").json()["collections"]["/customer"][0]["Name"] == "Seeded One"

    # the same seed as JSON, keyed with the base path included
    as_json = tmp_path / "seed.json"
    as_json.write_text(json.dumps({"/ExternalApi/v2/customer": [{"Name": "J", "Currency": "EUR"}]}))
    assert [c["Name"] for c in Sandbox(document, seed=as_json).state()["/customer"]] == ["J"]


def test_seed_errors_name_the_place(document, tmp_path: Path) -> None:
    with pytest.raises(SandboxSetupError) as unknown:
        Sandbox(document, seed={"/orders": [{"x": 1}]})
    assert "/~1orders" in str(unknown.value) and "/customer" in str(unknown.value)
    with pytest.raises(SandboxSetupError) as bad_record:
        Sandbox(document, seed={"/customer": [{"Name": "Ok", "Currency": "USD"}, {"Name": 5, "Currency": "USD"}]})
    assert "/~1customer/1/Name" in str(bad_record.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("/customer: [unclosed\n")
    with pytest.raises(SandboxSetupError, match="not valid YAML or JSON"):
        Sandbox(document, seed=broken)
    with pytest.raises(SandboxSetupError, match="list of records"):
        Sandbox(document, seed={"/customer": "nope"})


def test_read_only_sale_list_is_virtual_and_deterministic(document) -> None:
    with running_sandbox(document) as server:
        client = httpx.Client(base_url=server.base_url, headers=AUTH)
        first = client.get("/saleList")
        assert first.status_code == 200
        assert_matches_document(document, "GET", "/saleList", 200, first.json())
        assert first.json()["Total"] == 2 and len(first.json()["SaleList"]) == 2
        assert client.get("/saleList").json() == first.json()
    with running_sandbox(document) as again:
        client = httpx.Client(base_url=again.base_url, headers=AUTH)
        assert client.get("/saleList").json() == first.json()


def test_sales_changed_in_the_app_move_their_stamp_and_filter_by_updated_since(document) -> None:
    # Stamps after the synthesised sales' dates, as a live account's would be.
    with running_sandbox(document, clock=StepClock(datetime(2030, 1, 1, tzinfo=UTC))) as server:
        client = httpx.Client(base_url=server.base_url, headers=AUTH)
        admin = server.base_url + "/__sandbox/change"
        created = client.post(admin, json={"collection": "/saleList", "record": {"OrderNumber": "SO-1", "Status": "ORDERED"}})
        assert created.status_code == 200, created.text
        sale = created.json()["record"]
        synthesised = client.get("/saleList").json()["SaleList"]
        # A new sale does not take the place of a synthesised one.
        assert len(synthesised) == 3 and sale["SaleID"] in {s["SaleID"] for s in synthesised}

        since = client.get("/saleList", params={"UpdatedSince": sale["Updated"]}).json()
        assert_matches_document(document, "GET", "/saleList", 200, since)
        # Inclusive: the sale stamped exactly at the cursor is there again.
        assert sale["SaleID"] in [s["SaleID"] for s in since["SaleList"]]

        changed = client.post(admin, json={"collection": "/saleList",
                                           "record": {"SaleID": sale["SaleID"], "Status": "INVOICED"}}).json()["record"]
        assert changed["Updated"] > sale["Updated"] and changed["OrderNumber"] == "SO-1"
        later = client.get("/saleList", params={"UpdatedSince": changed["Updated"]}).json()["SaleList"]
        assert [(s["SaleID"], s["Status"]) for s in later] == [(sale["SaleID"], "INVOICED")]
        assert client.get("/saleList", params={"UpdatedSince": "2999-01-01T00:00:00Z"}).json()["SaleList"] == []

        bad = client.post(admin, json={"collection": "/nowhere", "record": {}})
        assert bad.status_code == 422
        unfit = client.post(admin, json={"collection": "/saleList", "record": {"InvoiceAmount": "lots"}})
        assert unfit.status_code == 422 and "/record/InvoiceAmount" in unfit.json()["error"]["message"]
