"""The agents: chat models and, later, the LangGraph graphs (home, setup assistant, connector and
integration agents).

* Models: :func:`chat_model` builds the chat model a :class:`ModelSetting` names (``offline``,
  ``openai:<model>``, ``litellm:<provider/model>``); openai and litellm are imported only then.
* Offline planner: :class:`OfflineChatModel` decides tool calls by rules: :func:`parse_intent`
  reads the prompt into an :class:`Intent` (or a :class:`Refusal`), and :func:`next_step` walks a
  graph's :class:`Plan` of :class:`PlanStep` rows against the tool results so far.
* Usage: :class:`TokenUsage` counts each call's input and output tokens.
* Credits: :func:`usage_callbacks` gives a run its :class:`CreditMeter`, which refuses a model
  call with :class:`CreditsExhausted` when the organization has no credits left and records each
  call's tokens and credits in the ledger per run, thread and organization.

Arrows point down: agents imports ``tools``, ``runtime``, ``engine`` and ``store``, never ``api``
or ``switchboard``.
"""

from agents._credits import CreditMeter, usage_callbacks
from agents._intent import SHAPES, AppObject, Intent, Refusal, Trigger, parse_intent
from agents._models import PROVIDERS, ModelSetting, chat_model, is_model_error, model_errors
from agents._offline import OfflineChatModel
from agents._planner import Decision, Plan, PlanState, PlanStep, ToolResult, next_step
from agents._usage import CallUsage, TokenUsage, call_usage
from agents.errors import AgentError, CreditsExhausted, ModelSettingInvalid, ModelUnavailable, PlanError

__all__ = [
    "PROVIDERS",
    "SHAPES",
    "AgentError",
    "AppObject",
    "CallUsage",
    "CreditMeter",
    "CreditsExhausted",
    "Decision",
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
    "TokenUsage",
    "ToolResult",
    "Trigger",
    "call_usage",
    "chat_model",
    "is_model_error",
    "model_errors",
    "next_step",
    "parse_intent",
    "usage_callbacks",
]
