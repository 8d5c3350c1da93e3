"""Errors of the agents package (chat models, the offline planner).

Hierarchy (class, code, HTTP status)::

    AgentError                      agent_error (500)
    ├── ModelSettingInvalid         model_setting_invalid (422)
    ├── ModelUnavailable            model_unavailable (503)
    ├── PlanError                   offline_plan_error (500)
    ├── UnknownGraph                unknown_graph (404)
    ├── GraphUnavailable            graph_unavailable (501)
    └── ThreadError                 thread_error (500)
        ├── ThreadBusy              thread_busy (409)
        ├── ThreadNotInterrupted    thread_not_interrupted (409)
        └── RunNotActive            run_not_active (409)

Every error builds its message from typed fields and carries ``code`` and ``http_status``, which
``api/`` maps to a problem response. Errors of openai and litellm are translated into these at the
boundary (STYLE.md 6); a secret never appears in a message.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of the errors raised by agents/."""

    code: str = "agent_error"
    http_status: int = 500


class ModelSettingInvalid(AgentError, ValueError):
    """The model setting cannot be used: ``setting`` is what was given, ``reason`` why not."""

    code = "model_setting_invalid"
    http_status = 422

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"model setting {setting!r}: {reason}")


class ModelUnavailable(AgentError):
    """The configured model could not be built or reached: ``model`` names it, ``reason`` says why.

    503: the platform is configured for a model it cannot use right now (a missing key, a missing
    package, a server that does not answer); the request itself is fine.
    """

    code = "model_unavailable"
    http_status = 503

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"chat model {model!r} unavailable: {reason}")


class PlanError(AgentError):
    """A plan given to the offline planner is unusable: ``step`` names the tool, ``reason`` why.

    500: a plan is code the graphs supply, not input; a bad one is a bug of the platform.
    """

    code = "offline_plan_error"
    http_status = 500

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"offline plan step {step!r}: {reason}")


class UnknownGraph(AgentError, LookupError):
    """No graph is called ``name``; ``graphs`` are the names there are. 404: a name the caller chose."""

    code = "unknown_graph"
    http_status = 404

    def __init__(self, name: str, graphs: tuple[str, ...]) -> None:
        self.name = name
        self.graphs = graphs
        super().__init__(f"no agent graph {name!r}; graphs are {', '.join(graphs)}")


class GraphUnavailable(AgentError):
    """Graph ``name`` is one of the platform's graphs but is not built in this version; ``built``
    are the ones that are. 501: the request is fine, the server does not implement it yet."""

    code = "graph_unavailable"
    http_status = 501

    def __init__(self, name: str, built: tuple[str, ...]) -> None:
        self.name = name
        self.built = built
        super().__init__(f"the agent graph {name!r} is not built yet; built: {', '.join(built) or 'none'}")


class ThreadError(AgentError):
    """Root of the errors of threads and their runs (``agents._threads``)."""

    code = "thread_error"
    http_status = 500


class ThreadBusy(ThreadError):
    """Thread ``thread_id`` has run ``run_id`` in progress: a thread runs one run at a time (409)."""

    code = "thread_busy"
    http_status = 409
    problem_fields = ("thread_id", "run_id")

    def __init__(self, thread_id: str, run_id: str | None) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        running = f" (run {run_id!r})" if run_id else ""
        super().__init__(f"thread {thread_id!r} has a run in progress{running}; wait for it to end or cancel it")


class ThreadNotInterrupted(ThreadError):
    """A resume was sent to thread ``thread_id``, whose ``thread_status`` is not ``interrupted`` (409)."""

    code = "thread_not_interrupted"
    http_status = 409
    problem_fields = ("thread_id", "thread_status")

    def __init__(self, thread_id: str, status: str) -> None:
        self.thread_id = thread_id
        self.thread_status = status
        super().__init__(f"thread {thread_id!r} is {status}: only an interrupted thread can be resumed")


class RunNotActive(ThreadError):
    """Run ``run_id`` is over (``run_status``) and cannot be cancelled (409)."""

    code = "run_not_active"
    http_status = 409
    problem_fields = ("run_id", "run_status")

    def __init__(self, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.run_status = status
        super().__init__(f"run {run_id!r} is {status} already; only a pending or running run can be cancelled")
