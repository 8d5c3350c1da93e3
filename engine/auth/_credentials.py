"""Where credential values come from: the provider seam, an in-memory provider, placeholders."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import CredentialsInvalid
from ..specs import ApiKeyAuth, BasicAuth, BearerAuth, NoAuth, OAuth2Auth

# 2100-01-01T00:00:00Z: placeholder OAuth tokens never look expired, so no token call is made.
PLACEHOLDER_EXPIRES_AT = 4_102_444_800


@runtime_checkable
class CredentialProvider(Protocol):
    """Hands the engine one connection's credential values, and keeps refreshed tokens.

    ``get`` returns the values named by the auth scheme's ``credential_fields()`` (more
    keys are ignored; an unknown connection may return an empty mapping). ``save`` is a
    partial update: merge ``values`` into what is stored (a ``None`` value clears a key).
    The platform implements this over its encrypted store; the engine never keeps
    credentials beyond a run's memory.
    """

    async def get(self, connector_id: str) -> Mapping[str, Any]: ...

    async def save(self, connector_id: str, values: Mapping[str, Any]) -> None: ...


class StaticCredentials:
    """An in-memory ``CredentialProvider``: credentials by connector id.

    For inline runs (CLI, tests, ``connector test``). ``save`` merges into the stored
    values and appends the update to ``saves`` as ``(connector_id, values)``. The repr
    names the connectors, never the values.
    """

    def __init__(self, credentials: Mapping[str, Mapping[str, Any]] | None = None):
        self._values: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (credentials or {}).items()}
        self.saves: list[tuple[str, dict[str, Any]]] = []

    async def get(self, connector_id: str) -> Mapping[str, Any]:
        """A copy of ``connector_id``'s values ({} when there are none)."""
        return copy.deepcopy(self._values.get(connector_id, {}))

    async def save(self, connector_id: str, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into ``connector_id``'s credentials; ``None`` removes a key."""
        # No await inside: the merge is atomic with respect to other tasks.
        stored = self._values.setdefault(connector_id, {})
        for key, value in values.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        self.saves.append((connector_id, dict(values)))

    def __repr__(self) -> str:
        return f"StaticCredentials(connectors={sorted(self._values)!r}, saves={len(self.saves)})"


def _placeholder(name: str) -> str:
    # Deterministic and token-shaped, so `connector test` runs are reproducible.
    return "sbx_" + hashlib.sha256(f"switchboard-placeholder:{name}".encode()).hexdigest()[:32]


def placeholder_credentials(auth: Any) -> dict[str, Any]:
    """Credentials of the right shape for ``auth`` when no real ones are given.

    Every field of ``auth.credential_fields()`` gets a plausible value; OAuth 2.0 gets an
    access token valid until 2100 (``PLACEHOLDER_EXPIRES_AT``) so no token endpoint is
    called, for the client credentials flow too. Raises ``TypeError`` for an unknown scheme.
    """
    if isinstance(auth, NoAuth):
        return {}
    if isinstance(auth, BasicAuth):
        return {auth.username: "test-user", auth.password: _placeholder(auth.password)}
    if isinstance(auth, (ApiKeyAuth, BearerAuth)):
        return {name: _placeholder(name) for name in auth.credential_fields()}
    if isinstance(auth, OAuth2Auth):
        values: dict[str, Any] = {
            "client_id": "test-client",
            "client_secret": _placeholder("client_secret"),
            "access_token": _placeholder("access_token"),
            "token_type": "Bearer",
            "expires_at": PLACEHOLDER_EXPIRES_AT,
        }
        if auth.flow == "authorization_code":
            values["refresh_token"] = _placeholder("refresh_token")
        return values
    raise TypeError(f"unknown auth scheme {type(auth).__name__}")


def credential_text(credentials: Mapping[str, Any], name: str, connector_id: str, *, required: bool = True) -> str | None:
    """Credential ``name`` as text (numbers become text; None or '' count as missing).

    Raises ``CredentialsInvalid`` when it is required and missing, or not a string or number.
    """
    value = credentials.get(name)
    if value is None or value == "":
        if required:
            raise CredentialsInvalid(connector_id, name, "is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CredentialsInvalid(connector_id, name, f"must be a string, not {type(value).__name__}")
    return str(value)


def check_header_safe(value: str, field: str, connector_id: str) -> str:
    """``value`` when it can travel in a header; ``CredentialsInvalid`` otherwise.

    Checked here because httpx's own error would quote the value, and it is a secret.
    """
    if any(ch in value for ch in "\r\n\0"):
        raise CredentialsInvalid(connector_id, field, "contains a line break or NUL and cannot be sent in a header")
    return value
