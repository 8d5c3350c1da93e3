"""Calling connector actions over HTTP: build, authorize, send, read, paginate, trace."""

from __future__ import annotations

import base64
import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import ActionFailed, ActionRetryLater, ResponseInvalid, UnknownAction
from ..expressions import evaluate
from ..auth import Authenticator, OutgoingRequest
from ..http import Attempt, HttpClient, RateLimit, RateStore, RetryPolicy, parse_retry_after, step_retry_policy
from ..specs import ActionSpec, ConnectorSpec, RetrySpec
from ..workflow import ActionCall, Redactor, TraceRecord
from ._pagination import Page, paginate
from ._request import RAW_REQUEST, InputValidators, PreparedRequest, build_raw_request, build_request

MAX_ERROR_DETAIL = 300
MAX_SCRUBBERS = 64  # distinct credential sets kept per executor (refreshed tokens add more)


@dataclass
class ActionResponse:
    """What one action call produced: the last response and the action's result."""

    connector: str
    action: str
    status: int
    headers: dict[str, str]
    body: Any
    result: Any
    url: str
    pages: int = 1
    attempts: list[Attempt] = field(default_factory=list)
    ok: bool = False  # a success for this action (any 2xx, or its declared success statuses)


class ActionExecutor:
    """Runs connector actions for one customer's connections.

    Args:
        connectors: the loaded connector specs by id.
        http: the process's shared :class:`HttpClient`.
        auth: the run's :class:`engine.auth.Authenticator` (applies credentials, refreshes tokens).
        base_urls: per-connector base URL overrides (sandboxes, tests).
        connections: per-connector non-secret settings templates may read as ``connection``.
        trace_bodies: keep request and response bodies in traces (credentials redacted).
        connection_scope: who the connections belong to (a customer id): rate limits apply
            per connection, ``<connector>:<scope>``, so one customer cannot use up another's.
        rate_store: where the schedules of connectors that declare a ``rate_limit`` are kept so
            that they hold across processes (the platform's: Postgres); None: per process.
    """

    def __init__(
        self,
        connectors: Mapping[str, ConnectorSpec],
        *,
        http: HttpClient,
        auth: Authenticator,
        base_urls: Mapping[str, str] | None = None,
        connections: Mapping[str, Mapping[str, Any]] | None = None,
        trace_bodies: bool = False,
        connection_scope: str | None = None,
        rate_store: RateStore | None = None,
    ):
        self.connectors = dict(connectors)
        self.rate_store = rate_store
        self.connection_scope = connection_scope
        self.http = http
        self.auth = auth
        self.base_urls = dict(base_urls or {})
        self.connections = {k: dict(v) for k, v in (connections or {}).items()}
        self.trace_bodies = trace_bodies
        self._scrubbers: dict[frozenset[str], Redactor] = {}
        # each action's input schema is checked and compiled once per executor, not on every call
        self._validators = InputValidators()

    def _scrubber(self, applied: frozenset[str]) -> Redactor:
        # A connection sends the same credentials on every call: build each scrubber once.
        found = self._scrubbers.get(applied)
        if found is None:
            if len(self._scrubbers) >= MAX_SCRUBBERS:
                self._scrubbers.clear()
            found = self._scrubbers[applied] = scrubber(applied)
        return found

    def connector(self, connector_id: str) -> ConnectorSpec:
        """The spec of ``connector_id``; raises :class:`UnknownAction` naming the loaded ones."""
        try:
            return self.connectors[connector_id]
        except KeyError:
            raise UnknownAction(connector_id, None, sorted(self.connectors)) from None

    def action(self, connector_id: str, name: str) -> tuple[ConnectorSpec, ActionSpec]:
        connector = self.connector(connector_id)
        if name not in connector.actions:
            raise UnknownAction(connector_id, name, sorted(connector.actions))
        return connector, connector.actions[name]

    async def call(
        self,
        connector_id: str,
        name: str,
        input: Any,
        *,
        paginate_pages: bool = True,
        max_pages: int | None = None,
        raise_for_status: bool = True,
        observer: Any = None,
        on_response: Any = None,
        idempotency_key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> ActionResponse:
        """Call one action and return its response and result.

        ``name`` may be :data:`RAW_REQUEST` (``_request``), the escape hatch: any
        path on the connector's base URL with its auth applied, the input giving
        ``method``, ``path``, ``query``, ``headers``, ``body`` and ``body_type``.
        A paginated action (with ``paginate_pages``) walks its pages and its
        result is ``{"items": [...], "pages": n}``; otherwise the result is the
        response body, or the action's ``result`` expression over
        ``{body, headers, status}``. ``idempotency_key`` is sent in the connector's declared
        ``idempotency`` header when the request's method is one it lists (else not at all).
        ``retry`` is the request's retry policy (default: the HTTP client's; workflow calls pass
        their step's, see :func:`retry_policy_of`).

        Raises:
            UnknownAction, ActionInputInvalid, ExpressionError: before anything is sent.
            ActionFailed: the app answered with a non-success status (unless ``raise_for_status`` is false);
                ``ActionRetryLater`` when it asked (``Retry-After``) to wait longer than ``retry`` waits.
            ResponseInvalid: a success response that cannot be read as the action says.
            EgressDenied, UpstreamUnavailable, UpstreamTimeout: from the HTTP layer.
            engine.errors auth errors: credentials missing or a grant revoked.
        """
        base_url, connection = self.base_urls.get(connector_id), self.connections.get(connector_id)
        if name == RAW_REQUEST:
            connector = self.connector(connector_id)
            request = build_raw_request(connector, input, base_url=base_url, connection=connection,
                                        validators=self._validators)
            action = ActionSpec(method=request.method, path="/")  # any 2xx, the connector's auth, no pages
        else:
            connector, action = self.action(connector_id, name)
            request = build_request(connector, name, input, base_url=base_url, connection=connection,
                                    validators=self._validators)
        if idempotency_key is not None and connector.idempotency is not None \
                and request.method in connector.idempotency.methods:
            request.headers[connector.idempotency.header] = idempotency_key
        attempts: list[Attempt] = []
        last: dict[str, Any] = {}
        policy = retry or self.http.retry

        async def send(prepared: PreparedRequest) -> Page:
            response, applied = await self._send(connector, action, prepared, attempts, observer, policy)
            # An app may echo the credentials it was sent (a 401 body quoting the token):
            # they must not reach results, run records, errors or traces.
            body = self._scrubber(applied)(_read_body(response, connector.id, name, strict=False))
            last.update(response=response, body=body)
            if on_response is not None:
                on_response(prepared, body)
            if raise_for_status:
                self._check_status(connector, name, action, prepared, response, body, policy, attempts)
            return Page(body=body, next_link=(response.links.get("next") or {}).get("url"))

        if action.pagination and paginate_pages:
            async def page_or_stop(prepared: PreparedRequest) -> Page | None:
                page = await send(prepared)
                return page if self._success(action, last["response"].status_code) else None

            result = await paginate(action.pagination, request, page_or_stop, connector=connector.id, action=name, max_pages=max_pages)
            if not self._success(action, last["response"].status_code):
                failed_page = 1
                return self._response(connector, action, name, last, last["body"], attempts, pages=result["pages"] + failed_page)
            return self._response(connector, action, name, last, result, attempts, pages=result["pages"])

        page = await send(request)
        response = last["response"]
        result = page.body
        if action.result and self._success(action, response.status_code):
            scope = {"body": page.body, "headers": dict(response.headers), "status": response.status_code}
            result = evaluate(action.result, scope, f"/actions/{name}/result")
        return self._response(connector, action, name, last, result, attempts)

    async def invoke(self, call: ActionCall) -> Any:
        """Perform one workflow action call (the interpreter's :class:`ActionInvoker` seam).

        Writes one :class:`TraceRecord` per HTTP attempt to ``call.trace``; with
        ``trace_bodies`` the last attempt of each exchange carries the request
        and response bodies, with credential-like fields masked.
        """
        pending: list[Attempt] = []

        def flush(request_body: Any = None, response_body: Any = None) -> None:
            for index, attempt in enumerate(pending):
                final = index == len(pending) - 1 and self.trace_bodies
                call.trace.append(TraceRecord(
                    run_id=call.run_id, seq=call.seq, step_id=call.step_id, step_path=call.step_path,
                    connector=call.connector, action=call.action, method=attempt.method, url=attempt.url,
                    status=attempt.status, latency_ms=round(attempt.latency_ms, 3), attempt=attempt.attempt,
                    request_bytes=attempt.request_bytes, response_bytes=attempt.response_bytes, error=attempt.error,
                    request_body=redact_body(request_body) if final else None,
                    response_body=redact_body(response_body) if final else None,
                    retry_delay=attempt.delay if attempt.attempt > 1 else None,
                ))
            pending.clear()

        def on_response(prepared: PreparedRequest, body: Any) -> None:
            flush(prepared.json if prepared.json is not None else prepared.data, body)

        try:
            response = await self.call(
                call.connector, call.action, call.input, paginate_pages=call.paginate, max_pages=call.max_pages,
                observer=pending.append, on_response=on_response, idempotency_key=call.idempotency_key,
                retry=retry_policy_of(call.retry),
            )
        finally:
            flush()  # attempts that ended without a response (refused, timed out)
        return response.result

    def _response(self, connector: ConnectorSpec, action: ActionSpec, name: str, last: dict, result: Any,
                  attempts: list[Attempt], pages: int = 1) -> ActionResponse:
        response: httpx.Response = last["response"]
        return ActionResponse(
            connector=connector.id,
            action=name,
            status=response.status_code,
            headers=dict(response.headers),
            body=last["body"],
            result=result,
            url=attempts[-1].url if attempts else str(response.request.url),
            pages=pages,
            attempts=attempts,
            ok=self._success(action, response.status_code),
        )

    @staticmethod
    def _success(action: ActionSpec, status: int) -> bool:
        return status in action.success_statuses if action.success_statuses else 200 <= status < 300

    def _check_status(self, connector: ConnectorSpec, name: str, action: ActionSpec, prepared: PreparedRequest,
                      response: httpx.Response, body: Any, policy: RetryPolicy, attempts: list[Attempt]) -> None:
        if self._success(action, response.status_code):
            return
        detail = (body if isinstance(body, str) else json.dumps(body, default=str) or "")[:MAX_ERROR_DETAIL]
        status = response.status_code
        if status in policy.statuses:
            retry_after = parse_retry_after(response.headers.get("retry-after"), date=response.headers.get("date"))
            if retry_after is not None and retry_after > policy.max_retry_after:
                # The HTTP layer stopped rather than hold the run that long: the caller reschedules.
                raise ActionRetryLater(connector.id, name, prepared.method, prepared.url, status, detail,
                                       retry_after=retry_after, max_delay=policy.max_retry_after,
                                       attempts=attempts[-1].attempt if attempts else 1)
        raise ActionFailed(connector.id, name, prepared.method, prepared.url, status, detail)

    async def _send(self, connector: ConnectorSpec, action: ActionSpec, prepared: PreparedRequest, attempts: list[Attempt],
                    observer: Any, policy: RetryPolicy) -> tuple[httpx.Response, frozenset[str]]:
        async def observe(attempt: Attempt) -> None:
            attempts.append(attempt)
            if observer is not None:
                outcome = observer(attempt)
                if inspect.isawaitable(outcome):
                    await outcome

        # An action whose success is a redirect (a download link) wants the redirect itself.
        follow = not any(300 <= status < 400 for status in action.success_statuses or ())
        scheme = action.auth or connector.auth
        authorized = await self.auth.apply(scheme, prepared, connector_id=connector.id)
        rate_key = f"{connector.id}:{self.connection_scope}" if self.connection_scope else connector.id
        rate_limit = rate_limit_of(connector)
        # Only a declared quota is worth a shared schedule (a database round trip per request).
        shared = self.rate_store if rate_limit is not None else None
        response = await self.http.request(**authorized.to_kwargs(), rate_key=rate_key, rate_limit=rate_limit,
                                           observer=observe, follow_redirects=follow, retry=policy, rate_store=shared)
        # An OAuth token revoked or rotated elsewhere: refresh once and retry.
        if response.status_code == 401 and action.auth is None and await self.auth.on_unauthorized(connector, authorized):
            authorized = await self.auth.apply(scheme, prepared, connector_id=connector.id)
            response = await self.http.request(**authorized.to_kwargs(), rate_key=rate_key, rate_limit=rate_limit,
                                               observer=observe, follow_redirects=follow, retry=policy,
                                               rate_store=shared)
        return response, applied_secrets(authorized)


def retry_policy_of(spec: RetrySpec | None) -> RetryPolicy:
    """The HTTP retry policy of a workflow step's calls: its ``retry`` settings over the platform's
    defaults (3 attempts, 5 s, factor 2, 60 s cap; ``engine.http.step_retry_policy``)."""
    if spec is None:
        return step_retry_policy()
    return step_retry_policy(spec.max_attempts, spec.delay, spec.factor, spec.max_delay)


def rate_limit_of(connector: ConnectorSpec) -> RateLimit | None:
    """The provider's declared quota as the HTTP layer's policy; None (the client's default) when undeclared."""
    declared = connector.rate_limit
    if declared is None:
        return None
    return RateLimit.of(declared.requests, declared.per_seconds, burst=declared.burst, concurrency=declared.concurrency)


_SENSITIVE_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|apikey|authorization|private[_-]?key|credential", re.I)
REDACTED = "[redacted]"


def redact_body(value: Any) -> Any:
    """A copy of a JSON body with the values of credential-like fields masked."""
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _SENSITIVE_KEY.search(k) else redact_body(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_body(v) for v in value]
    return value


MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words in bodies


def applied_secrets(request: OutgoingRequest) -> frozenset[str]:
    """The credential values an authorized request carries (header and query values, a bearer
    token without its scheme word, a basic username and password), for scrubbing echoes of them.

    The basic username counts: many APIs (Stripe, Chargebee, Recurly, Freshdesk) take the API
    key as the username with an empty password."""
    values: set[str] = set()
    for name, value in request.headers.items():
        if name.lower() not in request.sensitive_headers:
            continue
        values.add(value)
        scheme, _, rest = value.partition(" ")
        if rest:
            values.add(rest.strip())
        if scheme.lower() == "basic" and rest:
            try:
                user, _, password = base64.b64decode(rest.strip()).decode("utf-8").partition(":")
                values.update({f"{user}:{password}", user, password})
            except (ValueError, UnicodeDecodeError):
                pass
    values.update(value for name, value in request.params if name in request.sensitive_params)
    return frozenset(v for v in values if len(v) >= MIN_SECRET_LENGTH)


def _redacted(name: str) -> str:
    return REDACTED


def scrubber(secrets: frozenset[str]) -> Redactor:
    """A :class:`~engine.workflow.Redactor` replacing the given secret strings with ``[redacted]``, in any
    letter case and in their common encodings (base64, URL-encoding, hex)."""
    redactor = Redactor(mask=_redacted)
    for secret in secrets:
        redactor.add("credential", secret)
    return redactor


def scrub(value: Any, secrets: frozenset[str]) -> Any:
    """``value`` with every occurrence of the given secret strings (in any case or common encoding)
    replaced by ``[redacted]``."""
    return scrubber(secrets)(value) if secrets else value


def _read_body(response: httpx.Response, connector: str, action: str, *, strict: bool) -> Any:
    if not response.content:
        return None
    content_type = response.headers.get("content-type", "")
    if "json" in content_type or response.content[:1] in (b"{", b"["):
        try:
            return response.json()
        except RecursionError:
            raise ResponseInvalid(connector, action, "the response's JSON is nested too deeply") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            if strict:
                raise ResponseInvalid(connector, action, "the response says JSON but does not parse") from None
    return response.text
