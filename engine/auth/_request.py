"""OutgoingRequest: an HTTP request with its credentials applied, and which parts are secret."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..http import redact_url

MASK = "REDACTED"  # the word engine.http uses in redacted URLs

Params = list[tuple[str, str]]


def _pairs(params: Any) -> Params:
    """Query parameters as a list of (name, value) pairs; a list value repeats its name."""
    if not params:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    pairs: Params = []
    for name, value in items:
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((str(name), _text(v)) for v in values if v is not None)
    return pairs


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True, repr=False)
class OutgoingRequest:
    """A request about to be sent: what ``engine.auth`` reads and returns.

    - ``params``: query parameters as (name, value) pairs (httpx accepts them as they are).
    - Cookies travel in the ``Cookie`` header: the shared HTTP client keeps no cookie jar.
    - ``sensitive_headers`` / ``sensitive_params``: lower-case header names and the query
      parameter names whose values carry credentials, for traces to redact and for the
      HTTP client to drop on a cross-origin redirect.
    - ``credential_fingerprint``: a short hash of the OAuth access token applied (never the
      token), so a 401 can tell whether the stored token changed meanwhile.

    ``repr()`` masks the sensitive values; ``redact`` is a ``Redactor`` for
    ``HttpClient.request(redact=...)``; ``to_kwargs()`` gives the arguments of that call.
    """

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: Params = field(default_factory=list)
    json: Any = None
    data: Mapping[str, Any] | None = None
    content: bytes | str | None = None
    sensitive_headers: frozenset[str] = frozenset()
    sensitive_params: frozenset[str] = frozenset()
    credential_fingerprint: str | None = None

    def __post_init__(self) -> None:
        self.method = self.method.upper()

    @classmethod
    def from_request(cls, request: Any) -> OutgoingRequest:
        """A copy of ``request``: an OutgoingRequest, or any object with ``method`` and ``url``
        and optionally ``headers``, ``params`` (mapping or pairs), ``cookies`` (mapping),
        ``json``, ``data``, ``content`` (such as ``engine.actions.PreparedRequest``).

        Cookies are folded into the ``Cookie`` header. Raises ``TypeError`` when ``request``
        has no ``method`` or ``url``.
        """
        if isinstance(request, OutgoingRequest):
            return OutgoingRequest(
                method=request.method,
                url=request.url,
                headers=dict(request.headers),
                params=list(request.params),
                json=request.json,
                data=request.data,
                content=request.content,
                sensitive_headers=request.sensitive_headers,
                sensitive_params=request.sensitive_params,
                credential_fingerprint=request.credential_fingerprint,
            )
        try:
            method, url = request.method, request.url
        except AttributeError:
            raise TypeError(f"a request needs a method and a url, got {type(request).__name__}") from None
        out = cls(
            method=str(method).upper(),
            url=str(url),
            headers={str(k): _text(v) for k, v in (getattr(request, "headers", None) or {}).items()},
            params=_pairs(getattr(request, "params", None)),
            json=getattr(request, "json", None),
            data=getattr(request, "data", None),
            content=getattr(request, "content", None),
        )
        for name, value in (getattr(request, "cookies", None) or {}).items():
            out.set_cookie(str(name), _text(value), sensitive=False)
        return out

    # -- placing values ---------------------------------------------------------------------

    def set_header(self, name: str, value: str, *, sensitive: bool = True) -> None:
        """Set header ``name`` (replacing any spelling of it already present)."""
        lowered = name.lower()
        for existing in [k for k in self.headers if k.lower() == lowered]:
            del self.headers[existing]
        self.headers[name] = value
        if sensitive:
            self.sensitive_headers = self.sensitive_headers | {lowered}

    def header(self, name: str) -> str | None:
        """The value of header ``name`` in any spelling, or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def set_param(self, name: str, value: str, *, sensitive: bool = True) -> None:
        """Set query parameter ``name`` (replacing every value it had)."""
        self.params = [(k, v) for k, v in self.params if k != name] + [(name, value)]
        if sensitive:
            self.sensitive_params = self.sensitive_params | {name}

    def set_cookie(self, name: str, value: str, *, sensitive: bool = True) -> None:
        """Set cookie ``name`` in the ``Cookie`` header (replacing a cookie of that name)."""
        current = self.header("cookie")
        kept = []
        if current:
            for part in current.split(";"):
                part = part.strip()
                if part and part.split("=", 1)[0].strip() != name:
                    kept.append(part)
        kept.append(f"{name}={value}")
        was_sensitive = "cookie" in self.sensitive_headers
        self.set_header("Cookie", "; ".join(kept), sensitive=sensitive or was_sensitive)

    # -- sending and showing ----------------------------------------------------------------

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``HttpClient.request`` (with ``method`` and ``url``)."""
        return {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
            "params": list(self.params) or None,
            "json": self.json,
            "data": self.data,
            "content": self.content,
            "redact": self.redact,
            "sensitive_headers": self.sensitive_headers,
        }

    def redact(self, url: httpx.URL | str) -> str:
        """``url`` as traces may show it: the sensitive query parameters masked, then the
        default redaction of ``engine.http`` (user info, credential-like parameter names)."""
        if self.sensitive_params:
            try:
                parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
            except httpx.InvalidURL:
                return redact_url(str(url))
            if parsed.query:
                pairs = urllib.parse.parse_qsl(parsed.query.decode("ascii", "replace"), keep_blank_values=True)
                query = urllib.parse.urlencode(
                    [(k, MASK if k in self.sensitive_params else v) for k, v in pairs], safe="*"
                )
                url = parsed.copy_with(query=query.encode("ascii"))
        return redact_url(url)

    def redacted_headers(self) -> dict[str, str]:
        """The headers, with the values of sensitive ones masked."""
        return {k: MASK if k.lower() in self.sensitive_headers else v for k, v in self.headers.items()}

    def redacted_params(self) -> Params:
        """The query parameters, with the values of sensitive ones masked."""
        return [(k, MASK if k in self.sensitive_params else v) for k, v in self.params]

    def __repr__(self) -> str:
        return (
            f"OutgoingRequest(method={self.method!r}, url={self.redact(self.url)!r}, "
            f"headers={self.redacted_headers()!r}, params={self.redacted_params()!r}, "
            f"sensitive_headers={sorted(self.sensitive_headers)!r}, sensitive_params={sorted(self.sensitive_params)!r})"
        )
