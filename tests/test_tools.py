"""The agents' tools, each called through the registry against a real platform: real Postgres,
a Cin7 sandbox and a small company site over real HTTP on 127.0.0.1.

One module-wide flow (import, validate, test on the sandbox, patch, search, write and dry-run a
workflow, map fields, review, publish) keeps every result; the canary test then asserts that no
result holds the organization's secret or a connection's credential.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from langchain_core.messages import ToolMessage

import runtime
import store
from support.documents import SPECS_DIR
from support.platform import Tenant, make_tenant
from support.sandbox import running_sandbox
from support.servers import serve_app
from switchboard import bootstrap
from switchboard.app import open_platform
from switchboard.settings import Settings
from tools import CreditLimit, SandboxDirectory, ToolContext, default_registry

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET_CANARY = "canary-secret-7f3a9c41e2"
CREDENTIAL_CANARY = "canary-credential-b85d0e6f19"
COMPANY_PAGE = """<html><head><title>Acme Boots</title><style>body{color:red}</style></head>
<body><script>var tracking = 1;</script><h1>Acme Boots</h1><p>We sell hiking boots to outdoor shops.</p>
<a href="/docs">API docs</a></body></html>"""

REGISTRY = default_registry()
RESULTS: list[dict[str, Any]] = []


def _site() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    petstore = json.loads((SPECS_DIR / "oai-petstore-v2.json").read_text())

    @app.get("/")
    def home() -> HTMLResponse:
        return HTMLResponse(COMPANY_PAGE)

    @app.get("/openapi.json")
    def document() -> JSONResponse:
        return JSONResponse(petstore)

    return app


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_app(_site()) as url:
        yield url


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with running_sandbox("cin7-core-v2-subset.yaml") as server:
        yield server.base_url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(migrated_database_url: str) -> AsyncIterator[runtime.Platform]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(database_url=migrated_database_url, data_dir=Path(data_dir), egress_allow=["127.0.0.1"])
        async with open_platform(settings) as p:
            yield p


@pytest.fixture(scope="module")
def tenants(db: store.Database) -> tuple[Tenant, Tenant]:
    return make_tenant(db, "Tools A", customers=1), make_tenant(db, "Tools B", customers=1)


def _context(platform: runtime.Platform, tenant: Tenant, sandbox: str, key: str | None = None, **fields: Any) -> ToolContext:
    principal = runtime.authenticate_key(platform.db, tenant.org_id, key or tenant.key, None)
    options: dict[str, Any] = {"customer_id": tenant.customers[0], "thread_id": "thr_test",
                               "sandboxes": SandboxDirectory({"cin7": sandbox}), "documents": SPECS_DIR}
    return ToolContext(platform, principal, **(options | fields))


async def call(ctx: ToolContext, name: str, **arguments: Any) -> dict[str, Any]:
    result = await REGISTRY.invoke(ctx, name, arguments)
    json.dumps(result)  # every result is JSON
    RESULTS.append(result)
    return result


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert "error" not in result, result
    return result


WORKFLOW = {
    "id": "cin7-customers-report",
    "name": "Cin7 customers report",
    "tier": "instant",
    "trigger": {"kind": "manual"},
    "steps": [{"id": "customers", "action": "cin7.list_customers"}],
    "output": "{{ steps.customers }}",
}


@pytest.fixture(scope="module")
def canaries(platform: runtime.Platform, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    with platform.db.tenant(a.org_id) as tx:
        store.Secrets(tx).create(a.org_id, environment="dev", name="CANARY", value=SECRET_CANARY,
                                 encryptor=platform.encryptor)


async def test_every_tool_through_the_registry(platform, tenants, sandbox, site, canaries) -> None:
    a, _ = tenants
    ctx = _context(platform, a, sandbox)

    found = ok(await call(ctx, "find_api_description", app="Cin7"))
    assert {c["source"] for c in found["candidates"]} == {"index", "local"}
    on_site = ok(await call(ctx, "find_api_description", app="Petstore Inc", site=site))
    assert on_site["candidates"][-1] == {"source": "site", "title": "Swagger Petstore", "url": site + "/openapi.json"}

    page = ok(await call(ctx, "fetch_page", url=site + "/"))
    assert page["title"] == "Acme Boots" and "We sell hiking boots" in page["text"]
    assert "tracking" not in page["text"] and "color:red" not in page["text"]
    assert page["links"] == [{"text": "API docs", "url": site + "/docs"}]

    imported = ok(await call(ctx, "import_api", document="cin7-core-v2-subset.yaml", connector_id="cin7"))
    assert imported["version"] == 1 and "create_customer" in imported["actions"]
    assert ok(await call(ctx, "validate_connector", connector="cin7"))["valid"] is True

    tested = ok(await call(ctx, "test_connector", connector="cin7"))
    assert tested["actions"] == len(imported["actions"]) and tested["passed"] >= 1 and not tested["failed"], tested

    patched = ok(await call(ctx, "patch_connector_draft", connector="cin7",
                            patch=[{"op": "replace", "path": "/name", "value": "Cin7 Core (agent)"}]))
    assert patched["version"] == 2 and patched["name"] == "Cin7 Core (agent)"

    hits = ok(await call(ctx, "search_catalog", query="create a customer in Cin7", limit=5))
    assert "cin7.create_customer" in [hit["ref"] for hit in hits["items"]]

    # A connection with a distinctive credential: the dry run sends it to the sandbox, no result shows it.
    with platform.db.tenant(a.org_id) as tx:
        runtime.create_connection(tx, a.org_id, a.customers[0], "cin7", name="Cin7", encryptor=platform.encryptor,
                                  auth={"type": "api_key", "values": {f: CREDENTIAL_CANARY for f in imported["credential_fields"]}})

    draft = ok(await call(ctx, "write_workflow_draft", spec=WORKFLOW))
    assert draft["problems"] == []
    assert ok(await call(ctx, "validate_workflow", workflow=WORKFLOW["id"]))["valid"] is True
    broken = ok(await call(ctx, "patch_workflow_draft", workflow=WORKFLOW["id"],
                           patch=[{"op": "replace", "path": "/steps/0/action", "value": "cin7.no_such_action"}]))
    assert broken["problems"] and broken["problems"][0]["pointer"].startswith("/steps/0")
    ok(await call(ctx, "patch_workflow_draft", workflow=WORKFLOW["id"],
                  patch=[{"op": "replace", "path": "/steps/0/action", "value": "cin7.list_customers"}]))

    sample = {"ID": "8d5a4b8e-0000-4000-8000-000000000001", "Name": "Trail Shop", "Email": "shop@example.com"}
    run = ok(await call(ctx, "dry_run_workflow", workflow=WORKFLOW["id"], sample_records={"cin7": {"/customer": [sample]}}))
    assert run["status"] == "completed", run
    assert "Trail Shop" in json.dumps(run["output"]) and run["sandboxes"] == ["cin7"]

    connections = ok(await call(ctx, "list_connections"))["connections"]
    assert [(c["connector_key"], c["status"], c["has_credentials"]) for c in connections] == [("cin7", "connected", True)]

    mapping = ok(await call(ctx, "propose_mapping", kind="customer", source="cin7.list_customers",
                            target="cin7.create_customer"))
    assert mapping["map"]["body"][0]["Name"] == "{{ source.Name }}", mapping

    review = ok(await call(ctx, "request_review", kind="workflow", key=WORKFLOW["id"], summary="lists customers"))
    assert review["valid"] and review["first_version"] and review["diff"]

    refused = await call(ctx, "publish", kind="workflow", key=WORKFLOW["id"])
    assert refused["error"]["code"] == "approval_required"
    ctx.approvals.grant("connector", "cin7")
    ctx.approvals.grant("workflow", WORKFLOW["id"])
    assert ok(await call(ctx, "publish", kind="connector", key="cin7"))["version"] == 2
    published = ok(await call(ctx, "publish", kind="workflow", key=WORKFLOW["id"], deploy_to="dev"))
    assert published["version"] == 1 and published["deployed_to"] == "dev"

    # Onboarding: the test customer on the hosted sandbox, a live run of the deployed version, the
    # embed configuration and the recorded progress.
    test_customer = ok(await call(ctx, "prepare_test_customer", connectors=["cin7"]))
    assert test_customer["environment"] == "dev" and test_customer["connections"][0]["target"] == "sandbox"
    again = ok(await call(ctx, "prepare_test_customer", connectors=["cin7"]))
    assert again == test_customer  # reused, not duplicated
    live = ok(await call(ctx, "run_workflow", workflow=WORKFLOW["id"], customer_id=test_customer["customer_id"]))
    assert live["status"] == "completed" and live["version"] == 1, live
    refused_customer = await call(ctx, "run_workflow", workflow=WORKFLOW["id"], customer_id=tenants[1].customers[0])
    assert refused_customer["error"]["code"] == "tenant_scope"
    embed = ok(await call(ctx, "embed_config", connectors=["cin7"]))
    assert embed["ready"] and embed["connectors"][0]["auth"] == "api_key" and embed["needs"] == []
    ok(await call(ctx, "record_onboarding", step="live", status="done", data={"execution_id": live["execution_id"]},
                  website="https://acme-boots.example"))
    read = ok(await call(ctx, "read_onboarding"))
    assert read["onboarding"]["website"] == "https://acme-boots.example" and read["step"] == "use_cases"
    assert read["onboarding"]["steps"]["live"]["execution_id"] == live["execution_id"]
    assert read["onboarding"]["threads"] == ["thr_test"] and read["complete"] is False
    invalid = await call(ctx, "record_onboarding", step="launch", status="done")
    assert invalid["error"]["pointer"] == "/step"

    called = {name for name in REGISTRY.names()}
    assert len(RESULTS) >= len(called)


async def test_no_result_holds_a_secret_or_credential(platform, tenants, sandbox) -> None:
    # After the flow above: every tool has run, the dry run with the connection's credentials too.
    a, _ = tenants
    ctx = _context(platform, a, sandbox)
    RESULTS.append(await REGISTRY.invoke(ctx, "list_connections", {}))
    text = json.dumps(RESULTS)
    assert len(RESULTS) > len(REGISTRY)
    assert SECRET_CANARY not in text and CREDENTIAL_CANARY not in text


async def _audit(platform: runtime.Platform, org_id: str, tool: str) -> list[dict[str, Any]]:
    with platform.db.tenant(org_id) as tx:
        return store.AuditLog(tx).list(org_id, store.ListQuery(limit=50, sort="-at"), action=f"tool.{tool}").items


async def test_a_viewer_cannot_call_a_write_tool_and_the_refusal_is_audited(platform, tenants, sandbox) -> None:
    a, _ = tenants
    _, viewer_key = bootstrap.create_api_key(platform.db, a.org_id, "viewer", role_id="viewer")
    ctx = _context(platform, a, sandbox, key=viewer_key)
    refused = await REGISTRY.invoke(ctx, "write_connector_draft", {"spec": {"id": "x"}})
    assert refused["error"]["code"] == "forbidden" and "connectors:write" in refused["error"]["message"]
    entries = await _audit(platform, a.org_id, "write_connector_draft")
    assert [(e["outcome"], e["actor_id"], e["error_code"], e["detail"]["refused"]) for e in entries][:1] == [
        ("error", ctx.principal.actor_id, "forbidden", True)]
    # Reading stays allowed.
    assert "error" not in await REGISTRY.invoke(ctx, "validate_connector", {"spec": {"id": "x"}})


async def test_another_organizations_ids_are_refused(platform, tenants, sandbox) -> None:
    a, b = tenants
    ctx_b = _context(platform, b, sandbox)
    with platform.db.tenant(a.org_id) as tx:
        a_connector = store.Connectors(tx).get(a.org_id, "cin7")["id"]
    patch = [{"op": "replace", "path": "/name", "value": "stolen"}]
    result = await REGISTRY.invoke(ctx_b, "patch_connector_draft", {"connector": a_connector, "patch": patch})
    assert result["error"]["code"] == "not_found"
    result = await REGISTRY.invoke(ctx_b, "list_connections", {"customer_id": a.customers[0]})
    assert result["error"]["code"] == "tenant_scope" and result["error"]["pointer"] == "/customer_id"
    entry = (await _audit(platform, b.org_id, "list_connections"))[0]
    assert (entry["outcome"], entry["error_code"], entry["detail"]["refused"]) == ("error", "tenant_scope", True)


async def test_credits_and_quota_refuse_before_the_tool_runs(platform, tenants, sandbox) -> None:
    a, _ = tenants
    broke = _context(platform, a, sandbox, credits=CreditLimit(limits={a.org_id: 10}, spent={a.org_id: 10}))
    result = await REGISTRY.invoke(broke, "search_catalog", {"query": "customers"})
    assert result["error"]["code"] == "credits_exhausted"
    with platform.db.tenant(a.org_id) as tx:
        store.Quotas(tx).set_overrides(a.org_id, a.customers[0], {"api_calls_per_minute": {"limit": 0, "mode": "hard"}})
    try:
        result = await REGISTRY.invoke(_context(platform, a, sandbox), "list_connections", {})
        assert result["error"]["code"] == "quota_exceeded"
    finally:
        with platform.db.tenant(a.org_id) as tx:
            store.Quotas(tx).set_overrides(a.org_id, a.customers[0], {})


async def test_tool_errors_are_results_the_model_reads(platform, tenants, sandbox) -> None:
    a, _ = tenants
    ctx = _context(platform, a, sandbox)
    bad = await REGISTRY.invoke(ctx, "search_catalog", {"query": "x", "limit": 0})
    assert bad["error"] == {"code": "tool_arguments_invalid", "pointer": "/limit",
                            "message": bad["error"]["message"]}
    invalid = await REGISTRY.invoke(ctx, "write_connector_draft", {"spec": {"id": "y", "actions": 3}})
    assert invalid["error"]["code"] == "spec_invalid" and invalid["error"]["problems"]
    guarded = await REGISTRY.invoke(ctx, "fetch_page", {"url": "http://169.254.169.254/latest/meta-data"})
    assert guarded["error"]["pointer"] == "/url"
    assert (await REGISTRY.invoke(ctx, "no_such_tool", {}))["error"]["code"] == "unknown_tool"

    tools = {tool.name: tool for tool in REGISTRY.as_langchain_tools(ctx)}
    message = await tools["patch_connector_draft"].ainvoke(
        {"type": "tool_call", "id": "call_1", "name": "patch_connector_draft",
         "args": {"connector": "cin7", "patch": [{"op": "remove", "path": "/nowhere"}]}})
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call_1"
    error = json.loads(message.content)["error"]
    assert error["code"] == "patch_failed" and error["pointer"] == "/patch/0"
    assert message.artifact == {"error": error}
