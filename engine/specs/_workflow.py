"""The workflow spec: what happens, per customer, when a trigger fires.

A workflow is a list of steps. Each step has an ``id`` (unique in the whole
workflow, nested steps included) and exactly one kind key: ``action``,
``map``, ``filter``, ``if``, ``foreach``, ``sync``, ``delay``, ``wait`` or ``call``.
Templated fields see ``input``, ``steps`` (each earlier step's output by id),
``trigger`` (the trigger's payload) and ``run``; loop bodies also see their
item variable. ``secrets`` (by name) is seen only by the fields sent to a
connector: an action step's ``input`` and a sync target's ``list_input``,
``create_input`` and ``update_input`` (``engine.check_workflow`` reports any
other use).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from ._connector import ID_PATTERN, check_json_schema

STEP_KINDS = ("action", "map", "filter", "if", "foreach", "sync", "delay", "wait", "call")
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- triggers -----------------------------------------------------------------


class ManualTrigger(_Model):
    """Run on request (API, CLI, MCP call)."""

    kind: Literal["manual"] = "manual"


class WebhookTrigger(_Model):
    """Run when a request arrives at the workflow's webhook URL."""

    kind: Literal["webhook"] = "webhook"
    payload: dict[str, Any] | None = Field(default=None, description="JSON Schema of the expected body")

    @field_validator("payload")
    @classmethod
    def _json_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_json_schema(value)


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SCHEDULE_KINDS = ("cron", "interval", "daily", "weekly", "monthly")
# "1h30m", "15m", "90s", "1d": days, hours, minutes, seconds, in that order, each at most once.
INTERVAL_PATTERN = r"^(?=\d)(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$"
TIME_OF_DAY_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
_DAY_ABBREVIATIONS = {day[:3]: day for day in WEEKDAYS}


def interval_seconds(text: str) -> int:
    """The length of interval ``text`` ("1h30m", "15m", "90s", "1d") in seconds; ValueError when
    it is not one or is shorter than a second."""
    match = re.fullmatch(INTERVAL_PATTERN, text)
    if match is None:
        raise ValueError(f"not an interval: {text!r} (write e.g. 90s, 15m, 1h30m or 1d)")
    days, hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 1:
        raise ValueError(f"an interval must be at least one second, got {text!r}")
    return total


class DailySchedule(_Model):
    """Every day at a wall-clock time."""

    at: str = Field(pattern=TIME_OF_DAY_PATTERN, description="HH:MM, 24-hour, in the schedule's time zone")


class WeeklySchedule(_Model):
    """On some days of the week, at a wall-clock time."""

    on: list[str] = Field(min_length=1, max_length=7, description="days: monday..sunday (or mon..sun)")
    at: str = Field(pattern=TIME_OF_DAY_PATTERN, description="HH:MM, 24-hour, in the schedule's time zone")

    @field_validator("on")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = []
        for index, day in enumerate(value):
            name = _DAY_ABBREVIATIONS.get(day.lower(), day.lower())
            if name not in WEEKDAYS:
                raise ValueError(f"item {index}: {day!r} is not a day of the week (monday..sunday, or mon..sun)")
            if name in days:
                raise ValueError(f"item {index}: {day!r} is listed twice")
            days.append(name)
        return days


class MonthlySchedule(_Model):
    """On one day of the month, at a wall-clock time. Days 29 to 31 are skipped in the months that
    lack them; ``last`` is the last day of every month."""

    day: int | Literal["last"] = Field(description="1..31, or last")
    at: str = Field(pattern=TIME_OF_DAY_PATTERN, description="HH:MM, 24-hour, in the schedule's time zone")

    @field_validator("day", mode="before")
    @classmethod
    def _day(cls, value: Any) -> Any:
        # Before the union, so that a bad day gets one message rather than one per member.
        if value == "last" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 31):
            return value
        raise ValueError(f"a day of the month is 1..31 or last, got {value!r}")


class ScheduleTrigger(_Model):
    """Run on a schedule, for every customer the workflow is deployed for: exactly one of ``cron``,
    ``interval``, ``daily``, ``weekly`` or ``monthly``. Wall-clock schedules read in ``timezone``
    (default: the organization's); intervals count from the Unix epoch, whatever the zone. How
    slots are computed, across DST changes and after downtime: ``engine.Schedule``."""

    kind: Literal["schedule"] = "schedule"
    cron: str | None = Field(default=None, description="a cron expression (5 fields; a 6th is seconds), e.g. */15 * * * *")
    interval: str | None = Field(default=None, description="every so long: 90s, 15m, 1h30m, 1d")
    daily: DailySchedule | None = None
    weekly: WeeklySchedule | None = None
    monthly: MonthlySchedule | None = None
    timezone: str | None = Field(default=None, description="IANA time zone (default: the organization's)")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        from croniter import croniter  # lazily: only schedule triggers need it

        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

    @field_validator("interval")
    @classmethod
    def _valid_interval(cls, value: str | None) -> str | None:
        if value is not None:
            interval_seconds(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            check_timezone(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "ScheduleTrigger":
        given = [kind for kind in SCHEDULE_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            got = f" (got {', '.join(given)})" if given else ""
            raise ValueError(f"a schedule needs exactly one of: {', '.join(SCHEDULE_KINDS)}{got}")
        return self

    @property
    def schedule_kind(self) -> str:
        """Which of ``SCHEDULE_KINDS`` this schedule is."""
        return next(kind for kind in SCHEDULE_KINDS if getattr(self, kind) is not None)


def check_timezone(value: str) -> str:
    """``value`` if it names an IANA time zone; ValueError otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class AppEventTrigger(_Model):
    """Run when a connector's event fires (webhook or polling)."""

    kind: Literal["app_event"] = "app_event"
    connector: str
    event: str


TriggerSpec = Annotated[
    Union[ManualTrigger, WebhookTrigger, ScheduleTrigger, AppEventTrigger],
    Field(discriminator="kind"),
]


# -- steps --------------------------------------------------------------------


class _Step(_Model):
    id: str = Field(pattern=STEP_ID_PATTERN)
    name: str | None = None
    description: str | None = None


# Bounds of a step's retry settings: a run holds its worker (or its durable sleep) for at most
# about max_attempts * max_delay, so neither is unbounded.
MAX_RETRY_ATTEMPTS = 10
MAX_RETRY_DELAY = 3600.0


class RetrySpec(_Model):
    """How a step's connector calls are retried (each field defaults to the platform's: 3 attempts,
    5 s first delay, factor 2, 60 s cap).

    Retried: transport errors and the statuses a repeat can fix (408, 425, 429 and 5xx; a 500, 502
    or 504 only for idempotent requests or ones carrying an idempotency key). Never retried: any
    other 4xx, invalid input, expression errors. A ``Retry-After`` is honoured as the wait when it
    is at most ``max_delay``; a longer one reschedules the call (durable runs sleep durably, then
    try again within the same ``max_attempts``) or fails an inline run with ``action_retry_later``.
    """

    max_attempts: int = Field(default=3, ge=1, le=MAX_RETRY_ATTEMPTS,
                              description="attempts in all, the first included (1: no retries)")
    delay: float = Field(default=5.0, ge=0, le=MAX_RETRY_DELAY, description="seconds before the second attempt")
    factor: float = Field(default=2.0, ge=1, le=10, description="each later wait is this many times the one before")
    max_delay: float = Field(default=60.0, gt=0, le=MAX_RETRY_DELAY,
                             description="the longest wait, and the longest Retry-After waited for inline")

    @model_validator(mode="after")
    def _cap_covers_delay(self) -> "RetrySpec":
        if self.max_delay < self.delay:
            raise ValueError(f"max_delay ({self.max_delay:g}) must be at least delay ({self.delay:g})")
        return self


class ActionStep(_Step):
    """Call one connector action: ``action: connector.action_name``."""

    action: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*\.[A-Za-z_][A-Za-z0-9_]*$")
    input: Any = Field(default_factory=dict, description="template for the action's input")
    paginate: bool = Field(default=True, description="walk every page of a paginated action")
    max_pages: int | None = Field(default=None, ge=1)
    retry: RetrySpec | None = Field(default=None, description="how the call is retried (default: RetrySpec's)")

    @property
    def connector(self) -> str:
        return self.action.rsplit(".", 1)[0]

    @property
    def action_name(self) -> str:
        return self.action.rsplit(".", 1)[1]


class MapStep(_Step):
    """Build a value (usually an object) from expressions."""

    map: Any


class FilterSpec(_Model):
    items: str = Field(description="template giving the list to filter")
    where: str = Field(description="expression evaluated per item (bound as `item`); truthy keeps it")
    as_: str = Field(default="item", alias="as", pattern=STEP_ID_PATTERN)


class FilterStep(_Step):
    """Keep the items of a list for which a condition holds."""

    filter: FilterSpec


class IfStep(_Step):
    """Run ``then`` or ``else`` depending on a condition."""

    if_: str = Field(alias="if", description="expression; truthy runs `then`")
    then: list["Step"] = Field(default_factory=list)
    else_: list["Step"] = Field(default_factory=list, alias="else")


class ForeachSpec(_Model):
    items: str = Field(description="template giving the list to iterate")
    as_: str = Field(default="item", alias="as", pattern=STEP_ID_PATTERN)
    concurrency: int = Field(default=1, ge=1, le=64)
    steps: list["Step"] = Field(min_length=1)
    output: Any = Field(default=None, description="template per item; default: the last step's output")


class ForeachStep(_Step):
    """Run steps once per item, at most ``concurrency`` at a time; the output is the list of per-item outputs."""

    foreach: ForeachSpec


class SyncTarget(_Model):
    list: str = Field(description="connector.action listing the target records")
    list_input: Any = Field(default_factory=dict)
    create: str | None = Field(default=None, description="connector.action creating a record")
    update: str | None = Field(default=None, description="connector.action updating a record")
    create_input: Any = Field(default=None, description="template; sees source, target, fields. Default {body: fields}")
    update_input: Any = Field(default=None, description="template; sees source, target, fields. Default {body: fields}")


class SyncMatch(_Model):
    source: str = Field(description="expression over a source record giving its key, e.g. properties.email")
    target: str = Field(description="expression over a target record giving its key (or keys), e.g. Contacts.Email")
    case_sensitive: bool = False


class SyncSpec(_Model):
    source: str = Field(description="template giving the source records")
    target: SyncTarget
    match: SyncMatch
    map: Any = Field(description="template per source record (sees source, target) giving the target fields")
    skip_unchanged: bool = Field(default=True, description="do not update a target that already holds the mapped fields")


class SyncStep(_Step):
    """Match source records to target records by a key, then create or update."""

    sync: SyncSpec
    retry: RetrySpec | None = Field(default=None, description="how each of its calls is retried (default: RetrySpec's)")


class DelaySpec(_Model):
    seconds: float | str = Field(description="number of seconds, or a template giving it")

    @field_validator("seconds")
    @classmethod
    def _not_negative(cls, value: float | str) -> float | str:
        if isinstance(value, (int, float)) and value < 0:
            raise ValueError("a delay cannot be negative")
        return value


class DelayStep(_Step):
    """Wait (on the injected clock)."""

    delay: DelaySpec


WAIT_EVENT_SOURCES = ("webhook", "app_event")
# A dotted path into an event's payload: "order.id", "items.0.sku".
PAYLOAD_PATH_PATTERN = r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$"


class WaitSpec(_Model):
    """What a ``wait`` step waits for: the next event of the run's customer from ``event`` (a
    webhook delivery or an app event), of ``trigger`` when given, whose payload holds each value of
    ``match`` at its dotted path. Only Long workflows wait (the run sleeps durably meanwhile and
    survives worker restarts); ``engine.check_workflow`` reports a wait step elsewhere."""

    event: Literal["webhook", "app_event"] = Field(default="webhook", description="the source of the awaited event")
    trigger: str | None = Field(default=None, max_length=128,
                                description="only events of this trigger (its id); default: any of the source")
    match: dict[str, Any] = Field(default_factory=dict, description=(
        "dotted payload path -> value (a template, rendered when the step starts) the event must hold"))
    timeout: float | str = Field(default="24h", description="seconds, or an interval such as 90s, 15m, 2h, 1d")
    on_timeout: Literal["fail", "continue"] = Field(default="fail", description=(
        "fail: the step fails with wait_timed_out; continue: its output is {timed_out: true}"))

    @field_validator("match")
    @classmethod
    def _paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            if not re.fullmatch(PAYLOAD_PATH_PATTERN, path):
                raise ValueError(f"{path!r} is not a dotted payload path (write e.g. order.id or items.0.sku)")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            interval_seconds(value)
        elif not 0 < value < float("inf"):
            raise ValueError("a timeout must be a positive number of seconds")
        return value

    def timeout_seconds(self) -> float:
        """The timeout in seconds."""
        return float(interval_seconds(self.timeout)) if isinstance(self.timeout, str) else float(self.timeout)


class WaitStep(_Step):
    """Wait, durably, for an event (Long workflows only); the output is ``{event_id, payload}``."""

    wait: WaitSpec


class CallSpec(_Model):
    workflow: str = Field(pattern=ID_PATTERN)
    version: int | None = None
    input: Any = Field(default_factory=dict)


class CallStep(_Step):
    """Run another workflow and use its output."""

    call: CallSpec


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return next((k for k in STEP_KINDS if k in type(value).model_fields or k + "_" in type(value).model_fields), None)
    if isinstance(value, dict):
        kinds = [k for k in STEP_KINDS if k in value]
        return kinds[0] if len(kinds) == 1 else None
    return None


Step = Annotated[
    Union[
        Annotated[ActionStep, Tag("action")],
        Annotated[MapStep, Tag("map")],
        Annotated[FilterStep, Tag("filter")],
        Annotated[IfStep, Tag("if")],
        Annotated[ForeachStep, Tag("foreach")],
        Annotated[SyncStep, Tag("sync")],
        Annotated[DelayStep, Tag("delay")],
        Annotated[WaitStep, Tag("wait")],
        Annotated[CallStep, Tag("call")],
    ],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs exactly one of: " + ", ".join(STEP_KINDS),
    ),
]


OVERLAP_POLICIES = ("queue", "coalesce")


class ConcurrencySpec(_Model):
    """How runs of this workflow for one customer overlap.

    ``per_customer``: how many of the customer's runs may run at once (``unlimited``: no limit).
    Default: 1 for a workflow with a sync step (two syncs of the same data race: each lists, then
    creates the same records), unlimited otherwise. Runs for different customers never wait on
    each other.

    ``overlap``: what a run that arrives while the customer's limit is reached does.
    ``queue`` (default): it is recorded ``queued`` and waits its turn, in arrival order.
    ``coalesce``: when another run of the workflow for the customer is already waiting (queued, not
    yet started), the new one does not run: it is recorded ``cancelled`` with error code
    ``coalesced`` naming the waiting execution, which runs for both (it has not started, so it
    sees what the new one would have seen). At most one run then runs and one waits.
    """

    per_customer: int | Literal["unlimited"] | None = Field(
        default=None, description="runs of one customer at once; default 1 with a sync step, else unlimited")
    overlap: Literal["queue", "coalesce"] = Field(default="queue", description="queue: wait in order; "
                                                  "coalesce: join the run already waiting")

    @field_validator("per_customer")
    @classmethod
    def _positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= 64:
            raise ValueError("must be between 1 and 64, or 'unlimited'")
        return value


class WorkflowSpec(_Model):
    """A versioned workflow: its trigger, input schema and steps."""

    id: str = Field(pattern=ID_PATTERN)
    version: int = Field(default=1, ge=1)
    name: str | None = None
    description: str | None = None
    tier: Literal["instant", "standard", "long"] = "standard"
    trigger: TriggerSpec = Field(default_factory=ManualTrigger)
    input: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, description="JSON Schema of the input")
    steps: list[Step] = Field(min_length=1)
    output: Any = Field(default=None, description="template for the result; default: the last step's output")
    concurrency: ConcurrencySpec = Field(default_factory=ConcurrencySpec,
                                         description="how runs for one customer overlap (see ConcurrencySpec)")
    escalate: bool = Field(default=False, description=(
        "when a run reaches its tier's time limit, continue it at the next tier instead of timing out: "
        "instant -> standard (the caller gets 202 and the execution id) -> long; the execution records each "
        "escalation, and calls it completed are not sent again"))

    @field_validator("escalate")
    @classmethod
    def _escalates_somewhere(cls, value: bool, info: Any) -> bool:
        if value and info.data.get("tier") == "long":
            raise ValueError("a long workflow has no next tier to escalate to; remove escalate or pick another tier")
        return value

    @field_validator("input")
    @classmethod
    def _json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json_schema(value)

    @model_validator(mode="after")
    def _unique_step_ids(self) -> "WorkflowSpec":
        seen: set[str] = set()
        for step in iter_steps(self.steps):
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used more than once")
            seen.add(step.id)
        return self

    def customer_limit(self) -> int | None:
        """How many runs of this workflow may run at once for one customer (None: no limit); see
        :class:`ConcurrencySpec`."""
        value = self.concurrency.per_customer
        if value == "unlimited":
            return None
        if value is None:
            return 1 if any(isinstance(step, SyncStep) for step in iter_steps(self.steps)) else None
        return int(value)

    def connectors(self) -> set[str]:
        """The connector ids this workflow's steps call."""
        used: set[str] = set()
        for step in iter_steps(self.steps):
            if isinstance(step, ActionStep):
                used.add(step.connector)
            elif isinstance(step, SyncStep):
                t = step.sync.target
                used.update(a.rsplit(".", 1)[0] for a in (t.list, t.create, t.update) if a)
        return used


def iter_steps(steps: list[Any]):
    """Yield every step in ``steps``, depth first, nested bodies included."""
    for step in steps:
        yield step
        if isinstance(step, IfStep):
            yield from iter_steps(step.then)
            yield from iter_steps(step.else_)
        elif isinstance(step, ForeachStep):
            yield from iter_steps(step.foreach.steps)


IfStep.model_rebuild()
ForeachSpec.model_rebuild()
ForeachStep.model_rebuild()
WorkflowSpec.model_rebuild()
