"""Dry runs: a run that reads but does not write.

Two seams make any run a dry run, deterministically:

* :class:`DryRunHttp` wraps the HTTP client an action executor sends through. GET and
  HEAD requests are sent as usual; a request with any other method is not sent: the
  egress guard still vets its URL (a dry run fails where the real run would), and it is
  answered with a synthetic response derived from the request (its JSON or form body
  echoed back, plus an ``id`` when the body has none), so the steps after it run on
  plausible data.
* :class:`DryRunInvoker` wraps the action invoker and remembers, per trace record,
  whether its request was sent; :meth:`DryRunInvoker.annotate` turns a run's traces
  into JSON marked ``"dry_run": true`` with ``"sent": true/false``.

Usage::

    executor = ActionExecutor(connectors, http=DryRunHttp(http), auth=auth)
    invoker = DryRunInvoker(executor, connectors)
    result = await Interpreter(Dependencies(invoker=invoker)).run(workflow, input)
    trace = invoker.annotate(result.traces)

Reads whose API uses POST (a search endpoint, 1Password's event lists) are withheld
too: a dry run cannot tell them from writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json as _json
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import EgressDenied, OutboundRequestInvalid
from ..http import Attempt, redact_url
from ._invoker import ActionCall, ActionInvoker, TraceRecord, TraceSink

SAFE_METHODS = frozenset({"GET", "HEAD"})
DRY_RUN_HEADER = "x-switchboard-dry-run"
# Status of a synthetic answer when the action declares no success statuses.
_DEFAULT_STATUS = {"POST": 201, "DELETE": 204}


@dataclass
class _CallState:
    """What the HTTP seam learns about the call in progress (per task, through a context variable)."""

    sent: list[bool] = field(default_factory=list)
    success_statuses: list[int] | None = None


_current: ContextVar[_CallState | None] = ContextVar("switchboard_dry_run_call", default=None)


def _status(method: str, declared: list[int] | None) -> int:
    if declared:
        twos = [s for s in declared if 200 <= s < 300]
        return (twos or declared)[0]
    return _DEFAULT_STATUS.get(method, 200)


def _synthetic_id(method: str, url: str, body: Any) -> str:
    digest = hashlib.sha256(f"{method} {url} {_json.dumps(body, sort_keys=True, default=str)}".encode()).hexdigest()
    return f"dry-run-{digest[:16]}"


def synthetic_body(method: str, url: str, json: Any = None, data: Mapping[str, Any] | None = None) -> Any:
    """The body of the synthetic answer to a withheld request: its JSON (or form) body echoed,
    with an ``id`` derived from the request when an object body has none; ``{}`` without a body."""
    body: Any = json if json is not None else (dict(data) if data else None)
    if isinstance(body, dict):
        if not any(isinstance(k, str) and k.lower() == "id" for k in body):
            body = {**body, "id": _synthetic_id(method, url, body)}
        return body
    return {} if body is None else body


def synthetic_response(request: httpx.Request, *, json: Any = None, data: Mapping[str, Any] | None = None,
                       success_statuses: list[int] | None = None) -> httpx.Response:
    """The response a dry run gives ``request`` instead of sending it (deterministic)."""
    status = _status(request.method, success_statuses)
    headers = {DRY_RUN_HEADER: "withheld"}
    url = str(request.url.copy_with(query=None))
    if status == 204:
        return httpx.Response(status, headers=headers, request=request)
    return httpx.Response(status, json=synthetic_body(request.method, url, json, data), headers=headers, request=request)


class DryRunHttp:
    """An HTTP client seam that sends only GET and HEAD; other requests get a synthetic answer.

    Wraps ``http`` (an :class:`engine.http.HttpClient`); ``request`` has its signature. Every
    other attribute is the wrapped client's. A withheld request still has its URL vetted by
    the egress guard and is reported to the observer as an attempt with zero latency.
    """

    def __init__(self, http: Any):
        self.http = http

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)

    async def request(self, method: str, url: str | httpx.URL, *, headers: Mapping[str, str] | None = None,
                      params: Any = None, json: Any = None, data: Mapping[str, Any] | None = None,
                      content: bytes | str | None = None, observer: Any = None, redact: Any = None,
                      **options: Any) -> httpx.Response:
        """Send a GET or HEAD through the wrapped client; answer anything else without sending it."""
        method = method.upper()
        state = _current.get()
        if method in SAFE_METHODS:
            async def observe(attempt: Attempt) -> None:
                if state is not None:
                    state.sent.append(True)
                outcome = observer(attempt)
                if inspect.isawaitable(outcome):
                    await outcome

            return await self.http.request(method, url, headers=headers, params=params, json=json, data=data,
                                           content=content, observer=observe if observer is not None else None,
                                           redact=redact, **options)
        redact = redact or redact_url
        try:
            self.http.guard.check_url(url)
        except EgressDenied as exc:
            raise EgressDenied(_shown(url, redact), exc.host, exc.address, exc.reason, allowable=exc.allowable) from None
        except ValueError as exc:
            raise OutboundRequestInvalid(method, _shown(url, redact), str(exc)) from None
        try:
            request = httpx.Request(method, url, headers=headers, params=params, json=json, data=data, content=content)
        except (TypeError, ValueError, httpx.HTTPError) as exc:
            raise OutboundRequestInvalid(method, _shown(url, redact), f"{type(exc).__name__}: {exc}") from None
        response = synthetic_response(request, json=json, data=data,
                                      success_statuses=state.success_statuses if state else None)
        if observer is not None:
            if state is not None:
                state.sent.append(False)
            attempt = Attempt(method=method, url=redact(request.url), attempt=1, hop=0, status=response.status_code,
                              error=None, latency_ms=0.0, request_bytes=len(request.content),
                              response_bytes=len(response.content))
            outcome = observer(attempt)
            if inspect.isawaitable(outcome):
                await outcome
        return response


def _shown(url: str | httpx.URL, redact: Any) -> str:
    try:
        return redact(url if isinstance(url, httpx.URL) else httpx.URL(url))
    except httpx.InvalidURL:
        return "<invalid URL>"


class DryRunInvoker:
    """Wraps an action invoker (over a :class:`DryRunHttp`) and records which requests were sent.

    ``connectors`` (specs by id) lets a withheld request be answered with the status its
    action declares as success; without it, POST gets 201, DELETE 204, others 200.
    """

    def __init__(self, inner: ActionInvoker, connectors: Mapping[str, Any] | None = None):
        self.inner = inner
        self.connectors = dict(connectors or {})
        self._sent: dict[str, list[bool]] = {}

    async def invoke(self, call: ActionCall) -> Any:
        """Perform ``call`` through the wrapped invoker, noting per HTTP attempt whether it was sent."""
        state = _CallState(success_statuses=self._declared(call.connector, call.action))
        sink = TraceSink()
        token = _current.set(state)
        try:
            return await self.inner.invoke(dataclasses.replace(call, trace=sink))
        finally:
            _current.reset(token)
            records = sink.list()
            flags = self._sent.setdefault(call.seq, [])
            flags.extend(state.sent[index] if index < len(state.sent) else True for index in range(len(records)))
            for record in records:
                call.trace.append(record)

    def annotate(self, traces: Iterable[TraceRecord]) -> list[dict[str, Any]]:
        """``traces`` (a run's, in order) as JSON dicts with ``dry_run: true`` and ``sent``."""
        seen: dict[str, int] = {}
        out = []
        for trace in traces:
            index = seen.get(trace.seq, 0)
            seen[trace.seq] = index + 1
            flags = self._sent.get(trace.seq, [])
            sent = flags[index] if index < len(flags) else True
            out.append({**trace.to_dict(), "dry_run": True, "sent": sent})
        return out

    def _declared(self, connector_id: str, action: str) -> list[int] | None:
        connector = self.connectors.get(connector_id)
        spec = getattr(connector, "actions", {}).get(action) if connector is not None else None
        return list(spec.success_statuses) if spec is not None and spec.success_statuses else None
