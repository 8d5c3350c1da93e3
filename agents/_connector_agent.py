"""The Connector Agent: from an app name, a docs URL or an OpenAPI document, a connector draft
(auth, actions, events) that validates, with every action tested on the connector's sandbox.

Graph: the shared loop (``agent`` <-> ``tools``, bounded) then ``report``, which reads the tool
results, whatever the model: which actions pass, which drift or fail and why, and each change
made to the draft and why (``state["report"]``, and a labelled message).

Offline, :data:`CONNECTOR_PLAN` does: find the description (an app name), import it, validate,
test every action on the sandbox; when the test reports drift (answers that contradict the
documented output schema), patch the draft and test again, at most :data:`MAX_PATCH_ROUNDS`
times. A failing action (refused input, no id, a status, transport) is not something a patch of
the draft can fix without reading the API's documentation: the report names it and why.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.graph import END, START, StateGraph

import prompts
from agents._intent import Refusal
from agents._loop import AgentState, add_agent_loop, graph_message, is_error, prompt_text, tool_result
from agents._planner import Plan, PlanState, PlanStep

NAME = "connector_agent"
MAX_PATCH_ROUNDS = 3
TOOLS = ("search_catalog", "find_api_description", "fetch_page", "import_api", "write_connector_draft",
         "patch_connector_draft", "validate_connector", "test_connector", "request_review")
CONNECTOR_SHAPES = ("a connector for APP", "a connector from URL", "a connector from DOCUMENT.yaml (a local document)",
                    "an OpenAPI document (JSON or YAML text)")
_URL = re.compile(r"https?://[^\s'\"<>]+")
_FILE = re.compile(r"\b([A-Za-z0-9][A-Za-z0-9_.-]*\.(?:json|ya?ml))\b")
_LEAD = re.compile(r"^(?:please\s+)?(?:build|make|create|import|write|add|set\s+up|i\s+need|get)?\s*"
                   r"(?:me\s+)?(?:an?\s+|the\s+)?(?:connector|integration|api)?\s*(?:for|to|of|from)?\s*", re.I)


@dataclass(frozen=True)
class ConnectorRequest:
    """What the Connector Agent was asked: exactly one of ``app`` (a name), ``url``, ``document``
    (a local document's file name) and ``text`` (the document itself); ``key`` the connector key
    asked for, if any."""

    prompt: str
    app: str | None = None
    url: str | None = None
    document: str | None = None
    text: str | None = None
    key: str | None = None
    sample: int | None = None
    kind: str = "connector"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, without the document text (it can be megabytes)."""
        data = asdict(self)
        data["text"] = f"<{len(self.text)} characters>" if self.text else None
        data.pop("prompt")
        return data

    def describe(self) -> str:
        """One line for a report."""
        source = (f"app {self.app}" if self.app else f"URL {self.url}" if self.url
                  else f"document {self.document}" if self.document else "the document in the prompt")
        return (f"connector from {source}" + (f" as {self.key!r}" if self.key else "")
                + (f", testing a sample of about {self.sample} actions" if self.sample else ""))


def read_request(prompt: str) -> ConnectorRequest | Refusal:
    """Read a Connector Agent prompt; a :class:`Refusal` when it names nothing to build from."""
    text = prompt.strip()
    if not text:
        return Refusal(prompt, "the prompt is empty")
    if text.startswith("{") or re.search(r"^(openapi|swagger)\s*:", text, re.M):
        return ConnectorRequest(prompt, text=text)
    key = sample = None
    if found := re.search(r"[,;]?\s*(?:testing|test)\s+(?:only\s+)?(?:a\s+sample\s+of\s+)?(\d+)\s+actions?\s*$", text, re.I):
        sample, text = int(found[1]), text[: found.start()].strip()
    if found := re.search(r"\b(?:as|key|id)\s+['\"`]?([a-z0-9][a-z0-9_.-]{0,99})['\"`]?\s*$", text):
        key, text = found[1], text[: found.start()].strip()
    if url := _URL.search(text):
        return ConnectorRequest(prompt, url=url[0].rstrip(".,)"), key=key, sample=sample)
    if name := _FILE.search(text):
        return ConnectorRequest(prompt, document=name[1], key=key, sample=sample)
    app = _LEAD.sub("", text).strip(" .!?'\"")
    if not app or len(app.split()) > 5:
        return Refusal(prompt, "it names no app, URL or document to build a connector from")
    return ConnectorRequest(prompt, app=app, key=key, sample=sample)


# -- the offline plan ---------------------------------------------------------------------------


def _ok(state: PlanState, tool: str) -> list[Any]:
    return [r.content for r in state.calls(tool) if r.ok]


def connector_key(state: PlanState) -> str | None:
    """The connector the run built (the latest draft saved), or None yet."""
    for result in reversed(state.results):
        if result.ok and result.tool in ("import_api", "write_connector_draft", "patch_connector_draft"):
            return result.content.get("connector")
    return None


def _candidate(state: PlanState) -> dict[str, Any] | None:
    # Local documents first (no network), then a description the app's site serves, then the index's URL.
    found = [c for r in _ok(state, "find_api_description") for c in r.get("candidates", [])]
    for source in ("local", "site", "index"):
        for candidate in found:
            if candidate.get("source") == source:
                return candidate
    return None


def _import_arguments(state: PlanState) -> dict[str, Any] | None:
    request: ConnectorRequest = state.intent
    key = {"connector_id": request.key} if request.key else {}
    if request.text:
        return {"text": request.text, **key}
    if request.document:
        return {"document": request.document, **key}
    if request.url and not state.calls("find_api_description"):
        return {"url": request.url, **key}
    candidate = _candidate(state)
    if candidate is None:
        return None
    if candidate["source"] == "local":
        return {"document": candidate["document"], **key}
    return {"url": candidate["url"], **key}


def _find_arguments(state: PlanState) -> dict[str, Any] | None:
    request: ConnectorRequest = state.intent
    if request.app:
        return {"app": request.app}
    if request.url and state.calls("import_api") and not state.succeeded("import_api"):
        # The URL is not a description itself (a docs page): try the well-known paths of its site.
        origin = re.match(r"^https?://[^/?#]+", request.url)
        host = re.sub(r"^https?://(?:www\.|api\.|docs\.|developers?\.)?", "", request.url).split("/")[0].split(".")[0]
        return {"app": host or request.url, "site": origin[0] if origin else request.url}
    return None


def latest_test(state: PlanState) -> dict[str, Any] | None:
    """The latest successful test report."""
    tests = _ok(state, "test_connector")
    return tests[-1] if tests else None


def drift_patch(report: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON Patch operations for the drift a test reported: each drifting action's output schema is
    dropped. The tools do not hand the planner the spec itself, so it cannot narrow one keyword at
    the drifting place; it says so in its report, and a model with the spec can do better."""
    return [{"op": "remove", "path": f"/actions/{_escape(d['action'])}/output"} for d in report.get("drift") or []]


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _patched(state: PlanState) -> set[str]:
    return {op["path"] for r in state.calls("patch_connector_draft") if r.ok for op in r.arguments.get("patch", [])}


def _patch_arguments(state: PlanState) -> dict[str, Any] | None:
    report = latest_test(state)
    key = connector_key(state)
    if report is None or key is None or not state.after("test_connector", "patch_connector_draft"):
        return None
    patch = [op for op in drift_patch(report) if op["path"] not in _patched(state)]
    if not patch or len(state.calls("patch_connector_draft")) >= MAX_PATCH_ROUNDS:
        return None
    return {"connector": key, "patch": patch}


def _needs_test(state: PlanState) -> bool:
    return state.last("test_connector") is None or state.after("patch_connector_draft", "test_connector")


CONNECTOR_PLAN = Plan((
    PlanStep("find_api_description", _find_arguments,
             done=lambda s: bool(s.calls("find_api_description")),
             when=lambda s: not s.succeeded("import_api"), purpose="find the API description"),
    PlanStep("import_api", _import_arguments, when=lambda s: not s.succeeded("import_api"), attempts=2,
             purpose="import the API description as a connector draft"),
    PlanStep("validate_connector", lambda s: {"connector": connector_key(s)} if connector_key(s) else None,
             done=lambda s: s.succeeded("validate_connector") and not s.after("patch_connector_draft", "validate_connector"),
             purpose="validate the draft"),
    PlanStep("patch_connector_draft", _patch_arguments, done=lambda s: _patch_arguments(s) is None, attempts=2,
             purpose="patch the draft where the sandbox contradicts it"),
    PlanStep("test_connector", lambda s: ({"connector": connector_key(s)} | ({"sample": s.intent.sample} if s.intent.sample else {}))
             if connector_key(s) else None,
             done=lambda s: not _needs_test(s) and s.succeeded("test_connector"), attempts=2,
             purpose="test every action on the sandbox"),
), kinds=frozenset({"connector"}))


# -- the report ---------------------------------------------------------------------------------


def _calls(messages: list[Any]) -> list[tuple[str, dict[str, Any], Any, bool]]:
    """(tool, arguments, result, ok) of every tool call, in order."""
    calls = {c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    out = []
    for message in messages:
        if isinstance(message, ToolMessage) and message.tool_call_id in calls:
            call = calls[message.tool_call_id]
            result = tool_result(message)
            out.append((call["name"], call["args"], result, message.status != "error" and not is_error(result)))
    return out


def connector_report(messages: list[Any]) -> dict[str, Any]:
    """What the run achieved, read from its tool results: the connector, its last test (passed,
    drift, failed with category and reason) and every change made to the draft and why."""
    calls = _calls(messages)
    connector = None
    version = None
    changes: list[dict[str, Any]] = []
    last_test: dict[str, Any] | None = None
    previous_test: dict[str, Any] | None = None
    errors = []
    for tool, args, result, ok in calls:
        if not ok:
            errors.append({"tool": tool, "error": result.get("error") if isinstance(result, dict) else result})
            continue
        if tool in ("import_api", "write_connector_draft", "patch_connector_draft"):
            connector, version = result.get("connector"), result.get("version")
        if tool == "import_api":
            changes.append({"change": "imported", "version": version, "why": "the API description",
                            "warnings": len(result.get("warnings") or [])})
        elif tool == "patch_connector_draft":
            drifted = {d["action"]: d["problems"] for d in (last_test or {}).get("drift") or []}
            changes.append({"change": "patched", "version": version, "paths": result.get("changed"),
                            "why": [{"action": a, "problems": p} for a, p in drifted.items()
                                    if any(f"/actions/{_escape(a)}/" in path + "/" for path in result.get("changed") or [])]
                            or "the model's patch"})
        elif tool == "test_connector":
            previous_test, last_test = last_test, result
    report: dict[str, Any] = {"connector": connector, "version": version, "changes": changes, "errors": errors}
    if last_test is None:
        report |= {"status": "untested", "works": [], "does_not_work": []}
        return report
    failed = {f["action"]: f for f in last_test.get("failed") or []}
    drift = {d["action"]: d for d in last_test.get("drift") or []}
    report |= {
        "status": "all_passed" if not failed and not drift else "some_failed",
        "actions": last_test.get("actions"), "passed": last_test.get("passed"),
        "does_not_work": [{"action": a, "outcome": "failed", "category": f.get("category"), "why": f.get("reason")}
                          for a, f in sorted(failed.items())]
                         + [{"action": a, "outcome": "drift", "why": d.get("problems")} for a, d in sorted(drift.items())],
        "notes": last_test.get("notes") or [],
        "sample": last_test.get("sample"),
        "first_test": None if previous_test is None else {"passed": previous_test.get("passed"),
                                                          "failed": len(previous_test.get("failed") or []),
                                                          "drift": len(previous_test.get("drift") or [])},
    }
    return report


def _report_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [("connector", f"{report['connector']} version {report['version']}" if report["connector"] else "none built")]
    if report["status"] != "untested":
        lines.append(("actions passed", f"{report['passed']} of {report['actions']}"))
        if report.get("sample"):
            sample = report["sample"]
            lines.append(("sample", f"tested {sample['tested']} of {sample['of']} actions (resources: "
                                    f"{', '.join(sample['resources'])}); the others were not tested"))
        for item in report["does_not_work"]:
            lines.append((f"not working: {item['action']}", f"{item['outcome']} "
                          f"({item.get('category') or 'schema'}): {item['why']}"))
    for change in report["changes"]:
        lines.append((f"change v{change['version']}", f"{change['change']}: {change.get('paths') or change['why']}"
                      + (f" because {change['why']}" if change.get("paths") else "")))
    for error in report["errors"]:
        lines.append((f"error in {error['tool']}", str(error["error"])[:300]))
    return lines


def report_node(state: AgentState) -> dict[str, Any]:
    """Write the run's report (a pure function of the messages: safe to re-run)."""
    report = connector_report(state["messages"])
    status = {"all_passed": "done", "some_failed": "done with failures"}.get(report["status"], "stopped")
    return {"report": report, "messages": [graph_message(_report_lines(report), status=status, name=NAME)]}


# -- the graph ----------------------------------------------------------------------------------


async def _organization(ctx: Any) -> str:
    import anyio

    import store

    def read() -> str:
        with ctx.platform.db.tenant(ctx.org_id) as tx:
            return str(store.Organizations(tx).get(ctx.org_id).get("name") or ctx.org_id)

    return await anyio.to_thread.run_sync(read)


def build_connector_agent(ctx: Any, model: Any, registry: Any, checkpointer: Any) -> Any:
    """The Connector Agent's compiled graph (see the module)."""
    from agents._offline import OfflineChatModel

    chat = model.for_plan(CONNECTOR_PLAN)
    if isinstance(chat, OfflineChatModel):
        chat = chat.model_copy(update={"reader": read_request, "handles": CONNECTOR_SHAPES})
    names = [n for n in TOOLS if n in registry.names()]
    cache: dict[str, str] = {}

    async def system_prompt(state: AgentState) -> str:
        if "organization" not in cache:
            cache["organization"] = await _organization(ctx)
        request = prompt_text(state["messages"])
        return prompts.load(NAME).render(organization=cache["organization"], request=request[:2000],
                                         max_attempts=MAX_PATCH_ROUNDS)

    graph = StateGraph(AgentState)
    add_agent_loop(graph, name=NAME, model=chat, tools=registry.as_langchain_tools(ctx, names),
                   system_prompt=system_prompt, after_answer="report")
    graph.add_node("report", report_node)
    graph.add_edge(START, "agent")
    graph.add_edge("report", END)
    return graph.compile(checkpointer=checkpointer, name=NAME)
