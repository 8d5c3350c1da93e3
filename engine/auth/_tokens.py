"""TokenSet: the tokens an OAuth 2.0 token endpoint issued, with expiry on an injected clock."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]
"""Returns the current time in epoch seconds (``time.time`` in production)."""

REFRESH_LEEWAY = 60.0
"""Seconds before ``expires_at`` at which a token counts as expiring and is refreshed first."""

TOKEN_FIELDS = ("access_token", "refresh_token", "token_type", "expires_at", "scope")


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scope(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True, slots=True, repr=False)
class TokenSet:
    """Tokens from a token endpoint.

    ``expires_at`` is epoch seconds (None: the server gave no lifetime); ``refresh_token``
    is None when there is none. ``repr()``/``str()`` mask both tokens.
    """

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: int | None = None
    scope: str | None = None

    @classmethod
    def from_response(cls, payload: Mapping[str, Any], *, now: float, previous_refresh_token: str | None = None) -> TokenSet:
        """A TokenSet from a successful token response (RFC 6749 §5.1).

        ``expires_at`` is ``now + expires_in`` (a missing, non-numeric or non-positive
        ``expires_in`` means unknown). The refresh token is the response's, or
        ``previous_refresh_token`` when the server did not issue a new one. Raises
        ``ValueError`` when ``access_token`` is missing or not a string.
        """
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the token response has no access_token")
        token_type = payload.get("token_type")
        # RFC 6750 spells the scheme "Bearer"; servers answer "bearer" as often as not.
        if not isinstance(token_type, str) or not token_type or token_type.lower() == "bearer":
            token_type = "Bearer"
        expires_in = _number(payload.get("expires_in"))
        expires_at = int(now + expires_in) if expires_in is not None and expires_in > 0 else None
        refresh = payload.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            refresh = previous_refresh_token
        return cls(access_token=access, token_type=token_type, refresh_token=refresh, expires_at=expires_at, scope=_scope(payload.get("scope")))

    @classmethod
    def from_credentials(cls, values: Mapping[str, Any]) -> TokenSet | None:
        """The tokens stored in a connection's credentials, or None without an access token.

        A malformed ``expires_at`` is treated as unknown.
        """
        access = values.get("access_token")
        if not isinstance(access, str) or not access:
            return None
        refresh = values.get("refresh_token")
        expires_at = _number(values.get("expires_at"))
        return cls(
            access_token=access,
            token_type=str(values.get("token_type") or "Bearer"),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=int(expires_at) if expires_at is not None else None,
            scope=_scope(values.get("scope")),
        )

    def to_credentials(self) -> dict[str, Any]:
        """The values to save through a ``CredentialProvider``: every field of
        ``TOKEN_FIELDS``, None where unknown (so a stale ``expires_at`` is cleared)."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "scope": self.scope,
        }

    def expires_within(self, seconds: float, now: float) -> bool:
        """Whether the access token expires less than ``seconds`` after ``now`` (False when
        the expiry is unknown)."""
        return self.expires_at is not None and self.expires_at - seconds <= now

    def is_expired(self, now: float) -> bool:
        """Whether the access token is past its expiry."""
        return self.expires_within(0, now)

    def __repr__(self) -> str:
        refresh = "'***'" if self.refresh_token else "None"
        return (
            f"TokenSet(access_token='***', token_type={self.token_type!r}, refresh_token={refresh}, "
            f"expires_at={self.expires_at!r}, scope={self.scope!r})"
        )

    __str__ = __repr__
