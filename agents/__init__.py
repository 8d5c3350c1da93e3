"""The agents: chat models and the LangGraph graphs (home, setup assistant, connector and
integration agents).

* Graphs: :func:`build_graph` ``(name, ctx, *, model, registry, checkpointer)`` builds one of
  :data:`GRAPHS` whose tools act with a ``tools.ToolContext``; the Connector Agent reads its
  request with :func:`read_request` (a :class:`ConnectorRequest`); :func:`review_answer` checks
  an answer to the review interrupt before a run is resumed with it. Home routes a message with
  :func:`route_of` (a :class:`Route`) and offers :func:`recommended_prompts` (``Recommended``) from
  an organization's state; the Setup Assistant records onboarding in ``organizations.onboarding``.

* Models: :func:`chat_model` builds the chat model a :class:`ModelSetting` names (``offline``,
  ``openai:<model>``, ``litellm:<provider/model>``); openai and litellm are imported only then.
* Offline planner: :class:`OfflineChatModel` decides tool calls by rules: :func:`parse_intent`
  reads the prompt into an :class:`Intent` (or a :class:`Refusal`), and :func:`next_step` walks a
  graph's :class:`Plan` of :class:`PlanStep` rows against the tool results so far.
* Usage: :class:`TokenUsage` counts each call's input and output tokens.
* Threads: :class:`Threads` keeps conversations with a graph (built by a :class:`GraphFactory`),
  runs them as background tasks and streams each run as :class:`ThreadEvent` s (token, tool_call,
  tool_result, step, interrupt, usage, done, error), resumable by sequence number.
* Credits: :func:`usage_callbacks` gives a run its :class:`CreditMeter`, which refuses a model
  call with :class:`CreditsExhausted` when the organization has no credits left and records each
  call's tokens and credits in the ledger per run, thread and organization.

Arrows point down: agents imports ``tools``, ``runtime``, ``engine`` and ``store``, never ``api``
or ``switchboard``.
"""

from agents._connector_agent import ConnectorRequest, read_request
from agents._graphs import GRAPHS, build_graph
from agents._credits import CreditMeter, usage_callbacks
from agents._home import Recommended, Route, recommended_prompts, route_of
from agents._integration_agent import review_answer
from agents._intent import SHAPES, AppObject, Intent, Refusal, Trigger, parse_intent
from agents._models import PROVIDERS, ModelSetting, chat_model, is_model_error, model_errors
from agents._offline import OfflineChatModel
from agents._planner import Decision, Plan, PlanState, PlanStep, ToolResult, next_step
from agents._stream import message_data
from agents._threads import (
    MAX_MESSAGE_CHARS,
    TERMINAL_EVENTS,
    ContextFactory,
    GraphFactory,
    RunCallbacks,
    ThreadEvent,
    Threads,
    default_context,
)
from agents._usage import CallUsage, TokenUsage, call_usage
from agents.errors import (
    AgentError,
    CreditsExhausted,
    GraphUnavailable,
    ModelSettingInvalid,
    ModelUnavailable,
    PlanError,
    ReviewAnswerInvalid,
    RunNotActive,
    ThreadBusy,
    ThreadError,
    ThreadNotInterrupted,
    UnknownGraph,
)

__all__ = [
    "GRAPHS",
    # threads
    "MAX_MESSAGE_CHARS",
    "TERMINAL_EVENTS",
    "ContextFactory",
    "GraphFactory",
    "RunCallbacks",
    "RunNotActive",
    "ThreadBusy",
    "ThreadError",
    "ThreadEvent",
    "ThreadNotInterrupted",
    "Threads",
    "default_context",
    "message_data",
    # end threads
    "PROVIDERS",
    "SHAPES",
    "AgentError",
    "AppObject",
    "CallUsage",
    "ConnectorRequest",
    "CreditMeter",
    "CreditsExhausted",
    "Decision",
    "GraphUnavailable",
    "Intent",
    "ModelSetting",
    "ModelSettingInvalid",
    "ModelUnavailable",
    "OfflineChatModel",
    "Plan",
    "PlanError",
    "PlanState",
    "PlanStep",
    "Refusal",
    "ReviewAnswerInvalid",
    "TokenUsage",
    "ToolResult",
    "Trigger",
    "UnknownGraph",
    "build_graph",
    "call_usage",
    "chat_model",
    "is_model_error",
    "model_errors",
    "next_step",
    "parse_intent",
    "read_request",
    "usage_callbacks",
    "Recommended",
    "Route",
    "recommended_prompts",
    "route_of",
    "review_answer",
]
