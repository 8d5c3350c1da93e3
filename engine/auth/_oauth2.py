"""OAuth 2.0 client side (RFC 6749, PKCE RFC 7636): authorize URLs and token requests.

authlib builds the protocol messages (grant URI, token request body, S256 challenge,
random tokens); the requests themselves go through the engine's shared ``HttpClient``,
so the SSRF guard, timeouts and retries apply to token endpoints like to any other call.

Token endpoint answers are sorted into three outcomes a platform acts on differently:
``invalid_grant`` on a refresh means the grant is gone (``ReauthorizationRequired``: mark
the connection "needs reconnect"); 5xx, 429, timeouts and connection failures are
transient (``TokenEndpointUnavailable``: retry later, the grant is intact); any other
OAuth error is a configuration problem (``OAuthError``: fix the client id, secret, scopes).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import urllib.parse
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ..errors import OAuthError, ReauthorizationRequired, TokenEndpointUnavailable, UpstreamUnavailable
from ..http import HttpClient, Timeouts, redact_url
from ..specs import OAuth2Auth
from ._credentials import credential_text
from ._schemes import token_fingerprint
from ._tokens import REFRESH_LEEWAY, Clock, TokenSet

# A refresh result is remembered (keyed by the refresh token it consumed) so that a
# caller still holding the old credentials gets the new tokens instead of replaying a
# rotated refresh token. Bounded; entries also go once their access token expires.
MAX_REMEMBERED = 1024
MAX_ERROR_TEXT = 200
TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


def new_state() -> str:
    """A random ``state`` value for an authorization request (CSRF protection)."""
    return generate_token(32)


def new_code_verifier() -> str:
    """A random PKCE code verifier (64 characters of [A-Za-z0-9], within RFC 7636's 43-128)."""
    return generate_token(64)


def _require_code_flow(auth: OAuth2Auth) -> str:
    if auth.flow != "authorization_code" or not auth.authorize_url:
        raise ValueError("an authorization URL needs an oauth2 auth with flow authorization_code and an authorize_url")
    return auth.authorize_url


def authorization_url(
    auth: OAuth2Auth,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    code_verifier: str | None = None,
) -> str:
    """The URL to send the end customer to, to authorize the connection.

    Carries ``response_type=code``, the client id, redirect URI, scopes (joined by
    ``auth.scope_separator``), ``state``, with ``auth.pkce`` the S256 ``code_challenge``
    of ``code_verifier``, then ``auth.extra_authorize_params`` (which cannot override
    the parameters before them). Query parameters already in ``authorize_url`` stay.

    Raises ``ValueError`` when ``auth`` is not an authorization code flow, ``state`` or
    ``client_id`` is empty, or PKCE is on and no ``code_verifier`` is given.
    """
    base = _require_code_flow(auth)
    if not client_id or not state or not redirect_uri:
        raise ValueError("client_id, redirect_uri and state must not be empty")
    extra: dict[str, str] = {}
    if auth.pkce:
        if not code_verifier:
            raise ValueError("this connector uses PKCE: pass the code_verifier kept for the token exchange")
        extra = {"code_challenge": create_s256_code_challenge(code_verifier), "code_challenge_method": "S256"}
    params: list[tuple[str, str]] = [("response_type", "code"), ("client_id", client_id), ("redirect_uri", redirect_uri)]
    if auth.scopes:
        params.append(("scope", auth.scope_separator.join(auth.scopes)))
    params.append(("state", state))
    params.extend(extra.items())
    taken = {name for name, _ in params}
    params.extend((k, v) for k, v in auth.extra_authorize_params.items() if k not in taken)
    return add_params_to_uri(base, params)


def _basic(client_id: str, client_secret: str) -> str:
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    raw = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode("ascii")


def _digest(value: str | None) -> str:
    return hashlib.sha256((value or "").encode()).hexdigest()


def _scrub(text: Any, secrets: Iterable[str | None]) -> str | None:
    """Server-supplied error text, shortened, with any of our secrets cut out."""
    if text is None:
        return None
    text = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text[:MAX_ERROR_TEXT] + ("..." if len(text) > MAX_ERROR_TEXT else "")


def _payload(response: httpx.Response) -> dict[str, Any] | None:
    """The token response body as a dict (JSON, or form-encoded as some providers send)."""
    content_type = response.headers.get("content-type", "").lower()
    body = response.content
    if not body:
        return None
    if "json" in content_type or body.lstrip()[:1] == b"{":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None
    if "x-www-form-urlencoded" in content_type or "text/plain" in content_type:
        try:
            return dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return None
    return None


class OAuth2Client:
    """Token requests for OAuth 2.0 connectors, over the engine's shared ``HttpClient``.

    Create one per process next to the ``HttpClient`` (it holds the client-credentials
    token cache and the per-grant locks that coalesce concurrent refreshes) and hand it to
    each run's ``Authenticator``. ``clock`` returns epoch seconds (inject a fake in tests);
    ``leeway`` is how long before expiry a token counts as expiring; ``timeout`` overrides
    the HTTP client's timeouts for token requests.
    """

    def __init__(
        self,
        http: HttpClient,
        *,
        clock: Clock = time.time,
        leeway: float = REFRESH_LEEWAY,
        timeout: Timeouts | None = None,
    ) -> None:
        if leeway < 0:
            raise ValueError(f"leeway must not be negative, got {leeway}")
        self.http = http
        self.clock = clock
        self.leeway = leeway
        self.timeout = timeout
        self._locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()
        self._client_tokens: OrderedDict[Hashable, TokenSet] = OrderedDict()
        self._refreshed: OrderedDict[Hashable, TokenSet] = OrderedDict()
        self.token_requests = 0  # how many requests reached for a token endpoint (observability)

    def __repr__(self) -> str:
        return f"OAuth2Client(cached_client_tokens={len(self._client_tokens)}, leeway={self.leeway})"

    # -- flows ------------------------------------------------------------------------------

    async def exchange_code(
        self,
        auth: OAuth2Auth,
        *,
        client_id: str,
        client_secret: str | None,
        code: str,
        redirect_uri: str,
        code_verifier: str | None = None,
    ) -> TokenSet:
        """Exchange an authorization ``code`` (from the redirect) for tokens.

        ``redirect_uri`` and ``code_verifier`` must be the ones used for the authorize URL.
        A ``client_secret`` of None or '' makes this a public client (PKCE only).

        Raises ``OAuthError`` (also for ``invalid_grant``: a bad, used or expired code),
        ``TokenEndpointUnavailable``, ``EgressDenied``, ``ValueError`` for empty arguments.
        """
        if not client_id or not code or not redirect_uri:
            raise ValueError("client_id, code and redirect_uri must not be empty")
        if auth.pkce and not code_verifier:
            raise ValueError("this connector uses PKCE: pass the code_verifier of the authorize URL")
        return await self._token_request(
            auth,
            auth.token_url,
            "authorization_code",
            client_id,
            client_secret,
            {"code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier},
            secrets=(code, code_verifier),
        )

    async def client_credentials_token(self, auth: OAuth2Auth, client_id: str, client_secret: str) -> TokenSet:
        """A token for the client itself (client credentials grant), with ``auth.scopes``.

        Cached per token URL, client, secret and scopes until it is within ``leeway`` of
        its expiry (a token without ``expires_in`` is cached until ``forget_client_token``);
        concurrent callers wait for one request. Raises ``OAuthError``,
        ``TokenEndpointUnavailable``, ``EgressDenied``, ``ValueError`` for an empty client id.
        """
        if not client_id:
            raise ValueError("client_id must not be empty")
        key = self._client_key(auth, client_id, client_secret)
        async with self._lock(key):
            cached = self._client_tokens.get(key)
            if cached is not None and not cached.expires_within(self.leeway, self.clock()):
                return cached
            scope = auth.scope_separator.join(auth.scopes) if auth.scopes else None
            tokens = await self._token_request(auth, auth.token_url, "client_credentials", client_id, client_secret, {"scope": scope})
            self._remember(self._client_tokens, key, tokens)
            return tokens

    def forget_client_token(
        self, auth: OAuth2Auth, client_id: str, client_secret: str, *, fingerprint: str | None = None
    ) -> bool:
        """Drop the cached client-credentials token (only if its fingerprint is
        ``fingerprint``, when given: another task may have replaced it already).
        Returns whether one was dropped."""
        key = self._client_key(auth, client_id, client_secret)
        cached = self._client_tokens.get(key)
        if cached is None or (fingerprint is not None and token_fingerprint(cached.access_token) != fingerprint):
            return False
        del self._client_tokens[key]
        return True

    async def refresh(self, auth: OAuth2Auth, credentials: Mapping[str, Any], *, connector_id: str = "") -> TokenSet:
        """New tokens for a connection from its ``refresh_token`` (RFC 6749 §6).

        ``credentials`` holds ``client_id``, ``refresh_token``, optionally
        ``client_secret`` and the current ``access_token``. The result keeps the old
        refresh token when the server does not rotate it; saving it is the caller's job.
        Refreshes of one refresh token are coalesced: while one is in flight the others
        wait, then receive its result, so a rotating refresh token is used only once.

        Raises ``ReauthorizationRequired`` (no refresh token, or ``invalid_grant``),
        ``TokenEndpointUnavailable`` (transient), ``OAuthError`` (``invalid_client``, ...),
        ``CredentialsInvalid`` (no client id), ``EgressDenied``.
        """
        refresh_token = credential_text(credentials, "refresh_token", connector_id, required=False)
        if refresh_token is None:
            raise ReauthorizationRequired(connector_id, "the connection has no refresh token")
        client_id = credential_text(credentials, "client_id", connector_id)
        client_secret = credential_text(credentials, "client_secret", connector_id, required=False)
        assert client_id is not None
        url = auth.refresh_url or auth.token_url
        key = ("refresh", url, client_id, _digest(refresh_token))
        current = credentials.get("access_token")
        async with self._lock(key):
            done = self._refreshed.get(key)
            if done is not None and done.access_token != current and not done.expires_within(self.leeway, self.clock()):
                return done
            tokens = await self._token_request(
                auth,
                url,
                "refresh_token",
                client_id,
                client_secret,
                {"refresh_token": refresh_token},
                secrets=(refresh_token,),
                connector_id=connector_id,
                previous_refresh_token=refresh_token,
            )
            self._remember(self._refreshed, key, tokens)
            return tokens

    # -- plumbing ---------------------------------------------------------------------------

    def _lock(self, key: Hashable) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; the client may serve several (as HttpClient does).
        key = (id(asyncio.get_running_loop()), key)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _client_key(self, auth: OAuth2Auth, client_id: str, client_secret: str | None) -> Hashable:
        # The secret is part of the key (as a digest) so a rotated secret gets a new token.
        return ("client_credentials", auth.token_url, client_id, _digest(client_secret), tuple(auth.scopes), auth.token_auth_method)

    def _remember(self, store: OrderedDict[Hashable, TokenSet], key: Hashable, tokens: TokenSet) -> None:
        now = self.clock()
        for stale in [k for k, v in store.items() if v.is_expired(now)]:
            del store[stale]
        store[key] = tokens
        store.move_to_end(key)
        while len(store) > MAX_REMEMBERED:
            store.popitem(last=False)

    async def _token_request(
        self,
        auth: OAuth2Auth,
        url: str,
        grant_type: str,
        client_id: str,
        client_secret: str | None,
        params: Mapping[str, str | None],
        *,
        secrets: Iterable[str | None] = (),
        connector_id: str = "",
        previous_refresh_token: str | None = None,
    ) -> TokenSet:
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        fields = {k: v for k, v in params.items() if v}
        if client_secret and auth.token_auth_method == "client_secret_basic":
            headers["Authorization"] = _basic(client_id, client_secret)
        else:
            # client_secret_post, or a public client (PKCE) that sends only its id.
            fields["client_id"] = client_id
            if client_secret:
                fields["client_secret"] = client_secret
        body = prepare_token_request(grant_type, **fields)
        shown = redact_url(url)
        self.token_requests += 1
        try:
            # Never follow a redirect here: a 307 would replay the client secret elsewhere.
            response = await self.http.request(
                "POST", url, headers=headers, content=body, follow_redirects=False, timeout=self.timeout
            )
        except UpstreamUnavailable as exc:
            plural = "attempt" if exc.attempts == 1 else "attempts"
            raise TokenEndpointUnavailable(shown, f"{exc.reason} (after {exc.attempts} {plural})") from exc
        return self._read(response, shown, grant_type, (client_secret, *secrets), connector_id, previous_refresh_token)

    def _read(
        self,
        response: httpx.Response,
        shown: str,
        grant_type: str,
        secrets: tuple[str | None, ...],
        connector_id: str,
        previous_refresh_token: str | None,
    ) -> TokenSet:
        status = response.status_code
        payload = _payload(response) or {}
        if 200 <= status < 300 and payload.get("access_token"):
            try:
                return TokenSet.from_response(payload, now=self.clock(), previous_refresh_token=previous_refresh_token)
            except ValueError as exc:
                raise OAuthError("invalid_token_response", str(exc), status=status, endpoint=shown) from None
        error = _scrub(payload.get("error"), secrets) if isinstance(payload.get("error"), str) else None
        description = _scrub(payload.get("error_description"), secrets)
        if status >= 500 or status == 429 or error in TRANSIENT_OAUTH_ERRORS:
            detail = f" ({error})" if error else ""
            raise TokenEndpointUnavailable(shown, f"answered HTTP {status}{detail}")
        if error == "invalid_grant" and grant_type == "refresh_token":
            detail = f": {description}" if description else ""
            raise ReauthorizationRequired(connector_id, f"the authorization server rejected the refresh token (invalid_grant{detail})")
        if error:
            raise OAuthError(error, description, status=status, endpoint=shown)
        if 300 <= status < 400:
            raise OAuthError("unexpected_redirect", "token requests are not followed across redirects", status=status, endpoint=shown)
        if 200 <= status < 300:
            raise OAuthError("invalid_token_response", "the response has no access_token", status=status, endpoint=shown)
        raise OAuthError("http_error", "the answer carries no OAuth error code", status=status, endpoint=shown)
