"""The Setup Assistant with the offline model against a fictional company's website
(``tests/data/sites/larkspur``: CRM in HubSpot, inventory and orders in Cin7) served over real HTTP
on 127.0.0.1, on a real platform (Postgres, hosted sandboxes).

The site is reached under ``https://larkspur.example`` through one mounted prefix of the
platform's HTTP client (``support.sites``); the SSRF guard stays closed to 127.0.0.1 itself.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import agents
import runtime
import store
from support.documents import SPECS_DIR
from support.fake_openai import FakeOpenAI, Reply
from support.platform import Tenant, make_tenant
from support.servers import serve_app
from support.sites import ServedSite, served_site
from switchboard.app import open_platform
from test_flagship import CIN7_SEED, HUBSPOT_SEED
from switchboard.settings import Settings
from tools import ONBOARDING_STEPS, ToolContext, default_registry

pytestmark = pytest.mark.asyncio(loop_scope="module")

FLAGSHIP = "Sync HubSpot contacts to Cin7 customers, matching by email"


@pytest.fixture(scope="module")
def site() -> Iterator[ServedSite]:
    with served_site("larkspur") as served:
        yield served


@pytest.fixture(scope="module")
def bare_site() -> Iterator[ServedSite]:
    with served_site("plainbakery") as served:
        yield served


@pytest.fixture(scope="module")
def quiet_site() -> Iterator[ServedSite]:
    with served_site("fernhill") as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rt(migrated_database_url: str, site: ServedSite, bare_site: ServedSite,
             quiet_site: ServedSite) -> AsyncIterator[runtime.Platform]:
    with tempfile.TemporaryDirectory() as data_dir:
        # No egress allow-list: only the sites' public names are mounted.
        settings = Settings(database_url=migrated_database_url, data_dir=Path(data_dir))
        async with open_platform(settings) as p:
            p.http = p.http.mounted({**site.mount(), **bare_site.mount(), **quiet_site.mount()})
            yield p


def context(rt: runtime.Platform, tenant: Tenant, thread: str = "thr_setup") -> ToolContext:
    principal = runtime.authenticate_key(rt.db, tenant.org_id, tenant.key, None)
    return ToolContext(rt, principal, thread_id=thread, documents=SPECS_DIR)


async def run(graph: Any, config: dict[str, Any], payload: Any) -> dict[str, Any]:
    return await graph.ainvoke(payload, config)


def onboarding(rt: runtime.Platform, org_id: str) -> dict[str, Any]:
    with rt.db.tenant(org_id) as tx:
        return store.Organizations(tx).get(org_id)["onboarding"]


def texts(result: dict[str, Any]) -> str:
    return "\n".join(str(m.content) for m in result["messages"])


async def test_it_proposes_use_cases_and_connectors_that_fit_the_site(rt, db, site) -> None:
    tenant = make_tenant(db, "Larkspur", customers=0)
    graph = agents.build_graph("setup_assistant", context(rt, tenant), checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "proposals"}}
    result = await run(graph, config, {"messages": [{"role": "user", "content": f"Set up my account from {site.url}"}]})

    state = onboarding(rt, tenant.org_id)
    assert state["website"] == site.url
    use_cases = state["steps"]["use_cases"]
    assert use_cases["status"] == "done" and use_cases["proposed_by"] == "offline planner"
    # Every page of the site was read through the mount, the off-site link was not followed.
    assert sorted(p["url"] for p in use_cases["pages"]) == [site.url + path for path in
                                                           ("", "/about.html", "/contact.html", "/how-we-work.html")]
    assert [a["name"] for a in use_cases["apps"]] == ["HubSpot", "Cin7"]
    hubspot, cin7 = use_cases["apps"]
    assert hubspot["kinds"][:2] == ["contact", "company"] and "crm" in hubspot["categories"]
    assert {"customer", "order", "product"} <= set(cin7["kinds"])
    prompts_ = [u["prompt"] for u in use_cases["use_cases"]]
    assert prompts_[0] == FLAGSHIP
    assert "When a contact is created in HubSpot, create a customer in Cin7" in prompts_
    # Each proposal quotes the site.
    quotes = [w["quote"] for w in use_cases["use_cases"][0]["why"]]
    assert any("in HubSpot, our CRM" in q for q in quotes) and any("Cin7 Core" in q for q in quotes)
    for use_case in use_cases["use_cases"]:
        assert isinstance(agents.parse_intent(use_case["prompt"], apps=["HubSpot", "Cin7"]), agents.Intent)

    connectors = state["steps"]["connectors"]
    assert connectors["status"] == "done"
    found = {c["app"]: c for c in connectors["connectors"]}
    assert found["HubSpot"]["source"] == "api_description" and found["HubSpot"]["document"] == "hubspot-crm-contacts-v3.json"
    assert found["Cin7"]["document"] == "cin7-core-v2-subset.yaml"
    assert state["step"] in ("workflows", "embed", "live")
    assert "use cases proposed" in texts(result) and "offline planner" in texts(result)
    assert state["threads"] == ["thr_setup"]


async def test_a_site_that_names_one_app_gets_no_guess(rt, db, bare_site) -> None:
    tenant = make_tenant(db, "Plain Bakery", customers=0)
    graph = agents.build_graph("setup_assistant", context(rt, tenant))
    result = await graph.ainvoke({"messages": [{"role": "user", "content": f"Onboard us: {bare_site.url}/"}]})
    step = onboarding(rt, tenant.org_id)["steps"]["use_cases"]
    assert step["status"] == "blocked" and step["use_cases"] == []
    assert "the site names 1 of the apps known here (Xero)" in step["reason"]
    assert "stopped" in texts(result) and "name the apps you use" in texts(result)


async def test_the_guard_still_refuses_the_sites_real_loopback_address(rt, db, site) -> None:
    tenant = make_tenant(db, "Loopback", customers=0)
    graph = agents.build_graph("setup_assistant", context(rt, tenant))
    result = await graph.ainvoke({"messages": [{"role": "user", "content": f"Set up my account from {site.local}/"}]})
    step = onboarding(rt, tenant.org_id)["steps"]["use_cases"]
    assert step["status"] == "failed" and "could not read" in step["reason"]
    assert "egress" in step["reason"].lower() or "refused" in step["reason"].lower()
    assert "stopped" in texts(result)


async def test_without_a_website_it_asks_for_one_and_records_nothing(rt, db) -> None:
    tenant = make_tenant(db, "No Site", customers=0)
    graph = agents.build_graph("setup_assistant", context(rt, tenant))
    result = await graph.ainvoke({"messages": [{"role": "user", "content": "set up my account please"}]})
    assert "needs the website" in texts(result)
    assert onboarding(rt, tenant.org_id) == {}


async def test_another_website_does_not_mix_with_recorded_onboarding(rt, db, site, bare_site) -> None:
    tenant = make_tenant(db, "Two sites", customers=0)
    graph = agents.build_graph("setup_assistant", context(rt, tenant))
    await graph.ainvoke({"messages": [{"role": "user", "content": f"Set up my account from {bare_site.url}"}]})
    before = onboarding(rt, tenant.org_id)
    result = await graph.ainvoke({"messages": [{"role": "user", "content": f"Set up my account from {site.url}"}]})
    assert "onboarding is for another website" in texts(result) and "reset-onboarding" in texts(result)
    assert onboarding(rt, tenant.org_id) == before


async def test_reset_onboarding_wipes_the_recorded_state(rt, db, http, site) -> None:
    tenant = make_tenant(db, "Reset Co", customers=0)
    with rt.db.tenant(tenant.org_id) as tx:
        for thread_id, graph in (("thr_setup", "setup_assistant"), ("thr_other", "integration_agent")):
            store.Threads(tx).create(tenant.org_id, thread_id, graph=graph, title="t", metadata={}, customer_id=None,
                                     actor_type="user", actor_id="u")
        store.Organizations(tx).update(tenant.org_id, {"onboarding": {
            "website": site.url, "step": "connectors", "threads": ["thr_setup"],
            "steps": {"use_cases": {"status": "done", "use_cases": [{"prompt": FLAGSHIP}]}}}})
    before = http.get("/v1/organization", headers=tenant.headers()).json()["onboarding"]
    assert before["steps"]["use_cases"]["status"] == "done"
    reset = http.post("/v1/organization/reset-onboarding", headers=tenant.headers())
    assert reset.status_code == 200 and reset.json()["onboarding"] == {}
    assert onboarding(rt, tenant.org_id) == {}
    # The Setup Assistant's thread went with the state; the builder's other threads stay.
    assert http.get("/v1/threads/thr_setup", headers=tenant.headers()).status_code == 404
    assert http.get("/v1/threads/thr_other", headers=tenant.headers()).status_code == 200
    assert set(ONBOARDING_STEPS) == {"use_cases", "connectors", "workflows", "embed", "live"}


@pytest.fixture(scope="module")
def fake_model() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve_app(fake.app) as url:
        yield fake, url


def model_for(url: str) -> agents.ModelSetting:
    return agents.ModelSetting.parse("openai:fake-gpt", base_url=f"{url}/v1", api_key="sk-test-setup", max_retries=0)


async def test_with_a_model_the_model_proposes_from_the_sites_text(rt, db, site, fake_model) -> None:
    fake, url = fake_model
    fake.replies.clear()
    fake.requests.clear()
    proposal = {"use_cases": [{"title": "New trade accounts become Cin7 customers", "prompt": FLAGSHIP,
                               "source_app": "HubSpot", "target_app": "Cin7",
                               "why": [{"url": site.url + "/about.html", "quote": "in HubSpot, our CRM"}]}]}
    fake.enqueue(Reply(content="```json\n" + json.dumps(proposal) + "\n```", prompt_tokens=900, completion_tokens=80),
                 Reply(content="I will not build this now."))
    tenant = make_tenant(db, "Larkspur model", customers=0)
    graph = agents.build_graph("setup_assistant", context(rt, tenant), model=model_for(url))
    result = await graph.ainvoke({"messages": [{"role": "user", "content": f"Set up my account from {site.url}"}]})

    asked = json.dumps(fake.requests[0]["messages"])
    assert "Setup Assistant" in asked and "in HubSpot, our CRM" in asked and "Cin7 Core" in asked
    step = onboarding(rt, tenant.org_id)["steps"]["use_cases"]
    assert step["proposed_by"] == "model fake-gpt" and [u["prompt"] for u in step["use_cases"]] == [FLAGSHIP]
    # The model's call is in the conversation with its usage (what credits count).
    used = [m for m in result["messages"] if getattr(m, "usage_metadata", None) and m.usage_metadata["input_tokens"]]
    assert used and used[0].usage_metadata["input_tokens"] == 900
    assert onboarding(rt, tenant.org_id)["steps"]["connectors"]["status"] == "done"


async def test_an_unreadable_model_answer_falls_back_to_the_offline_reading_and_says_so(rt, db, site, fake_model) -> None:
    fake, url = fake_model
    fake.replies.clear()
    fake.enqueue(Reply(content="Sure! Larkspur could integrate lots of things."), Reply(content="Not now."))
    tenant = make_tenant(db, "Larkspur vague model", customers=0)
    graph = agents.build_graph("setup_assistant", context(rt, tenant), model=model_for(url))
    await graph.ainvoke({"messages": [{"role": "user", "content": f"Set up my account from {site.url}"}]})
    step = onboarding(rt, tenant.org_id)["steps"]["use_cases"]
    assert step["proposed_by"] == "offline planner" and step["use_cases"][0]["prompt"] == FLAGSHIP
    assert "not a readable proposal" in step["note"]


async def test_it_reaches_live_with_one_working_integration(rt, db, site) -> None:
    tenant = make_tenant(db, "Larkspur live", customers=0)
    ctx = context(rt, tenant, thread="thr_live")
    graph = agents.build_graph("setup_assistant", ctx, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "live"}, "recursion_limit": 200}
    paused = await graph.ainvoke({"messages": [{"role": "user", "content": f"Set up my account from {site.url}"}]},
                                 config)
    # The first use case was handed to the Integration Agent, which stops for the builder's review.
    (pending,) = paused["__interrupt__"]
    assert pending.value["type"] == "review" and pending.value["workflow"] == "hubspot-contacts-to-cin7-customers"
    state = onboarding(rt, tenant.org_id)
    assert state["step"] == "workflows" and state["steps"]["workflows"]["status"] == "in_progress"
    assert state["steps"]["workflows"]["prompt"] == FLAGSHIP
    with rt.db.tenant(tenant.org_id) as tx:  # nothing published before the builder approves
        assert store.Workflows(tx).get(tenant.org_id, "hubspot-contacts-to-cin7-customers")["latest_version"] is None

    # The builder's test data: the hosted sandboxes the test customer's connections will target.
    for key, seed in (("hubspot", HUBSPOT_SEED), ("cin7", CIN7_SEED)):
        await rt.sandboxes.seed(ctx.principal, key, seed)
    done = await graph.ainvoke(Command(resume={"action": "approve"}), config)

    state = onboarding(rt, tenant.org_id)
    assert {step: state["steps"][step]["status"] for step in ONBOARDING_STEPS} == dict.fromkeys(ONBOARDING_STEPS, "done")
    assert state["step"] == "live" and done["report"]["status"] == "live"
    workflows = state["steps"]["workflows"]
    assert workflows["workflow"] == "hubspot-contacts-to-cin7-customers" and workflows["version"] == 1
    embed = state["steps"]["embed"]["config"]
    assert {c["connector"]: (c["auth"], c["ready"]) for c in embed["connectors"]} == {
        "hubspot": ("oauth2", False), "cin7": ("api_key", True)}
    assert embed["needs"] == ["an OAuth app for hubspot (POST <your Switchboard URL>/v1/oauth-apps) before production "
                              "customers connect"]
    assert tenant.org_id in embed["snippet"] and "oauth/start" in embed["snippet"]
    live = state["steps"]["live"]
    assert live["status"] == "done" and live["environment"] == "dev" and live["input"] == {"currency": "USD"}
    assert live["connections"] == [{"connector": "cin7", "target": "sandbox"}, {"connector": "hubspot", "target": "sandbox"}]
    assert live["output"] == {"created": 2, "updated": 1, "unchanged": 1, "skipped": 1}, live  # Carol already holds what the map gives

    # The run is a real execution of the published version for the test customer, and Cin7 holds the contacts.
    with rt.db.tenant(tenant.org_id) as tx:
        execution = store.Executions(tx).get(tenant.org_id, live["execution_id"])
    assert execution["status"] == "completed" and execution["customer_id"] == live["customer_id"]
    assert execution["dry_run"] is False and execution["version"] == 1
    customers = {c["Name"]: c for c in (await rt.sandboxes.state(ctx.principal, "cin7"))["collections"]["/customer"]}
    assert customers["Ada Lovelace"]["Currency"] == "USD"
    assert customers["Ada Lovelace"]["Contacts"][0]["Email"] == "ada@example.com"
    assert "setup assistant (offline planner): live" in texts(done)

    # A second run continues where onboarding stands: nothing is redone, nothing published again.
    again = await agents.build_graph("setup_assistant", ctx).ainvoke(
        {"messages": [{"role": "user", "content": f"Continue setting up from {site.url}"}]})
    assert again["report"]["status"] == "live" and onboarding(rt, tenant.org_id)["steps"]["live"] == live


async def test_a_required_input_nobody_gave_blocks_live_until_the_builder_says_it(rt, db, quiet_site) -> None:
    tenant = make_tenant(db, "Fernhill", customers=0)
    graph = agents.build_graph("setup_assistant", context(rt, tenant), checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "fernhill"}, "recursion_limit": 200}
    await graph.ainvoke({"messages": [{"role": "user", "content": f"Set up my account from {quiet_site.url}"}]}, config)
    blocked = await graph.ainvoke(Command(resume={"action": "approve"}), config)
    live = onboarding(rt, tenant.org_id)["steps"]["live"]
    # The site names no currency and the builder gave none: nothing is made up.
    assert live["status"] == "blocked" and live["needs"] == ["currency"], live
    assert f"Continue setting up from {quiet_site.url} with currency <value>" in live["reason"]
    assert "stopped" in texts(blocked)

    resumed = await agents.build_graph("setup_assistant", context(rt, tenant)).ainvoke(
        {"messages": [{"role": "user", "content": f"Continue setting up from {quiet_site.url} with currency NZD"}]})
    live = onboarding(rt, tenant.org_id)["steps"]["live"]
    assert live["status"] == "done" and live["input"] == {"currency": "NZD"} and resumed["report"]["status"] == "live"
    # The earlier steps were not redone: still the one published version.
    assert onboarding(rt, tenant.org_id)["steps"]["workflows"]["version"] == 1 and live["version"] == 1
