"""The Setup Assistant: an organization's onboarding, from its website to a first live integration.

One node per onboarding step, each recording its outcome with the ``record_onboarding`` tool in
``organizations.onboarding`` (see ``tools._onboarding``):

``start``       the website (the builder's message, else the one recorded) and the recorded progress;
``read_site``   the home page and the pages it links to on the same site (``fetch_page``: the SSRF
                guard applies; a site on a private address needs the operator's egress allow-list);
``use_cases``   what the site implies: offline, :func:`agents._proposals.propose` (the apps the site
                names and the records it keeps in them); with a model, the model's proposal, read
                as JSON (the offline reading stands in, labelled, when the answer is not readable);
``connectors``  for each app of the use cases: the catalog's connector (``search_catalog``) or an
                API description to build one from (``find_api_description``);
``workflows``   the first use case built by the Integration Agent, invoked as a subgraph: its review
                interrupt is the builder's, and nothing is published without approval;
``embed``       what the builder's product needs to let customers connect (``embed_config``);
``live``        the published, deployed workflow run for the onboarding test customer, whose
                connections point at the organization's hosted sandboxes (``prepare_test_customer``,
                ``run_workflow``): live when that run completes.

Every tool call goes through the registry (policy hook, audit). A step already recorded ``done``
is not redone, so a second run (or a node re-run from a checkpoint) continues where onboarding
stands; resetting onboarding (``POST /v1/organization/reset-onboarding``) starts it over.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, NotRequired, TypedDict
from urllib.parse import urldefrag, urlsplit

import anyio
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

import prompts
import store
from agents._offline import OfflineChatModel
from agents._proposals import Page, propose
from agents.errors import AgentError
from engine.specs import WorkflowSpec
from runtime import PRODUCTION, loaded, tenant_tx
from tools import ONBOARDING_STEPS, ToolContext, ToolRegistry, known_apis

NAME = "setup_assistant"
MAX_PAGES = 8
MAX_PAGE_CHARS = 8_000
_URL = re.compile(r"https?://[^\s<>\"')]+", re.I)

# (name, ctx or None) -> the agent graph ``name`` acting with ctx (None: the Setup Assistant's),
# compiled without a checkpointer of its own, so that it inherits the Setup Assistant's and its
# review interrupt can be resumed.
SubgraphFactory = Callable[..., Any]


class SetupState(TypedDict):
    """The Setup Assistant's state: the conversation, and what each step found."""

    messages: Annotated[list[AnyMessage], add_messages]
    website: NotRequired[str | None]
    onboarding: NotRequired[dict[str, Any]]
    pages: NotRequired[list[dict[str, Any]]]
    proposal: NotRequired[dict[str, Any]]
    connectors: NotRequired[list[dict[str, Any]]]
    integration: NotRequired[dict[str, Any]]
    embed: NotRequired[dict[str, Any]]
    live: NotRequired[dict[str, Any]]
    stopped: NotRequired[dict[str, Any] | None]
    report: NotRequired[dict[str, Any] | None]
    review: NotRequired[dict[str, Any] | None]
    published: NotRequired[dict[str, Any] | None]


def _text(message: Any) -> str:
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else " ".join(
        part if isinstance(part, str) else str(part.get("text", "")) for part in content)


def website_in(text: str) -> str | None:
    """The first http(s) URL of ``text``, without trailing punctuation, or None."""
    found = _URL.search(text)
    return found.group(0).rstrip(".,;:!?") if found else None


def _last_human(messages: list[AnyMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return _text(message)
    return ""


class SetupAssistant:
    """The graph's nodes over one run's tools (``ctx``, ``registry``) and model."""

    def __init__(self, ctx: ToolContext, model: BaseChatModel, registry: ToolRegistry, subgraph: SubgraphFactory) -> None:
        self.ctx = ctx
        self.model = model
        self.registry = registry
        self.subgraph = subgraph
        self.offline = isinstance(model, OfflineChatModel)
        # The test customer's environment: the run's, when it names one outside production.
        self.test_environment = ctx.environment if ctx.environment and ctx.environment != PRODUCTION else "dev"
        self.label = "offline planner" if self.offline else f"model {getattr(model, 'model_name', None) or model._llm_type}"

    # -- helpers ---------------------------------------------------------------------------------

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """One tool call through the registry (policy hook and audit included); never raises."""
        return await self.registry.invoke(self.ctx, tool, arguments)

    def say(self, status: str, lines: list[tuple[str, str]]) -> AIMessage:
        """A message of this graph (not a model's prose): labelled lines naming who decided."""
        text = "\n".join([f"setup assistant ({self.label}): {status}", *(f"{k}: {v}" for k, v in lines)])
        provider = "offline" if self.offline else "graph"
        return AIMessage(content=text, name=NAME, response_metadata={"model_provider": provider, "graph": NAME},
                         usage_metadata={"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})

    async def record(self, step: str, status: str, data: dict[str, Any], website: str | None = None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"step": step, "status": status, "data": data}
        if website:
            arguments["website"] = website
        return await self.call("record_onboarding", **arguments)

    async def stop(self, step: str, status: str, reason: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """End the run at ``step``: recorded, and said to the builder."""
        recorded = await self.record(step, status, {"reason": reason, **(data or {})})
        lines = [("step", step), ("reason", reason)]
        if "error" in recorded:
            lines.append(("not recorded", recorded["error"]["message"]))
        return {"stopped": {"step": step, "status": status, "reason": reason},
                "messages": [self.say("stopped", lines)], "report": {"status": status, "step": step, "reason": reason}}

    @staticmethod
    def done(state: SetupState, step: str) -> dict[str, Any] | None:
        """What ``step`` recorded when it is done, else None."""
        recorded = ((state.get("onboarding") or {}).get("steps") or {}).get(step) or {}
        return recorded if recorded.get("status") == "done" else None

    # -- nodes -----------------------------------------------------------------------------------

    async def start(self, state: SetupState) -> dict[str, Any]:
        read = await self.call("read_onboarding")
        if "error" in read:
            return {"stopped": {"step": "start", "reason": read["error"]["message"]},
                    "messages": [self.say("stopped", [("reason", read["error"]["message"])])]}
        onboarding = read["onboarding"]
        website = website_in(_last_human(state["messages"])) or onboarding.get("website")
        if not website:
            return {"onboarding": onboarding, "stopped": {"step": "use_cases", "reason": "no website"},
                    "messages": [self.say("needs the website", [
                        ("reason", "onboarding starts from the company's website and none was given or recorded"),
                        ("try", "Set up my account from https://www.your-company.com"),
                    ])]}
        if onboarding.get("website") and onboarding["website"] != website and onboarding.get("steps"):
            # Another site: the recorded steps were for the old one. Mixing them would record a
            # pipeline no run made, so starting over is the builder's explicit act.
            return {"onboarding": onboarding, "stopped": {"step": "use_cases", "reason": "another website"},
                    "messages": [self.say("onboarding is for another website", [
                        ("recorded", f"onboarding from {onboarding['website']} (step {onboarding.get('step')})"),
                        ("asked", website),
                        ("to start over", "reset onboarding (POST /v1/organization/reset-onboarding), then ask again"),
                    ])]}
        return {"onboarding": onboarding, "website": website, "stopped": None}

    async def read_site(self, state: SetupState) -> dict[str, Any]:
        if self.done(state, "use_cases") or state.get("pages"):
            return {}
        website = state["website"]
        await self.record("use_cases", "in_progress", {"reading": website}, website=website)
        home = await self.call("fetch_page", url=website)
        if "error" in home:
            return await self.stop("use_cases", "failed", f"could not read {website}: {home['error']['message']}")
        if home["status"] >= 400:
            return await self.stop("use_cases", "failed", f"{website} answered HTTP {home['status']}")
        pages = [home]
        origin = urlsplit(home["url"])[:2]
        seen = {_page_key(home["url"])}
        for link in home.get("links") or []:
            if len(pages) >= MAX_PAGES:
                break
            url = urldefrag(link["url"])[0]
            if urlsplit(url)[:2] != origin or _page_key(url) in seen:
                continue  # the company's own pages only
            seen.add(_page_key(url))
            page = await self.call("fetch_page", url=url)
            if "error" not in page and page["status"] < 400 and "html" in (page.get("content_type") or ""):
                pages.append(page)
        kept = [{"url": p["url"], "title": p.get("title"), "text": (p.get("text") or "")[:MAX_PAGE_CHARS]} for p in pages]
        return {"pages": kept}

    def _known_apps(self) -> dict[str, list[str]]:
        apps: dict[str, list[str]] = {}
        for entry in known_apis():
            key = entry["names"][0]
            apps.setdefault(key, []).extend(entry["names"])
        with tenant_tx(self.ctx.platform.db, self.ctx.principal, customer=False) as tx:
            rows = store.Connectors(tx).list(self.ctx.org_id, store.ListQuery(limit=200)).items
        for row in rows:
            aliases = apps.setdefault(row["key"], [])
            aliases.extend(a for a in (row["key"].replace("_", " "), row.get("name")) if a)
        return apps

    async def use_cases(self, state: SetupState) -> dict[str, Any]:
        if recorded := self.done(state, "use_cases"):
            return {"proposal": {k: recorded.get(k) for k in ("apps", "use_cases", "note", "proposed_by")}}
        pages = [Page(p["url"], p.get("title"), p["text"]) for p in state.get("pages") or []]
        apps = await anyio.to_thread.run_sync(self._known_apps)
        offline = propose(pages, apps).as_dict()
        messages: list[AnyMessage] = []
        proposal = {**offline, "proposed_by": "offline planner"}
        if not self.offline:
            answer, from_model = await self._model_proposal(state, pages)
            messages.append(answer)
            if from_model is not None:
                proposal = {**offline, "use_cases": from_model, "proposed_by": self.label}
            else:
                proposal["note"] = "the model's answer was not a readable proposal; the offline reading is shown"
        data = {**proposal, "pages": [{"url": p.url, "title": p.title} for p in pages]}
        if not proposal["use_cases"]:
            stopped = await self.stop("use_cases", "blocked", proposal.get("note") or "no use case found", data)
            return {**stopped, "proposal": proposal, "messages": messages + stopped["messages"]}
        await self.record("use_cases", "done", data)
        lines = [("read", ", ".join(p.url for p in pages)),
                 ("apps on the site", ", ".join(a["name"] for a in proposal["apps"]) or "none")]
        lines += [(f"use case {n + 1}", u["prompt"]) for n, u in enumerate(proposal["use_cases"])]
        return {"proposal": proposal, "messages": [*messages, self.say("use cases proposed", lines)]}

    async def _model_proposal(self, state: SetupState, pages: list[Page]) -> tuple[AIMessage, list[dict[str, Any]] | None]:
        system = prompts.load("setup_assistant").render(
            organization=self.ctx.org_id, website=state["website"], step="use_cases",
            progress=json.dumps((state.get("onboarding") or {}).get("steps") or {}, default=str)[:2000])
        site = "\n\n".join(f"# {p.url} ({p.title or 'untitled'})\n{p.text}" for p in pages)
        ask = ("Propose up to 4 integration use cases for this company from its website below. Answer only JSON: "
               '{"use_cases": [{"title": str, "prompt": str, "source_app": str, "target_app": str, '
               '"why": [{"url": str, "quote": str}]}]}. Each prompt is one the Integration Agent can build, e.g. '
               "\"Sync HubSpot contacts to Cin7 customers, matching by email\".\n\n" + site)
        answer = await self.model.ainvoke([SystemMessage(system), HumanMessage(ask)])
        return answer, _use_cases_from(_text(answer))

    async def connectors(self, state: SetupState) -> dict[str, Any]:
        if recorded := self.done(state, "connectors"):
            return {"connectors": recorded.get("connectors") or []}
        apps: list[str] = []
        for use_case in state["proposal"]["use_cases"]:
            for app in (use_case.get("source_app"), use_case.get("target_app")):
                if app and app not in apps:
                    apps.append(app)
        found = []
        for app in apps:
            entry: dict[str, Any] = {"app": app, "connector": None, "source": None}
            hits = await self.call("search_catalog", query=app, limit=5)
            own = [h for h in hits.get("items") or [] if h.get("action") is None and _same_app(app, h)]
            if own:
                entry |= {"connector": own[0]["connector"], "source": "catalog", "own": own[0].get("own")}
            described = await self.call("find_api_description", app=app)
            candidates = described.get("candidates") or []
            if candidates:
                best = candidates[0]
                entry["document"] = best.get("document") or best.get("url")
                entry["source"] = entry["source"] or "api_description"
            if entry["source"] is None:
                entry["source"] = "missing"
                entry["note"] = "no connector and no API description found: give its documentation URL"
            found.append(entry)
        missing = [e["app"] for e in found if e["source"] == "missing"]
        status = "done" if not missing else "blocked"
        if status == "blocked":
            stopped = await self.stop("connectors", "blocked", f"no connector or API description for {', '.join(missing)}",
                                      {"connectors": found})
            return {**stopped, "connectors": found}
        await self.record("connectors", "done", {"connectors": found})
        lines = [(e["app"], f"{e['source']}: {e.get('connector') or e.get('document')}") for e in found]
        return {"connectors": found, "messages": [self.say("connectors proposed", lines)]}

    async def workflows(self, state: SetupState) -> dict[str, Any]:
        if recorded := self.done(state, "workflows"):
            return {"integration": recorded}
        use_case = state["proposal"]["use_cases"][0]
        await self.record("workflows", "in_progress", {"prompt": use_case["prompt"]})
        # The Integration Agent dry-runs for, and deploys to the environment of, the onboarding test
        # customer (outside production), whose connections the live step points at the sandboxes.
        customer = await self.call("prepare_test_customer", connectors=[], environment=self.test_environment)
        if "error" in customer:
            return await self.stop("workflows", "blocked", f"no test customer: {customer['error']['message']}")
        try:
            agent = self.subgraph("integration_agent", replace(self.ctx, customer_id=customer["customer_id"],
                                                               environment=None))
        except AgentError as exc:  # a platform without the Integration Agent: say so, keep what is recorded
            return await self.stop("workflows", "blocked", str(exc), {"prompt": use_case["prompt"]})
        # A subgraph invoked in a node: its interrupt (the review) pauses this run, and resuming it
        # re-runs this node, which resumes the subgraph where it stopped.
        result = await agent.ainvoke({"messages": [HumanMessage(use_case["prompt"])]})
        published = result.get("published") or {}
        last = result["messages"][-1] if result.get("messages") else None
        said = [last] if last is not None else []
        workflow = next((p for p in published.get("published") or [] if p.get("kind") == "workflow"), None)
        if workflow is None or published.get("errors"):
            why = (f"publishing failed: {json.dumps(published['errors'], default=str)[:500]}" if published.get("errors")
                   else "the Integration Agent ended without publishing: " + (_text(last)[:500] if last else "no answer"))
            stopped = await self.stop("workflows", "blocked", why, {"prompt": use_case["prompt"]})
            return {**stopped, "messages": said + stopped["messages"], "report": result.get("report")}
        integration = {"prompt": use_case["prompt"], "workflow": workflow["key"], "version": workflow.get("version"),
                       "deployed_to": workflow.get("deployed_to"), "customer_id": customer["customer_id"],
                       "published": [{k: p.get(k) for k in ("kind", "key", "version")} for p in published["published"]]}
        await self.record("workflows", "done", integration)
        lines = [("built", use_case["prompt"]), ("workflow", f"{workflow['key']} version {workflow.get('version')}"),
                 ("deployed to", str(workflow.get("deployed_to")))]
        return {"integration": integration, "published": published, "review": result.get("review"),
                "messages": said + [self.say("first integration published", lines)]}

    def _workflow(self, key: str) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
        """The connectors, deployments and input schema of workflow ``key``'s published version."""
        with tenant_tx(self.ctx.platform.db, self.ctx.principal, customer=False) as tx:
            workflows = store.Workflows(tx)
            row = workflows.get(self.ctx.org_id, key)
            spec = workflows.version(self.ctx.org_id, row["id"], row["latest_version"])["spec"]
            connectors = sorted(loaded(WorkflowSpec, spec, "workflow").connectors())
            return connectors, row["deployments"], spec.get("input") or {}

    async def embed(self, state: SetupState) -> dict[str, Any]:
        if recorded := self.done(state, "embed"):
            return {"embed": recorded}
        connectors, _, _ = await anyio.to_thread.run_sync(self._workflow, state["integration"]["workflow"])
        config = await self.call("embed_config", connectors=connectors)
        if "error" in config:
            return await self.stop("embed", "failed", config["error"]["message"])
        await self.record("embed", "done", {"config": config})
        lines = [(e["connector"], f"{e['auth']}, {'ready' if e['ready'] else 'needs ' + str(e['needs'])}")
                 for e in config["connectors"]]
        return {"embed": config, "messages": [self.say("embed configuration ready", lines)]}

    async def live(self, state: SetupState) -> dict[str, Any]:
        if recorded := self.done(state, "live"):
            return {"live": recorded}
        key = state["integration"]["workflow"]
        connectors, deployments, input_schema = await anyio.to_thread.run_sync(self._workflow, key)
        environments = [d["environment_slug"] for d in deployments if d["environment_slug"] != PRODUCTION]
        if not environments:
            return await self.stop("live", "blocked", f"workflow {key!r} is deployed to no test environment "
                                   f"(deployed to: {', '.join(d['environment_slug'] for d in deployments) or 'none'})")
        values, missing = workflow_input(input_schema, _last_human(state["messages"]), state.get("pages") or [])
        if missing:
            return await self.stop("live", "blocked", f"the first run needs the workflow's input {', '.join(missing)} "
                                   f"(values for new records); say it: 'Continue setting up from {state['website']} "
                                   f"with {missing[0]} <value>'", {"workflow": key, "needs": missing})
        customer = await self.call("prepare_test_customer", connectors=connectors, environment=environments[0])
        if "error" in customer:
            return await self.stop("live", "blocked", f"no test customer: {customer['error']['message']}")
        run = await self.call("run_workflow", workflow=key, customer_id=customer["customer_id"], input=values)
        if "error" in run:
            return await self.stop("live", "failed", f"the test run was refused: {run['error']['message']}",
                                   {"customer_id": customer["customer_id"]})
        outcome = {"workflow": key, "version": run.get("version"), "customer_id": customer["customer_id"],
                   "environment": customer["environment"], "execution_id": run["execution_id"], "status": run["status"],
                   "input": values, "output": run.get("output"),
                   "connections": [{"connector": c["connector"], "target": c["target"]} for c in customer["connections"]]}
        if run["status"] != "completed":
            return await self.stop("live", "failed", f"the test run ended {run['status']}: {run.get('failure')}", outcome)
        await self.record("live", "done", outcome)
        return {"live": outcome, "messages": [self.say("live", [
            ("workflow", f"{key} version {run.get('version')}"), ("test customer", customer["customer_id"]),
            ("environment", customer["environment"]), ("execution", f"{run['execution_id']} {run['status']}"),
            ("output", json.dumps(run.get("output"), default=str)[:500])])]}

    async def finish(self, state: SetupState) -> dict[str, Any]:
        read = await self.call("read_onboarding")
        onboarding = read.get("onboarding") or {}
        steps = onboarding.get("steps") or {}
        lines = [(step, (steps.get(step) or {}).get("status", "not started")) for step in ONBOARDING_STEPS]
        report = {"status": "live" if read.get("complete") else "incomplete",
                  "steps": {step: status for step, status in lines}}
        return {"onboarding": onboarding, "report": report,
                "messages": [self.say("onboarding complete" if read.get("complete") else "onboarding incomplete", lines)]}


_WITH = re.compile(r"\bwith\s+([A-Za-z_][\w ]{0,40}?)\s*(?:=|:|\bof\b|\bas\b)?\s+([\w.@+-]+)\s*(?:,|\band\b|$)", re.I)
_CURRENCY = re.compile(r"\b(USD|EUR|GBP|NZD|AUD|CAD|CHF|JPY|SEK|NOK|DKK|ZAR|SGD|INR)\b")


def workflow_input(schema: dict[str, Any], message: str, pages: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Values for a workflow's required inputs and the names still missing.

    A value comes from the builder's message (``... with currency USD``) or, for a currency, the
    ISO code the company's site names most often (a site that quotes prices says its currency).
    Nothing is made up: an input neither gives stays missing.
    """
    required = list(schema.get("required") or [])
    said = {re.sub(r"\W+", "_", name.strip().lower()): value for name, value in _WITH.findall(message)}
    codes = [code for page in pages for code in _CURRENCY.findall(page.get("text") or "")]
    values: dict[str, Any] = {}
    for name in required:
        if name.lower() in said:
            values[name] = said[name.lower()]
        elif "currency" in name.lower() and codes:
            values[name] = max(sorted(set(codes)), key=codes.count)
    return values, [name for name in required if name not in values]


def _page_key(url: str) -> str:
    """``url`` as one page: no fragment, and ``/`` for an empty path."""
    parts = urlsplit(urldefrag(url)[0])
    return parts._replace(path=parts.path or "/").geturl()


def _same_app(app: str, hit: dict[str, Any]) -> bool:
    words = set(re.findall(r"[a-z0-9]+", app.lower()))
    names = set(re.findall(r"[a-z0-9]+", f"{hit.get('connector', '')} {hit.get('name', '')}".lower()))
    return bool(words) and words <= names


def _use_cases_from(text: str) -> list[dict[str, Any]] | None:
    """The use cases of a model's JSON answer (fenced or bare), or None when it has none readable."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except ValueError:
        return None
    items = data.get("use_cases") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    out = []
    for item in items[:4]:
        if isinstance(item, dict) and isinstance(item.get("prompt"), str) and item["prompt"].strip():
            out.append({"title": str(item.get("title") or item["prompt"])[:200], "prompt": item["prompt"].strip()[:500],
                        "source_app": str(item.get("source_app") or "")[:100] or None,
                        "target_app": str(item.get("target_app") or "")[:100] or None,
                        "why": [w for w in item.get("why") or [] if isinstance(w, dict)][:4]})
    return out or None


def _after(step: str, following: str) -> Callable[[SetupState], str]:
    def route(state: SetupState) -> str:
        return END if state.get("stopped") else following
    route.__name__ = f"after_{step}"
    return route


def build_setup_assistant(ctx: ToolContext, model: BaseChatModel, registry: ToolRegistry, checkpointer: Any,
                          subgraph: SubgraphFactory) -> Any:
    """The compiled Setup Assistant graph for ``ctx``.

    ``model``: the chat model (offline: the deterministic reading of the site); ``subgraph(name)``
    builds the agent graph that builds the first integration (``integration_agent``), compiled
    without its own checkpointer so it inherits this graph's; ``checkpointer``: needed to resume
    the review interrupt. Input: ``{"messages": [{"role": "user", "content": "Set up ... <URL>"}]}``.
    """
    nodes = SetupAssistant(ctx, model, registry, subgraph)
    graph = StateGraph(SetupState)
    order = ["start", "read_site", "use_cases", "connectors", "workflows", "embed", "live", "finish"]
    for name in order:
        graph.add_node(name, getattr(nodes, name))
    graph.add_edge(START, "start")
    for step, following in zip(order[:-2], order[1:-1]):
        graph.add_conditional_edges(step, _after(step, following), [following, END])
    graph.add_conditional_edges("live", _after("live", "finish"), ["finish", END])
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, name=NAME)
