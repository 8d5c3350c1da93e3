"""The Integration Agent: from a prompt, find or build the connectors, write the workflow (trigger,
field mapping; a sync step for a sync), validate and dry-run it on sandboxes, then stop for the
builder's review; publish and deploy on approval, act on the comments of a rejection.

Graph::

    START -> agent <-> tools --(request_review answered)--> review --approve--> publish -> END
                                                              \\--reject(comments)--> agent

``review`` calls ``interrupt({"type": "review", "summary", "diff", "workflow", ...})`` and is
resumed with ``Command(resume={"action": "approve"})`` or ``{"action": "reject", "comments":
"..."}``. A rejection becomes a builder message named ``review`` that the model reads. ``publish``
grants the approval (``ctx.approvals``) and publishes, through the tools' one call path, the
connectors the workflow uses that have unpublished drafts, then the workflow, deployed to the
test customer's environment; it skips what is already published, so a re-run publishes nothing
twice.

Offline, ``agents._integration_plan.INTEGRATION_PLAN`` carries the three prompt shapes and the
review comments it can act on.
"""

from __future__ import annotations

from typing import Any

import anyio
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

import prompts
import store
from agents._integration_plan import INTEGRATION_PLAN
from agents._loop import AgentState, add_agent_loop, graph_message, is_error, prompt_text, tool_result
from agents._offline import REVIEW
from agents.errors import ReviewAnswerInvalid

NAME = "integration_agent"


# -- the graph ----------------------------------------------------------------------------------


def _last_review_request(state: AgentState) -> dict[str, Any] | None:
    """The request_review result the last tools step answered (ok), else None."""
    messages = state["messages"]
    names = {c["id"]: c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        if names.get(message.tool_call_id) == "request_review" and message.status != "error":
            result = tool_result(message)
            if isinstance(result, dict) and not is_error(result):
                return result
    return None


def after_tools(state: AgentState) -> str:
    """To review once the model asked for it, else back to the model."""
    return "review" if _last_review_request(state) is not None else "agent"


def _dry_run(messages: list[Any]) -> dict[str, Any] | None:
    names = {c["id"]: c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    for message in reversed(messages):
        if isinstance(message, ToolMessage) and names.get(message.tool_call_id) == "dry_run_workflow":
            result = tool_result(message)
            if isinstance(result, dict) and not is_error(result):
                return {k: result.get(k) for k in ("status", "output", "failure", "sandboxes", "calls_total")}
    return None


def review_answer(answer: Any) -> dict[str, str]:
    """``answer`` as the review takes it: ``{"action": "approve"}`` or ``{"action": "reject",
    "comments": str}``. Raises :class:`ReviewAnswerInvalid` (422) otherwise: a caller (the
    threads API) checks an answer with it before resuming a run."""
    action = answer.get("action") if isinstance(answer, dict) else None
    if action == "approve":
        return {"action": "approve"}
    if action == "reject" and isinstance(answer.get("comments", ""), str | None):
        return {"action": "reject", "comments": str(answer.get("comments") or "").strip()}
    raise ReviewAnswerInvalid(answer)


def review_node(state: AgentState) -> dict[str, Any]:
    """Stop for the builder (``interrupt``); on resume, record the answer. An answer that is not
    one asks again, saying why (LangGraph replays the answers given so far to the interrupts of a
    re-run node in order, so an invalid one cannot be taken back by raising). Re-running the node
    before the answer asks again; after, it reads the same answers."""
    request = _last_review_request(state) or {}
    payload = {"type": "review", "summary": request.get("summary", ""), "diff": request.get("diff", []),
               "workflow": request.get("key"), "kind": request.get("kind", "workflow"), "valid": request.get("valid"),
               "problems": request.get("problems", []), "first_version": request.get("first_version"),
               "dry_run": _dry_run(state["messages"])}
    question = payload
    while True:
        try:
            answer = review_answer(interrupt(question))
            break
        except ReviewAnswerInvalid as invalid:
            question = {**payload, "problem": str(invalid)}
    if answer["action"] == "approve":
        return {"review": {**payload, "decision": "approve"}}
    comments = answer["comments"]
    message = HumanMessage(comments or "rejected without comments", name=REVIEW, additional_kwargs={"review": answer})
    return {"review": {**payload, "decision": "reject", "comments": comments}, "messages": [message], "steps": 0}


def after_review(state: AgentState) -> str:
    """Publish on approval; back to the model with the comments otherwise."""
    return "publish" if (state.get("review") or {}).get("decision") == "approve" else "agent"


def build_integration_agent(ctx: Any, model: Any, registry: Any, checkpointer: Any) -> Any:
    """The Integration Agent's compiled graph (see the module)."""
    chat = model.for_plan(INTEGRATION_PLAN)
    cache: dict[str, str] = {}

    def context() -> dict[str, str]:
        with ctx.platform.db.tenant(ctx.org_id) as tx:
            organization = str(store.Organizations(tx).get(ctx.org_id).get("name") or ctx.org_id)
            rows = store.Connectors(tx).list(ctx.org_id, store.ListQuery(limit=100)).items
        connectors = "\n".join(f"- {r['key']}: {r['name']}" for r in rows) or "(none yet)"
        return {"organization": organization, "connectors": connectors}

    async def system_prompt(state: AgentState) -> str:
        if not cache:
            cache.update(await anyio.to_thread.run_sync(context))
        return prompts.load(NAME).render(request=prompt_text(state["messages"])[:2000],
                                         test_customer=ctx.customer_id or "(none)", **cache)

    async def publish_node(state: AgentState) -> dict[str, Any]:
        review = state.get("review") or {}
        key = review.get("workflow")
        published = await publish_approved(ctx, registry, review.get("kind", "workflow"), key)
        lines = [(f"published {p['kind']} {p['key']}", f"version {p.get('version')}"
                  + (f", deployed to {p['deployed_to']}" if p.get("deployed_to") else "")
                  + (" (already published)" if p.get("already") else "")) for p in published["published"]]
        lines += [(f"not published: {e['kind']} {e['key']}", str(e["error"])) for e in published["errors"]]
        status = "published" if not published["errors"] else "publish failed"
        return {"published": published, "messages": [graph_message(lines, status=status, name=NAME)]}

    graph = StateGraph(AgentState)
    add_agent_loop(graph, name=NAME, model=chat, tools=registry.as_langchain_tools(ctx), system_prompt=system_prompt,
                   after_tools=after_tools, after_tools_to=("review",))
    graph.add_node("review", review_node)
    graph.add_node("publish", publish_node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("review", after_review, ["publish", "agent"])
    graph.add_edge("publish", END)
    return graph.compile(checkpointer=checkpointer, name=NAME)


async def publish_approved(ctx: Any, registry: Any, kind: str, key: str | None) -> dict[str, Any]:
    """Grant the builder's approval and publish ``key`` (a workflow: first the connectors it uses
    that have unpublished drafts; then the workflow, deployed to the test customer's environment).
    What is already published as it is now is skipped."""
    if not key:
        return {"published": [], "errors": [{"kind": kind, "key": key, "error": "the review named nothing to publish"}]}

    def read() -> dict[str, Any]:
        with ctx.platform.db.tenant(ctx.org_id) as tx:
            if kind == "connector":
                row = store.Connectors(tx).get(ctx.org_id, key)
                return {"connectors": [row] if row.get("published_version") != row["latest_version"] else [],
                        "done": row.get("published_version") == row["latest_version"], "environment": None}
            workflows = store.Workflows(tx)
            row = workflows.get(ctx.org_id, key)
            keys = sorted({s["action"].split(".")[0] for s in _steps(row["draft"]) if "action" in s}
                          | {ref.split(".")[0] for s in _steps(row["draft"]) if "sync" in s
                             for ref in (s["sync"]["target"].get("list"), s["sync"]["target"].get("create"),
                                         s["sync"]["target"].get("update")) if ref})
            connectors = store.Connectors(tx)
            pending = [c for c in (connectors.get(ctx.org_id, k) for k in keys)
                       if c.get("published_version") != c["latest_version"]]
            latest = workflows.version(ctx.org_id, row["id"], row["latest_version"])["spec"] if row["latest_version"] else None
            environment = ctx.environment
            if environment is None and ctx.customer_id:
                environment = store.Customers(tx).get(ctx.org_id, ctx.customer_id)["environment_id"]
            return {"connectors": pending, "done": latest == row["draft"], "environment": environment,
                    "version": row["latest_version"]}

    found = await anyio.to_thread.run_sync(read)
    published: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for connector in found["connectors"]:
        ctx.approvals.grant("connector", connector["key"])
        result = await registry.invoke(ctx, "publish", {"kind": "connector", "key": connector["key"]})
        (errors.append({"kind": "connector", "key": connector["key"], "error": result["error"]}) if is_error(result)
         else published.append(result))
    if kind == "workflow" and not errors:
        if found["done"]:
            published.append({"kind": "workflow", "key": key, "version": found["version"], "already": True})
        else:
            ctx.approvals.grant("workflow", key)
            arguments = {"kind": "workflow", "key": key}
            if found["environment"]:
                arguments["deploy_to"] = found["environment"]
            result = await registry.invoke(ctx, "publish", arguments)
            (errors.append({"kind": "workflow", "key": key, "error": result["error"]}) if is_error(result)
             else published.append(result))
    return {"published": published, "errors": errors}


def _steps(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for step in spec.get("steps") or []:
        out.append(step)
        for nested in ("steps", "then", "else"):
            if isinstance(step.get(nested), list):
                out += _steps({"steps": step[nested]})
    return out
