"""The offline planner: its choice of the next step from a plan table, and the chat model that
carries a plan through a tool-calling loop with real LangChain tools."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from agents import (
    Intent,
    OfflineChatModel,
    Plan,
    PlanError,
    PlanState,
    PlanStep,
    TokenUsage,
    ToolResult,
    chat_model,
    next_step,
    parse_intent,
)

FLAGSHIP = "Sync HubSpot contacts to Cin7 customers, matching by email"


def flagship() -> Intent:
    intent = parse_intent(FLAGSHIP)
    assert isinstance(intent, Intent)
    return intent


# --- a plan of the Integration Agent's shape, over tools that behave like the real ones ----------
def _found(state: PlanState, app_id: str) -> bool:
    return any(r.ok and app_id in (r.content or {}).get("connectors", []) for r in state.calls("search_catalog"))


PLAN = Plan((
    PlanStep("search_catalog", lambda s: {"query": f"{s.intent.source.app} {s.intent.target.app}"},
             purpose="find the connectors"),
    PlanStep("import_api", lambda s: {"app": s.intent.target.app_id},
             when=lambda s: not _found(s, s.intent.target.app_id), purpose="import the target's API"),
    PlanStep("write_workflow", lambda s: {
        "source": f"{s.intent.source.app_id}.list_{s.intent.source.object}s",
        "target": f"{s.intent.target.app_id}.create_{s.intent.target.object}",
        "match": s.intent.match, "cron": s.intent.trigger.cron}),
    PlanStep("patch_workflow", lambda s: {"patch": [{"op": "replace", "path": "/steps/1/sync/match/target", "value": "Email"}]},
             when=lambda s: s.after("validate_workflow", "patch_workflow") and not s.succeeded("validate_workflow"),
             done=lambda s: s.after("patch_workflow", "validate_workflow")),
    PlanStep("validate_workflow", lambda s: {"draft": s.last("write_workflow").content["draft"]}, attempts=3),
    PlanStep("request_review", lambda s: {"summary": f"{s.intent.kind} {s.intent.source.app} -> {s.intent.target.app}"}),
))


def make_tools(validate_failures: int = 1, catalog: tuple[str, ...] = ("hubspot",)) -> tuple[list, list[str]]:
    """Tools with the plan's names; ``validate_workflow`` fails its first ``validate_failures`` calls."""
    log: list[str] = []
    state = {"validations": 0}

    @tool
    def search_catalog(query: str) -> dict:
        """Search the connector catalog."""
        log.append("search_catalog")
        return {"connectors": list(catalog)}

    @tool
    def import_api(app: str) -> dict:
        """Import an app's API description."""
        log.append("import_api")
        return {"connector": app}

    @tool
    def write_workflow(source: str, target: str, match: str, cron: str) -> dict:
        """Write a workflow draft."""
        log.append("write_workflow")
        return {"draft": "wf_1", "source": source, "target": target}

    @tool
    def patch_workflow(patch: list[dict]) -> dict:
        """Apply a JSON Patch to the draft."""
        log.append("patch_workflow")
        return {"draft": "wf_1"}

    @tool
    def validate_workflow(draft: str) -> dict:
        """Validate a workflow draft."""
        log.append("validate_workflow")
        state["validations"] += 1
        if state["validations"] <= validate_failures:
            return {"ok": False, "errors": [{"pointer": "/steps/1/sync/match/target", "message": "unknown field"}]}
        return {"ok": True}

    @tool
    def request_review(summary: str) -> dict:
        """Ask the builder to review."""
        log.append("request_review")
        return {"review": "requested"}

    return [search_catalog, import_api, write_workflow, patch_workflow, validate_workflow, request_review], log


def run(model, tools: list, prompt: str = FLAGSHIP, limit: int = 20) -> list[BaseMessage]:
    """A tool-calling loop like the graphs': call the model, run its calls, send back the results."""
    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    messages: list[BaseMessage] = [SystemMessage("You build integrations."), HumanMessage(prompt)]
    for _ in range(limit):
        answer = bound.invoke(messages)
        messages.append(answer)
        if not answer.tool_calls:
            return messages
        for call in answer.tool_calls:
            result = by_name[call["name"]].invoke(call["args"])
            messages.append(ToolMessage(json.dumps(result), tool_call_id=call["id"], name=call["name"]))
    raise AssertionError("no end")


def calls(messages: list[BaseMessage]) -> list[str]:
    return [c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]


# --- next_step ---------------------------------------------------------------------------------
SCHEMAS = {name: {"type": "object"} for name in
           ("search_catalog", "import_api", "write_workflow", "patch_workflow", "validate_workflow", "request_review")}


def result(tool: str, content: Any, ok: bool = True) -> ToolResult:
    return ToolResult(tool, f"id_{tool}", {}, content, ok)


def test_the_first_step_is_the_first_row() -> None:
    decision = next_step(PLAN, PlanState(flagship()), SCHEMAS)
    assert (decision.outcome, decision.tool, decision.arguments) == ("call", "search_catalog", {"query": "HubSpot Cin7"})


def test_a_row_whose_condition_fails_is_skipped() -> None:
    found = PlanState(flagship(), (result("search_catalog", {"connectors": ["hubspot", "cin7"]}),))
    assert next_step(PLAN, found, SCHEMAS).tool == "write_workflow"
    missing = PlanState(flagship(), (result("search_catalog", {"connectors": ["hubspot"]}),))
    decision = next_step(PLAN, missing, SCHEMAS)
    assert (decision.tool, decision.arguments) == ("import_api", {"app": "cin7"})


def test_arguments_come_from_the_intent_and_earlier_results() -> None:
    state = PlanState(flagship(), (result("search_catalog", {"connectors": ["hubspot", "cin7"]}),))
    assert next_step(PLAN, state, SCHEMAS).arguments == {
        "source": "hubspot.list_contacts", "target": "cin7.create_customer", "match": "email", "cron": "*/15 * * * *"}
    state = PlanState(flagship(), state.results + (result("write_workflow", {"draft": "wf_9"}),))
    assert next_step(PLAN, state, SCHEMAS).arguments == {"draft": "wf_9"}


def test_a_failure_leads_to_the_repair_row_then_a_retry() -> None:
    base = (result("search_catalog", {"connectors": ["hubspot", "cin7"]}), result("write_workflow", {"draft": "wf_1"}))
    failed = PlanState(flagship(), base + (result("validate_workflow", {"ok": False}, ok=False),))
    assert next_step(PLAN, failed, SCHEMAS).tool == "patch_workflow"
    patched = PlanState(flagship(), failed.results + (result("patch_workflow", {"draft": "wf_1"}),))
    assert next_step(PLAN, patched, SCHEMAS).tool == "validate_workflow"
    passed = PlanState(flagship(), patched.results + (result("validate_workflow", {"ok": True}),))
    assert next_step(PLAN, passed, SCHEMAS).tool == "request_review"


def test_a_step_that_keeps_failing_stops_the_run_with_its_last_result() -> None:
    results = [result("search_catalog", {"connectors": ["hubspot", "cin7"]}), result("write_workflow", {"draft": "wf_1"})]
    for attempt in range(3):
        results += [result("validate_workflow", f"bad field, attempt {attempt}", ok=False), result("patch_workflow", {})]
    decision = next_step(PLAN, PlanState(flagship(), tuple(results[:-1])), SCHEMAS)
    assert (decision.outcome, decision.tool) == ("stopped", "validate_workflow")
    assert "failed 3 time(s)" in decision.reason and "bad field, attempt 2" in decision.reason
    assert decision.completed == ("search_catalog", "write_workflow", "patch_workflow")


def test_all_rows_done_ends_the_run() -> None:
    results = tuple(result(t, {"connectors": ["hubspot", "cin7"], "draft": "wf_1"}) for t in
                    ("search_catalog", "write_workflow", "validate_workflow", "request_review"))
    decision = next_step(PLAN, PlanState(flagship(), results), SCHEMAS)
    assert decision.outcome == "done" and decision.tool is None
    assert decision.completed == ("search_catalog", "write_workflow", "validate_workflow", "request_review")


def test_a_step_whose_tool_is_not_bound_stops_the_run() -> None:
    schemas = {k: v for k, v in SCHEMAS.items() if k != "search_catalog"}
    decision = next_step(PLAN, PlanState(flagship()), schemas)
    assert decision.outcome == "stopped" and "'search_catalog' is not available" in decision.reason


def test_a_step_returning_no_arguments_is_skipped() -> None:
    plan = Plan((PlanStep("import_api", lambda s: None), PlanStep("request_review", lambda s: {"summary": "x"})))
    assert next_step(plan, PlanState(flagship()), SCHEMAS).tool == "request_review"


def test_arguments_that_do_not_fit_the_tool_schema_are_a_plan_error() -> None:
    schemas = {"search_catalog": {"type": "object", "properties": {"query": {"type": "integer"}}, "required": ["query"]}}
    with pytest.raises(PlanError) as raised:
        next_step(PLAN, PlanState(flagship()), schemas)
    assert raised.value.step == "search_catalog" and "/query" in raised.value.reason


def test_a_plan_serves_only_its_kinds() -> None:
    plan = Plan(PLAN.steps, kinds=frozenset({"event"}))
    decision = next_step(plan, PlanState(flagship()), SCHEMAS)
    assert decision.outcome == "stopped" and "'sync'" in decision.reason


# --- the chat model ----------------------------------------------------------------------------
def test_the_offline_model_carries_the_plan_through_a_tool_loop() -> None:
    tools, log = make_tools(validate_failures=1)
    messages = run(chat_model("offline", plan=PLAN), tools)
    assert calls(messages) == log == ["search_catalog", "import_api", "write_workflow", "validate_workflow",
                                      "patch_workflow", "validate_workflow", "request_review"]
    ids = [c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    assert ids == [f"offline_{n}" for n in range(1, 8)]
    final = messages[-1]
    assert final.content.splitlines() == [
        "offline planner: done",
        "intent: sync HubSpot contact -> Cin7 customer, match by email, schedule */15 * * * * (every 15 minutes)",
        "steps done: search_catalog, import_api, write_workflow, patch_workflow, validate_workflow, request_review",
    ]
    for answer in (m for m in messages if isinstance(m, AIMessage)):
        assert answer.response_metadata["model_provider"] == "offline"
        assert answer.response_metadata["offline_intent"]["match"] == "email"
        assert answer.usage_metadata == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def test_the_same_conversation_gets_the_same_answer() -> None:
    tools, _ = make_tools()
    messages = run(chat_model("offline", plan=PLAN), tools)
    model = OfflineChatModel(plan=PLAN).bind_tools(tools)
    for end in range(2, len(messages)):
        if isinstance(messages[end], AIMessage):
            again = model.invoke(messages[:end])
            assert (again.content, again.tool_calls) == (messages[end].content, messages[end].tool_calls)


def test_a_step_that_keeps_failing_ends_with_a_stopped_report() -> None:
    tools, log = make_tools(validate_failures=10)
    messages = run(chat_model("offline", plan=PLAN), tools)
    assert log.count("validate_workflow") == 3
    lines = messages[-1].content.splitlines()
    assert lines[0] == "offline planner: stopped"
    assert lines[2].startswith("reason: validate_workflow failed 3 time(s); last result: {'ok': False")


def test_a_tool_error_message_counts_as_a_failure() -> None:
    plan = Plan((PlanStep("search_catalog", lambda s: {"query": "x"}, attempts=2),))
    model = OfflineChatModel(plan=plan).bind_tools(make_tools()[0])
    messages: list[BaseMessage] = [HumanMessage(FLAGSHIP)]
    for _ in range(2):
        answer = model.invoke(messages)
        call = answer.tool_calls[0]
        messages += [answer, ToolMessage("Error: catalog unavailable", tool_call_id=call["id"], status="error")]
    final = model.invoke(messages)
    assert not final.tool_calls and "failed 2 time(s)" in final.content and "catalog unavailable" in final.content


def test_only_results_after_the_latest_prompt_count() -> None:
    tools, _ = make_tools()
    first = run(chat_model("offline", plan=PLAN), tools)
    model = OfflineChatModel(plan=PLAN).bind_tools(tools)
    answer = model.invoke([*first, HumanMessage("When a contact is created in HubSpot, create a customer in Cin7")])
    assert answer.tool_calls[0]["name"] == "search_catalog"
    assert answer.tool_calls[0]["id"] == f"offline_{len(calls(first)) + 1}"
    assert answer.response_metadata["offline_intent"]["kind"] == "event"


def test_other_prompts_get_a_labelled_refusal_and_no_tool_call() -> None:
    tools, log = make_tools()
    messages = run(chat_model("offline", plan=PLAN), tools, prompt="Write me a poem about integrations")
    assert log == [] and len(messages) == 3
    lines = messages[-1].content.splitlines()
    assert lines[0] == "offline planner: cannot do this"
    assert lines[1].startswith("reason: it is none of the shapes")
    assert lines[2] == ("handles: sync A's X to B's Y matching by F | when X happens in A, create Y in B | "
                        "every day/hour, copy X from A to B")
    assert "SWITCHBOARD_MODEL" in lines[3]


def test_without_the_plans_tools_it_says_what_is_missing() -> None:
    messages = run(chat_model("offline", plan=PLAN), make_tools()[0][1:])
    assert messages[-1].content.splitlines()[0] == "offline planner: stopped"
    assert "'search_catalog' is not available" in messages[-1].content


def test_no_prompt_is_a_refusal() -> None:
    answer = OfflineChatModel(plan=PLAN).invoke([SystemMessage("You build integrations.")])
    assert answer.content.startswith("offline planner: cannot do this") and not answer.tool_calls


def test_known_apps_reach_the_parser() -> None:
    model = chat_model("offline", plan=PLAN, apps=["Google Sheets", "Cin7"]).bind_tools(make_tools()[0])
    answer = model.invoke("Every day, copy google sheets rows to Cin7 customers")
    assert answer.response_metadata["offline_intent"]["source"] == {"app": "Google Sheets", "object": "row",
                                                                   "app_id": "google_sheets"}


async def test_async_and_streamed_calls_give_the_same_decision() -> None:
    model = OfflineChatModel(plan=PLAN).bind_tools(make_tools()[0])
    sync_answer = model.invoke(FLAGSHIP)
    async_answer = await model.ainvoke(FLAGSHIP)
    chunks = [chunk async for chunk in model.astream(FLAGSHIP)]
    assert sync_answer.tool_calls == async_answer.tool_calls
    assert [c["name"] for c in chunks[0].tool_call_chunks] == ["search_catalog"]
    assert json.loads(chunks[0].tool_call_chunks[0]["args"]) == {"query": "HubSpot Cin7"}
    assert chunks[0].tool_calls == sync_answer.tool_calls
    assert [c.tool_calls for c in model.stream(FLAGSHIP)] == [sync_answer.tool_calls]


def test_token_usage_labels_offline_calls() -> None:
    usage = TokenUsage()
    model = OfflineChatModel(plan=PLAN).bind_tools(make_tools()[0])
    model.invoke(FLAGSHIP, config={"callbacks": [usage]})
    model.invoke("Write me a poem", config={"callbacks": [usage]})
    assert [(c.counted, c.total_tokens) for c in usage.calls] == [("offline", 0), ("offline", 0)]
    assert usage.total_tokens == 0
