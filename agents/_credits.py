"""Agent credits in a run: each model call is checked before it is made and recorded after.

:class:`CreditMeter` is a LangChain callback handler (a :class:`~agents._usage.TokenUsage`, so it
also keeps the run's totals). Before every chat model call it reads what the organization has left
(``runtime.AgentCredits``) and, at or below zero, raises :class:`~agents.errors.CreditsExhausted`
from the callback, so the model is never called; after every call it adds the call's tokens and
their price to the ledger, for the run, thread, organization and (test) customer.

A call's size is known only once it is made, so the last call of a period may overshoot the
allowance; the next one is refused. :func:`usage_callbacks` builds the handlers a graph run passes
in its config: ``graph.invoke(input, config={"callbacks": usage_callbacks(...)})``.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from agents._models import ModelSetting
from agents._usage import CallUsage, TokenUsage
from agents.errors import CreditsExhausted
from runtime import AgentCredits, Platform


class CreditMeter(TokenUsage):
    """Refuses a model call when the organization is out of credits; records every call's usage.

    ``credits`` is the platform's :class:`runtime.AgentCredits`; ``org_id``, ``run_id``,
    ``thread_id`` and ``customer_id`` label the ledger rows; ``setting`` names the model (its
    provider and model price the call). Blocking (SQL) in the callbacks: LangChain runs a sync
    handler that is not ``run_inline`` in a worker thread on the async path, so the event loop
    is not held.
    """

    # An exception from a callback propagates only with raise_error: the refusal must stop the call.
    raise_error = True
    # Off the event loop on the async path (SQL); LangChain still awaits each callback in order.
    run_inline = False

    def __init__(
        self,
        credits: AgentCredits,
        org_id: str,
        run_id: str,
        setting: ModelSetting,
        *,
        thread_id: str | None = None,
        customer_id: str | None = None,
    ) -> None:
        super().__init__()
        self.credits = credits
        self.org_id = org_id
        self.run_id = run_id
        self.thread_id = thread_id
        self.customer_id = customer_id
        self.setting = setting
        self._spent_lock = threading.Lock()
        self._spent = 0.0

    @property
    def spent(self) -> float:
        """Credits the calls recorded by this meter cost."""
        with self._spent_lock:
            return self._spent

    def check(self) -> None:
        """Raise :class:`CreditsExhausted` when the organization has no credits left."""
        summary = self.credits.summary(self.org_id)
        if summary.balance <= 0:
            raise CreditsExhausted(self.org_id, summary.allowance, round(summary.used.credits, 6), summary.period_end)

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        """Before a chat model call (the callback interface): refuse it when out of credits."""
        self.check()

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID,
                     parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        """Before a text model call: the same check."""
        self.check()

    def add(self, usage: CallUsage) -> None:
        """Record one call's usage (``TokenUsage.on_llm_end`` calls this for each generation of a
        finished call): in the run's totals and in the ledger."""
        super().add(usage)
        offline = usage.counted == "offline" or self.setting.provider == "offline"
        row = self.credits.record(
            self.org_id, run_id=self.run_id, thread_id=self.thread_id, customer_id=self.customer_id,
            provider="offline" if offline else self.setting.provider,
            model="offline" if offline else self.setting.model,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            counted="offline" if offline else usage.counted,
        )
        with self._spent_lock:
            self._spent += float(row["credits"])


def usage_callbacks(
    platform: Platform,
    org_id: str,
    thread_id: str | None,
    run_id: str,
    model_setting: ModelSetting | str,
    *,
    customer_id: str | None = None,
) -> list[BaseCallbackHandler]:
    """The callback handlers a graph run passes in ``config["callbacks"]``: one :class:`CreditMeter`
    (read it back with ``meter = handlers[0]`` for the run's token totals and credits).

    Every model call of the run is refused with :class:`CreditsExhausted` (code
    ``credits_exhausted``, HTTP 402) once the organization has no credits left, and recorded in the
    ledger for ``run_id``, ``thread_id``, ``org_id`` and ``customer_id`` (the test customer the
    run acts for, if any). Raises :class:`~agents.errors.ModelSettingInvalid` for a bad setting text.
    """
    setting = ModelSetting.parse(model_setting) if isinstance(model_setting, str) else model_setting
    return [CreditMeter(platform.credits, org_id, run_id, setting, thread_id=thread_id, customer_id=customer_id)]
