"""Errors of the agents package (chat models, the offline planner).

Hierarchy (class, code, HTTP status)::

    AgentError                      agent_error (500)
    ├── ModelSettingInvalid         model_setting_invalid (422)
    ├── ModelUnavailable            model_unavailable (503)
    ├── PlanError                   offline_plan_error (500)
    ├── UnknownGraph                unknown_graph (404)
    └── GraphUnavailable            graph_unavailable (501)

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
