"""The graph factory: :func:`build_graph` builds any agent graph by name, through one table.

Each graph module supplies a :data:`GraphBuilder` (``(ctx, model, registry, checkpointer) ->
compiled graph``) and its row in :data:`BUILDERS`; :func:`build_graph` resolves the model first
(the platform's offline default gets the graph's own :class:`~agents.Plan`) and dispatches.
A name of :data:`GRAPHS` whose module is not built yet is refused with :class:`GraphUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph

from agents._connector_agent import build_connector_agent
from agents._integration_agent import build_integration_agent
from agents._models import ModelSetting, chat_model
from agents._offline import OfflineChatModel
from agents._planner import Plan
from agents.errors import GraphUnavailable, UnknownGraph
from tools import ToolContext, ToolRegistry

GRAPHS = ("home", "setup_assistant", "connector_agent", "integration_agent")

# (ctx, model, registry, checkpointer) -> the compiled graph. ``model`` is resolved already.
GraphBuilder = Callable[[ToolContext, "ModelChoice", ToolRegistry, Any], CompiledStateGraph]

# One row per graph that exists; home and setup_assistant join when their modules do.
BUILDERS: Mapping[str, GraphBuilder] = {
    "connector_agent": build_connector_agent,
    "integration_agent": build_integration_agent,
}


class ModelChoice:
    """The chat model a graph runs with: ``model`` as given (None: the platform's default), turned
    into a chat model with the graph's offline plan by :meth:`for_plan`."""

    def __init__(self, model: BaseChatModel | ModelSetting | str | None) -> None:
        self.model = model

    def for_plan(self, plan: Plan) -> BaseChatModel:
        """The chat model; an offline one (the default, a setting, or an instance without a plan)
        carries ``plan``."""
        model = self.model
        if model is None:
            return chat_model("offline", plan=plan)
        if isinstance(model, ModelSetting | str):
            return chat_model(model, plan=plan)
        if isinstance(model, OfflineChatModel) and not model.plan.steps:
            return model.model_copy(update={"plan": plan})
        return model


def build_graph(
    name: str,
    ctx: ToolContext,
    *,
    model: BaseChatModel | ModelSetting | str | None = None,
    registry: ToolRegistry | None = None,
    checkpointer: Any = None,
) -> CompiledStateGraph:
    """The compiled graph ``name`` (one of :data:`GRAPHS`) whose tools act with ``ctx``.

    ``model``: a chat model, a :class:`ModelSetting` (or its text, ``openai:gpt-4o-mini``), or None
    for the offline planner; an offline model runs the graph's own plan. ``registry``: the tools
    (default: ``tools.default_registry()``). ``checkpointer``: any LangGraph checkpointer (needed
    to resume the review interrupt). Input: ``{"messages": [{"role": "user", "content": PROMPT}]}``.

    Raises :class:`UnknownGraph` (a name outside :data:`GRAPHS`), :class:`GraphUnavailable` (a
    graph not built yet), and what :func:`chat_model` raises for a setting it cannot use.
    """
    if name not in GRAPHS:
        raise UnknownGraph(name, GRAPHS)
    builder = BUILDERS.get(name)
    if builder is None:
        raise GraphUnavailable(name, tuple(sorted(BUILDERS)))
    if registry is None:
        from tools import default_registry

        registry = default_registry()
    return builder(ctx, ModelChoice(model), registry, checkpointer)
