"""Agent credits: model calls of a LangGraph run through the fake OpenAI-compatible server (which
reports usage) land in the ledger by run, thread, customer and organization; the offline model
costs nothing; an organization out of credits is refused before the model is called (the fake
server sees no request); the tools' policy hook reads the same remainder; billing shows the numbers.

Real Postgres, the real platform (``open_platform``) and real HTTP on 127.0.0.1 throughout.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph

import runtime
from api.errors import coded_error_response
import store
from agents import CreditMeter, CreditsExhausted, ModelSetting, OfflineChatModel, chat_model, usage_callbacks
from support.fake_openai import FakeOpenAI, Reply, ScriptedCall
from support.platform import Tenant, make_tenant
from support.servers import serve_app
from switchboard.app import open_platform
from switchboard.settings import Settings
from tools import ToolContext, default_registry

# The async tests share the module's platform, so they share its event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

MODEL = "gpt-4o-mini"  # priced 0.15 / 0.6 credits per 1K tokens by the built-in table


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    server = FakeOpenAI()
    with serve_app(server.app) as url:
        yield server, url


@pytest.fixture
def server(fake: tuple[FakeOpenAI, str]) -> FakeOpenAI:
    fake[0].replies.clear()
    fake[0].requests.clear()
    return fake[0]


@pytest.fixture(scope="module")
def setting(fake: tuple[FakeOpenAI, str]) -> ModelSetting:
    return ModelSetting.parse(f"openai:{MODEL}", base_url=f"{fake[1]}/v1", api_key="sk-test", max_retries=0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(migrated_database_url: str) -> AsyncIterator[runtime.Platform]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(database_url=migrated_database_url, data_dir=Path(data_dir), egress_allow=["127.0.0.1"])
        async with open_platform(settings) as p:
            yield p


def tenant(db: store.Database, name: str) -> Tenant:
    return make_tenant(db, name, customers=2)


def graph(model: Any):
    """Two model calls in a row, each a node: the smallest graph whose run makes several calls."""

    async def think(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("plan", think)
    builder.add_node("answer", think)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "answer")
    builder.add_edge("answer", END)
    return builder.compile()


def ledger(platform: runtime.Platform, org_id: str, **where: Any) -> store.UsageTotals:
    with platform.db.tenant(org_id) as tx:
        return store.AgentUsage(tx).totals(org_id, **where)


# -- pricing ------------------------------------------------------------------------------------------------------


def test_rates_by_model() -> None:
    rates = runtime.CreditRates()
    assert rates.rate("offline", "") == runtime.CreditRate(0, 0)
    assert rates.rate("openai", "gpt-4o-mini") == runtime.CreditRate(0.15, 0.6)
    # A dated variant takes the rate of the longest name it starts with, not gpt-4o's.
    assert rates.rate("openai", "gpt-4o-mini-2024-07-18") == runtime.CreditRate(0.15, 0.6)
    assert rates.rate("openai", "gpt-4o-2024-08-06") == runtime.CreditRate(2.5, 10)
    assert rates.rate("litellm", "openai/gpt-4o-mini") == runtime.CreditRate(0.15, 0.6)
    assert rates.rate("openai", "my-local-llama") == runtime.DEFAULT_CREDIT_RATE
    assert rates.price("openai", "gpt-4o-mini", 1000, 1000) == pytest.approx(0.75)


def test_settings_add_and_replace_rates() -> None:
    settings = Settings(agent_credit_rates={"My-Llama": {"input": 0, "output": 0}, "gpt-4o-mini": {"input": 1, "output": 2}},
                        agent_credit_default_rate={"input": 5, "output": 5})
    rates = settings.credit_rates()
    assert rates.rate("openai", "my-llama-3") == runtime.CreditRate(0, 0)
    assert rates.rate("openai", "gpt-4o-mini") == runtime.CreditRate(1, 2)
    assert rates.rate("openai", "unknown") == runtime.CreditRate(5, 5)
    with pytest.raises(ValueError, match="agent credit rate 'x'"):
        Settings(agent_credit_rates={"x": {"input": -1, "output": 1}})
    with pytest.raises(ValueError, match="default agent credit rate"):
        Settings(agent_credit_default_rate={"input": 1})


def test_every_plan_has_an_agent_credit_allowance() -> None:
    assert set(store.AGENT_CREDIT_PLANS) == set(store.PLANS)
    assert store.AGENT_CREDIT_PLANS["free"] < store.AGENT_CREDIT_PLANS["pro"] < store.AGENT_CREDIT_PLANS["enterprise"]


def test_credit_periods_are_calendar_months() -> None:
    assert store.period_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError):
        store.period_bounds(datetime(2026, 5, 1))


# -- the ledger ---------------------------------------------------------------------------------------------------


@in_module_loop
async def test_a_runs_model_calls_land_in_the_ledger_by_run_thread_and_org(
    platform: runtime.Platform, db: store.Database, server: FakeOpenAI, setting: ModelSetting
) -> None:
    org = tenant(db, "Credits ledger")
    server.enqueue(
        Reply(tool_calls=(ScriptedCall("search_catalog", {"query": "hubspot"}),), prompt_tokens=1200, completion_tokens=300),
        Reply(content="done", prompt_tokens=2000, completion_tokens=100),
        Reply(content="second run", prompt_tokens=500, completion_tokens=50),
    )
    callbacks = usage_callbacks(platform, org.org_id, "thr_1", "run_1", setting, customer_id=org.customers[0])
    meter = callbacks[0]
    assert isinstance(meter, CreditMeter)
    await graph(chat_model(setting)).ainvoke({"messages": [HumanMessage("sync contacts")]}, config={"callbacks": callbacks})
    assert len(server.requests) == 2
    assert (meter.input_tokens, meter.output_tokens) == (3200, 400)
    run_1 = ledger(platform, org.org_id, run_id="run_1")
    assert (run_1.calls, run_1.input_tokens, run_1.output_tokens) == (2, 3200, 400)
    assert run_1.credits == pytest.approx((3200 * 0.15 + 400 * 0.6) / 1000) == pytest.approx(meter.spent)

    # A second run of the same thread, synchronous and streamed this time, without a customer.
    second = usage_callbacks(platform, org.org_id, "thr_1", "run_2", setting)
    chunks = list(chat_model(setting).stream([HumanMessage("again")], config={"callbacks": second}))
    assert "".join(str(c.content) for c in chunks) == "second run"
    assert ledger(platform, org.org_id, run_id="run_2").input_tokens == 500
    thread = ledger(platform, org.org_id, thread_id="thr_1")
    assert (thread.calls, thread.input_tokens, thread.output_tokens) == (3, 3700, 450)
    assert ledger(platform, org.org_id).credits == pytest.approx(thread.credits)
    assert ledger(platform, org.org_id, customer_id=org.customers[0]).calls == 2
    with platform.db.tenant(org.org_id) as tx:
        rows = tx.execute("SELECT model, provider, counted FROM agent_usage WHERE org_id = %s", (org.org_id,)).fetchall()
    assert {(r["model"], r["provider"], r["counted"]) for r in rows} == {(MODEL, "openai", "reported")}
    summary = platform.credits.summary(org.org_id)
    assert (summary.plan, summary.source, summary.allowance) == ("free", "plan", store.AGENT_CREDIT_PLANS["free"])
    assert platform.credits.remaining(org.org_id) == pytest.approx(summary.allowance - thread.credits)


@in_module_loop
async def test_the_litellm_path_is_counted_and_priced_the_same(
    platform: runtime.Platform, db: store.Database, server: FakeOpenAI, fake: tuple[FakeOpenAI, str]
) -> None:
    org = tenant(db, "Credits litellm")
    setting = ModelSetting.parse(f"litellm:openai/{MODEL}", base_url=f"{fake[1]}/v1", api_key="sk-test", max_retries=0)
    server.enqueue(Reply(content="via litellm", prompt_tokens=4000, completion_tokens=400))
    callbacks = usage_callbacks(platform, org.org_id, "thr_l", "run_l", setting)
    answer = chat_model(setting).invoke([HumanMessage("hi")], config={"callbacks": callbacks})
    assert answer.content == "via litellm"
    totals = ledger(platform, org.org_id, run_id="run_l")
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (1, 4000, 400)
    assert totals.credits == pytest.approx((4000 * 0.15 + 400 * 0.6) / 1000)
    with platform.db.tenant(org.org_id) as tx:
        row = tx.execute("SELECT model, provider FROM agent_usage WHERE org_id = %s", (org.org_id,)).fetchone()
    assert (row["model"], row["provider"]) == (f"openai/{MODEL}", "litellm")


@in_module_loop
async def test_the_offline_model_costs_nothing(platform: runtime.Platform, db: store.Database) -> None:
    org = tenant(db, "Credits offline")
    callbacks = usage_callbacks(platform, org.org_id, "thr_off", "run_off", "offline")
    await graph(OfflineChatModel()).ainvoke({"messages": [HumanMessage("hello")]}, config={"callbacks": callbacks})
    totals = ledger(platform, org.org_id, run_id="run_off")
    assert (totals.calls, totals.input_tokens, totals.output_tokens, totals.credits) == (2, 0, 0, 0.0)
    with platform.db.tenant(org.org_id) as tx:
        rows = tx.execute("SELECT provider, counted FROM agent_usage WHERE org_id = %s", (org.org_id,)).fetchall()
    assert {(r["provider"], r["counted"]) for r in rows} == {("offline", "offline")}
    assert platform.credits.remaining(org.org_id) == store.AGENT_CREDIT_PLANS["free"]


@in_module_loop
async def test_an_organization_out_of_credits_is_refused_before_the_model_is_called(
    platform: runtime.Platform, db: store.Database, server: FakeOpenAI, setting: ModelSetting
) -> None:
    org = tenant(db, "Credits broke")
    with platform.db.tenant(org.org_id) as tx:
        store.AgentUsage(tx).set_allowance(org.org_id, 1)
    # Under the allowance: the call is made, and it overshoots (its size is known only afterwards).
    server.enqueue(Reply(content="expensive", prompt_tokens=5000, completion_tokens=1000), Reply(content="never sent"))
    callbacks = usage_callbacks(platform, org.org_id, "thr_b", "run_b", setting)
    with pytest.raises(CreditsExhausted) as info:
        await graph(chat_model(setting)).ainvoke({"messages": [HumanMessage("build")]}, config={"callbacks": callbacks})
    assert len(server.requests) == 1  # the second node's call was refused before any request
    spent = (5000 * 0.15 + 1000 * 0.6) / 1000
    error = info.value
    assert (error.code, error.http_status, error.org_id, error.allowance) == ("credits_exhausted", 402, org.org_id, 1)
    assert error.used == pytest.approx(spent)
    assert "1 agent credits" in str(error) and f"{spent:g}" in str(error)
    problem = json.loads(coded_error_response(error).body)
    assert (problem["status"], problem["code"], problem["allowance"]) == (402, "credits_exhausted", 1)
    assert problem["used"] == pytest.approx(spent)
    assert datetime.fromisoformat(problem["reset_at"]) == error.reset_at == platform.credits.summary(org.org_id).period_end
    assert platform.credits.remaining(org.org_id) == pytest.approx(1 - spent)

    # A new run, sync and async, is refused at its first call; nothing reaches the server or the ledger.
    server.requests.clear()
    for run in ("run_c", "run_d"):
        callbacks = usage_callbacks(platform, org.org_id, "thr_b", run, setting)
        with pytest.raises(CreditsExhausted):
            if run == "run_c":
                chat_model(setting).invoke([HumanMessage("again")], config={"callbacks": callbacks})
            else:
                await graph(chat_model(setting)).ainvoke({"messages": [HumanMessage("x")]}, config={"callbacks": callbacks})
    assert server.requests == []
    assert ledger(platform, org.org_id, thread_id="thr_b").calls == 1

    # The tools' policy hook reads the same remainder through the tools.Credits seam.
    principal = runtime.authenticate_key(platform.db, org.org_id, org.key, None)
    ctx = ToolContext(platform, principal, credits=platform.credits)
    result = await default_registry().invoke(ctx, "search_catalog", {"query": "hubspot"})
    assert result["error"]["code"] == "credits_exhausted"

    # More credits let the organization's agents through again.
    with platform.db.tenant(org.org_id) as tx:
        store.AgentUsage(tx).set_allowance(org.org_id, None)
    usage_callbacks(platform, org.org_id, "thr_b", "run_e", setting)[0].check()


@in_module_loop
async def test_another_organizations_ledger_is_invisible(platform: runtime.Platform, db: store.Database) -> None:
    a, b = tenant(db, "Credits A"), tenant(db, "Credits B")
    platform.credits.record(b.org_id, run_id="run_secret", thread_id="thr_secret", provider="openai", model=MODEL,
                            input_tokens=100_000, output_tokens=0)
    with platform.db.tenant(a.org_id) as tx:
        usage = store.AgentUsage(tx)
        assert usage.totals(b.org_id).calls == 0
        assert usage.page(b.org_id, store.ListQuery(sort="-last_at")).items == []
        assert tx.execute("SELECT count(*) AS n FROM agent_usage WHERE run_id = 'run_secret'").fetchone()["n"] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with tx.transaction():
                usage.record(b.org_id, run_id="forged", model=MODEL, provider="openai", input_tokens=1,
                             output_tokens=1, credits=1)
    assert platform.credits.remaining(a.org_id) == store.AGENT_CREDIT_PLANS["free"]
    assert platform.credits.remaining(b.org_id) == pytest.approx(store.AGENT_CREDIT_PLANS["free"] - 15)


# -- billing ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(platform_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def platform_url(migrated_database_url: str) -> Iterator[str]:
    from support.platform import running_platform

    with running_platform(migrated_database_url) as (url, _settings):
        yield url


@in_module_loop
async def test_billing_shows_agent_tokens_and_credits(platform: runtime.Platform, db: store.Database,
                                                      api: httpx.Client) -> None:
    org, other = tenant(db, "Credits billing"), tenant(db, "Credits other")
    first, second = org.customers
    record = platform.credits.record
    record(org.org_id, run_id="run_1", thread_id="thr_1", customer_id=first, provider="openai", model=MODEL,
           input_tokens=10_000, output_tokens=1_000)  # 1.5 + 0.6
    record(org.org_id, run_id="run_2", thread_id="thr_1", customer_id=first, provider="openai", model="gpt-4o",
           input_tokens=1_000, output_tokens=100)  # 2.5 + 1.0
    record(org.org_id, run_id="run_3", thread_id="thr_2", provider="offline", model="offline", input_tokens=0,
           output_tokens=0, counted="offline")
    record(other.org_id, run_id="run_x", thread_id="thr_x", provider="openai", model=MODEL, input_tokens=99, output_tokens=9)

    billing = api.get("/v1/billing", headers=org.headers()).json()
    credits = billing["agent_credits"]
    assert billing["agent_credit_plans"] == store.AGENT_CREDIT_PLANS
    assert (credits["allowance"], credits["source"], credits["period"]) == (1000, "plan", "month")
    assert credits["used"] == pytest.approx(5.6)
    assert credits["remaining"] == pytest.approx(994.4)
    assert (credits["calls"], credits["input_tokens"], credits["output_tokens"]) == (3, 11_000, 1_100)

    # The organization's own allowance, and back to the plan's.
    changed = api.patch("/v1/billing", headers=org.headers(), json={"agent_credits": 5}).json()["agent_credits"]
    assert (changed["allowance"], changed["source"], changed["remaining"]) == (5, "organization", 0)
    assert platform.credits.remaining(org.org_id) == pytest.approx(-0.6)
    assert api.patch("/v1/billing", headers=org.headers(), json={"plan": "pro"}).json()["agent_credits"]["allowance"] == 5
    back = api.patch("/v1/billing", headers=org.headers(), json={"agent_credits": None, "plan": "free"}).json()
    assert (back["plan"], back["agent_credits"]["source"], back["agent_credits"]["allowance"]) == ("free", "plan", 1000)
    for body in ({}, {"agent_credits": -1}, {"plan": None}):
        refused = api.patch("/v1/billing", headers=org.headers(), json=body)
        assert refused.status_code == 422, body

    # A customer's usage page: its runs' tokens and credits this period.
    page = api.get("/v1/billing/usage", headers=org.headers(), params={"sort": "created_at"}).json()["items"]
    agent = {item["customer_id"]: item["agent"] for item in page}
    assert (agent[first]["calls"], agent[first]["input_tokens"], agent[first]["credits"]) == (2, 11_000, pytest.approx(5.6))
    assert agent[second]["calls"] == 0 and agent[second]["credits"] == 0
    one = api.get(f"/v1/billing/customers/{first}/usage", headers=org.headers()).json()
    assert one["agent"]["output_tokens"] == 1_100

    # Per run and per thread.
    runs = api.get("/v1/billing/agent-usage", headers=org.headers()).json()["items"]
    assert {r["run_id"]: (r["thread_id"], r["calls"], r["credits"]) for r in runs} == {
        "run_1": ("thr_1", 1, pytest.approx(2.1)), "run_2": ("thr_1", 1, pytest.approx(3.5)), "run_3": ("thr_2", 1, 0)}
    assert next(r for r in runs if r["run_id"] == "run_2")["models"] == ["openai:gpt-4o"]
    threads = api.get("/v1/billing/agent-usage", headers=org.headers(), params={"group": "thread", "sort": "-credits"}).json()
    assert [(t["thread_id"], t["runs"], t["credits"]) for t in threads["items"]] == [
        ("thr_1", 2, pytest.approx(5.6)), ("thr_2", 1, 0)]
    one_thread = api.get("/v1/billing/agent-usage", headers=org.headers(), params={"thread_id": "thr_1", "limit": 1})
    assert len(one_thread.json()["items"]) == 1 and one_thread.json()["next_cursor"]
    rest = api.get("/v1/billing/agent-usage", headers=org.headers(),
                   params={"thread_id": "thr_1", "limit": 1, "cursor": one_thread.json()["next_cursor"]}).json()
    assert {one_thread.json()["items"][0]["run_id"], rest["items"][0]["run_id"]} == {"run_1", "run_2"}
    assert api.get("/v1/billing/agent-usage", headers=org.headers(), params={"run_id": "run_3"}).json()["items"][0][
        "models"] == ["offline:offline"]
    # A request naming a customer sees that customer's runs only; another organization's, nothing.
    mine = api.get("/v1/billing/agent-usage", headers=org.headers(second)).json()["items"]
    assert mine == []
    assert [r["run_id"] for r in api.get("/v1/billing/agent-usage", headers=org.headers(first)).json()["items"]] \
        in (["run_2", "run_1"], ["run_1", "run_2"])
    theirs = api.get("/v1/billing/agent-usage", headers=other.headers(), params={"thread_id": "thr_1"}).json()
    assert theirs["items"] == []
    assert api.get("/v1/billing", headers=other.headers()).json()["agent_credits"]["calls"] == 1
    bad = api.get("/v1/billing/agent-usage", headers=org.headers(), params={"from": "2026-01-01T00:00:00"})
    assert bad.status_code == 422 and "from" in bad.text
