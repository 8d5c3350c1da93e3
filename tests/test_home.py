"""Home: routing each prompt shape to its agent (run as Home's subgraph) with the offline model, a
clear answer for a prompt no agent takes, and recommended prompts that follow the organization's
state. Real platform (Postgres), a company site on 127.0.0.1 reached through one mounted prefix."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import agents
import runtime
import store
from support.documents import SPECS_DIR
from support.fake_openai import FakeOpenAI, Reply, ScriptedCall
from support.platform import Tenant, make_tenant
from support.servers import serve_app
from support.sites import ServedSite, served_site
from switchboard.app import open_platform
from switchboard.settings import Settings
from tools import ONBOARDING_STEPS, ToolContext, default_registry

aio = pytest.mark.asyncio(loop_scope="module")

FLAGSHIP = "Sync HubSpot contacts to Cin7 customers, matching by email"


@pytest.mark.parametrize(("prompt", "agent"), [
    ("Add a connector for Cin7", "connector_agent"),
    ("build a connector for HubSpot", "connector_agent"),
    ("Connect Xero", "connector_agent"),
    ("Import https://example.com/openapi.json", "connector_agent"),
    ("Fix the twilio connector", "connector_agent"),
    (FLAGSHIP, "integration_agent"),
    ("When a contact is created in HubSpot, create a customer in Cin7", "integration_agent"),
    ("Every day, copy orders from Cin7 to Xero", "integration_agent"),
    ("sync everything everywhere", "integration_agent"),
    ("Set up my account from https://larkspur.example", "setup_assistant"),
    ("https://larkspur.example", "setup_assistant"),
    ("Continue setting up from https://larkspur.example", "setup_assistant"),
    ("help me onboard", "setup_assistant"),
    ("What's the weather in Paris?", None),
    ("", None),
])
def test_route_of_each_prompt_shape(prompt: str, agent: str | None) -> None:
    assert agents.route_of(prompt).agent == agent


@pytest.fixture(scope="module")
def site() -> Iterator[ServedSite]:
    with served_site("larkspur") as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rt(migrated_database_url: str, site: ServedSite) -> AsyncIterator[runtime.Platform]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(database_url=migrated_database_url, data_dir=Path(data_dir))
        async with open_platform(settings) as p:
            p.http = p.http.mounted(site.mount())
            yield p


def context(rt: runtime.Platform, tenant: Tenant) -> ToolContext:
    principal = runtime.authenticate_key(rt.db, tenant.org_id, tenant.key, None)
    return ToolContext(rt, principal, customer_id=tenant.customers[0] if tenant.customers else None,
                       thread_id="thr_home", documents=SPECS_DIR)


async def ask(rt: runtime.Platform, tenant: Tenant, prompt: str) -> dict[str, Any]:
    graph = agents.build_graph("home", context(rt, tenant))
    return await graph.ainvoke({"messages": [{"role": "user", "content": prompt}]})


def names(result: dict[str, Any]) -> list[str]:
    """The tools the run called, in order."""
    return [call["name"] for m in result["messages"] if isinstance(m, AIMessage) for call in m.tool_calls]


@aio
async def test_a_connector_prompt_runs_the_connector_agent(rt, db) -> None:
    tenant = make_tenant(db, "Home connector", customers=1)
    result = await ask(rt, tenant, "Add a connector for Cin7")
    assert result["route"]["agent"] == "connector_agent"
    assert "find_api_description" in names(result) and "import_api" in names(result)
    with rt.db.tenant(tenant.org_id) as tx:
        keys = [c["key"] for c in store.Connectors(tx).list(tenant.org_id, store.ListQuery(limit=10)).items]
    assert len(keys) == 1 and "cin7" in keys[0]


@aio
async def test_an_onboarding_prompt_runs_the_setup_assistant_and_its_review_pauses_home(rt, db, site) -> None:
    tenant = make_tenant(db, "Home setup", customers=0)
    graph = agents.build_graph("home", context(rt, tenant), checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "home-setup"}, "recursion_limit": 200}
    paused = await graph.ainvoke({"messages": [{"role": "user", "content": f"Set up my account from {site.url}"}]}, config)
    assert paused["route"]["agent"] == "setup_assistant"
    # Home -> Setup Assistant -> Integration Agent: the review interrupt reaches Home's caller.
    (pending,) = paused["__interrupt__"]
    assert pending.value["type"] == "review" and pending.value["workflow"] == "hubspot-contacts-to-cin7-customers"
    with rt.db.tenant(tenant.org_id) as tx:
        state = store.Organizations(tx).get(tenant.org_id)["onboarding"]
    assert state["steps"]["use_cases"]["use_cases"][0]["prompt"] == FLAGSHIP and state["step"] == "workflows"

    done = await graph.ainvoke(Command(resume={"action": "approve"}), config)
    text = "\n".join(str(m.content) for m in done["messages"])
    assert "use cases proposed" in text and "first integration published" in text
    with rt.db.tenant(tenant.org_id) as tx:
        state = store.Organizations(tx).get(tenant.org_id)["onboarding"]
    assert state["steps"]["workflows"]["status"] == "done" and state["steps"]["embed"]["status"] == "done"
    assert state["steps"]["live"]["status"] == "done", state["steps"]["live"]


@aio
async def test_an_integration_prompt_the_offline_planner_cannot_build_gets_its_clear_answer(rt, db) -> None:
    tenant = make_tenant(db, "Home integration", customers=1)
    result = await ask(rt, tenant, "Sync HubSpot contacts to Cin7 customers")
    assert result["route"]["agent"] == "integration_agent"
    last = result["messages"][-1]
    assert last.response_metadata["model_provider"] == "offline"
    assert str(last.content).startswith("offline planner: cannot do this")
    assert "a sync needs the field to match records by: add 'matching by <field>'" in str(last.content)
    assert names(result) == []  # nothing was called, nothing built


@aio
async def test_a_prompt_no_agent_takes_gets_a_clear_answer_and_prompts_to_try(rt, db) -> None:
    tenant = make_tenant(db, "Home unknown", customers=0)
    result = await ask(rt, tenant, "What's the weather in Paris?")
    assert result["route"]["agent"] is None
    answer = result["messages"][-1]
    assert answer.response_metadata["model_provider"] == "offline"
    text = str(answer.content)
    assert text.startswith("home (offline planner): cannot route this")
    assert "sync A's X to B's Y matching by F" in text and "need a model" in text
    assert result["recommended"] and all(f"try {n + 1}: {r['prompt']}" in text for n, r in enumerate(result["recommended"]))


@aio
async def test_recommended_prompts_follow_the_organizations_state(rt, db) -> None:
    tenant = make_tenant(db, "Home recommend", customers=1)
    fresh = await agents.recommended_prompts(rt, tenant.org_id)
    assert fresh[0] == {"prompt": "Set up my account from https://www.your-company.com", "agent": "setup_assistant",
                        "why": "onboarding has not started: it begins from the company's website"}
    assert any(r["prompt"] == "Add a connector for Hubspot" for r in fresh)
    assert not any(r["agent"] == "integration_agent" for r in fresh)

    ctx = context(rt, tenant)
    registry = default_registry()
    for document, key in (("hubspot-crm-contacts-v3.json", "hubspot"), ("cin7-core-v2-subset.yaml", "cin7")):
        assert "error" not in await registry.invoke(ctx, "import_api", {"document": document, "connector_id": key})
    await registry.invoke(ctx, "record_onboarding", {"step": "use_cases", "status": "done",
                                                     "website": "https://larkspur.example"})
    connected = await agents.recommended_prompts(rt, tenant.org_id)
    prompts_ = [r["prompt"] for r in connected]
    assert prompts_[0] == "Continue setting up from https://larkspur.example"
    assert "Sync Hubspot contacts to Cin7 customers, matching by email" in prompts_
    assert not any(p.startswith("Add a connector") for p in prompts_)

    for step in ONBOARDING_STEPS:
        await registry.invoke(ctx, "record_onboarding", {"step": step, "status": "done"})
    done = await agents.recommended_prompts(rt, tenant.org_id)
    assert not any(r["agent"] == "setup_assistant" for r in done)
    # Every recommendation is a prompt Home routes to the agent it names.
    for recommended in fresh + connected + done:
        assert agents.route_of(recommended["prompt"]).agent == recommended["agent"], recommended


@pytest.fixture(scope="module")
def fake_model() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve_app(fake.app) as url:
        yield fake, url


@aio
async def test_with_a_model_a_message_no_rule_routes_is_routed_by_the_model(rt, db, fake_model) -> None:
    fake, url = fake_model
    fake.replies.clear()
    fake.requests.clear()
    # Home's model routes with route_to; the Connector Agent's model (same server) then answers in words.
    fake.enqueue(Reply(tool_calls=(ScriptedCall("RouteTo", {"agent": "connector_agent", "reason": "an app's API"}),)),
                 Reply(content="Which app's documentation should I start from?"))
    tenant = make_tenant(db, "Home model", customers=1)
    setting = agents.ModelSetting.parse("openai:fake-gpt", base_url=f"{url}/v1", api_key="sk-test-home", max_retries=0)
    graph = agents.build_graph("home", context(rt, tenant), model=setting)
    result = await graph.ainvoke({"messages": [{"role": "user", "content": "I'd like Larkspur to talk to our ERP"}]})
    assert result["route"] == {"agent": "connector_agent", "reason": "the model routed it"}
    tools_offered = [t["function"]["name"] for t in fake.requests[0]["tools"]]
    assert tools_offered == ["RouteTo"]
    assert "Home router" in json.dumps(fake.requests[0]["messages"])
    assert len(fake.requests) == 2  # the Connector Agent ran, on the same model

    fake.enqueue(Reply(content="Switchboard connects apps; it does not know the weather."))
    answered = await graph.ainvoke({"messages": [{"role": "user", "content": "What's the weather in Paris?"}]})
    assert answered["route"]["agent"] is None and answered["recommended"]
    assert answered["messages"][-1].content == "Switchboard connects apps; it does not know the weather."
