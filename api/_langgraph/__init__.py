"""The LangGraph server API under /v1/langgraph (assistants, threads, runs), for the official
``langgraph-sdk`` client. ``router`` is mounted by ``api._v1``; a test may set
``app.state.graph_factory`` (``(name, ctx, checkpointer) -> compiled graph``) before the app starts
to run other graphs than ``agents.build_graph``'s."""

from api._langgraph._routes import router
from api._langgraph._service import GraphFactory, LangGraphThreads

__all__ = ["GraphFactory", "LangGraphThreads", "router"]
