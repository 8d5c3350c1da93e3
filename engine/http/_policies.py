"""Policies of the outbound HTTP layer: small frozen value objects with module-constant defaults."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_WRITE_TIMEOUT = 30.0
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_TOTAL_TIMEOUT = 60.0

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BASE_DELAY = 0.5
DEFAULT_MAX_DELAY = 30.0
DEFAULT_MAX_RETRY_AFTER = 60.0
DEFAULT_RETRY_STATUSES = frozenset({429, 502, 503, 504})
# 429 and 503 say the request was not processed, so even a non-idempotent one may be
# repeated; after a 502/504 a gateway may have passed the request on already.
DEFAULT_UNSAFE_RETRY_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

# A workflow step's connector calls (issue 10): 3 attempts, 5 s, then 10 s (factor 2, at most 60 s),
# no jitter, so the waits are the ones the spec states (the shared per-connection rate limit
# already spaces the calls of many workers). Retried: the statuses a repeat can fix (timeouts,
# too early, too many requests, server errors); every other 4xx is final.
DEFAULT_STEP_MAX_ATTEMPTS = 3
DEFAULT_STEP_DELAY = 5.0
DEFAULT_STEP_FACTOR = 2.0
DEFAULT_STEP_MAX_DELAY = 60.0
STEP_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# 408, 425, 429 and 503 say the request was not processed; a 500, 502 or 504 may follow a request
# that did its work, so only an idempotent request (or one with an Idempotency-Key) repeats then.
STEP_UNSAFE_RETRY_STATUSES = frozenset({408, 425, 429, 503})

# A safety net against hammering an upstream, not an API's published quota: connectors
# that know theirs pass it as ``rate_limit``, and a 429 with Retry-After does the rest.
DEFAULT_RATE_PER_SECOND = 20.0
DEFAULT_RATE_BURST = 40

DEFAULT_MAX_REDIRECTS = 5


def _positive(name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Timeouts in seconds: per phase (as httpx) and ``total`` for one attempt.

    ``total`` bounds one attempt from connecting to reading the last body byte (a slow
    drip of bytes never trips ``read``, which is per read). None disables a bound.
    """

    connect: float | None = DEFAULT_CONNECT_TIMEOUT
    read: float | None = DEFAULT_READ_TIMEOUT
    write: float | None = DEFAULT_WRITE_TIMEOUT
    pool: float | None = DEFAULT_POOL_TIMEOUT
    total: float | None = DEFAULT_TOTAL_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool", "total"):
            _positive(f"Timeouts.{name}", getattr(self, name), allow_none=True)

    def to_httpx(self) -> httpx.Timeout:
        """The per-phase part as an ``httpx.Timeout``."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before repeating a request.

    - ``max_attempts``: attempts in all, the first included (1 disables retries).
    - Delay before attempt n+1: full jitter, ``random() * min(max_delay, base_delay * factor**(n-1))``
      (without jitter the bound itself), unless the response has ``Retry-After``: then exactly
      that long; a ``Retry-After`` beyond ``max_retry_after`` ends the retries and the
      response is returned (sleeping inline for longer would stall the run; the caller can
      schedule it).
    - ``statuses`` are retried for idempotent requests, ``unsafe_statuses`` for every request.
    - Transport errors are retried for idempotent requests; errors that happen before the
      request is sent (connect, pool) for every request. A request is idempotent when its
      method is in ``IDEMPOTENT_METHODS`` or it carries an ``Idempotency-Key`` header.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    unsafe_statuses: frozenset[int] = DEFAULT_UNSAFE_RETRY_STATUSES
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    jitter: bool = True
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("RetryPolicy delays must not be negative")
        if self.factor < 1:
            raise ValueError(f"RetryPolicy.factor must be >= 1, got {self.factor!r}")
        object.__setattr__(self, "statuses", frozenset(self.statuses))
        object.__setattr__(self, "unsafe_statuses", frozenset(self.unsafe_statuses))

    def backoff(self, attempt: int, random: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); ``random`` in [0, 1)."""
        bound = min(self.max_delay, self.base_delay * (self.factor ** (attempt - 1)))
        return bound * random if self.jitter else bound


NO_RETRY = RetryPolicy(max_attempts=1)


def step_retry_policy(max_attempts: int = DEFAULT_STEP_MAX_ATTEMPTS, delay: float = DEFAULT_STEP_DELAY,
                      factor: float = DEFAULT_STEP_FACTOR, max_delay: float = DEFAULT_STEP_MAX_DELAY) -> RetryPolicy:
    """The retry policy of a workflow step's connector calls: ``max_attempts`` in all, waiting
    ``delay`` seconds, then ``factor`` times longer each time, at most ``max_delay`` (no jitter),
    on ``STEP_RETRY_STATUSES`` and transport errors. ``max_delay`` is also the longest
    ``Retry-After`` waited for inline: a longer one ends the call with the response (the caller
    reschedules it; see ``engine.errors.ActionRetryLater``)."""
    return RetryPolicy(max_attempts=max_attempts, base_delay=delay, max_delay=max_delay, factor=factor,
                       statuses=STEP_RETRY_STATUSES, unsafe_statuses=STEP_UNSAFE_RETRY_STATUSES,
                       max_retry_after=max_delay, jitter=False)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``per_second`` requests per second on average per connection key, bursts of
    ``burst``, and (when set) at most ``concurrency`` requests of the key in flight at once.

    A provider's documented quota ("100 requests per 10 seconds") is :meth:`of`.
    """

    per_second: float = DEFAULT_RATE_PER_SECOND
    burst: int = DEFAULT_RATE_BURST
    concurrency: int | None = None

    def __post_init__(self) -> None:
        _positive("RateLimit.per_second", self.per_second)
        if not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"RateLimit.burst must be an integer >= 1, got {self.burst!r}")
        if self.concurrency is not None and (not isinstance(self.concurrency, int) or self.concurrency < 1):
            raise ValueError(f"RateLimit.concurrency must be an integer >= 1 or None, got {self.concurrency!r}")

    @classmethod
    def of(cls, requests: int, per_seconds: float, *, burst: int | None = None,
           concurrency: int | None = None) -> "RateLimit":
        """``requests`` per ``per_seconds`` seconds; the burst defaults to the whole window's
        ``requests`` (what a fixed-window quota lets through at once)."""
        _positive("RateLimit requests", requests)
        _positive("RateLimit per_seconds", per_seconds)
        return cls(per_second=requests / per_seconds, burst=burst if burst is not None else max(1, int(requests)),
                   concurrency=concurrency)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Destinations permitted although the SSRF guard would refuse them.

    ``allow`` holds hostnames (``sandbox.internal``; a leading ``*.`` matches subdomains),
    IP addresses (``127.0.0.1``, ``::1``) and CIDR blocks (``10.1.0.0/16``). An allowed
    hostname is permitted whatever it resolves to. Cloud metadata addresses are only
    permitted when named exactly (an address or a /32, /128 block), never by a wider block.
    Invalid entries raise ``ValueError`` here, not at request time.
    """

    allow: tuple[str, ...] = ()
    hostnames: frozenset[str] = field(init=False, repr=False, compare=False)
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.allow, str):
            raise ValueError("EgressPolicy.allow must be a sequence of entries, not one string")
        allow = tuple(str(entry).strip() for entry in self.allow)
        hostnames: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allow:
            if not entry:
                raise ValueError("EgressPolicy.allow has an empty entry")
            candidate = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                networks.append(ipaddress.ip_network(candidate, strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            label = name[2:] if name.startswith("*.") else name
            if "/" in entry or not label or not all(
                part and all(c.isalnum() or c in "-_" for c in part) for part in label.split(".")
            ):
                raise ValueError(f"EgressPolicy.allow entry {entry!r} is not a hostname, IP address or CIDR block")
            hostnames.add(name)
        object.__setattr__(self, "allow", allow)
        object.__setattr__(self, "hostnames", frozenset(hostnames))
        object.__setattr__(self, "networks", tuple(networks))

    def allows_hostname(self, hostname: str) -> bool:
        """Whether ``hostname`` (lower case, no trailing dot) is named by the allow-list."""
        if hostname in self.hostnames:
            return True
        return any(
            entry.startswith("*.") and hostname.endswith(entry[1:]) for entry in self.hostnames
        )

    def allows_address(self, address: IPAddress, *, exact: bool = False) -> bool:
        """Whether ``address`` is inside an allowed block (with ``exact``: named by a single-address block)."""
        for network in self.networks:
            if network.version != address.version or address not in network:
                continue
            if not exact or network.num_addresses == 1:
                return True
        return False


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY_POLICY = RetryPolicy()
DEFAULT_STEP_RETRY_POLICY = step_retry_policy()
DEFAULT_RATE_LIMIT = RateLimit()
DEFAULT_EGRESS_POLICY = EgressPolicy()
