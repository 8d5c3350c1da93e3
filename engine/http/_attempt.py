"""What the client tells its observer about each attempt, and how URLs are shown without secrets."""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

REDACTED = "REDACTED"

# Query parameters that carry credentials in the APIs we connect to (lower case): a name
# containing a marker (``hapikey``, ``client_secret``, ``access_token``) or equal to a name.
SECRET_QUERY_MARKERS = frozenset({"key", "token", "secret", "password", "passwd", "signature", "credential"})
SECRET_QUERY_NAMES = frozenset({"sig", "auth", "code", "session", "sid"})
# Pagination cursors look like tokens but are not credentials, and traces need them.
_NOT_SECRET_MARKERS = ("page", "cursor")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP exchange as the client made it.

    ``url`` is redacted; ``attempt`` counts from 1 per hop, ``hop`` is 0 for the URL asked
    for and n for the n-th redirect. Exactly one of ``status`` and ``error`` is set.
    ``request_bytes`` and ``response_bytes`` count bodies (response: bytes on the wire);
    ``rate_wait_ms`` is the time the rate limiter held the attempt back; ``delay`` the seconds
    the retry policy waited before this attempt (its backoff, or the ``Retry-After`` it honoured;
    0.0 for a first attempt).
    """

    method: str
    url: str
    attempt: int
    hop: int
    status: int | None
    error: str | None
    latency_ms: float
    request_bytes: int
    response_bytes: int
    rate_wait_ms: float = 0.0
    delay: float = 0.0


Observer = Callable[[Attempt], None | Awaitable[None]]
Redactor = Callable[[httpx.URL], str]


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    if lowered in SECRET_QUERY_NAMES:
        return True
    if any(marker in lowered for marker in _NOT_SECRET_MARKERS):
        return False
    return any(marker in lowered for marker in SECRET_QUERY_MARKERS)


def redact_url(url: httpx.URL | str) -> str:
    """``url`` without user info and with the values of credential-like query parameters
    (``api_key``, ``access_token``, ``hapikey``, ``client_secret``, ...) replaced by REDACTED.

    The default redactor; callers that know which parameters carry secrets pass their own.
    """
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL:
        return strip_url(str(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    if not parsed.query:
        return str(parsed)
    pairs = urllib.parse.parse_qsl(parsed.query.decode("ascii", "replace"), keep_blank_values=True)
    if not any(_is_secret(name) for name, _ in pairs):
        return str(parsed)
    query = "&".join(
        f"{urllib.parse.quote(name, safe='')}={REDACTED if _is_secret(name) else urllib.parse.quote(value, safe='')}"
        for name, value in pairs
    )
    return str(parsed.copy_with(query=query.encode("ascii")))


def strip_url(url: str) -> str:
    """A URL that could not be parsed, shown without user info, query and fragment."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparseable URL>"
