"""The Connector Agent, offline, on every OpenAPI document the repository ships: each ends with a
connector whose actions all pass on its hosted sandbox, or a report that names each action that
does not and why (and a document the import refuses is reported as such)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from langchain_core.messages import AIMessage

import runtime
import store
from agents import ConnectorRequest, build_graph, read_request
from support.platform import make_tenant
from support.servers import serve_app
from switchboard.app import open_platform
from switchboard.settings import Settings
from tools import ToolContext

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ROOT / "tests" / "data" / "openapi"
LARGE = DOCUMENTS / "large"
CATALOG = ROOT / "tests" / "data" / "catalog" / "connectors.yaml"
# Refused at import, by design (INDEX.md): its $refs point at files that are not there.
REFUSED = {"oai-petstore-separate-extref-v2.json"}
# The three largest documents (hundreds of operations each) are tested on a sample of whole
# resources, to keep the suite fast; every other document with all its actions.
SAMPLED = {"box.json": 40, "slack_web_v2.json": 40, "xero_accounting.yaml": 40}


def documents() -> list[Path]:
    """Every document of tests/data/openapi and every document the catalog's list imports."""
    found = {p.resolve() for folder in (DOCUMENTS, LARGE) for p in folder.iterdir() if p.suffix in (".json", ".yaml", ".yml")}
    for entry in yaml.safe_load(CATALOG.read_text()):
        if "openapi" in entry:
            found.add((ROOT / entry["openapi"]).resolve())
    return sorted(found)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(migrated_database_url: str) -> AsyncIterator[runtime.Platform]:
    with tempfile.TemporaryDirectory() as data_dir:
        # Loopback allowed for the docs-site test's own server; sandboxes need no allow-list.
        settings = Settings(database_url=migrated_database_url, data_dir=Path(data_dir), egress_allow=["127.0.0.1"])
        async with open_platform(settings) as p:
            yield p


@pytest.fixture(scope="module")
def tenant(db: store.Database):
    return make_tenant(db, "Connector agent", customers=1)


async def test_requests_are_read_as_an_app_a_url_or_a_document() -> None:
    assert read_request("Build a connector for Cin7") == ConnectorRequest("Build a connector for Cin7", app="Cin7")
    assert read_request("connector from https://api.example.com/openapi.json").url == "https://api.example.com/openapi.json"
    assert read_request("Import resend-api.yaml as resend").document == "resend-api.yaml"
    assert read_request("Import resend-api.yaml as resend").key == "resend"
    assert read_request("openapi: 3.0.0\ninfo: {title: x}").text.startswith("openapi")
    assert read_request("   ").reason == "the prompt is empty"
    assert read_request("Import box.json as box, testing 40 actions").sample == 40


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.name)
async def test_the_connector_agent_on_every_shipped_document(platform, tenant, document: Path) -> None:
    principal = runtime.authenticate_key(platform.db, tenant.org_id, tenant.key, None)
    ctx = ToolContext(platform, principal, customer_id=tenant.customers[0], documents=document.parent)
    key = document.stem.lower().replace("_", "-").replace(".", "-")[:60]
    graph = build_graph("connector_agent", ctx)
    sample = f", testing {SAMPLED[document.name]} actions" if document.name in SAMPLED else ""
    state = await graph.ainvoke({"messages": [{"role": "user", "content": f"Import {document.name} as {key}{sample}"}]},
                                {"recursion_limit": 100})
    report = state["report"]
    final = state["messages"][-1].content
    if document.name in REFUSED:
        assert report["connector"] is None and report["errors"][0]["tool"] == "import_api"
        assert report["errors"][0]["error"]["code"] == "openapi_import_refused", report
        assert "error in import_api" in final
        return
    assert report["connector"] == key and report["status"] in ("all_passed", "some_failed"), report
    assert report["actions"] >= 1
    if document.name in SAMPLED:
        assert report["sample"]["tested"] == report["actions"] >= SAMPLED[document.name], report["sample"]
        assert report["sample"]["of"] > report["actions"] and "sample: tested" in final
    else:
        assert report["sample"] is None
    if report["status"] == "all_passed":
        assert report["passed"] == report["actions"] and report["does_not_work"] == []
    else:
        # Every action that does not pass is named, with why.
        assert report["passed"] + len(report["does_not_work"]) == report["actions"], report
        for item in report["does_not_work"]:
            assert item["action"] and item["why"], item
            assert f"not working: {item['action']}" in final
    for change in report["changes"][1:]:
        assert change["change"] == "patched" and change["paths"] and change["why"], change



# Two operations on one path told apart by a fragment (as Box's ``/shared_items#folders``): the
# sandbox serves the path once, with the first operation's answer, which contradicts the second's
# documented schema. The test reports drift; the agent patches the draft and the retest passes.
DRIFTING = """
openapi: 3.0.3
info: {title: Drifting things, version: "1.0"}
servers: [{url: https://things.example.com/api}]
paths:
  /shared#files:
    get:
      operationId: getSharedFile
      responses:
        '200':
          description: a shared file
          content:
            application/json:
              schema: {type: object, required: [type], properties: {type: {type: string, enum: [file]}}}
  /shared#folders:
    get:
      operationId: getSharedFolder
      responses:
        '200':
          description: a shared folder
          content:
            application/json:
              schema: {type: object, required: [type], properties: {type: {type: string, enum: [folder]}}}
"""


async def test_drift_is_patched_and_retested(platform, tenant) -> None:
    principal = runtime.authenticate_key(platform.db, tenant.org_id, tenant.key, None)
    ctx = ToolContext(platform, principal, customer_id=tenant.customers[0])
    state = await build_graph("connector_agent", ctx).ainvoke({"messages": [{"role": "user", "content": DRIFTING}]})
    report = state["report"]
    assert report["first_test"] == {"passed": 1, "failed": 0, "drift": 1}, {k: report[k] for k in ("status", "passed", "does_not_work", "notes")}
    assert report["status"] == "all_passed" and report["passed"] == 2, report
    patched = report["changes"][1]
    drifted = patched["why"][0]["action"]
    assert patched["paths"] == [f"/actions/{drifted}/output"] and drifted in ("get_shared_file", "get_shared_folder")
    assert "is not one of" in patched["why"][0]["problems"][0]["message"], patched
    assert "change v2" in state["messages"][-1].content


async def test_from_an_app_name_it_finds_the_description(platform, tenant) -> None:
    principal = runtime.authenticate_key(platform.db, tenant.org_id, tenant.key, None)
    ctx = ToolContext(platform, principal, documents=DOCUMENTS)
    state = await build_graph("connector_agent", ctx).ainvoke(
        {"messages": [{"role": "user", "content": "Build a connector for Cin7 as cin7-by-name"}]})
    calls = [c["name"] for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert calls == ["find_api_description", "import_api", "validate_connector", "test_connector"]
    imported = [c["args"] for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls][1]
    assert imported == {"document": "cin7-core-v2-subset.yaml", "connector_id": "cin7-by-name"}  # the local one
    assert state["report"]["status"] == "all_passed" and state["report"]["connector"] == "cin7-by-name"


def _docs_site() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    document = yaml.safe_load((DOCUMENTS / "oai-petstore-v3.0.yaml").read_text())

    @app.get("/docs")
    def docs() -> HTMLResponse:
        return HTMLResponse("<html><body><h1>Petstore API</h1><p>Read the reference.</p></body></html>")

    @app.get("/openapi.json")
    def openapi() -> JSONResponse:
        return JSONResponse(document)

    return app


async def test_from_a_docs_url_it_finds_the_site_s_description(platform, tenant) -> None:
    principal = runtime.authenticate_key(platform.db, tenant.org_id, tenant.key, None)
    ctx = ToolContext(platform, principal)
    with serve_app(_docs_site()) as site:
        state = await build_graph("connector_agent", ctx).ainvoke(
            {"messages": [{"role": "user", "content": f"Build a connector from {site}/docs as petstore-site"}]})
    calls = [(c["name"], c["args"]) for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    # The page is not a description: the site's well-known paths are tried, and the one found imported.
    assert [name for name, _ in calls] == ["import_api", "find_api_description", "import_api", "validate_connector",
                                           "test_connector"], calls
    assert calls[2][1] == {"url": f"{site}/openapi.json", "connector_id": "petstore-site"}
    assert state["report"]["status"] == "all_passed" and state["report"]["errors"][0]["tool"] == "import_api"
