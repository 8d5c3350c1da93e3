"""Home: the entry graph behind the prompt box. It routes each message to the agent that does the
work, run as a subgraph of Home's, and recommends prompts from the organization's state.

Routing (:func:`route_of`) is by rules first, the same for every model:

* ``connector_agent``: "add / connect / import / build / fix a connector for X", "connect X",
  an OpenAPI or Swagger document or a docs URL;
* ``integration_agent``: a prompt in one of the Integration Agent's shapes ("sync ...",
  "when ... create ...", "every day, copy ..."), or one that starts like one (the agent then says
  what it cannot do);
* ``setup_assistant``: onboarding, "set up my account", a company website.

A message no rule routes gets, with the offline model, a labelled answer that says what Home can
route and offers the recommended prompts; with a real model, the model may route it with the
``route_to`` tool or answer it (no other tool is bound: Home does no integration work itself).

:func:`recommended_prompts` computes prompts from what the organization has (onboarding state,
connectors and their actions, workflows, connections); each is one :func:`route_of` routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import anyio
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel, Field

import prompts
import store
from agents._intent import SHAPES, Intent, parse_intent
from agents._offline import OfflineChatModel
from agents._proposals import PAIRINGS, _plural
from agents.errors import AgentError
from runtime import Platform, tenant_tx
from tools import ONBOARDING_STEPS, ToolContext, ToolRegistry, known_apis

NAME = "home"
AGENTS = ("connector_agent", "integration_agent", "setup_assistant")
MAX_RECOMMENDED = 5

_CONNECTOR = re.compile(
    r"\b(?:add|connect|import|build|create|make|write|fix|repair|update|generate)\b.{0,60}?\bconnectors?\b"
    r"|\bconnectors?\s+(?:for|to|from)\b|\b(?:openapi|swagger)\b|\bapi\s+(?:docs|documentation|description|spec)\b"
    r"|^\s*(?:connect|import)\s+(?!my\b|our\b)\S+", re.I)
_INTEGRATION = re.compile(
    r"^\s*(?:sync|keep|when|whenever|each\s+time|every|each|once\s+a|hourly|daily|nightly|weekly|copy|send|push"
    r"|export|replicate)\b", re.I)
_SETUP = re.compile(
    r"\b(?:onboard(?:ing)?|set\s*up\s+(?:my|our|the)\s+(?:account|organi[sz]ation|workspace|company)"
    r"|setting\s+up|get(?:ting)?\s+started|website|our\s+site|my\s+site|setup\s+assistant)\b", re.I)
_URL = re.compile(r"https?://\S+", re.I)


@dataclass(frozen=True)
class Route:
    """Where a message goes (``agent``, None: nowhere) and why."""

    agent: str | None
    reason: str


def route_of(text: str, *, apps: list[str] | tuple[str, ...] = ()) -> Route:
    """The agent a message is for, by the rules of the module docstring; never raises."""
    text = text.strip()
    if not text:
        return Route(None, "the message is empty")
    if _CONNECTOR.search(text):
        return Route("connector_agent", "it asks for a connector or names an API description")
    if isinstance(parse_intent(text, apps=apps), Intent):
        return Route("integration_agent", "it is an integration in one of the shapes the agents build")
    if _INTEGRATION.match(text):
        return Route("integration_agent", "it starts like an integration (sync, when, every, copy)")
    if _SETUP.search(text) or (_URL.fullmatch(text)):
        return Route("setup_assistant", "it is about onboarding or the company's website")
    return Route(None, "it asks for none of: a connector, an integration, onboarding")


@dataclass(frozen=True)
class Recommended:
    """A prompt offered in the prompt box: the ``prompt``, the ``agent`` it goes to, and ``why``."""

    prompt: str
    agent: str
    why: str

    def as_dict(self) -> dict[str, str]:
        """Plain JSON-able data."""
        return asdict(self)


def _app_name(key: str) -> str:
    """How a prompt names the app of connector ``key`` (``google_tasks`` -> ``Google Tasks``)."""
    return " ".join(word[:1].upper() + word[1:] for word in key.replace("-", "_").split("_"))


def _kinds(actions: list[str], verb: str) -> list[str]:
    """The common data model's kinds that actions ``<verb>_<kind>(s)`` work on, in ``PAIRINGS``' vocabulary."""
    found = []
    for action in actions:
        match = re.fullmatch(rf"{verb}_([a-z]+?)(?:e?s)?", action)
        kind = match.group(1) if match else None
        kind = {"companie": "company"}.get(kind or "", kind)
        if kind and kind not in found:
            found.append(kind)
    return found


def organization_state(tx: store.Tx, org_id: str) -> dict[str, Any]:
    """What recommendations and Home's prompt read of an organization: its name, onboarding state,
    connectors (key, actions, events), workflows (key, status, published) and connection count."""
    org = store.Organizations(tx).get(org_id)
    connectors = []
    rows = store.Connectors(tx)
    for row in rows.list(org_id, store.ListQuery(limit=100)).items:
        if row.get("status") == "archived" or not row.get("latest_version"):
            continue
        spec = rows.version(org_id, row["id"], row["latest_version"])["spec"]
        connectors.append({"key": row["key"], "name": row.get("name"), "actions": sorted(spec.get("actions") or {}),
                           "events": sorted(spec.get("events") or {})})
    workflows = [{"key": w["key"], "status": w["status"], "published": bool(w.get("latest_version"))}
                 for w in store.Workflows(tx).list(org_id, store.ListQuery(limit=100)).items]
    connections = store.Connections(tx).list(org_id, store.ListQuery(limit=1)).items
    return {"name": org["name"], "onboarding": org.get("onboarding") or {}, "connectors": connectors,
            "workflows": workflows, "has_connections": bool(connections)}


def recommend(state: dict[str, Any]) -> list[Recommended]:
    """Prompts for an organization in ``state`` (see :func:`organization_state`), best first."""
    out: list[Recommended] = []
    onboarding = state.get("onboarding") or {}
    steps = onboarding.get("steps") or {}
    step = onboarding.get("step") or ONBOARDING_STEPS[0]
    finished = all((steps.get(s) or {}).get("status") == "done" for s in ONBOARDING_STEPS)
    if not finished:
        if onboarding.get("website"):
            out.append(Recommended(f"Continue setting up from {onboarding['website']}", "setup_assistant",
                                   f"onboarding stands at step {step}"))
        else:
            out.append(Recommended("Set up my account from https://www.your-company.com", "setup_assistant",
                                   "onboarding has not started: it begins from the company's website"))
    connectors = state.get("connectors") or []
    keys = {c["key"] for c in connectors}
    pairs: list[Recommended] = []
    for source_kind, target_kind, shape, match in PAIRINGS:
        for source in connectors:
            for target in connectors:
                if source is target or source_kind not in _kinds(source["actions"], "list") \
                        or target_kind not in _kinds(target["actions"], "create"):
                    continue
                a, b = _app_name(source["key"]), _app_name(target["key"])
                if shape == "sync":
                    prompt = f"Sync {a} {_plural(source_kind)} to {b} {_plural(target_kind)}, matching by {match}"
                else:
                    prompt = f"Every day, copy {_plural(source_kind)} from {a} to {b}"
                pairs.append(Recommended(prompt, "integration_agent",
                                         f"{source['key']} lists {_plural(source_kind)} and {target['key']} creates "
                                         f"{_plural(target_kind)}"))
                if f"{source_kind}_created" in source["events"]:
                    pairs.append(Recommended(f"When a {source_kind} is created in {a}, create a {target_kind} in {b}",
                                             "integration_agent", f"{source['key']} reports new {_plural(source_kind)}"))
    built = {w["key"] for w in state.get("workflows") or []}
    out += [p for p in pairs if not any(_slugged(p.prompt) in key for key in built)][:3]
    if len(keys) < 2:
        for entry in known_apis():
            key = entry["names"][0]
            if key not in keys and entry.get("document"):
                name = _app_name(key) if key.islower() else key
                out.append(Recommended(f"Add a connector for {name}", "connector_agent",
                                       f"an API description of {entry['app']} ships with the platform"))
            if len(out) >= MAX_RECOMMENDED:
                break
    return _unique(out)[:MAX_RECOMMENDED]


def _slugged(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower())[:20]


def _unique(items: list[Recommended]) -> list[Recommended]:
    seen: set[str] = set()
    return [i for i in items if not (i.prompt in seen or seen.add(i.prompt))]


async def recommended_prompts(platform: Platform, org_id: str) -> list[dict[str, str]]:
    """The recommended prompts of organization ``org_id`` (see :func:`recommend`), as JSON-able dicts."""
    def read() -> dict[str, Any]:
        with platform.db.tenant(org_id) as tx:
            return organization_state(tx, org_id)

    return [r.as_dict() for r in recommend(await anyio.to_thread.run_sync(read))]


class HomeState(TypedDict):
    """Home's state: the conversation, the latest route, the recommendations offered, and what the
    agent it routed to reports (``report``, ``review``, ``published``)."""

    messages: Annotated[list[AnyMessage], add_messages]
    route: NotRequired[dict[str, Any] | None]
    recommended: NotRequired[list[dict[str, str]]]
    report: NotRequired[dict[str, Any] | None]
    review: NotRequired[dict[str, Any] | None]
    published: NotRequired[dict[str, Any] | None]


class RouteTo(BaseModel):
    """Hand the builder's message to one of the agents."""

    agent: Literal["connector_agent", "integration_agent", "setup_assistant"] = Field(description="The agent.")
    reason: str = Field("", max_length=500, description="Why this agent.")


def _text(message: Any) -> str:
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else " ".join(
        part if isinstance(part, str) else str(part.get("text", "")) for part in content)


SubgraphFactory = Callable[[str], Any]


class Home:
    """Home's nodes for one run's ``ctx``, model and subgraphs."""

    def __init__(self, ctx: ToolContext, model: BaseChatModel) -> None:
        self.ctx = ctx
        self.model = model
        self.offline = isinstance(model, OfflineChatModel)
        self.label = "offline planner" if self.offline else f"model {getattr(model, 'model_name', None) or model._llm_type}"

    def say(self, status: str, lines: list[tuple[str, str]]) -> AIMessage:
        text = "\n".join([f"home ({self.label}): {status}", *(f"{k}: {v}" for k, v in lines)])
        return AIMessage(content=text, name=NAME, response_metadata={
            "model_provider": "offline" if self.offline else "graph", "graph": NAME},
            usage_metadata={"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})

    def _state(self) -> dict[str, Any]:
        with tenant_tx(self.ctx.platform.db, self.ctx.principal, customer=False) as tx:
            return organization_state(tx, self.ctx.org_id)

    async def route(self, state: HomeState) -> dict[str, Any]:
        text = next((_text(m) for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), "")
        org = await anyio.to_thread.run_sync(self._state)
        apps = [c["key"] for c in org["connectors"]]
        found = route_of(text, apps=apps)
        cleared = {"report": None, "review": None, "published": None}
        if found.agent is not None:
            return {**cleared, "route": asdict(found),
                    "messages": [self.say("routed", [("to", found.agent), ("because", found.reason)])]}
        recommended = [r.as_dict() for r in recommend(org)]
        if not self.offline:
            system = prompts.load("home").render(organization=org["name"], model_label=self.label,
                                                 state=_summary(org))
            answer = await self.model.bind_tools([RouteTo]).ainvoke([SystemMessage(system), *state["messages"]])
            for call in getattr(answer, "tool_calls", None) or []:
                agent = (call.get("args") or {}).get("agent")
                if call["name"] == "RouteTo" and agent in AGENTS:
                    # The model's routing call is answered here; the agent reads the builder's message.
                    note = self.say("routed", [("to", agent), ("because", (call["args"].get("reason") or "the model chose it"))])
                    return {**cleared, "route": {"agent": agent, "reason": "the model routed it"},
                            "messages": [AIMessage(content=_text(answer), id=answer.id, name=NAME,
                                                   response_metadata=answer.response_metadata,
                                                   usage_metadata=answer.usage_metadata), note]}
            return {**cleared, "route": {"agent": None, "reason": "the model answered it"}, "recommended": recommended,
                    "messages": [answer]}
        lines = [("reason", f"Home routes a message to an agent, and {found.reason}"),
                 ("routes", "connector: 'Add a connector for <app>' | integration: " + " | ".join(SHAPES)
                  + " | onboarding: 'Set up my account from <website>'")]
        lines += [(f"try {n + 1}", r["prompt"]) for n, r in enumerate(recommended)]
        lines.append(("other requests", "need a model: set SWITCHBOARD_MODEL to openai:<model> or litellm:<provider/model>"))
        return {**cleared, "route": asdict(found), "recommended": recommended,
                "messages": [self.say("cannot route this", lines)]}


def _summary(org: dict[str, Any]) -> str:
    onboarding = org.get("onboarding") or {}
    connectors = ", ".join(c["key"] for c in org["connectors"]) or "none"
    workflows = ", ".join(f"{w['key']} ({'published' if w['published'] else 'draft'})" for w in org["workflows"]) or "none"
    return (f"connectors: {connectors}\nworkflows: {workflows}\ncustomer connections: "
            f"{'yes' if org['has_connections'] else 'none'}\nonboarding step: {onboarding.get('step') or 'not started'}")


def _unavailable(name: str, error: AgentError) -> Callable[[HomeState], dict[str, Any]]:
    def node(state: HomeState) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"home: cannot hand this to {name}\nreason: {error}", name=NAME,
                                       response_metadata={"model_provider": "graph", "graph": NAME})]}
    return node


def build_home(ctx: ToolContext, model: BaseChatModel, registry: ToolRegistry, checkpointer: Any,
               subgraph: SubgraphFactory) -> Any:
    """The compiled Home graph for ``ctx``: ``route`` then the agent it picked, each agent a subgraph
    built by ``subgraph(name)`` without a checkpointer of its own (it inherits Home's, so an
    agent's review interrupt is Home's and resumes through it). ``registry`` is the agents'; Home
    itself calls no tool."""
    home = Home(ctx, model)
    graph = StateGraph(HomeState)
    graph.add_node("route", home.route)
    for name in AGENTS:
        try:
            graph.add_node(name, subgraph(name))
        except AgentError as exc:  # a graph this version does not have: Home says so when routed there
            graph.add_node(name, _unavailable(name, exc))
        graph.add_edge(name, END)
    graph.add_edge(START, "route")
    graph.add_conditional_edges("route", lambda s: (s.get("route") or {}).get("agent") or END, [*AGENTS, END])
    return graph.compile(checkpointer=checkpointer, name=NAME)
