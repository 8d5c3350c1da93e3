"""Placing credentials into a request, scheme by scheme (no network: OAuth tokens come in ready)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from ..errors import CredentialsInvalid
from ..specs import ApiKeyAuth, BasicAuth, BearerAuth, NoAuth, OAuth2Auth
from ._credentials import check_header_safe, credential_text
from ._request import OutgoingRequest


def token_fingerprint(token: str) -> str:
    """A short, non-reversible tag of a token, to compare tokens without keeping them."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def apply_credentials(
    auth: Any,
    credentials: Mapping[str, Any],
    request: Any,
    *,
    connector_id: str,
    access_token: str | None = None,
) -> OutgoingRequest:
    """A copy of ``request`` (see ``OutgoingRequest.from_request``) with ``auth`` applied.

    - ``none``: unchanged.
    - ``api_key``: each key's credential, after its prefix, into its header, query
      parameter or cookie (several keys together, as Cin7 Core's account id and key).
    - ``bearer``: ``Authorization: <scheme> <token>`` (only the token when scheme is '').
    - ``basic``: ``Authorization: Basic base64(user:password)`` (UTF-8, RFC 7617).
    - ``oauth2``: ``Authorization: Bearer <access_token>``, the token given or the stored
      ``access_token``; this function never calls a token endpoint (``Authenticator`` does).

    The names it fills are added to ``sensitive_headers`` / ``sensitive_params``.
    Raises ``CredentialsInvalid`` (a value missing, not text, or unfit for a header) and
    ``TypeError`` for an unknown scheme. Error messages never contain credential values.
    """
    out = OutgoingRequest.from_request(request)
    if isinstance(auth, NoAuth):
        return out
    if isinstance(auth, ApiKeyAuth):
        for key in auth.keys:
            value = auth_text(credentials, key.credential, connector_id)
            value = key.prefix + value
            if key.in_ == "header":
                out.set_header(key.name, check_header_safe(value, key.credential, connector_id))
            elif key.in_ == "query":
                out.set_param(key.name, value)
            else:
                if any(ch in value for ch in ";\r\n\0"):
                    raise CredentialsInvalid(connector_id, key.credential, "contains ';' or a control character and cannot be sent in a cookie")
                out.set_cookie(key.name, value)
        return out
    if isinstance(auth, BearerAuth):
        token = check_header_safe(auth_text(credentials, auth.credential, connector_id), auth.credential, connector_id)
        out.set_header("Authorization", f"{auth.scheme} {token}" if auth.scheme else token)
        return out
    if isinstance(auth, BasicAuth):
        username = auth_text(credentials, auth.username, connector_id)
        password = auth_text(credentials, auth.password, connector_id)
        if ":" in username:
            raise CredentialsInvalid(connector_id, auth.username, "contains ':' which basic auth cannot carry in a user name")
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        out.set_header("Authorization", f"Basic {encoded}")
        return out
    if isinstance(auth, OAuth2Auth):
        token = access_token if access_token is not None else auth_text(credentials, "access_token", connector_id)
        out.set_header("Authorization", f"Bearer {check_header_safe(token, 'access_token', connector_id)}")
        out.credential_fingerprint = token_fingerprint(token)
        return out
    raise TypeError(f"unknown auth scheme {type(auth).__name__}")


def auth_text(credentials: Mapping[str, Any], name: str, connector_id: str) -> str:
    """Required credential ``name`` as text (see ``credential_text``)."""
    value = credential_text(credentials, name, connector_id)
    assert value is not None
    return value
