"""OAuth states: the authorizations in flight, one-time, each bound to a pending connection.

A state is ``<org_id>.<43 url-safe random characters>``: the provider's callback reaches the
platform with no credentials of ours, so the state itself names the organization whose tenant
transaction looks it up. Each holds the PKCE code verifier, encrypted (purpose
``oauth_state:<connection id>``), the redirect URI sent to the provider and where the browser
goes afterwards.
"""

from __future__ import annotations

import secrets
import string
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store._crypto import Encryptor
    from store._database import Tx

# How long an end customer has between the authorize URL and the provider's callback.
OAUTH_STATE_TTL = timedelta(minutes=10)


def _verifier_purpose(connection_id: str) -> str:
    return f"oauth_state:{connection_id}"


_STATE_RANDOM = frozenset(string.ascii_letters + string.digits + "-_")
STATE_RANDOM_LENGTH = 43  # secrets.token_urlsafe(32)


def state_org(state: str) -> str | None:
    """The organization an OAuth ``state`` names, or None when it is not ``<org id>.<43 url-safe
    characters>`` exactly (the format ``OAuthStates.create`` issues)."""
    org_id, dot, random = state.partition(".")
    if not dot or len(random) != STATE_RANDOM_LENGTH or not set(random) <= _STATE_RANDOM:
        return None
    prefix, _, hex_part = org_id.partition("_")
    if prefix != "org" or len(hex_part) != 24 or not set(hex_part) <= set(string.hexdigits.lower()):
        return None
    return org_id


class OAuthStates:
    """One-time OAuth states, each bound to a pending connection and holding its PKCE verifier."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(
        self,
        org_id: str,
        *,
        customer_id: str,
        connection_id: str,
        code_verifier: str,
        redirect_uri: str,
        return_to: str | None,
        expires_at: datetime,
        encryptor: Encryptor,
    ) -> str:
        """Store a new state for ``connection_id``; returns it (``<org_id>.<random>``)."""
        state = f"{org_id}.{secrets.token_urlsafe(32)}"
        verifier = encryptor.encrypt(self.tx, org_id, code_verifier.encode(), _verifier_purpose(connection_id))
        self.tx.execute(
            "INSERT INTO oauth_states (org_id, id, customer_id, connection_id, code_verifier, redirect_uri, return_to,"
            " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (org_id, state, customer_id, connection_id, verifier, redirect_uri, return_to, expires_at),
        )
        return state

    def consume(self, org_id: str, state: str, encryptor: Encryptor) -> dict[str, Any] | None:
        """Delete ``state`` and return it with its ``code_verifier`` decrypted (None when unknown or
        already used). Expiry is the caller's to check, against its clock."""
        row = self.tx.execute(
            "DELETE FROM oauth_states WHERE org_id = %s AND id = %s RETURNING *", (org_id, state)
        ).fetchone()
        if row is None:
            return None
        row = dict(row)
        row["code_verifier"] = encryptor.decrypt(
            self.tx, org_id, row["code_verifier"], _verifier_purpose(row["connection_id"])
        ).decode()
        return row

    def discard(self, org_id: str, connection_id: str) -> None:
        """Void every state of ``connection_id`` (it was disconnected before the callback came)."""
        self.tx.execute("DELETE FROM oauth_states WHERE org_id = %s AND connection_id = %s", (org_id, connection_id))
