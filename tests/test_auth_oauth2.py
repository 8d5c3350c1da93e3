"""OAuth 2.0 against a real authorization server (authlib + Flask on 127.0.0.1, tests/support)."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response
from support.oauth_server import TEST_USER, OAuthTestServer

from engine.auth import (
    Authenticator,
    OAuth2Client,
    OutgoingRequest,
    StaticCredentials,
    TokenSet,
    authorization_url,
    new_code_verifier,
    new_state,
)
from engine.errors import EgressDenied, OAuthError, ReauthorizationRequired, TokenEndpointUnavailable
from engine.http import EgressPolicy, HttpClient, RetryPolicy
from engine.specs import ConnectorSpec, OAuth2Auth

REDIRECT = "http://127.0.0.1:1/oauth/callback"
T0 = 1_800_000_000.0
CLIENTS = {
    "web-app": ("web-app-secret-7f3a", "client_secret_basic"),
    "post-app": ("post-app-secret-91bc", "client_secret_post"),
    "public-app": (None, "none"),
}


class Clock:
    """An injected clock, moved by hand."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _no_sleep(_: float) -> None:
    return None


def make_server(**kwargs: Any) -> OAuthTestServer:
    server = OAuthTestServer(**kwargs)
    for client_id, (secret, method) in CLIENTS.items():
        server.add_client(client_id, secret, redirect_uris=[REDIRECT], token_endpoint_auth_method=method,
                          grant_types=("authorization_code", "refresh_token"))
    server.add_client("service", "service-secret-55d0", token_endpoint_auth_method="client_secret_basic", grant_types=("client_credentials",))
    server.add_client("service-post", "service-post-secret-12ab", token_endpoint_auth_method="client_secret_post", grant_types=("client_credentials",))
    return server.start()


@pytest.fixture(scope="module")
def server() -> Iterator[OAuthTestServer]:
    server = make_server()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def reset(server: OAuthTestServer) -> None:
    server.expires_in = 3600
    server.answer_next_token_requests(0, 200, "")


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)), retry=RetryPolicy(max_attempts=3, base_delay=0.0, jitter=False), sleep=_no_sleep)
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def oauth(http: HttpClient, clock: Clock) -> OAuth2Client:
    return OAuth2Client(http, clock=clock)


def code_flow(server: OAuthTestServer, *, method: str = "client_secret_basic", token_url: str | None = None) -> OAuth2Auth:
    return OAuth2Auth(
        authorize_url=server.authorize_url,
        token_url=token_url or server.token_url,
        scopes=["contacts.read", "offline_access"],
        token_auth_method="client_secret_post" if method == "client_secret_post" else "client_secret_basic",
    )


def connector(auth: OAuth2Auth, cid: str = "crm") -> ConnectorSpec:
    return ConnectorSpec.model_validate({"id": cid, "version": 1, "base_url": "http://127.0.0.1", "auth": auth.model_dump(by_alias=True), "actions": {}})


async def authorize_and_exchange(server: OAuthTestServer, oauth: OAuth2Client, auth: OAuth2Auth, client_id: str = "web-app") -> TokenSet:
    """The whole browser leg: authorize URL -> auto-approved redirect -> code -> tokens."""
    verifier, state = new_code_verifier(), new_state()
    url = authorization_url(auth, client_id=client_id, redirect_uri=REDIRECT, state=state, code_verifier=verifier)
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302, answer.text
    params = parse_authorization_code_response(answer.headers["location"], state=state)
    return await oauth.exchange_code(auth, client_id=client_id, client_secret=CLIENTS[client_id][0], code=params["code"], redirect_uri=REDIRECT, code_verifier=verifier)


async def call_me(http: HttpClient, authenticator: Authenticator, conn: ConnectorSpec, server: OAuthTestServer) -> tuple[httpx.Response, OutgoingRequest]:
    authorized = await authenticator.authorize(conn, OutgoingRequest("GET", f"{server.url}/api/me"))
    return await http.request(**authorized.to_kwargs()), authorized


def credentials(client_id: str, tokens: TokenSet) -> dict[str, Any]:
    return {"client_id": client_id, "client_secret": CLIENTS[client_id][0], **tokens.to_credentials()}


@pytest.mark.parametrize("client_id", list(CLIENTS))
async def test_authorization_code_with_pkce_end_to_end(server, http, oauth, clock, client_id) -> None:
    auth = code_flow(server, method=CLIENTS[client_id][1])
    tokens = await authorize_and_exchange(server, oauth, auth, client_id)
    assert tokens.refresh_token and tokens.token_type == "Bearer"
    assert tokens.expires_at == int(T0 + 3600) and tokens.scope == "contacts.read offline_access"
    provider = StaticCredentials({"crm": credentials(client_id, tokens)})
    response, authorized = await call_me(http, Authenticator(provider, oauth), connector(auth), server)
    assert response.status_code == 200 and response.json()["email"] == TEST_USER["email"]
    assert authorized.sensitive_headers == {"authorization"} and tokens.access_token not in repr(authorized)
    assert provider.saves == [], "a fresh token is used as it is"


async def test_wrong_code_verifier_is_an_oauth_error_not_a_reconnect(server, oauth) -> None:
    auth = code_flow(server)
    state = new_state()
    url = authorization_url(auth, client_id="web-app", redirect_uri=REDIRECT, state=state, code_verifier=new_code_verifier())
    async with httpx.AsyncClient() as browser:
        code = parse_authorization_code_response((await browser.get(url)).headers["location"], state=state)["code"]
    with pytest.raises(OAuthError) as info:
        await oauth.exchange_code(auth, client_id="web-app", client_secret="web-app-secret-7f3a", code=code, redirect_uri=REDIRECT, code_verifier=new_code_verifier())
    assert info.value.error == "invalid_grant" and info.value.status == 400 and info.value.code == "oauth_error"
    assert code not in str(info.value)


async def test_refresh_happens_before_expiry_and_rotated_tokens_are_saved(server, http, oauth, clock) -> None:
    server.expires_in = 120
    auth = code_flow(server)
    tokens = await authorize_and_exchange(server, oauth, auth)
    provider = StaticCredentials({"crm": credentials("web-app", tokens)})
    authenticator, conn = Authenticator(provider, oauth), connector(auth)

    clock.now = T0 + 59  # 61 s left: more than the 60 s leeway
    before = len(server.token_requests)
    response, authorized = await call_me(http, authenticator, conn, server)
    assert response.status_code == 200 and len(server.token_requests) == before and provider.saves == []

    clock.now = T0 + 61  # 59 s left: refresh first
    response, authorized = await call_me(http, authenticator, conn, server)
    assert response.status_code == 200
    assert server.token_requests[before:] == ["refresh_token"]
    [(cid, saved)] = provider.saves
    assert cid == "crm" and set(saved) == {"access_token", "refresh_token", "token_type", "expires_at", "scope"}
    assert saved["access_token"] != tokens.access_token and saved["refresh_token"] != tokens.refresh_token
    assert saved["expires_at"] == int(T0 + 61 + 120)
    assert authorized.headers["Authorization"] == f"Bearer {saved['access_token']}"
    assert server.token(tokens.access_token).access_revoked, "the server really rotated"


async def test_refresh_keeps_the_refresh_token_when_the_server_does_not_rotate(http, clock) -> None:
    server = make_server(rotate_refresh_tokens=False, expires_in=120)
    try:
        oauth = OAuth2Client(http, clock=clock)
        auth = code_flow(server)
        tokens = await authorize_and_exchange(server, oauth, auth)
        provider = StaticCredentials({"crm": credentials("web-app", tokens)})
        authenticator, conn = Authenticator(provider, oauth), connector(auth)
        for step in (1, 2):  # twice: the kept refresh token still works
            clock.now = T0 + step * 100
            response, _ = await call_me(http, authenticator, conn, server)
            assert response.status_code == 200
            assert provider.saves[-1][1]["refresh_token"] == tokens.refresh_token
        assert server.token_requests.count("refresh_token") == 2
    finally:
        server.stop()


async def test_401_refreshes_once_and_the_retry_succeeds(server, http, oauth) -> None:
    auth = code_flow(server)
    tokens = await authorize_and_exchange(server, oauth, auth)
    provider = StaticCredentials({"crm": credentials("web-app", tokens)})
    authenticator, conn = Authenticator(provider, oauth), connector(auth)
    server.revoke_access_token(tokens.access_token)  # valid by its expiry, refused by the API

    response, authorized = await call_me(http, authenticator, conn, server)
    assert response.status_code == 401
    assert await authenticator.on_unauthorized(conn, authorized) is True
    response, retried = await call_me(http, authenticator, conn, server)
    assert response.status_code == 200 and retried.credential_fingerprint != authorized.credential_fingerprint
    assert len(provider.saves) == 1

    # A late 401 for the old token (another task's) refreshes nothing: the stored token changed.
    before = len(server.token_requests)
    assert await authenticator.on_unauthorized(conn, authorized) is True
    assert len(server.token_requests) == before


async def test_401_without_refresh_token_or_for_static_schemes_is_final(server, oauth) -> None:
    auth = code_flow(server)
    provider = StaticCredentials({"crm": {"client_id": "web-app", "access_token": "at"}, "keys": {"token": "t"}})
    authenticator = Authenticator(provider, oauth)
    assert await authenticator.on_unauthorized(connector(auth)) is False
    bearer = ConnectorSpec.model_validate({"id": "keys", "version": 1, "base_url": "http://127.0.0.1", "auth": {"type": "bearer"}, "actions": {}})
    assert await authenticator.on_unauthorized(bearer) is False


async def test_revoked_refresh_token_requires_reauthorization(server, http, oauth, clock) -> None:
    auth = code_flow(server)
    tokens = await authorize_and_exchange(server, oauth, auth)
    server.revoke_refresh_token(tokens.refresh_token)
    provider = StaticCredentials({"crm": credentials("web-app", tokens)})
    clock.now = T0 + 3600  # expired: a refresh is due
    with pytest.raises(ReauthorizationRequired) as info:
        await call_me(http, Authenticator(provider, oauth), connector(auth), server)
    error = info.value
    assert error.connector_id == "crm" and error.code == "reauthorization_required" and error.http_status == 409
    assert "invalid_grant" in str(error)
    assert tokens.refresh_token not in str(error) and tokens.access_token not in str(error)
    assert provider.saves == []


async def test_token_endpoint_503_is_transient_not_a_revoked_grant(server, http, oauth, clock) -> None:
    auth = code_flow(server)
    tokens = await authorize_and_exchange(server, oauth, auth)
    provider = StaticCredentials({"crm": credentials("web-app", tokens)})
    authenticator, conn = Authenticator(provider, oauth), connector(auth)
    clock.now = T0 + 3600
    before = len(server.token_requests)
    server.fail_next_token_requests(10)
    with pytest.raises(TokenEndpointUnavailable) as info:
        await call_me(http, authenticator, conn, server)
    assert not isinstance(info.value, ReauthorizationRequired)
    assert info.value.http_status == 503 and "HTTP 503" in str(info.value)
    assert len(server.token_requests) - before == 3, "the HTTP client retried the 503 (3 attempts)"

    server.fail_next_token_requests(1)  # one failure: the client's retry gets through
    response, _ = await call_me(http, authenticator, conn, server)
    assert response.status_code == 200 and len(provider.saves) == 1, "the grant survived the outage"


async def test_outage_during_an_early_refresh_uses_the_still_valid_token(server, http, oauth, clock) -> None:
    auth = code_flow(server)
    tokens = await authorize_and_exchange(server, oauth, auth)
    provider = StaticCredentials({"crm": credentials("web-app", tokens)})
    clock.now = T0 + 3600 - 30  # inside the leeway, not expired
    server.fail_next_token_requests(10)
    response, authorized = await call_me(http, Authenticator(provider, oauth), connector(auth), server)
    assert response.status_code == 200 and authorized.headers["Authorization"] == f"Bearer {tokens.access_token}"


async def test_unreachable_token_endpoint_is_transient(server, http, oauth, clock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    auth = code_flow(server, token_url=f"http://127.0.0.1:{closed}/token")
    provider = StaticCredentials({"crm": {"client_id": "web-app", "client_secret": "web-app-secret-7f3a", "access_token": "a", "refresh_token": "r-token-value", "expires_at": 1}})
    with pytest.raises(TokenEndpointUnavailable, match="after 3 attempts") as info:
        await call_me(http, Authenticator(provider, oauth), connector(auth), server)
    assert "r-token-value" not in str(info.value) and "web-app-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected", "error"),
    [
        (400, '{"error": "invalid_client", "error_description": "bad secret"}', "application/json", OAuthError, "invalid_client"),
        (400, '{"error": "unauthorized_client"}', "application/json", OAuthError, "unauthorized_client"),
        (400, '{"error": "invalid_scope"}', "application/json", OAuthError, "invalid_scope"),
        (200, "{}", "application/json", OAuthError, "invalid_token_response"),
        (200, "<html>hello</html>", "text/html", OAuthError, "invalid_token_response"),
        (404, "not here", "text/plain", OAuthError, "http_error"),
        (302, "", "text/plain", OAuthError, "unexpected_redirect"),
        (400, '{"error": "temporarily_unavailable"}', "application/json", TokenEndpointUnavailable, None),
        (429, "slow down", "text/plain", TokenEndpointUnavailable, None),
        (500, '{"error": "server_error"}', "application/json", TokenEndpointUnavailable, None),
    ],
)
async def test_token_endpoint_answers_are_classified(server, http, oauth, clock, status, body, content_type, expected, error) -> None:
    auth = code_flow(server)
    creds = {"client_id": "web-app", "client_secret": "web-app-secret-7f3a", "access_token": "a", "refresh_token": "refresh-value-xyz"}
    server.answer_next_token_requests(3, status, body, content_type)
    with pytest.raises(expected) as info:
        await oauth.refresh(auth, creds, connector_id="crm")
    if error:
        assert info.value.error == error
    assert "refresh-value-xyz" not in str(info.value) and "web-app-secret" not in str(info.value)


async def test_form_encoded_token_response_is_read(server, oauth, clock) -> None:
    server.answer_next_token_requests(1, 200, "access_token=gho_abc&token_type=bearer&scope=repo%2Cuser&expires_in=60", "application/x-www-form-urlencoded")
    tokens = await oauth.refresh(code_flow(server), {"client_id": "web-app", "refresh_token": "kept-rt"})
    assert (tokens.access_token, tokens.token_type, tokens.scope, tokens.expires_at, tokens.refresh_token) == ("gho_abc", "Bearer", "repo,user", int(T0 + 60), "kept-rt")


async def test_invalid_grant_description_never_echoes_the_token(server, oauth) -> None:
    body = '{"error": "invalid_grant", "error_description": "refresh token leaked-rt-1234 was revoked"}'
    server.answer_next_token_requests(1, 400, body, "application/json")
    with pytest.raises(ReauthorizationRequired) as info:
        await oauth.refresh(code_flow(server), {"client_id": "web-app", "client_secret": "s", "refresh_token": "leaked-rt-1234"}, connector_id="crm")
    assert "leaked-rt-1234" not in str(info.value) and "***" in str(info.value)


async def test_concurrent_refreshes_of_one_grant_are_coalesced(server, http, oauth, clock) -> None:
    auth = code_flow(server)
    tokens = await authorize_and_exchange(server, oauth, auth)
    provider = StaticCredentials({"crm": credentials("web-app", tokens)})
    conn = connector(auth)
    clock.now = T0 + 3600
    before = len(server.token_requests)
    # Separate authenticators (separate runs), one provider: five requests see the expired token at once.
    results = await asyncio.gather(*(call_me(http, Authenticator(provider, oauth), conn, server) for _ in range(5)))
    assert [r.status_code for r, _ in results] == [200] * 5
    assert server.token_requests[before:] == ["refresh_token"], "one refresh; a rotated refresh token is used once"
    assert len({a.headers["Authorization"] for _, a in results}) == 1


async def test_client_credentials_token_is_cached_until_near_expiry(server, http, oauth, clock) -> None:
    server.expires_in = 300
    auth = OAuth2Auth(flow="client_credentials", token_url=server.token_url, scopes=["contacts.read"])
    provider = StaticCredentials({"svc": {"client_id": "service", "client_secret": "service-secret-55d0"}})
    authenticator, conn = Authenticator(provider, oauth), connector(auth, "svc")
    before = len(server.token_requests)
    first = await asyncio.gather(*(call_me(http, authenticator, conn, server) for _ in range(3)))
    response, authorized = first[0]
    assert response.status_code == 200 and response.json() == {"client_id": "service", "scope": "contacts.read"}
    assert server.token_requests[before:] == ["client_credentials"], "concurrent callers share one request"

    clock.now = T0 + 239  # 61 s left
    _, again = await call_me(http, authenticator, conn, server)
    assert again.headers == authorized.headers and len(server.token_requests) == before + 1
    clock.now = T0 + 241  # 59 s left
    _, renewed = await call_me(http, authenticator, conn, server)
    assert renewed.headers != authorized.headers and len(server.token_requests) == before + 2
    assert provider.saves == [], "client tokens are cached in memory, not saved"

    # A 401 drops the cached token; the next call gets a new one.
    server.revoke_access_token(renewed.headers["Authorization"].removeprefix("Bearer "))
    response, sent = await call_me(http, authenticator, conn, server)
    assert response.status_code == 401 and await authenticator.on_unauthorized(conn, sent)
    response, _ = await call_me(http, authenticator, conn, server)
    assert response.status_code == 200 and len(server.token_requests) == before + 3


async def test_client_credentials_with_post_auth_and_refusals(server, oauth) -> None:
    post = OAuth2Auth(flow="client_credentials", token_url=server.token_url, token_auth_method="client_secret_post")
    assert (await oauth.client_credentials_token(post, "service-post", "service-post-secret-12ab")).access_token
    basic = OAuth2Auth(flow="client_credentials", token_url=server.token_url)
    with pytest.raises(OAuthError) as info:
        await oauth.client_credentials_token(basic, "service", "wrong-secret-value")
    assert info.value.error == "invalid_client" and info.value.status == 401
    assert "wrong-secret-value" not in str(info.value) and "wrong-secret-value" not in repr(info.value)
    scoped = OAuth2Auth(flow="client_credentials", token_url=server.token_url, scopes=["admin.everything"])
    with pytest.raises(OAuthError) as info:
        await oauth.client_credentials_token(scoped, "service", "service-secret-55d0")
    assert info.value.error == "invalid_scope"
    with pytest.raises(ValueError):
        await oauth.client_credentials_token(basic, "", "x")


async def test_the_ssrf_guard_applies_to_token_urls(server, clock) -> None:
    guarded = OAuth2Client(HttpClient(), clock=clock)  # no allow-list: loopback is refused
    with pytest.raises(EgressDenied):
        await guarded.client_credentials_token(OAuth2Auth(flow="client_credentials", token_url=server.token_url), "service", "service-secret-55d0")


async def test_no_secret_in_reprs(server, http, oauth) -> None:
    auth = code_flow(server)
    tokens = await authorize_and_exchange(server, oauth, auth)
    provider = StaticCredentials({"crm": credentials("web-app", tokens)})
    authenticator = Authenticator(provider, oauth)
    authorized = await authenticator.authorize(connector(auth), OutgoingRequest("GET", f"{server.url}/api/me"))
    for obj in (tokens, provider, authenticator, oauth, authorized):
        text = repr(obj) + str(obj)
        for secret in (tokens.access_token, tokens.refresh_token, "web-app-secret-7f3a"):
            assert secret not in text, type(obj).__name__
    assert urllib.parse.quote(tokens.access_token) not in repr(authorized)
