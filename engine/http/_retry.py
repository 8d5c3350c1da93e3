"""Retries: which outcomes are retried, how long to wait, and the tenacity loop that does it.

tenacity expresses ``Retry-After`` cleanly: its ``wait`` and ``stop`` strategies receive the
attempt's outcome, so they read the header from the response itself. Its sleep is
injectable; its own jittered waits use the global ``random`` module, so the full-jitter
backoff here is computed by ``RetryPolicy.backoff`` with the injected random source.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Awaitable, Callable

import httpx
from tenacity import AsyncRetrying, RetryCallState

from ._policies import IDEMPOTENT_METHODS, RetryPolicy

Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]


class ResponseTooLarge(Exception):
    """A response body over the client's bound (internal; becomes a permanent failed attempt)."""


class AttemptFailed(Exception):
    """One attempt ended without a response (internal; never leaves engine.http).

    ``before_send`` is true when the request certainly did not reach the server
    (connection or pool failures), which makes it safe to repeat any request.
    """

    def __init__(self, reason: str, *, before_send: bool, timeout: bool, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.before_send = before_send
        self.timeout = timeout
        self.permanent = permanent


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class RequestInvalid(Exception):
    """The request cannot be sent at all (internal; translated by the client)."""


def translate_exception(exc: BaseException) -> Exception | None:
    """Map an exception of one attempt to ``AttemptFailed`` or ``RequestInvalid`` (None: not ours)."""
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError, OverflowError)):
        # OverflowError: a port outside 0-65535 reaches the socket layer before anything checks it.
        return RequestInvalid(str(exc) or type(exc).__name__)
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return translate_exception(exc.exceptions[0])
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ResponseTooLarge):
        return AttemptFailed(detail, before_send=False, timeout=False, permanent=True)
    if isinstance(exc, httpx.PoolTimeout):
        return AttemptFailed(f"no connection free in the pool: {detail}", before_send=True, timeout=True)
    if isinstance(exc, httpx.ConnectTimeout):
        return AttemptFailed(f"connect timeout: {detail}", before_send=True, timeout=True)
    if isinstance(exc, httpx.ConnectError):
        # A certificate that does not verify will not verify on the next attempt either.
        permanent = _caused_by(exc, ssl.SSLCertVerificationError)
        return AttemptFailed(f"connect error: {detail}", before_send=True, timeout=False, permanent=permanent)
    if isinstance(exc, httpx.ReadTimeout):
        return AttemptFailed(f"read timeout: {detail}", before_send=False, timeout=True)
    if isinstance(exc, httpx.WriteTimeout):
        return AttemptFailed(f"write timeout: {detail}", before_send=False, timeout=True)
    if isinstance(exc, TimeoutError):
        return AttemptFailed("total timeout of the attempt exceeded", before_send=False, timeout=True)
    if isinstance(exc, httpx.RemoteProtocolError):
        return AttemptFailed(f"protocol error: {detail}", before_send=False, timeout=False)
    if isinstance(exc, httpx.DecodingError):
        return AttemptFailed(f"undecodable response body: {detail}", before_send=False, timeout=False)
    if isinstance(exc, (httpx.HTTPError, httpx.StreamError, OSError)):
        return AttemptFailed(f"{type(exc).__name__}: {detail}", before_send=False, timeout=False)
    return None


def is_idempotent(method: str, headers: httpx.Headers) -> bool:
    """Whether repeating the request cannot do harm (by method, or an ``Idempotency-Key``)."""
    return method.upper() in IDEMPOTENT_METHODS or "idempotency-key" in headers


def parse_retry_after(value: str | None, *, now: float | None = None, date: str | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for, or None when absent or unparseable.

    Takes delta-seconds or an HTTP-date; a date is measured against the response's
    ``Date`` header when given (immune to clock skew), else against ``now`` (epoch
    seconds, default the system clock). A date in the past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    reference = now if now is not None else time.time()
    if date is not None:
        try:
            server_now = email.utils.parsedate_to_datetime(date)
            if server_now.tzinfo is not None:
                reference = server_now.timestamp()
        except (TypeError, ValueError, IndexError):
            pass
    return max(0.0, when.timestamp() - reference)


def _response_retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"), date=response.headers.get("date"))


def is_retryable(
    policy: RetryPolicy,
    idempotent: bool,
    *,
    response: httpx.Response | None = None,
    error: BaseException | None = None,
) -> bool:
    """Whether an attempt that ended with ``response`` or ``error`` may be repeated."""
    if response is not None:
        statuses = policy.statuses if idempotent else policy.unsafe_statuses & policy.statuses
        return response.status_code in statuses
    return isinstance(error, AttemptFailed) and not error.permanent and (idempotent or error.before_send)


def build_retrying(policy: RetryPolicy, *, idempotent: bool, sleep: Sleep, random: Random) -> AsyncRetrying:
    """A tenacity loop for one request under ``policy``.

    The wrapped coroutine returns an ``httpx.Response`` or raises ``AttemptFailed``; when
    retries run out, the last response is returned and the last ``AttemptFailed`` raised.
    """

    def should_retry(state: RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None:
            return False
        if outcome.failed:
            return is_retryable(policy, idempotent, error=outcome.exception())
        return is_retryable(policy, idempotent, response=outcome.result())

    def should_stop(state: RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = _response_retry_after(outcome.result())
            return retry_after is not None and retry_after > policy.max_retry_after
        return False

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = _response_retry_after(outcome.result())
            if retry_after is not None:
                return retry_after
        return policy.backoff(state.attempt_number, random())

    def give_up(state: RetryCallState) -> httpx.Response:
        assert state.outcome is not None
        return state.outcome.result()  # the last response, or raises the last AttemptFailed

    return AsyncRetrying(
        sleep=sleep,
        stop=should_stop,
        wait=wait,
        retry=should_retry,
        retry_error_callback=give_up,
        reraise=True,
    )
