"""Outbound HTTP for the engine: one shared client with timeouts, retries honouring
``Retry-After``, per-connection rate limits and an SSRF guard checked on every hop and
at connect time.

    client = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    response = await client.request("GET", url, rate_key="hubspot:cust_1", observer=traces.append)
"""

from ._attempt import Attempt, Observer, Redactor, redact_url
from ._client import DEFAULT_SENSITIVE_HEADERS, HttpClient
from ._egress import EgressGuard, Resolver, classify_address, parse_host, system_resolver
from ._policies import (
    DEFAULT_EGRESS_POLICY,
    DEFAULT_RATE_LIMIT,
    DEFAULT_RETRY_POLICY,
    DEFAULT_STEP_RETRY_POLICY,
    DEFAULT_TIMEOUTS,
    IDEMPOTENT_METHODS,
    NO_RETRY,
    EgressPolicy,
    RateLimit,
    RetryPolicy,
    Timeouts,
    step_retry_policy,
)
from ._ratelimit import RateLimiterStats, RateStore
from ._retry import parse_retry_after
from ._transport import GuardedTransport

__all__ = [
    "DEFAULT_EGRESS_POLICY",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_SENSITIVE_HEADERS",
    "DEFAULT_STEP_RETRY_POLICY",
    "DEFAULT_TIMEOUTS",
    "IDEMPOTENT_METHODS",
    "NO_RETRY",
    "Attempt",
    "EgressGuard",
    "EgressPolicy",
    "GuardedTransport",
    "HttpClient",
    "Observer",
    "RateLimit",
    "RateLimiterStats",
    "RateStore",
    "Redactor",
    "Resolver",
    "RetryPolicy",
    "Timeouts",
    "classify_address",
    "parse_host",
    "parse_retry_after",
    "redact_url",
    "step_retry_policy",
    "system_resolver",
]
