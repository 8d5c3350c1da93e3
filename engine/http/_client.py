"""HttpClient: every outbound request of the engine goes through one of these."""

from __future__ import annotations

import asyncio
import copy
import http.cookiejar
import inspect
import random as _random
import ssl
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx

from engine.errors import (
    EgressDenied,
    OutboundRequestInvalid,
    TooManyRedirects,
    UpstreamTimeout,
    UpstreamUnavailable,
)

from ._attempt import Attempt, Observer, Redactor, redact_url, strip_url
from ._egress import EgressGuard, Resolver
from ._policies import (
    DEFAULT_EGRESS_POLICY,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_RATE_LIMIT,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TIMEOUTS,
    EgressPolicy,
    RateLimit,
    RetryPolicy,
    Timeouts,
)
from ._ratelimit import RateLimiters, RateLimiterStats, RateStore
from ._retry import (
    AttemptFailed,
    parse_retry_after,
    Random,
    RequestInvalid,
    ResponseTooLarge,
    Sleep,
    build_retrying,
    is_idempotent,
    is_retryable,
    translate_exception,
)
from ._transport import DEFAULT_LIMITS, GuardedTransport

# Dropped from a request when a redirect leaves its origin (scheme, host, port).
DEFAULT_SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
DEFAULT_USER_AGENT = "switchboard-engine/0.1"
MAX_RESPONSE_BYTES = 50 * 1024 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = ("content-length", "content-type", "content-encoding", "transfer-encoding")


class _LoopState:
    __slots__ = ("client", "transport", "limiters", "max_bytes")

    def __init__(self, client: httpx.AsyncClient, transport: GuardedTransport, limiters: RateLimiters, max_bytes: int):
        self.client = client
        self.transport = transport
        self.limiters = limiters
        self.max_bytes = max_bytes

    async def send(self, request: httpx.Request) -> httpx.Response:
        """One exchange, body read. Straight to the client's transport: redirects, cookies
        and auth are this module's business, and ``AsyncClient.send`` would parse a
        redirect's ``Location`` itself (failing on spellings the guard must refuse, such
        as ``0177.0.0.1``) and log full URLs, query secrets included."""
        response = await self.transport.handle_async_request(request)
        response.request = request
        try:
            # Read with a bound (decoded bytes, so a compressed bomb is caught too): one
            # upstream must not exhaust the memory of a process every tenant shares.
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ResponseTooLarge(f"the response is larger than {self.max_bytes} bytes")
                chunks.append(chunk)
            response._content = b"".join(chunks)
        finally:
            await response.aclose()
        return response


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing.

    The client is shared by every tenant: a cookie set by one upstream must never be sent
    on another's request. Callers that need a cookie send the header themselves.
    """

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        pass

    def extract_cookies(self, response: object, request: object) -> None:
        pass


class _Mount:
    """One in-process destination: a URL prefix and the transport that answers under it."""

    __slots__ = ("scheme", "host", "port", "path", "transport")

    def __init__(self, scheme: str, host: str, port: int | None, path: str, transport: httpx.AsyncBaseTransport):
        self.scheme, self.host, self.port, self.path, self.transport = scheme, host, port, path, transport

    @classmethod
    def of(cls, prefix: str, transport: httpx.AsyncBaseTransport) -> _Mount:
        url = httpx.URL(prefix)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"a mount prefix is an absolute http(s) URL, not {prefix!r}")
        return cls(url.scheme, url.host, url.port, url.path.rstrip("/"), transport)

    def covers(self, url: httpx.URL) -> bool:
        if (url.scheme, url.host, url.port) != (self.scheme, self.host, self.port):
            return False
        return url.path == self.path or url.path.startswith(self.path + "/")


class _MountedTransport(httpx.AsyncBaseTransport):
    """The loop's guarded transport, except for requests under a mounted prefix."""

    def __init__(self, client: HttpClient, inner: httpx.AsyncBaseTransport):
        self._client = client
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        mounted = self._client._mount_for(request.url)
        return await (mounted or self._inner).handle_async_request(request)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


class HttpClient:
    """The engine's outbound HTTP client: shared connections, timeouts, retries, rate limits
    and the SSRF guard on every hop.

    Create one per process (the composition root does) and pass it around: it holds one
    ``httpx.AsyncClient`` per event loop, created on first use, so connections are pooled
    across all callers. Constructor arguments are the defaults of every request:

    - ``egress``: the SSRF allow-list; ``resolver``: resolves names for the guard (tests).
    - ``timeouts``, ``retry``, ``rate_limit`` (applied per ``rate_key``), ``max_redirects``.
    - ``sensitive_headers``: dropped on cross-origin redirects (plus DEFAULT_SENSITIVE_HEADERS).
    - ``sleep``, ``random``, ``clock``: injected for deterministic tests (retry waits,
      jitter in [0, 1), latency measurement); ``rate_clock`` and ``rate_sleep``: the rate
      limiters' schedule (monotonic seconds) and their waits.
    - ``wait_scale``: multiplies the waits retries cause (the retry loop's sleeps and the hold a
      429's ``Retry-After`` puts on its rate key), not the rate limits' spacing; attempts record the
      unscaled waits. Tests run platforms with 0 so that nothing waits for real.

    Rate limits adapt: a 429 on a ``rate_key`` slows that key's later requests and holds
    them until its ``Retry-After`` has passed (see ``engine/http/_ratelimit.py``).
    - ``verify``: TLS verification (an ``ssl.SSLContext`` to trust a private CA).
    - ``max_response_bytes``: the largest response body (decoded) read; a larger one fails the
      request without retries, so one upstream cannot exhaust a process every tenant shares.
    """

    def __init__(
        self,
        *,
        egress: EgressPolicy = DEFAULT_EGRESS_POLICY,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        rate_limit: RateLimit = DEFAULT_RATE_LIMIT,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        sensitive_headers: Iterable[str] = (),
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        user_agent: str = DEFAULT_USER_AGENT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        sleep: Sleep = asyncio.sleep,
        random: Random = _random.random,
        clock: Callable[[], float] = time.perf_counter,
        rate_clock: Callable[[], float] = time.monotonic,
        rate_sleep: Sleep = asyncio.sleep,
        wait_scale: float = 1.0,
    ) -> None:
        if max_redirects < 0:
            raise ValueError(f"max_redirects must be >= 0, got {max_redirects}")
        if wait_scale < 0:
            raise ValueError(f"wait_scale must be >= 0, got {wait_scale}")
        self.wait_scale = wait_scale
        self.guard = EgressGuard(egress, resolver=resolver)
        self.timeouts = timeouts
        self.retry = retry
        self.rate_limit = rate_limit
        self.max_redirects = max_redirects
        self.sensitive_headers = DEFAULT_SENSITIVE_HEADERS | {h.lower() for h in sensitive_headers}
        self._verify = verify
        self._limits = limits
        self._user_agent = user_agent
        self._max_response_bytes = max_response_bytes
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._rate_clock = rate_clock
        self._rate_sleep = rate_sleep
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._mounts: tuple[_Mount, ...] = ()

    # -- in-process destinations ---------------------------------------------------------

    def mounted(self, mounts: Mapping[str, httpx.AsyncBaseTransport]) -> HttpClient:
        """A view of this client in which requests under each URL prefix of ``mounts`` go to
        that prefix's transport (an ``httpx.ASGITransport`` to an app in this process) instead
        of the network.

        Nothing else changes: the view shares this client's connections, rate limiters,
        retries and observers, and every other URL is vetted by the egress guard as before.
        A mounted prefix opens no address to the network; it names an app, so its URL need
        not resolve (the platform uses the reserved ``.invalid`` domain). Prefixes are
        ``scheme://host[:port]/path``; a URL is under one when those match and its path is
        the prefix's or below it.
        """
        view = copy.copy(self)
        view._mounts = (*self._mounts, *(_Mount.of(prefix, transport) for prefix, transport in mounts.items()))
        return view

    def _mount_for(self, url: str | httpx.URL) -> httpx.AsyncBaseTransport | None:
        if not self._mounts:
            return None
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except httpx.InvalidURL:
            return None
        for mount in self._mounts:
            if mount.covers(parsed):
                return mount.transport
        return None

    # -- shared state --------------------------------------------------------------------

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None or state.client.is_closed:
            transport = GuardedTransport(self.guard, verify=self._verify, limits=self._limits)
            client = httpx.AsyncClient(
                transport=transport,
                timeout=self.timeouts.to_httpx(),
                follow_redirects=False,  # followed here, so every hop is vetted
                trust_env=False,  # no proxies from the environment: they would bypass the guard
                cookies=_NoCookies(),  # a CookieJar is used as is; httpx.Cookies would be copied
                headers={"User-Agent": self._user_agent},
            )
            state = self._states[loop] = _LoopState(client, transport, RateLimiters(self._rate_clock, self._rate_sleep, hold_scale=self.wait_scale), self._max_response_bytes)
        if self._mounts:
            # The loop's shared client and limiters, with mounted prefixes sent in-process.
            return _LoopState(state.client, _MountedTransport(self, state.transport), state.limiters, state.max_bytes)  # type: ignore[arg-type]
        return state

    def shared_client(self) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` this event loop's requests share (must be called in a loop)."""
        return self._state().client

    def rate_limit_stats(self, rate_key: str) -> RateLimiterStats:
        """Counters of ``rate_key``'s limiter on this event loop."""
        return self._state().limiters.stats(rate_key)

    async def aclose(self) -> None:
        """Close this event loop's connections; a later request opens new ones."""
        loop = asyncio.get_running_loop()
        state = self._states.pop(loop, None)
        if state is not None:
            await state.client.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- requests ------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        rate_key: str | None = None,
        timeout: Timeouts | None = None,
        follow_redirects: bool = True,
        observer: Observer | None = None,
        redact: Redactor | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        sensitive_headers: Iterable[str] = (),
        rate_store: RateStore | None = None,
    ) -> httpx.Response:
        """Send a request and return the final response with its body read.

        ``json``, ``data`` (form fields) and ``content`` are the body, as in httpx.
        ``rate_key`` names the connection the rate limit applies to (None: unlimited);
        ``rate_limit``, ``retry`` and ``timeout`` override the client's defaults for this
        call; ``rate_store`` keeps the key's schedule where other processes share it (see
        ``engine/http/_ratelimit.py``). Redirects are followed here (at most ``max_redirects``), each hop vetted by
        the egress guard; a cross-origin hop drops the sensitive headers
        (``sensitive_headers`` adds names to the client's). ``observer`` receives one
        ``Attempt`` per exchange; ``redact`` turns a URL into what observers and errors
        show (default ``redact_url``).

        A non-2xx response, also after retries ran out, is returned, not raised.

        Raises ``EgressDenied`` (a refused destination, before or at connect time),
        ``OutboundRequestInvalid`` (malformed URL, scheme, header or body),
        ``TooManyRedirects``, ``UpstreamTimeout`` / ``UpstreamUnavailable`` (no response
        after the retries allowed for this request).
        """
        method = method.upper()
        redact = redact or redact_url
        if content is not None and not isinstance(content, (bytes, str)):
            # A stream could not be replayed by a retry or a 307/308 redirect.
            raise OutboundRequestInvalid(method, self._display(url, redact), "content must be bytes or str")
        target = self._vet(method, url, redact)
        state = self._state()
        timeouts = timeout or self.timeouts
        try:
            req = state.client.build_request(
                method,
                target,
                headers=headers,
                params=params,
                json=json,
                data=data,
                content=content,
                timeout=timeouts.to_httpx() if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except (TypeError, ValueError, httpx.HTTPError) as exc:
            raise OutboundRequestInvalid(method, self._display(url, redact), f"{type(exc).__name__}: {exc}") from None
        sensitive = self.sensitive_headers | {h.lower() for h in sensitive_headers}
        limit = rate_limit or self.rate_limit
        policy = retry or self.retry

        hop = 0
        while True:
            response = await self._send(state, req, hop, policy, timeouts, rate_key, limit, observer, redact,
                                        rate_store)
            if not follow_redirects or response.status_code not in _REDIRECT_STATUSES:
                return response
            location = response.headers.get("location")
            if location is None:
                return response
            if hop >= self.max_redirects:
                raise TooManyRedirects(method, self._display(url, redact), self.max_redirects)
            req = self._redirect(req, response.status_code, location, sensitive, redact)
            hop += 1

    def _vet(self, method: str, url: str | httpx.URL, redact: Redactor) -> httpx.URL:
        """``url`` parsed and passed by the egress guard (a mounted URL goes to no network and
        is only parsed); errors show it redacted."""
        if self._mount_for(url) is not None:
            return url if isinstance(url, httpx.URL) else httpx.URL(url)
        try:
            return self.guard.check_url(url)
        except EgressDenied as exc:
            shown = self._display(url, redact)
            raise EgressDenied(shown, exc.host, exc.address, exc.reason, allowable=exc.allowable) from None
        except ValueError as exc:
            raise OutboundRequestInvalid(method, self._display(url, redact), str(exc)) from None

    def _display(self, url: str | httpx.URL, redact: Redactor) -> str:
        try:
            return redact(url if isinstance(url, httpx.URL) else httpx.URL(url))
        except httpx.InvalidURL:
            return strip_url(str(url))

    def _redirect(
        self, req: httpx.Request, status: int, location: str, sensitive: frozenset[str], redact: Redactor
    ) -> httpx.Request:
        """The request for the next hop (RFC 9110 §15.4, as browsers and httpx do it)."""
        absolute = urllib.parse.urljoin(str(req.url), location.strip())
        try:
            url = self._vet(req.method, absolute, redact)
        except OutboundRequestInvalid as exc:
            reason = f"invalid redirect location {exc.url}: {exc.reason}"
            raise UpstreamUnavailable(req.method, redact(req.url), 1, reason) from None
        method = req.method
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"
        headers = httpx.Headers(req.headers)
        headers.pop("host", None)  # rebuilt by httpx for the new URL
        if _origin(url) != _origin(req.url):
            for name in sensitive:
                headers.pop(name, None)
        body: bytes | None = None
        if method == req.method:
            body = req.content  # only a POST turned into a GET loses its body
        else:
            for name in _BODY_HEADERS:
                headers.pop(name, None)
        return httpx.Request(method, url, headers=headers, content=body, extensions=req.extensions)

    async def _send(
        self,
        state: _LoopState,
        req: httpx.Request,
        hop: int,
        policy: RetryPolicy,
        timeouts: Timeouts,
        rate_key: str | None,
        limit: RateLimit,
        observer: Observer | None,
        redact: Redactor,
        rate_store: RateStore | None = None,
    ) -> httpx.Response:
        request_bytes = len(req.content)
        attempts = 0
        delay = 0.0  # what the retry loop waited before the next attempt, for its Attempt
        shown: str | None = None

        def show() -> str:
            nonlocal shown
            if shown is None:
                shown = redact(req.url)
            return shown

        async def wait(seconds: float) -> None:
            nonlocal delay
            delay = seconds
            await self._sleep(seconds * self.wait_scale)

        async def attempt() -> httpx.Response:
            nonlocal attempts, delay
            attempts += 1
            waited_before, delay = delay, 0.0
            waited = await state.limiters.acquire(rate_key, limit, rate_store) if rate_key is not None else 0.0
            started = self._clock()
            status: int | None = None
            error: str | None = None
            received = 0
            try:
                if rate_key is None:
                    async with asyncio.timeout(timeouts.total):
                        response = await state.send(req)
                else:
                    async with state.limiters.in_flight(rate_key, limit), asyncio.timeout(timeouts.total):
                        response = await state.send(req)
                    if response.status_code == 429:
                        # Slow the whole connection, not only this call's retry.
                        retry_after = parse_retry_after(response.headers.get("retry-after"),
                                                        date=response.headers.get("date"))
                        await state.limiters.throttled(rate_key, limit, retry_after, rate_store)
                    else:
                        state.limiters.answered(rate_key, limit)
                status, received = response.status_code, response.num_bytes_downloaded
                return response
            except EgressDenied as exc:
                error = f"egress denied: {exc.reason}"
                raise
            except Exception as exc:
                translated = translate_exception(exc)
                if translated is None:
                    raise
                error = str(translated)
                raise translated from exc
            finally:
                if observer is not None:
                    record = Attempt(
                        method=req.method,
                        url=show(),
                        attempt=attempts,
                        hop=hop,
                        status=status,
                        error=(error or "cancelled") if status is None else None,
                        latency_ms=(self._clock() - started) * 1000.0,
                        request_bytes=request_bytes,
                        response_bytes=received,
                        rate_wait_ms=waited * 1000.0,
                        delay=waited_before,
                    )
                    result = observer(record)
                    if inspect.isawaitable(result):
                        await result

        idempotent = is_idempotent(req.method, req.headers)
        try:
            # The first attempt runs outside tenacity: most requests succeed at once, and
            # tenacity's machinery costs more than the rest of this layer together. Only an
            # outcome that calls for a retry enters the tenacity loop, which replays it as
            # its attempt 1 and makes every decision from there.
            try:
                first: httpx.Response | AttemptFailed = await attempt()
            except AttemptFailed as exc:
                first = exc
            if isinstance(first, httpx.Response):
                if policy.max_attempts == 1 or not is_retryable(policy, idempotent, response=first):
                    return first
            elif policy.max_attempts == 1 or not is_retryable(policy, idempotent, error=first):
                raise first
            replay: list[httpx.Response | AttemptFailed] = [first]

            async def next_attempt() -> httpx.Response:
                if replay:
                    outcome = replay.pop()
                    if isinstance(outcome, AttemptFailed):
                        raise outcome
                    return outcome
                return await attempt()

            retrying = build_retrying(policy, idempotent=idempotent, sleep=wait, random=self._random)
            return await retrying(next_attempt)
        except AttemptFailed as exc:
            error_cls = UpstreamTimeout if exc.timeout else UpstreamUnavailable
            raise error_cls(req.method, show(), attempts, exc.reason) from None
        except RequestInvalid as exc:
            raise OutboundRequestInvalid(req.method, show(), str(exc)) from None
        except EgressDenied as exc:
            raise EgressDenied(show(), exc.host, exc.address, exc.reason, allowable=exc.allowable) from None
