"""The connector spec: what an app offers (auth, actions, events).

Connector specs are data. Every templated field is a JSON value whose strings
may hold ``{{ expression }}`` parts in the engine's one expression language
(see :mod:`engine.expressions`); an action's templates see ``input`` (the
action's validated input) and, for base URLs, ``connection`` (non-secret
connection settings such as a subdomain).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ._auth import AuthSpec, NoAuth
from ._refs import deref, unresolved_refs, with_defs

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
# A leading underscore is reserved for the engine's own actions (``_request``, the raw-request escape hatch).
ACTION_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,127}$"
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_PATH_PARAM = re.compile(r"\{([^{}]+)\}")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def check_json_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse a JSON Schema that is not one (draft 2020-12 metaschema, patterns that compile)."""
    if value is None:
        return value
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = "/" + "/".join(str(p) for p in exc.absolute_path) if exc.absolute_path else ""
        raise ValueError(f"not a valid JSON Schema{' at ' + where if where else ''}: {exc.message}") from None
    return value


class Pagination(_Model):
    """How to walk the pages of a list action; the result is ``{"items": [...], "pages": n}``.

    Styles: ``cursor`` (a cursor read from each response by the ``next``
    expression is sent as ``cursor_param``), ``page`` (a page number counting
    from ``start``), ``offset`` (an item offset), ``link`` (the ``Link``
    header's ``rel="next"`` URL). ``items`` is an expression over the response
    body selecting the page's records.
    """

    style: Literal["cursor", "page", "offset", "link"]
    items: str = Field(description="expression over the response body selecting the page's records, e.g. results")
    next: str | None = Field(default=None, description="cursor style: expression over the body giving the next cursor")
    cursor_param: str | None = Field(default=None, description="cursor style: parameter that carries the cursor")
    cursor_in: Literal["query", "body"] = "query"
    page_param: str | None = None
    start: int = 1
    offset_param: str | None = None
    size_param: str | None = Field(default=None, description="parameter carrying the page size")
    size: int | None = Field(default=None, ge=1, description="page size to request")
    max_pages: int = Field(default=100, ge=1, le=10_000)

    @model_validator(mode="after")
    def _style_fields(self) -> "Pagination":
        needed = {
            "cursor": ("next", "cursor_param"),
            "page": ("page_param",),
            "offset": ("offset_param",),
            "link": (),
        }[self.style]
        missing = [name for name in needed if getattr(self, name) in (None, "")]
        if missing:
            raise ValueError(f"pagination style {self.style!r} needs {', '.join(missing)}")
        return self


class ActionSpec(_Model):
    """One call an app offers: an HTTP request built from the action's input."""

    title: str | None = None
    description: str | None = None
    method: HttpMethod
    path: str = Field(description="path below base_url; {name} placeholders are filled from path_params")
    base_url: str | None = Field(default=None, description="overrides the connector's base_url for this action")
    input: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, description="JSON Schema of the input")
    output: dict[str, Any] | None = Field(default=None, description="JSON Schema of a successful response body")
    path_params: dict[str, Any] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    body_type: Literal["json", "form", "multipart", "raw"] = "json"
    result: str | None = Field(default=None, description="expression over the response giving the action's result")
    pagination: Pagination | None = None
    success_statuses: list[int] | None = Field(default=None, description="default: any 2xx")
    tags: list[str] = Field(default_factory=list)
    auth: AuthSpec | None = Field(
        default=None,
        description="overrides the connector's auth for this action (an operation the API secures with another scheme)",
    )

    @field_validator("input", "output")
    @classmethod
    def _json_schemas(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_json_schema(value)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with '/'")
        return value

    @model_validator(mode="after")
    def _placeholders_bound(self) -> "ActionSpec":
        unbound = [p for p in _PATH_PARAM.findall(self.path) if p not in self.path_params]
        if unbound:
            raise ValueError(f"path placeholders without a path_params entry: {', '.join(unbound)}")
        return self

    def path_placeholders(self) -> list[str]:
        """The ``{name}`` placeholders in :attr:`path`, in order."""
        return _PATH_PARAM.findall(self.path)


class WebhookSignature(_Model):
    """How a webhook's sender signs its deliveries."""

    header: str
    algorithm: Literal["hmac-sha256", "hmac-sha1"] = "hmac-sha256"
    encoding: Literal["hex", "base64"] = "hex"
    secret: str = Field(default="webhook_secret", description="credential holding the signing secret")
    prefix: str = ""


# How often a polling event polls when its spec does not say.
DEFAULT_POLL_INTERVAL = "5m"


class SubscriptionCall(_Model):
    """One call of the connector that registers (``subscribe``) or unregisters (``unsubscribe``) a
    webhook-style event with the provider, made with the customer's connection."""

    action: str = Field(description="the connector action to call")
    input: Any = Field(default_factory=dict, description=(
        "template for the action's input; sees webhook_url (where the provider must deliver), event (the "
        "event's name), customer (the customer's id) and, for unsubscribe, subscription.id"))
    id: str | None = Field(default=None, description=(
        "subscribe: expression over the action's result giving the provider's subscription id (kept for "
        "unsubscribe), e.g. id"))


class EventSpec(_Model):
    """Something that happens in the app: delivered by webhook or found by polling an action.

    A polling event calls ``action`` (with ``action_input``, walking every page of a paginated
    action) for each customer whose workflow it triggers, every ``interval``. The records are the
    action's result (``items`` of a paginated one), or what the ``items`` expression selects from it.
    ``key`` gives a record's identity and ``version`` its version (default: the ``cursor`` value),
    both expressions over the record; a record is new when its key was not seen, changed when its
    version differs from the one seen. ``cursor`` (an expression over the record, e.g. ``Updated``)
    gives the watermark: the highest value seen is sent as the action input ``cursor_param`` (e.g.
    Cin7's ``UpdatedSince``) on the next poll, so only recent records come back.

    An API that pages through changes with a token instead (``?page_token=...`` answering the next
    token) declares ``page_token``, an expression over the action's result giving the token for the
    next page: the poller sends the stored token as ``cursor_param``, follows the tokens page by
    page until one is missing, repeats or comes with no records, and stores the last one.
    """

    kind: Literal["webhook", "polling"]
    title: str | None = None
    description: str | None = None
    payload: dict[str, Any] | None = Field(default=None, description="JSON Schema of one event")
    signature: WebhookSignature | None = None
    action: str | None = Field(default=None, description="polling: the action to call")
    action_input: dict[str, Any] = Field(default_factory=dict)
    items: str | None = Field(
        default=None, description="polling: expression over the action's result selecting the records "
                                  "(default: the items of a paginated action, else the result)")
    key: str | None = Field(default=None, description="polling: expression giving a record's identity, for de-duplication")
    version: str | None = Field(
        default=None, description="polling: expression giving a record's version (default: the cursor), e.g. Updated")
    cursor: str | None = Field(default=None, description="polling: expression giving the watermark, e.g. updatedAt")
    cursor_param: str | None = Field(
        default=None, description="polling: the action input that carries the watermark (or the page token), "
                                  "e.g. UpdatedSince")
    subscribe: SubscriptionCall | None = Field(default=None, description=(
        "webhook: how to register the event with the provider for a customer (when a workflow it triggers is "
        "deployed); the provider then delivers to the subscription's webhook_url"))
    unsubscribe: SubscriptionCall | None = Field(default=None, description=(
        "webhook: how to unregister it (when the workflow is undeployed)"))
    page_token: str | None = Field(
        default=None, description=(
            "polling by page token instead of a watermark: expression over the action's result giving the token "
            "to send (as cursor_param) for the next page, e.g. next_page_token or paging.next.after; the poller "
            "follows it page by page and keeps the last token as its cursor"))
    interval: str = Field(default=DEFAULT_POLL_INTERVAL, description="polling: how often, e.g. 90s, 5m, 1h")

    @field_validator("payload")
    @classmethod
    def _json_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_json_schema(value)

    @field_validator("interval")
    @classmethod
    def _valid_interval(cls, value: str) -> str:
        from ._workflow import interval_seconds  # the schedules' interval syntax

        interval_seconds(value)
        return value

    @model_validator(mode="after")
    def _polling_needs_action(self) -> "EventSpec":
        if self.kind == "polling" and not self.action:
            raise ValueError("a polling event needs 'action'")
        if self.kind == "polling" and not self.key:
            raise ValueError("a polling event needs 'key' (a record's identity)")
        if self.kind == "polling" and not (self.version or self.cursor):
            raise ValueError("a polling event needs 'version' or 'cursor' (to tell a changed record)")
        if self.page_token and self.cursor:
            raise ValueError("give 'cursor' (a watermark read from each record) or 'page_token' (the next-page token "
                             "read from each answer), not both")
        if self.page_token and not self.cursor_param:
            raise ValueError("'page_token' needs 'cursor_param': the action input the token is sent as")
        if self.page_token and self.kind != "polling":
            raise ValueError("'page_token' is for polling events only")
        if self.cursor_param and not (self.cursor or self.page_token):
            raise ValueError("'cursor_param' carries the 'cursor' (or the 'page_token'): give one of them too")
        if self.kind != "webhook" and (self.subscribe or self.unsubscribe):
            raise ValueError("'subscribe' and 'unsubscribe' are for webhook events only")
        if self.unsubscribe and not self.subscribe:
            raise ValueError("'unsubscribe' undoes 'subscribe': give 'subscribe' too")
        if self.kind == "webhook" and self.action:
            raise ValueError("'action' is for polling events only")
        return self

    @property
    def poll_seconds(self) -> int:
        """:attr:`interval` in seconds."""
        from ._workflow import interval_seconds

        return interval_seconds(self.interval)


class RateLimitSpec(_Model):
    """The provider's documented request quota for one connection (one customer's credentials).

    ``{requests: 100, per_seconds: 10}`` is "100 requests per 10 seconds". The engine
    spaces requests evenly at that average rate, lets ``burst`` of them through at once
    (default: the whole window's ``requests``), keeps at most ``concurrency`` in flight
    when given, and slows down further when the provider answers 429 (honouring its
    ``Retry-After``). Without a ``rate_limit`` the engine's conservative default applies.
    """

    requests: int = Field(ge=1, description="requests allowed in each window of per_seconds seconds")
    per_seconds: float = Field(gt=0, description="the window's length in seconds")
    burst: int | None = Field(default=None, ge=1, description="requests allowed at once (default: requests)")
    concurrency: int | None = Field(default=None, ge=1, description="requests allowed in flight at once (default: no cap)")

    @property
    def per_second(self) -> float:
        """The average rate allowed, in requests per second."""
        return self.requests / self.per_seconds


class Idempotency(_Model):
    """How the app de-duplicates repeated requests: a key header it honours.

    A durable run sends each connector call's idempotency key (the same on every attempt of that
    call, including a repeat after a worker was lost mid-call) in ``header`` for requests whose
    method is in ``methods``. Declare it only for apps that honour such a header.
    """

    header: str = Field(default="Idempotency-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    methods: list[HttpMethod] = Field(default_factory=lambda: ["POST", "PUT", "PATCH", "DELETE"], min_length=1)


class ConnectorSpec(_Model):
    """A versioned description of one app: base URL, auth, actions and events."""

    id: str = Field(pattern=ID_PATTERN)
    version: int = Field(default=1, ge=1)
    name: str | None = None
    description: str | None = None
    base_url: str = Field(description="absolute http(s) URL; may template {{ connection.* }} settings")
    auth: AuthSpec = Field(default_factory=NoAuth)
    actions: dict[str, ActionSpec] = Field(default_factory=dict)
    events: dict[str, EventSpec] = Field(default_factory=dict)
    rate_limit: RateLimitSpec | None = Field(
        default=None,
        description="the provider's documented request quota per connection; without one the engine's default applies",
    )
    idempotency: Idempotency | None = Field(
        default=None, description="the app honours an idempotency key header; durable runs send one per call")
    source: dict[str, Any] | None = Field(default=None, description="provenance, e.g. the imported document's title and version")
    defs: dict[str, dict[str, Any] | bool] | None = Field(
        default=None, alias="$defs",
        description="JSON Schemas shared by the actions' and events' schemas, which refer to one as "
                    "{\"$ref\": \"#/$defs/<name>\"}; imported connectors keep each schema their document reuses here once",
    )

    @field_validator("actions")
    @classmethod
    def _action_names(cls, actions: dict[str, ActionSpec]) -> dict[str, ActionSpec]:
        bad = [name for name in actions if not re.match(ACTION_NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"action names must match {ACTION_NAME_PATTERN}: {', '.join(bad)}")
        return actions

    @field_validator("defs")
    @classmethod
    def _defs_are_schemas(cls, defs: dict[str, Any] | None) -> dict[str, Any] | None:
        if defs:
            for name, schema in defs.items():
                if not isinstance(schema, bool):
                    try:
                        check_json_schema(schema)
                    except ValueError as exc:
                        raise ValueError(f"$defs/{name}: {exc}") from None
        return defs or None

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not re.match(r"^https?://", value) and "{{" not in value:
            raise ValueError("base_url must be an absolute http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _polling_actions_exist(self) -> "ConnectorSpec":
        problems: list[InitErrorDetails] = []

        def problem(loc: tuple[str, ...], message: str, value: Any) -> None:
            problems.append(InitErrorDetails(
                type=PydanticCustomError("polling_event", "{message}", {"message": message}), loc=loc, input=value))

        for name, event in self.events.items():
            for kind, call in (("subscribe", event.subscribe), ("unsubscribe", event.unsubscribe)):
                if call is not None and call.action not in self.actions:
                    problem(("events", name, kind, "action"),
                            f"event {name!r} {kind}s with unknown action {call.action!r}", call.action)
            if not event.action:
                continue
            action = self.actions.get(event.action)
            if action is None:
                problem(("events", name, "action"), f"event {name!r} polls unknown action {event.action!r}", event.action)
                continue
            if event.cursor_param:
                accepted = (self.deref(action.input) or {}).get("properties") or {}
                if event.cursor_param not in accepted:
                    problem(("events", name, "cursor_param"),
                            f"action {event.action!r} takes no input {event.cursor_param!r}"
                            f" (it takes: {', '.join(sorted(accepted)) or 'nothing'})", event.cursor_param)
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    @model_validator(mode="after")
    def _refs_resolve(self) -> "ConnectorSpec":
        # Every schema may name a shared one; each name must be there, and nothing may be
        # fetched (a spec is data: validating it must not reach out to a URL or a file).
        problems: list[InitErrorDetails] = []
        for base, schema in self._schemas():
            for pointer, ref, why in unresolved_refs(schema, self.defs):
                loc = (*base, *(_unescape(t) for t in pointer.split("/")[1:]), "$ref")
                problems.append(InitErrorDetails(
                    type=PydanticCustomError("unresolved_ref", "{message}", {"message": f"$ref {ref!r} {why}"}),
                    loc=loc, input=ref))
                if len(problems) >= 20:
                    break
            if len(problems) >= 20:
                break
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def _schemas(self) -> list[tuple[tuple[str, ...], Any]]:
        found: list[tuple[tuple[str, ...], Any]] = []
        for name, action in self.actions.items():
            found.append((("actions", name, "input"), action.input))
            if action.output is not None:
                found.append((("actions", name, "output"), action.output))
        for name, event in self.events.items():
            if event.payload is not None:
                found.append((("events", name, "payload"), event.payload))
        for name, schema in (self.defs or {}).items():
            found.append((("$defs", name), schema))
        return found

    def deref(self, schema: Any) -> Any:
        """``schema`` with a ``{"$ref": "#/$defs/<name>"}`` followed to the shared schema (see :func:`engine.specs.deref`).

        Walkers of action schemas call this at every node they visit; shared
        schemas may be recursive, so walkers bound their depth.
        """
        return deref(schema, self.defs)

    def standalone(self, schema: Any) -> Any:
        """``schema`` (an action's input or output, or a part of one) with this connector's ``$defs`` attached.

        The result is a self-contained JSON Schema for ``jsonschema`` and for
        :func:`engine.samples.sample_from_schema`; cheap (nothing is copied).
        """
        return with_defs(schema, self.defs)

    def credential_fields(self) -> list[str]:
        """Every credential value the connector's auth and its actions' own auth read."""
        fields = list(self.auth.credential_fields())
        for action in self.actions.values():
            if action.auth is not None:
                fields += [f for f in action.auth.credential_fields() if f not in fields]
        return fields

    def action(self, name: str) -> ActionSpec:
        """Return the action called ``name``; raise ``KeyError`` naming the known ones."""
        try:
            return self.actions[name]
        except KeyError:
            known = ", ".join(sorted(self.actions)) or "none"
            raise KeyError(f"connector {self.id!r} has no action {name!r} (known: {known})") from None
