"""Agent credits: what a model call costs, what an organization has left, and the ledger it is
counted in (``store.AgentUsage``).

A :class:`CreditRate` prices a model's tokens in credits per 1,000 input and output tokens.
:class:`CreditRates` is the table the platform prices by (``DEFAULT_CREDIT_RATES`` plus the
operator's ``SWITCHBOARD_AGENT_CREDIT_RATES``): a model is looked up by its name without the
provider (``openai:gpt-4o-mini`` and ``litellm:openai/gpt-4o-mini`` are the same model), a dated
variant (``gpt-4o-mini-2024-07-18``) by the longest name it starts with, and a model the table
does not know costs the ``default`` rate. The ``offline`` model always costs 0.

:class:`AgentCredits` (``Platform.credits``) records each call and answers
:meth:`AgentCredits.remaining`, which makes it the ``tools.Credits`` seam the policy hook and the
agents' credit check read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import store


@dataclass(frozen=True)
class CreditRate:
    """Credits per 1,000 ``input`` and ``output`` tokens."""

    input: float
    output: float

    def __post_init__(self) -> None:
        if self.input < 0 or self.output < 0:
            raise ValueError(f"credit rates must not be negative, got input={self.input}, output={self.output}")

    def price(self, input_tokens: int, output_tokens: int) -> float:
        """Credits for that many tokens."""
        return round((input_tokens * self.input + output_tokens * self.output) / 1000, 6)


# One credit is priced like US$0.001 of a hosted model's list price, so a rate here reads as the
# provider's dollars per million tokens. Operators change or add rates with settings.
DEFAULT_CREDIT_RATES: Mapping[str, CreditRate] = MappingProxyType({
    "gpt-4o-mini": CreditRate(0.15, 0.6),
    "gpt-4o": CreditRate(2.5, 10.0),
    "gpt-4.1-nano": CreditRate(0.1, 0.4),
    "gpt-4.1-mini": CreditRate(0.4, 1.6),
    "gpt-4.1": CreditRate(2.0, 8.0),
    "o4-mini": CreditRate(1.1, 4.4),
    "claude-3-5-haiku": CreditRate(0.8, 4.0),
    "claude-3-5-sonnet": CreditRate(3.0, 15.0),
    "claude-sonnet-4": CreditRate(3.0, 15.0),
})
# A model the table does not name (a server of one's own, a new model): priced like a mid-range
# hosted model, so that an unknown model is not free and does not drain a plan at once.
DEFAULT_CREDIT_RATE = CreditRate(2.5, 10.0)
FREE = CreditRate(0.0, 0.0)


def model_key(provider: str, model: str) -> str:
    """The name a model is priced by: without the provider (``litellm``'s ``openai/`` too), lower case."""
    name = model.strip().lower()
    if provider == "litellm" and "/" in name:
        name = name.split("/", 1)[1]
    return name


@dataclass(frozen=True)
class CreditRates:
    """Rates by model name, and the ``default`` for the others (see the module docstring)."""

    rates: Mapping[str, CreditRate] = field(default_factory=lambda: dict(DEFAULT_CREDIT_RATES))
    default: CreditRate = DEFAULT_CREDIT_RATE

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Mapping[str, float]] | None = None,
                       default: Mapping[str, float] | None = None) -> CreditRates:
        """``DEFAULT_CREDIT_RATES`` with ``overrides`` (``{model: {"input": x, "output": y}}``)
        replacing or adding models, and ``default`` replacing the default rate. Raises ``ValueError``
        for a rate without both figures or with a negative one."""
        rates = dict(DEFAULT_CREDIT_RATES)
        for name, entry in (overrides or {}).items():
            rates[name.strip().lower()] = _rate(entry, f"agent credit rate {name!r}")
        return cls(rates, _rate(default, "default agent credit rate") if default else DEFAULT_CREDIT_RATE)

    def rate(self, provider: str, model: str) -> CreditRate:
        """The rate of ``model`` from ``provider`` (``offline``: free)."""
        if provider == "offline":
            return FREE
        name = model_key(provider, model)
        if name in self.rates:
            return self.rates[name]
        # The longest known name the model's starts with: gpt-4o-mini-2024-07-18 is a gpt-4o-mini,
        # not a gpt-4o.
        known = [key for key in self.rates if name.startswith(key)]
        return self.rates[max(known, key=len)] if known else self.default

    def price(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> float:
        """Credits for one call's tokens."""
        return self.rate(provider, model).price(input_tokens, output_tokens)


def _rate(entry: Mapping[str, Any], what: str) -> CreditRate:
    if not isinstance(entry, Mapping) or set(entry) != {"input", "output"}:
        raise ValueError(f'{what} must be {{"input": <credits per 1K tokens>, "output": <credits per 1K tokens>}}')
    try:
        return CreditRate(float(entry["input"]), float(entry["output"]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from None


class AgentCredits:
    """Agent credits of organizations on one database, priced by ``rates``, read against ``clock``.

    Implements ``tools.Credits``. Blocking (SQL): async callers run it in a thread.
    """

    def __init__(self, db: store.Database, clock: Callable[[], datetime], rates: CreditRates | None = None) -> None:
        self._db = db
        self._clock = clock
        self.rates = rates or CreditRates()

    def remaining(self, org_id: str) -> float | None:
        """Credits ``org_id`` has left this period: its allowance minus what its model calls spent
        (at or below 0 once spent; a call may overshoot, since its size is known only after it)."""
        return self.summary(org_id).balance

    def summary(self, org_id: str) -> store.CreditSummary:
        """The organization's allowance, use and remainder in the current period."""
        with self._db.tenant(org_id) as tx:
            return store.AgentUsage(tx).summary(org_id, self._clock())

    def record(
        self,
        org_id: str,
        *,
        run_id: str,
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        counted: str = "reported",
        thread_id: str | None = None,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        """Price one model call and add it to the ledger, in a transaction of its own; returns the row."""
        credits = 0.0 if counted == "offline" else self.rates.price(provider, model, input_tokens, output_tokens)
        with self._db.tenant(org_id) as tx:
            return store.AgentUsage(tx).record(
                org_id, run_id=run_id, thread_id=thread_id, customer_id=customer_id, model=model, provider=provider,
                counted=counted, input_tokens=input_tokens, output_tokens=output_tokens, credits=credits,
                at=self._clock(),
            )
