"""Authenticator: applies a connector's auth to its requests, with fresh OAuth tokens."""

from __future__ import annotations

from typing import Any

from ..errors import ReauthorizationRequired, TokenEndpointUnavailable
from ..specs import NoAuth, OAuth2Auth
from ._credentials import CredentialProvider, credential_text
from ._oauth2 import OAuth2Client
from ._request import OutgoingRequest
from ._schemes import apply_credentials, token_fingerprint
from ._tokens import TokenSet


class Authenticator:
    """Applies auth schemes to requests for one run's connections.

    ``provider`` hands out each connection's credentials and keeps refreshed tokens;
    ``oauth`` is the process's ``OAuth2Client`` (its clock and leeway decide expiry).
    Cheap to create: make one per run (per customer), share the ``OAuth2Client``.

    Use::

        authorized = await authenticator.authorize(connector, prepared)
        response = await http.request(**authorized.to_kwargs())
        if response.status_code == 401 and await authenticator.on_unauthorized(connector, authorized):
            authorized = await authenticator.authorize(connector, prepared)
            response = await http.request(**authorized.to_kwargs())  # once; a second 401 stands
    """

    def __init__(self, provider: CredentialProvider, oauth: OAuth2Client):
        self.provider = provider
        self.oauth = oauth

    def __repr__(self) -> str:
        return f"Authenticator(provider={self.provider!r}, oauth={self.oauth!r})"

    async def authorize(self, connector: Any, request: Any) -> OutgoingRequest:
        """``request`` with ``connector.auth`` applied for the connection ``connector.id``.

        ``connector`` is a ``ConnectorSpec`` (or anything with ``id`` and ``auth``);
        ``request`` an ``OutgoingRequest`` or an object like ``engine.actions.PreparedRequest``
        (not modified). Raises as ``apply``.
        """
        return await self.apply(connector.auth, request, connector_id=connector.id)

    async def apply(self, auth: Any, request: Any, *, connector_id: str) -> OutgoingRequest:
        """A copy of ``request`` with ``auth`` applied, credentials read from the provider.

        For OAuth 2.0 it first makes sure of a valid access token: a stored token within
        the leeway of its ``expires_at`` is refreshed and the new tokens saved through the
        provider before use (if the refresh fails transiently while the old token is still
        valid, the old token is used); the client credentials flow uses a stored token
        with a known, distant expiry, else the ``OAuth2Client``'s cached token.

        Raises ``CredentialsInvalid`` (a credential missing or malformed),
        ``ReauthorizationRequired`` (no usable token and no way to refresh, or the
        refresh was refused with ``invalid_grant``), ``TokenEndpointUnavailable``,
        ``OAuthError``, ``EgressDenied``.
        """
        if isinstance(auth, NoAuth):
            return OutgoingRequest.from_request(request)
        credentials = await self.provider.get(connector_id)
        if isinstance(auth, OAuth2Auth):
            token = await self._access_token(auth, credentials, connector_id)
            return apply_credentials(auth, credentials, request, connector_id=connector_id, access_token=token)
        return apply_credentials(auth, credentials, request, connector_id=connector_id)

    async def on_unauthorized(self, connector: Any, request: OutgoingRequest | None = None) -> bool:
        """After a 401: get a new OAuth access token if possible; True means retry once.

        ``request`` is the authorized request that received the 401; when given and the
        stored token has changed since (another task refreshed), no refresh is made.
        Returns False for schemes without tokens to renew and for an authorization code
        connection without a refresh token (the 401 then stands).

        Raises ``ReauthorizationRequired`` (the refresh got ``invalid_grant``),
        ``TokenEndpointUnavailable``, ``OAuthError``, ``CredentialsInvalid``.
        """
        auth, connector_id = connector.auth, connector.id
        if not isinstance(auth, OAuth2Auth):
            return False
        sent = request.credential_fingerprint if request is not None else None
        credentials = await self.provider.get(connector_id)
        stored = TokenSet.from_credentials(credentials)
        if auth.flow == "client_credentials":
            client_id = credential_text(credentials, "client_id", connector_id)
            client_secret = credential_text(credentials, "client_secret", connector_id)
            assert client_id is not None and client_secret is not None
            self.oauth.forget_client_token(auth, client_id, client_secret, fingerprint=sent)
            return True
        if sent is not None and stored is not None and token_fingerprint(stored.access_token) != sent:
            return True
        if not credentials.get("refresh_token"):
            return False
        await self._refresh(auth, credentials, connector_id)
        return True

    async def _access_token(self, auth: OAuth2Auth, credentials: Any, connector_id: str) -> str:
        now = self.oauth.clock()
        leeway = self.oauth.leeway
        stored = TokenSet.from_credentials(credentials)
        if auth.flow == "client_credentials":
            if stored is not None and stored.expires_at is not None and not stored.expires_within(leeway, now):
                return stored.access_token
            client_id = credential_text(credentials, "client_id", connector_id)
            client_secret = credential_text(credentials, "client_secret", connector_id)
            assert client_id is not None and client_secret is not None
            return (await self.oauth.client_credentials_token(auth, client_id, client_secret)).access_token
        if stored is not None and not stored.expires_within(leeway, now):
            return stored.access_token
        if not credentials.get("refresh_token"):
            if stored is None:
                raise ReauthorizationRequired(connector_id, "the connection holds no access token")
            if not stored.is_expired(now):
                return stored.access_token  # expiring soon, but valid and nothing to renew it with
            raise ReauthorizationRequired(connector_id, "the access token expired and the connection has no refresh token")
        try:
            return (await self._refresh(auth, credentials, connector_id)).access_token
        except TokenEndpointUnavailable:
            if stored is not None and not stored.is_expired(now):
                return stored.access_token
            raise

    async def _refresh(self, auth: OAuth2Auth, credentials: Any, connector_id: str) -> TokenSet:
        tokens = await self.oauth.refresh(auth, credentials, connector_id=connector_id)
        await self.provider.save(connector_id, tokens.to_credentials())
        return tokens
