"""Workflows through the API: drafts, validation with JSON pointers, publish, versions, deploy,
triggers, and runs for a customer (real and dry) against a Cin7 sandbox; executions, their
isolation between organizations and between customers, and no credential or secret in them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import store
from support.platform import Tenant, client, make_tenant, running_platform
from support.seed import UNLIMITED
from support.sandbox import running_sandbox
from switchboard import bootstrap

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "acct-5e1d-secret-account-id"
APP_KEY = "appkey-93b2-secret-application-key"
NOTE = "note-6a0c-secret-value"
SEED = {"/customer": [{"ID": "6f1c6a52-0000-4000-8000-000000000001", "Name": "Existing", "Currency": "NZD"}]}

WORKFLOW: dict[str, Any] = {
    "id": "add-customer",
    "name": "Add a Cin7 customer",
    "tier": "instant",
    "input": {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}}, "required": ["name"],
              "additionalProperties": False},
    "steps": [
        {"id": "existing", "action": "cin7.list_customers", "input": {"Limit": 50}},
        {"id": "create", "action": "cin7.create_customer",
         "input": {"body": {"Name": "{{ input.name }}", "Currency": "USD", "Comments": "{{ secrets.note }}"}}},
    ],
    "output": {"before": "{{ $count(steps.existing.items) }}", "created": "{{ steps.create }}"},
}


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def cin7():
    with running_sandbox("cin7-core-v2-subset.yaml", seed=SEED) as server:
        yield server


@pytest.fixture(scope="module")
def two(db: store.Database, platform: str, cin7) -> tuple[Tenant, Tenant]:
    """Acme has the cin7 connector (published, pointed at the sandbox), a connection for its
    first customer and a secret in dev; Globex has nothing."""
    acme, globex = make_tenant(db, "Acme"), make_tenant(db, "Globex")
    spec = yaml.safe_load((ROOT / "examples" / "connectors" / "cin7.yaml").read_text())
    spec |= {"base_url": cin7.base_url, "events": {"customer_created": {"kind": "webhook"}}}
    with client(platform) as http:
        assert http.post("/v1/connectors", headers=acme.headers(), json={"spec": spec}).status_code == 201
        assert http.post("/v1/connectors/cin7/versions/1/publish", headers=acme.headers()).status_code == 200
        connection = http.post(
            "/v1/connections", headers=acme.headers(acme.customers[0]),
            json={"connector": "cin7", "auth": {"type": "api_key", "values": {"account_id": ACCOUNT, "application_key": APP_KEY}}},
        )
        assert connection.status_code == 201, connection.text
        secret = http.post("/v1/secrets", headers=acme.headers(), json={"name": "note", "value": NOTE, "environment": "dev"})
        assert secret.status_code == 201, secret.text
    return acme, globex


@pytest.fixture(scope="module")
def published(platform: str, two: tuple[Tenant, Tenant]) -> dict[str, Any]:
    """``add-customer`` published as version 1."""
    acme, _ = two
    with client(platform) as http:
        created = http.post("/v1/workflows", headers=acme.headers(), json={"spec": WORKFLOW})
        assert created.status_code == 201, created.text
        assert http.post("/v1/workflows/add-customer/publish", headers=acme.headers()).status_code == 201
    return created.json()


def customers(server) -> list[str]:
    return [c["Name"] for c in httpx.get(server.admin_url + "/state").json()["collections"]["/customer"]]


def run(http: httpx.Client, tenant: Tenant, customer: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return http.post("/v1/workflows/add-customer/runs", headers=tenant.headers(customer, key=key), json=body)


# -- workflows ------------------------------------------------------------------------------------------------


def test_create_draft_from_json_and_yaml(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    spec = {**WORKFLOW, "id": "drafted", "tier": "long"}
    with client(platform) as http:
        created = http.post("/v1/workflows", headers=acme.headers(), json={"spec": spec})
        assert created.status_code == 201, created.text
        workflow = created.json()
        assert (workflow["key"], workflow["type"], workflow["status"], workflow["latest_version"]) == ("drafted", "long", "draft", None)
        assert workflow["draft"]["steps"][1]["id"] == "create" and workflow["deployments"] == []
        from_yaml = http.post("/v1/workflows", headers=acme.headers(), json={"spec_yaml": yaml.safe_dump({**spec, "id": "yamled"})})
        assert from_yaml.status_code == 201 and from_yaml.json()["type"] == "long"
        assert http.post("/v1/workflows", headers=acme.headers(), json={"spec": spec}).json()["field"] == "key"
        assert http.get(f"/v1/workflows/{workflow['id']}", headers=globex.headers()).status_code == 404
        assert http.get("/v1/workflows/drafted", headers=globex.headers()).status_code == 404
        listed = http.get("/v1/workflows", headers=acme.headers(), params={"type": "long", "sort": "key"}).json()["items"]
        assert [w["key"] for w in listed] == ["drafted", "yamled"] and "draft" not in listed[0]
        assert http.get("/v1/workflows", headers=acme.headers(), params={"q": "yaml"}).json()["items"][0]["key"] == "yamled"
        assert http.get("/v1/workflows", headers=globex.headers()).json()["items"] == []


def test_invalid_workflow_specs_name_the_json_pointer(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    bad = {**WORKFLOW, "id": "bad", "tier": "quick",
           "steps": [{"id": "a", "action": "no-dot"}, {"id": "b", "map": {}, "filter": {"items": "x", "where": "y"}}]}
    with client(platform) as http:
        response = http.post("/v1/workflows", headers=acme.headers(), json={"spec": bad})
        assert response.status_code == 422
        pointers = {e["pointer"] for e in response.json()["errors"]}
        assert {"/tier", "/steps/0/action", "/steps/1"} <= pointers, pointers
        empty = http.post("/v1/workflows", headers=acme.headers(), json={"spec": {"id": "empty", "steps": []}})
        assert empty.status_code == 422 and empty.json()["pointer"] == "/steps"


def test_validate_reports_problems_without_saving(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    broken = {**WORKFLOW, "id": "validated", "steps": [
        {"id": "existing", "action": "cin7.list_customers"},
        {"id": "create", "action": "cin7.delete_everything", "input": {"x": "{{ steps.nowhere.id }}"}},
        {"id": "other", "action": "hubspot.list_contacts"},
    ]}
    with client(platform) as http:
        workflow = http.post("/v1/workflows", headers=acme.headers(), json={"spec": broken}).json()
        checked = http.post(f"/v1/workflows/{workflow['id']}/validate", headers=acme.headers())
        assert checked.status_code == 200, checked.text
        result = checked.json()
        assert result["valid"] is False
        pointers = {p["pointer"] for p in result["problems"]}
        assert {"/steps/1/action", "/steps/1/input/x", "/steps/2/action"} <= pointers, result
        proposed = http.post(f"/v1/workflows/{workflow['id']}/validate", headers=acme.headers(),
                             json={"spec": {**WORKFLOW, "id": "validated"}})
        assert proposed.json() == {"valid": True, "problems": []}
        unparsable = http.post(f"/v1/workflows/{workflow['id']}/validate", headers=acme.headers(),
                               json={"spec_yaml": "id: validated\nsteps: 3\n"})
        assert unparsable.json()["valid"] is False and unparsable.json()["problems"][0]["pointer"] == "/steps"
        # Nothing was saved, and publishing the broken draft is refused with the same pointers.
        assert http.get(f"/v1/workflows/{workflow['id']}", headers=acme.headers()).json()["draft"]["steps"][1]["action"] == "cin7.delete_everything"
        refused = http.post(f"/v1/workflows/{workflow['id']}/publish", headers=acme.headers())
        assert refused.status_code == 422 and refused.json()["pointer"] in pointers
        assert http.post(f"/v1/workflows/{workflow['id']}/validate", headers=globex.headers()).status_code == 404


def test_publish_versions_and_immutability(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    spec = {**WORKFLOW, "id": "versioned"}
    with client(platform) as http:
        workflow = http.post("/v1/workflows", headers=acme.headers(), json={"spec": spec}).json()
        base = f"/v1/workflows/{workflow['id']}"
        v1 = http.post(f"{base}/publish", headers=acme.headers())
        assert v1.status_code == 201 and v1.json()["version"] == 1 and v1.json()["spec"]["version"] == 1
        unchanged = http.post(f"{base}/publish", headers=acme.headers())
        assert unchanged.status_code == 409 and unchanged.json()["field"] == "draft"
        renamed = http.put(f"{base}/draft", headers=acme.headers(), json={"spec": {**spec, "id": "other"}})
        assert renamed.status_code == 422 and renamed.json()["field"] == "spec/id"
        changed = http.put(f"{base}/draft", headers=acme.headers(), json={"spec": {**spec, "name": "Second", "tier": "standard"}})
        assert changed.status_code == 200 and changed.json()["type"] == "standard" and changed.json()["name"] == "Second"
        assert http.post(f"{base}/publish", headers=acme.headers()).json()["version"] == 2
        # v1 is what was published then: the draft change did not touch it, and no route changes a version.
        assert http.get(f"{base}/versions/1", headers=acme.headers()).json()["spec"]["name"] == WORKFLOW["name"]
        assert http.put(f"{base}/versions/1", headers=acme.headers(), json={"spec": spec}).status_code == 405
        assert http.delete(f"{base}/versions/1", headers=acme.headers()).status_code == 405
        listed = http.get(f"{base}/versions", headers=acme.headers()).json()["items"]
        assert [v["version"] for v in listed] == [2, 1] and "spec" not in listed[0]
        detail = http.get(base, headers=acme.headers()).json()
        assert (detail["status"], detail["latest_version"]) == ("published", 2)
        assert http.get(f"{base}/versions/3", headers=acme.headers()).status_code == 404
        for method, path in (("GET", f"{base}/versions"), ("GET", f"{base}/versions/1"), ("POST", f"{base}/publish"),
                             ("DELETE", base)):
            assert http.request(method, path, headers=globex.headers()).status_code == 404, (method, path)
        assert http.put(f"{base}/draft", headers=globex.headers(), json={"spec": spec}).status_code == 404


def test_deploy_undeploy_and_delete(platform: str, db: store.Database, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    spec = {**WORKFLOW, "id": "deployed"}
    _, operator = bootstrap.create_api_key(db, acme.org_id, "operator", role_id="operator")
    with client(platform) as http:
        http.post("/v1/workflows", headers=acme.headers(), json={"spec": spec})
        assert http.post("/v1/workflows/deployed/publish", headers=acme.headers()).status_code == 201
        deployed = http.post("/v1/workflows/deployed/deploy", headers=acme.headers(), json={"version": 1, "environment": "staging"})
        assert deployed.status_code == 200, deployed.text
        assert (deployed.json()["environment_slug"], deployed.json()["version"]) == ("staging", 1)
        assert http.post("/v1/workflows/deployed/deploy", headers=acme.headers(), json={"version": 7}).status_code == 404
        nowhere = http.post("/v1/workflows/deployed/deploy", headers=acme.headers(), json={"version": 1, "environment": "moon"})
        assert nowhere.status_code == 404 and nowhere.json()["resource"] == "environment"
        assert http.post("/v1/workflows/deployed/deploy", headers=acme.headers(key=operator), json={"version": 1}).status_code == 403
        assert http.post("/v1/workflows/deployed/deploy", headers=globex.headers(), json={"version": 1}).status_code == 404
        assert [d["environment_slug"] for d in http.get("/v1/workflows/deployed", headers=acme.headers()).json()["deployments"]] == ["staging"]
        in_use = http.delete("/v1/workflows/deployed", headers=acme.headers())
        assert in_use.status_code == 409 and "staging" in in_use.json()["detail"]
        assert http.delete("/v1/workflows/deployed/deployments/staging", headers=acme.headers()).status_code == 204
        assert http.delete("/v1/workflows/deployed/deployments/staging", headers=acme.headers()).status_code == 404
        assert http.delete("/v1/workflows/deployed", headers=acme.headers(), params={"archive": "true"}).status_code == 204
        assert http.get("/v1/workflows/deployed", headers=acme.headers()).json()["status"] == "archived"
        assert http.post("/v1/workflows/deployed/deploy", headers=acme.headers(), json={"version": 1}).status_code == 409
        assert http.delete("/v1/workflows/deployed", headers=acme.headers()).status_code == 204
        assert http.get("/v1/workflows/deployed", headers=acme.headers()).status_code == 404


# -- triggers -------------------------------------------------------------------------------------------------


def test_triggers(platform: str, two: tuple[Tenant, Tenant], published: dict[str, Any]) -> None:
    acme, globex = two
    base = "/v1/workflows/add-customer/triggers"
    with client(platform) as http:
        hook = http.post(base, headers=acme.headers(), json={"kind": "webhook", "customer": acme.customers[0]})
        assert hook.status_code == 201, hook.text
        created = hook.json()
        secret = created["signing_secret"]
        assert secret.startswith("whsec_") and created["config"]["path"] == f"/v1/hooks/{acme.org_id}/{created['id']}"
        assert created["config"]["customer"] == acme.customers[0]
        no_customer = http.post(base, headers=acme.headers(), json={"kind": "webhook"})
        assert no_customer.status_code == 422 and no_customer.json()["errors"][0]["pointer"] == "/body/webhook/customer"
        foreign_customer = http.post(base, headers=acme.headers(), json={"kind": "webhook", "customer": globex.customers[0]})
        assert foreign_customer.status_code == 422 and foreign_customer.json()["pointer"] == "/customer"
        bad_filter = http.post(base, headers=acme.headers(), json={"kind": "webhook", "customer": acme.customers[0],
                                                                  "filter": "payload.("})
        assert bad_filter.status_code == 422 and bad_filter.json()["pointer"] == "/filter"
        hubspot_without_secret = http.post(base, headers=acme.headers(), json={
            "kind": "webhook", "customer": acme.customers[0], "signature": "hubspot_v3"})
        assert hubspot_without_secret.status_code == 422 and hubspot_without_secret.json()["pointer"] == "/signing_secret"
        shown = http.get(f"/v1/triggers/{created['id']}", headers=acme.headers())
        assert secret not in shown.text and "signing_secret\"" not in shown.text
        assert shown.json()["config"]["signing_secret_hint"].endswith(secret[-4:])

        schedule = http.post(base, headers=acme.headers(), json={"kind": "schedule", "cron": "*/15 * * * *", "timezone": "Europe/Berlin"})
        assert schedule.status_code == 201 and schedule.json()["config"] == {"cron": "*/15 * * * *", "timezone": "Europe/Berlin"}
        assert schedule.json()["signing_secret"] is None
        bad_cron = http.post(base, headers=acme.headers(), json={"kind": "schedule", "cron": "every day"})
        assert bad_cron.status_code == 422 and bad_cron.json()["pointer"] == "/cron"
        bad_zone = http.post(base, headers=acme.headers(), json={"kind": "schedule", "cron": "0 * * * *", "timezone": "Mars/Base"})
        assert bad_zone.status_code == 422 and bad_zone.json()["pointer"] == "/timezone"

        event = http.post(base, headers=acme.headers(), json={"kind": "app_event", "connector": "cin7", "event": "customer_created"})
        assert event.status_code == 201, event.text
        unknown_event = http.post(base, headers=acme.headers(), json={"kind": "app_event", "connector": "cin7", "event": "order_shipped"})
        assert unknown_event.status_code == 422 and unknown_event.json()["pointer"] == "/event"
        assert "customer_created" in unknown_event.json()["detail"]
        unknown_connector = http.post(base, headers=acme.headers(), json={"kind": "app_event", "connector": "nope", "event": "x"})
        assert unknown_connector.status_code == 422 and unknown_connector.json()["pointer"] == "/connector"
        assert http.post(base, headers=acme.headers(), json={"kind": "carrier_pigeon"}).status_code == 422

        path = f"/v1/triggers/{schedule.json()['id']}"
        patched = http.patch(path, headers=acme.headers(), json={"enabled": False, "cron": "0 6 * * 1"})
        assert patched.status_code == 200 and patched.json()["enabled"] is False
        assert patched.json()["config"] == {"cron": "0 6 * * 1", "timezone": "Europe/Berlin"}
        assert http.patch(path, headers=acme.headers(), json={"cron": "61 * * * *"}).json()["pointer"] == "/cron"
        foreign = http.patch(path, headers=acme.headers(), json={"event": "customer_created"})
        assert foreign.status_code == 422 and foreign.json()["field"] == "event"
        paused_hook = http.patch(f"/v1/triggers/{created['id']}", headers=acme.headers(), json={"enabled": False})
        assert paused_hook.json()["config"]["path"] == created["config"]["path"]

        listed = http.get(base, headers=acme.headers()).json()["items"]
        assert {t["kind"] for t in listed} == {"webhook", "schedule", "app_event"}
        assert secret not in json.dumps(listed)
        disabled = http.get(base, headers=acme.headers(), params={"enabled": "false"}).json()["items"]
        assert sorted(t["kind"] for t in disabled) == ["schedule", "webhook"]
        for method in ("GET", "DELETE"):
            assert http.request(method, path, headers=globex.headers()).status_code == 404
        assert http.patch(path, headers=globex.headers(), json={"enabled": True}).status_code == 404
        assert http.get(base, headers=globex.headers()).status_code == 404
        assert http.post(base, headers=globex.headers(), json={"kind": "webhook", "customer": globex.customers[0]}).status_code == 404
        assert http.delete(path, headers=acme.headers()).status_code == 204
        assert http.get(path, headers=acme.headers()).status_code == 404


# -- runs and executions --------------------------------------------------------------------------------------


def test_run_now_real_and_dry(platform: str, two: tuple[Tenant, Tenant], published: dict[str, Any], cin7) -> None:
    acme, _ = two
    customer = acme.customers[0]
    with client(platform) as http:
        before = customers(cin7)
        dry = run(http, acme, customer, {"input": {"name": "Dry Ada"}, "dry_run": True})
        assert dry.status_code == 201, dry.text
        execution = dry.json()
        assert (execution["status"], execution["dry_run"], execution["version"]) == ("completed", True, 1)
        assert customers(cin7) == before  # nothing was written
        methods = {(t["method"], t["sent"]) for t in execution["trace"]}
        assert methods == {("GET", True), ("POST", False)} and all(t["dry_run"] for t in execution["trace"])
        created = execution["output"]["created"]
        assert created["Name"] == "Dry Ada" and created["id"].startswith("dry-run-")
        assert created["Comments"] == "[secret:note]"

        real = run(http, acme, customer, {"input": {"name": "Real Grace"}})
        assert real.status_code == 201, real.text
        assert (real.json()["status"], real.json()["dry_run"], real.json()["version"]) == ("completed", False, 1)
        assert customers(cin7) == before + ["Real Grace"]
        assert {t["method"] for t in real.json()["trace"]} == {"GET", "POST"}
        assert all(t["status"] in (200, 201) for t in real.json()["trace"])
        stored_comment = httpx.get(cin7.admin_url + "/state").json()["collections"]["/customer"][-1]["Comments"]
        assert stored_comment == NOTE  # the app got the secret; the execution shows only its name
        assert "[secret:note]" in json.dumps(real.json()["output"]["created"])

        draft = run(http, acme, customer, {"input": {"name": "Draft"}, "dry_run": True, "draft": True})
        assert draft.status_code == 201 and draft.json()["version"] == 0
        assert run(http, acme, customer, {"input": {"name": "x"}, "draft": True}).status_code == 422

        # Nothing shown anywhere carries the customer's credentials or the secret's value.
        shown = [dry.text, real.text, draft.text, http.get(f"/v1/executions/{execution['id']}", headers=acme.headers()).text,
                 http.get("/v1/executions", headers=acme.headers()).text]
        for text in shown:
            assert ACCOUNT not in text and APP_KEY not in text and NOTE not in text


def test_runs_that_cannot_start(platform: str, two: tuple[Tenant, Tenant], published: dict[str, Any], cin7) -> None:
    acme, globex = two
    with client(platform) as http:
        no_customer = http.post("/v1/workflows/add-customer/runs", headers=acme.headers(), json={"input": {"name": "x"}})
        assert no_customer.status_code == 400 and no_customer.json()["header"] == "x-fastn-account-tenant-id"
        bad_input = run(http, acme, acme.customers[0], {"input": {"name": "", "extra": 1}})
        assert bad_input.status_code == 422 and bad_input.json()["code"] == "workflow_input_invalid"
        assert {e["pointer"] for e in bad_input.json()["errors"]} == {"/name", "/"}
        # The second customer has no connection: a real run is refused, a dry run uses placeholders.
        unconnected = run(http, acme, acme.customers[1], {"input": {"name": "x"}})
        assert unconnected.status_code == 409 and unconnected.json()["field"] == "connection"
        assert unconnected.json()["connector"] == "cin7"
        placeholder = run(http, acme, acme.customers[1], {"input": {"name": "x"}, "dry_run": True})
        assert placeholder.status_code == 201 and placeholder.json()["status"] == "completed"
        assert run(http, acme, acme.customers[0], {"input": {"name": "x"}, "version": 9}).status_code == 404
        unpublished = http.post("/v1/workflows", headers=acme.headers(), json={"spec": {**WORKFLOW, "id": "unpublished"}})
        assert unpublished.status_code == 201
        never = http.post("/v1/workflows/unpublished/runs", headers=acme.headers(acme.customers[0]), json={"input": {"name": "x"}})
        assert never.status_code == 409 and never.json()["field"] == "version"
        # Real runs use published connectors only; a dry run may use a draft.
        drafty = {"id": "drafty", "base_url": cin7.base_url, "actions": {"list": {"method": "GET", "path": "/customer"}}}
        assert http.post("/v1/connectors", headers=acme.headers(), json={"spec": drafty}).status_code == 201
        uses_draft = {**WORKFLOW, "id": "uses-draft", "steps": [{"id": "list", "action": "drafty.list"}], "output": None}
        http.post("/v1/workflows", headers=acme.headers(), json={"spec": uses_draft})
        assert http.post("/v1/workflows/uses-draft/publish", headers=acme.headers()).status_code == 201
        refused = http.post("/v1/workflows/uses-draft/runs", headers=acme.headers(acme.customers[0]), json={"input": {"name": "x"}})
        assert refused.status_code == 409 and (refused.json()["field"], refused.json()["connector"]) == ("connector", "drafty")
        dry = http.post("/v1/workflows/uses-draft/runs", headers=acme.headers(acme.customers[0]),
                        json={"input": {"name": "x"}, "dry_run": True})
        assert dry.status_code == 201 and dry.json()["trace"][0]["sent"] is True
        # Another organization can neither run the workflow nor name Acme's customer.
        assert run(http, globex, globex.customers[0], {"input": {"name": "x"}}).status_code == 404
        assert run(http, globex, acme.customers[0], {"input": {"name": "x"}}).status_code == 400


def test_a_run_that_fails_is_recorded(platform: str, two: tuple[Tenant, Tenant], published: dict[str, Any], cin7) -> None:
    acme, _ = two
    with client(platform) as http:
        # Updating a customer Cin7 does not have: the app answers 404.
        missing = "6f1c6a52-0000-4000-8000-00000000dead"
        spec = {**WORKFLOW, "id": "failing", "steps": [
            {"id": "update", "action": "cin7.update_customer",
             "input": {"body": {"ID": missing, "Name": "{{ input.name }}", "Currency": "USD"}}},
        ], "output": None}
        http.post("/v1/workflows", headers=acme.headers(), json={"spec": spec})
        assert http.post("/v1/workflows/failing/publish", headers=acme.headers()).status_code == 201
        failed = http.post("/v1/workflows/failing/runs", headers=acme.headers(acme.customers[0]), json={"input": {"name": "Bad"}})
        assert failed.status_code == 201, failed.text
        execution = failed.json()
        assert execution["status"] == "failed" and execution["output"] is None
        assert execution["error"]["step"] == "update" and execution["error"]["code"] == "step_failed"
        assert execution["error"]["cause"] == "action_failed" and "404" in execution["error"]["message"]
        assert [t["status"] for t in execution["trace"]] == [404]
        listed = http.get("/v1/executions", headers=acme.headers(), params={"workflow_id": "failing"}).json()["items"]
        assert [(e["id"], e["status"]) for e in listed] == [(execution["id"], "failed")]


def test_the_deployed_version_runs_by_default(platform: str, two: tuple[Tenant, Tenant], cin7) -> None:
    acme, _ = two
    spec = {**WORKFLOW, "id": "pinned", "steps": WORKFLOW["steps"][:1], "output": {"version": "{{ run.version }}"}}
    with client(platform) as http:
        http.post("/v1/workflows", headers=acme.headers(), json={"spec": spec})
        http.post("/v1/workflows/pinned/publish", headers=acme.headers())
        http.put("/v1/workflows/pinned/draft", headers=acme.headers(), json={"spec": {**spec, "name": "v2"}})
        http.post("/v1/workflows/pinned/publish", headers=acme.headers())
        runs = "/v1/workflows/pinned/runs"
        headers = acme.headers(acme.customers[0])
        assert http.post(runs, headers=headers, json={"input": {"name": "x"}}).json()["version"] == 2  # latest published
        assert http.post("/v1/workflows/pinned/deploy", headers=acme.headers(), json={"version": 1, "environment": "dev"}).status_code == 200
        pinned = http.post(runs, headers=headers, json={"input": {"name": "x"}}).json()
        assert pinned["version"] == 1 and pinned["output"] == {"version": 1}
        assert http.post(runs, headers=headers, json={"input": {"name": "x"}, "version": 2}).json()["version"] == 2
        # A call step runs the version deployed to the customer's environment too.
        outer = {"id": "outer", "tier": "instant", "steps": [{"id": "inner", "call": {"workflow": "pinned", "input": {"name": "y"}}}]}
        http.post("/v1/workflows", headers=acme.headers(), json={"spec": outer})
        http.post("/v1/workflows/outer/publish", headers=acme.headers())
        called = http.post("/v1/workflows/outer/runs", headers=headers, json={})
        assert called.status_code == 201 and called.json()["output"] == {"version": 1}, called.text
        unconnected = http.post("/v1/workflows/outer/runs", headers=acme.headers(acme.customers[1]), json={"dry_run": True})
        assert unconnected.json()["output"] == {"version": 1}


def test_executions_are_isolated(platform: str, db: store.Database, two: tuple[Tenant, Tenant],
                                 published: dict[str, Any], cin7) -> None:
    acme, globex = two
    first, second = acme.customers
    _, bound_first = bootstrap.create_api_key(db, acme.org_id, "first's key", role_id="end_user", customer_id=first)
    _, bound_second = bootstrap.create_api_key(db, acme.org_id, "second's key", role_id="end_user", customer_id=second)
    with client(platform) as http:
        mine = run(http, acme, second, {"input": {"name": "Bound"}, "dry_run": True}, key=bound_second)
        assert mine.status_code == 201 and mine.json()["customer_id"] == second
        theirs = run(http, acme, first, {"input": {"name": "Other"}, "dry_run": True}).json()
        # A key bound to one customer sees only that customer's executions, whatever it asks for.
        listed = http.get("/v1/executions", headers=acme.headers(key=bound_second)).json()["items"]
        assert listed and {e["customer_id"] for e in listed} == {second}
        asked = http.get("/v1/executions", headers=acme.headers(key=bound_second), params={"customer": first}).json()["items"]
        assert asked == []
        assert http.get(f"/v1/executions/{theirs['id']}", headers=acme.headers(key=bound_second)).status_code == 404
        assert http.get(f"/v1/executions/{theirs['id']}", headers=acme.headers(key=bound_first)).status_code == 200
        refused = run(http, acme, first, {"input": {"name": "x"}, "dry_run": True}, key=bound_second)
        assert refused.status_code == 403
        # The organization sees both customers' executions; filters and sort apply.
        everything = http.get("/v1/executions", headers=acme.headers(), params={"limit": 200}).json()["items"]
        assert {first, second} <= {e["customer_id"] for e in everything}
        assert "trace" not in everything[0]
        started = [e["started_at"] for e in everything]
        assert started == sorted(started, reverse=True)
        oldest = http.get("/v1/executions", headers=acme.headers(), params={"sort": "started_at", "limit": 1}).json()["items"][0]
        assert oldest["started_at"] == min(started)
        dry = http.get("/v1/executions", headers=acme.headers(), params={"dry_run": "true", "customer": second}).json()["items"]
        assert dry and all(e["dry_run"] and e["customer_id"] == second for e in dry)
        assert http.get("/v1/executions", headers=acme.headers(), params={"status": "lost"}).status_code == 422
        # Another organization sees none of them.
        assert http.get("/v1/executions", headers=globex.headers()).json()["items"] == []
        assert http.get(f"/v1/executions/{theirs['id']}", headers=globex.headers()).status_code == 404


def test_the_flagship_dry_runs_through_the_api(platform: str, db: store.Database) -> None:
    """HubSpot contacts to Cin7 customers, as examples/ ship it, dry-run for a customer with no
    connections: the reads reach both sandboxes, the creates and updates are withheld."""
    tenant = make_tenant(db, "Flagship", customers=1)
    seeds = ROOT / "examples" / "seeds"
    with running_sandbox("hubspot-crm-contacts-v3.json", seed=seeds / "hubspot.yaml") as hubspot, \
            running_sandbox("cin7-core-v2-subset.yaml", seed=seeds / "cin7.yaml") as cin7_app, client(platform) as http:
        for name, server in (("hubspot", hubspot), ("cin7", cin7_app)):
            spec = yaml.safe_load((ROOT / "examples" / "connectors" / f"{name}.yaml").read_text()) | {"base_url": server.base_url}
            assert http.post("/v1/connectors", headers=tenant.headers(), json={"spec": spec}).status_code == 201
        workflow_yaml = (ROOT / "examples" / "hubspot-contacts-to-cin7.yaml").read_text()
        created = http.post("/v1/workflows", headers=tenant.headers(), json={"spec_yaml": workflow_yaml})
        assert created.status_code == 201, created.text
        assert created.json()["type"] == "standard"
        before = httpx.get(cin7_app.admin_url + "/state").json()
        dry = http.post(f"/v1/workflows/{created.json()['key']}/runs", headers=tenant.headers(tenant.customers[0]),
                        json={"input": {"currency": "EUR"}, "dry_run": True, "draft": True})
        assert dry.status_code == 201, dry.text
        execution = dry.json()
        assert execution["status"] == "completed", execution["error"]
        assert httpx.get(cin7_app.admin_url + "/state").json() == before
        withheld = sorted({t["method"] for t in execution["trace"] if not t["sent"]})
        assert withheld == ["POST", "PUT"] and {t["method"] for t in execution["trace"] if t["sent"]} == {"GET"}
        assert execution["output"]["created"] and execution["output"]["updated"]


def test_a_run_is_replayed_offline_from_its_stored_record(
    platform: str, two: tuple[Tenant, Tenant], published: dict[str, Any], cin7, db: store.Database,
    migrated_database_url: str,
) -> None:
    import asyncio
    import os
    import subprocess
    import sys
    import tempfile

    import runtime

    acme, _ = two
    with client(platform) as http:
        unlimited = http.put(f"/v1/billing/customers/{acme.customers[0]}/overrides", headers=acme.headers(), json=UNLIMITED)
        assert unlimited.status_code == 200, unlimited.text
        real = run(http, acme, acme.customers[0], {"input": {"name": "Replay Rosalind"}})
        assert real.status_code == 201 and real.json()["status"] == "completed", real.text
    execution = real.json()
    with db.tenant(acme.org_id) as tx:
        stored_record = store.Executions(tx).record(acme.org_id, execution["id"])
    assert stored_record["format"] == runtime.RECORD_FORMAT and stored_record["workflow"]["id"] == "add-customer"
    recorded = json.dumps(stored_record)
    assert ACCOUNT not in recorded and APP_KEY not in recorded and NOTE not in recorded
    # Offline: the sandbox is asked nothing (its state is the same before and after).
    state = httpx.get(cin7.admin_url + "/state").json()
    replayed = asyncio.run(runtime.replay_record(stored_record, execution["id"]))
    assert replayed.succeeded and replayed.run_id == execution["id"]
    assert replayed.output == execution["output"]
    assert httpx.get(cin7.admin_url + "/state").json() == state
    # The operator's command does the same from the database.
    env = {**os.environ, "DATABASE_URL": migrated_database_url, "SWITCHBOARD_DATA": tempfile.mkdtemp(prefix="replay-")}
    cli = subprocess.run([sys.executable, "-m", "switchboard", "workflow", "replay", "--execution", execution["id"], "--json"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == {"run_id": execution["id"], "status": "succeeded", "output": execution["output"]}
    unknown = subprocess.run([sys.executable, "-m", "switchboard", "workflow", "replay", "--execution", "exe_nope"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert unknown.returncode == 1 and "no execution 'exe_nope'" in unknown.stderr


def test_a_test_key_reaches_only_non_production_environments(
    platform: str, two: tuple[Tenant, Tenant], published: dict[str, Any], db: store.Database
) -> None:
    acme, _ = two
    _, test_key = bootstrap.create_api_key(db, acme.org_id, "test key", kind="test")
    live_customer = bootstrap.create_customer(db, acme.org_id, "Live customer", environment="production")["id"]
    with client(platform) as http:
        assert http.put(f"/v1/billing/customers/{acme.customers[0]}/overrides", headers=acme.headers(),
                        json=UNLIMITED).status_code == 200
        test = acme.headers(key=test_key)
        # A production customer is out of reach, whatever the route.
        for method, path, body in [
            ("POST", "/v1/workflows/add-customer/runs", {"input": {"name": "x"}}),
            ("GET", "/v1/connections", None),
            ("GET", "/v1/executions", None),
        ]:
            refused = http.request(method, path, headers=acme.headers(live_customer, key=test_key), json=body)
            assert refused.status_code == 403, (path, refused.text)
            assert "Test key" in refused.json()["detail"]
        # Production's deployments and secrets too.
        deploy = http.post("/v1/workflows/add-customer/deploy", headers=test, json={"version": 1, "environment": "production"})
        assert deploy.status_code == 403
        secret = http.post("/v1/secrets", headers=test, json={"name": "prod_only", "value": "v", "environment": "production"})
        assert secret.status_code == 403
        assert http.get("/v1/secrets", headers=test, params={"environment": "production"}).status_code == 403
        # The same key works in dev; a Live key reaches production.
        assert http.post("/v1/workflows/add-customer/deploy", headers=test, json={"version": 1, "environment": "dev"}).status_code == 200
        dev_run = run(http, acme, acme.customers[0], {"input": {"name": "From a test key"}, "dry_run": True}, key=test_key)
        assert dev_run.status_code == 201
        assert http.get("/v1/executions", headers=acme.headers(acme.customers[0], key=test_key)).status_code == 200
        live = http.post("/v1/secrets", headers=acme.headers(), json={"name": "prod_only", "value": "v", "environment": "production"})
        assert live.status_code == 201
        assert http.get(f"/v1/secrets/{live.json()['id']}", headers=test).status_code == 403
        assert http.get(f"/v1/customers/{live_customer}", headers=test).status_code == 403
        assert http.patch(f"/v1/customers/{live_customer}", headers=test, json={"name": "x"}).status_code == 403
        assert http.post("/v1/customers", headers=test, json={"name": "New live", "environment": "production"}).status_code == 403
        assert http.delete(f"/v1/secrets/{live.json()['id']}", headers=test).status_code == 403
        assert http.get("/v1/connections", headers=acme.headers(live_customer)).status_code == 200
        # Organization-wide lists leave production's rows out for a Test key (and only for it).
        assert http.post("/v1/connections", headers=acme.headers(live_customer), json={
            "connector": "cin7", "auth": {"type": "api_key", "values": {"account_id": ACCOUNT, "application_key": APP_KEY}},
        }).status_code == 201
        for path, field in [("/v1/customers", "id"), ("/v1/connections", "customer_id"), ("/v1/secrets", "environment_id")]:
            seen_by_test = {row[field] for row in http.get(path, headers=test, params={"limit": 200}).json()["items"]}
            seen_by_live = {row[field] for row in http.get(path, headers=acme.headers(), params={"limit": 200}).json()["items"]}
            hidden = live_customer if field != "environment_id" else live.json()["environment_id"]
            assert hidden in seen_by_live and hidden not in seen_by_test, path
            assert seen_by_test, path


# -- validation rights, executions by workflow and by customer -------------------------------------------------

ECHO = {"id": "echo", "tier": "instant", "steps": [{"id": "greet", "map": {"hello": "{{ input.name }}"}}]}


@pytest.fixture(scope="module")
def echo(db: store.Database, platform: str) -> Tenant:
    """A tenant with two customers and ``echo`` (no connector, no secret) published."""
    tenant = make_tenant(db, "Echo")
    with client(platform) as http:
        assert http.post("/v1/workflows", headers=tenant.headers(), json={"spec": ECHO}).status_code == 201
        assert http.post("/v1/workflows/echo/publish", headers=tenant.headers()).status_code == 201
    return tenant


def _key_with_role(http: httpx.Client, tenant: Tenant, role: str) -> str:
    response = http.post("/v1/api-keys", headers=tenant.headers(), json={"name": f"{role} key", "role": role})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def test_validating_a_workflow_needs_only_read(platform: str, echo: Tenant) -> None:
    with client(platform) as http:
        viewer = echo.headers(key=_key_with_role(http, echo, "viewer"))
        checked = http.post("/v1/workflows/echo/validate", headers=viewer)
        assert checked.status_code == 200, checked.text
        assert checked.json() == {"valid": True, "problems": []}
        proposed = http.post("/v1/workflows/echo/validate", headers=viewer, json={"spec": {**ECHO, "steps": []}})
        assert proposed.status_code == 200 and proposed.json()["valid"] is False
        # Changing it still needs write.
        refused = http.put("/v1/workflows/echo/draft", headers=viewer, json={"spec": ECHO})
    assert refused.status_code == 403 and refused.json()["permission"] == "workflows:write"


def test_executions_are_filtered_by_workflow(platform: str, echo: Tenant) -> None:
    first = echo.customers[0]
    with client(platform) as http:
        ran = http.post("/v1/workflows/echo/runs", headers=echo.headers(first), json={"input": {"name": "Ada"}})
        assert ran.status_code == 201, ran.text
        for params in ({"workflow": "echo"}, {"workflow": ran.json()["workflow_id"]}, {"workflow_id": "echo"}):
            listed = http.get("/v1/executions", headers=echo.headers(), params=params)
            assert listed.status_code == 200, listed.text
            assert ran.json()["id"] in [e["id"] for e in listed.json()["items"]], params
        assert http.get("/v1/executions", headers=echo.headers(), params={"workflow": "nope"}).json()["items"] == []
        both = http.get("/v1/executions", headers=echo.headers(), params={"workflow": "echo", "workflow_id": "other"})
    assert both.status_code == 422 and both.json()["field"] == "workflow"


def test_an_execution_is_read_in_the_scope_the_header_names(platform: str, echo: Tenant) -> None:
    """As with connections and the executions list: naming a customer scopes the request to it."""
    first, second = echo.customers
    with client(platform) as http:
        ran = http.post("/v1/workflows/echo/runs", headers=echo.headers(second), json={"input": {"name": "Grace"}})
        assert ran.status_code == 201, ran.text
        path = f"/v1/executions/{ran.json()['id']}"
        assert http.get(path, headers=echo.headers()).status_code == 200
        assert http.get(path, headers=echo.headers(second)).json()["customer_id"] == second
        listed = http.get("/v1/executions", headers=echo.headers(first), params={"limit": 200}).json()["items"]
        assert ran.json()["id"] not in [e["id"] for e in listed]
        hidden = http.get(path, headers=echo.headers(first))
        assert hidden.status_code == 404 and hidden.json()["resource"] == "execution"
        asked = http.get("/v1/executions", headers=echo.headers(first), params={"customer": second}).json()["items"]
        assert asked == []
        theirs = http.get("/v1/executions", headers=echo.headers(), params={"customer": second, "limit": 200}).json()["items"]
    assert ran.json()["id"] in [e["id"] for e in theirs]
