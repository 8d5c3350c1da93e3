"""The LangGraph server API under /v1/langgraph (assistants, threads, runs), for the official
``langgraph-sdk`` client. ``router`` is mounted by ``api._v1``; the app wraps
the Threads service's graph factory with :meth:`RunTaps.wrap` (``app.state.langgraph_taps``), so a
LangGraph client sees the graph's own stream of the runs it starts."""

from api._langgraph._routes import router
from api._langgraph._service import RunTaps

__all__ = ["RunTaps", "router"]
