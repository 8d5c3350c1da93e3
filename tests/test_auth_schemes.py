"""engine.auth without a token endpoint: scheme placement, credentials, placeholders, TokenSet."""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass, field

import httpx
import pytest

import engine.auth
from engine.auth import (
    PLACEHOLDER_EXPIRES_AT,
    Authenticator,
    CredentialProvider,
    OAuth2Client,
    OutgoingRequest,
    StaticCredentials,
    TokenSet,
    apply_credentials,
    authorization_url,
    new_code_verifier,
    new_state,
    placeholder_credentials,
)
from engine.errors import AuthError, CredentialsInvalid, EgressDenied, ReauthorizationRequired
from engine.http import HttpClient
from engine.specs import ApiKeyAuth, BasicAuth, BearerAuth, ConnectorSpec, NoAuth, OAuth2Auth

CIN7 = ApiKeyAuth.model_validate(
    {
        "type": "api_key",
        "keys": [
            {"credential": "account_id", "in": "header", "name": "api-auth-accountid"},
            {"credential": "application_key", "in": "header", "name": "api-auth-applicationkey"},
        ],
    }
)
QUERY_KEY = ApiKeyAuth.model_validate(
    {"type": "api_key", "keys": [{"credential": "api_key", "in": "query", "name": "hapikey", "prefix": "v1:"}]}
)
COOKIE_KEY = ApiKeyAuth.model_validate({"type": "api_key", "keys": [{"credential": "session", "in": "cookie", "name": "sid"}]})
CODE_FLOW = OAuth2Auth(
    authorize_url="https://auth.example.com/authorize?audience=api",
    token_url="https://auth.example.com/token",
    scopes=["contacts.read", "offline_access"],
    extra_authorize_params={"access_type": "offline", "state": "attacker"},
)


@dataclass
class Prepared:
    """Shaped like engine.actions.PreparedRequest."""

    method: str
    url: str
    params: list = field(default_factory=list)
    headers: dict = field(default_factory=dict)
    cookies: dict = field(default_factory=dict)
    json: object = None
    data: object = None
    content: object = None


def test_public_surface() -> None:
    assert set(engine.auth.__all__) == {
        "PLACEHOLDER_EXPIRES_AT", "REFRESH_LEEWAY", "TOKEN_FIELDS", "Authenticator", "Clock", "CredentialProvider",
        "OAuth2Client", "OutgoingRequest", "StaticCredentials", "TokenSet", "apply_credentials", "authorization_url",
        "new_code_verifier", "new_state", "placeholder_credentials", "token_fingerprint",
    }
    assert engine.auth.REFRESH_LEEWAY == 60


def test_cin7_sends_both_headers_and_marks_them_sensitive() -> None:
    original = Prepared("get", "https://inventory.dearsystems.com/ExternalApi/v2/customer", params=[("Page", "1")])
    out = apply_credentials(CIN7, {"account_id": "acc-123", "application_key": "key-456"}, original, connector_id="cin7")
    assert out.headers == {"api-auth-accountid": "acc-123", "api-auth-applicationkey": "key-456"}
    assert out.sensitive_headers == {"api-auth-accountid", "api-auth-applicationkey"}
    assert out.method == "GET" and out.params == [("Page", "1")]
    assert original.headers == {}, "the request given is not modified"
    assert "acc-123" not in repr(out) and "key-456" not in repr(out)


def test_query_key_with_prefix_is_sent_and_redacted() -> None:
    out = apply_credentials(QUERY_KEY, {"api_key": "s3cr3t"}, OutgoingRequest("GET", "https://api.example.com/x", params=[("hapikey", "old"), ("limit", "5")]), connector_id="hs")
    assert out.params == [("limit", "5"), ("hapikey", "v1:s3cr3t")]
    assert out.sensitive_params == {"hapikey"}
    kwargs = out.to_kwargs()
    sent = httpx.Request(kwargs["method"], kwargs["url"], params=kwargs["params"], headers=kwargs["headers"])
    assert sent.url.params["hapikey"] == "v1:s3cr3t"
    shown = out.redact(sent.url)
    assert "s3cr3t" not in shown and "limit=5" in shown
    assert "s3cr3t" not in repr(out)


def test_cookie_key_joins_the_request_cookies() -> None:
    out = apply_credentials(COOKIE_KEY, {"session": "abc"}, Prepared("GET", "https://x.example/", cookies={"lang": "en", "sid": "stale"}), connector_id="c")
    assert out.headers["Cookie"] == "lang=en; sid=abc"
    assert "cookie" in out.sensitive_headers
    with pytest.raises(CredentialsInvalid, match="'session'.*cookie"):
        apply_credentials(COOKIE_KEY, {"session": "a;b=c"}, Prepared("GET", "https://x.example/"), connector_id="c")


def test_bearer_schemes_and_existing_authorization_replaced() -> None:
    request = OutgoingRequest("GET", "https://x.example/", headers={"authorization": "Basic old"})
    out = apply_credentials(BearerAuth(), {"token": "tok"}, request, connector_id="c")
    assert out.headers == {"Authorization": "Bearer tok"}
    assert apply_credentials(BearerAuth(scheme="Token", credential="pat"), {"pat": "p"}, request, connector_id="c").header("authorization") == "Token p"
    assert apply_credentials(BearerAuth(scheme=""), {"token": "raw"}, request, connector_id="c").header("Authorization") == "raw"


def test_basic_is_utf8_base64() -> None:
    out = apply_credentials(BasicAuth(), {"username": "ada", "password": "pässwörd:x"}, OutgoingRequest("GET", "https://x.example/"), connector_id="c")
    scheme, encoded = out.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "ada:pässwörd:x"
    with pytest.raises(CredentialsInvalid, match="'username' contains ':'") as info:
        apply_credentials(BasicAuth(), {"username": "a:b", "password": "hidden-pw"}, OutgoingRequest("GET", "https://x/"), connector_id="c")
    assert "hidden-pw" not in str(info.value) and "a:b" not in str(info.value)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"account_id": "a"}, "'application_key' is missing"),
        ({"account_id": "a", "application_key": ""}, "'application_key' is missing"),
        ({"account_id": "a", "application_key": None}, "'application_key' is missing"),
        ({"account_id": {"nested": 1}, "application_key": "k"}, "'account_id' must be a string, not dict"),
        ({"account_id": "a", "application_key": "evil\r\nX-Injected: 1"}, "'application_key' contains a line break"),
    ],
)
def test_bad_credentials_are_refused_without_their_values(values: dict, reason: str) -> None:
    with pytest.raises(CredentialsInvalid) as info:
        apply_credentials(CIN7, values, OutgoingRequest("GET", "https://x/"), connector_id="cin7")
    assert reason in str(info.value) and "connection 'cin7'" in str(info.value)
    assert info.value.code == "credentials_invalid" and info.value.http_status == 409
    assert "evil" not in str(info.value)


def test_numbers_become_text_and_none_auth_is_a_copy() -> None:
    out = apply_credentials(CIN7, {"account_id": 42, "application_key": "k"}, OutgoingRequest("GET", "https://x/"), connector_id="c")
    assert out.headers["api-auth-accountid"] == "42"
    request = OutgoingRequest("GET", "https://x/", headers={"A": "1"})
    copy = apply_credentials(NoAuth(), {}, request, connector_id="c")
    assert copy == request and copy is not request and copy.headers is not request.headers


def test_from_request_needs_method_and_url() -> None:
    with pytest.raises(TypeError, match="method and a url"):
        OutgoingRequest.from_request({"method": "GET"})


@pytest.mark.parametrize("auth", [NoAuth(), CIN7, QUERY_KEY, COOKIE_KEY, BearerAuth(), BasicAuth(username="user", password="pw"), CODE_FLOW,
                                  OAuth2Auth(flow="client_credentials", token_url="https://a.example/token")])
def test_placeholders_have_the_scheme_shape(auth) -> None:
    values = placeholder_credentials(auth)
    assert set(auth.credential_fields()) <= set(values)
    assert all(isinstance(v, (str, int)) and v for v in values.values())
    assert placeholder_credentials(auth) == values, "deterministic"
    apply_credentials(auth, values, OutgoingRequest("GET", "https://x.example/"), connector_id="c")
    if isinstance(auth, OAuth2Auth):
        assert values["expires_at"] == PLACEHOLDER_EXPIRES_AT and values["access_token"].startswith("sbx_")


async def test_placeholder_oauth_makes_no_token_call() -> None:
    # The default egress policy refuses the loopback token URL: a token call would raise.
    oauth = OAuth2Client(HttpClient(), clock=lambda: 1_800_000_000)
    for flow in ("authorization_code", "client_credentials"):
        auth = OAuth2Auth(flow=flow, authorize_url="http://127.0.0.1:9/authorize", token_url="http://127.0.0.1:9/token")
        connector = ConnectorSpec.model_validate({"id": "app", "version": 1, "base_url": "https://api.example.com", "auth": auth.model_dump(by_alias=True), "actions": {}})
        authenticator = Authenticator(StaticCredentials({"app": placeholder_credentials(auth)}), oauth)
        out = await authenticator.authorize(connector, Prepared("GET", "https://api.example.com/me"))
        assert out.headers["Authorization"].startswith("Bearer sbx_")
    assert oauth.token_requests == 0
    # Proof that a real call would be refused here: an expired placeholder asks the token URL.
    expired = {**placeholder_credentials(auth), "expires_at": 1}
    with pytest.raises(EgressDenied):
        await Authenticator(StaticCredentials({"app": expired}), oauth).authorize(connector, Prepared("GET", "https://api.example.com/me"))


async def test_static_credentials_merge_and_record_saves() -> None:
    provider = StaticCredentials({"hs": {"access_token": "a", "expires_at": 5, "client_id": "c"}})
    assert isinstance(provider, CredentialProvider)
    await provider.save("hs", {"access_token": "b", "expires_at": None})
    assert await provider.get("hs") == {"access_token": "b", "client_id": "c"}
    assert await provider.get("unknown") == {}
    assert provider.saves == [("hs", {"access_token": "b", "expires_at": None})]
    (await provider.get("hs"))["access_token"] = "mutated"
    assert (await provider.get("hs"))["access_token"] == "b", "get returns a copy"
    assert "b" not in repr(provider).replace("saves", "").replace("StaticCredentials", "")


async def test_oauth_connection_never_authorized_needs_reauthorization() -> None:
    oauth = OAuth2Client(HttpClient(), clock=lambda: 1000)
    auth = CODE_FLOW
    provider = StaticCredentials({"hs": {"client_id": "c", "client_secret": "s"}})
    with pytest.raises(ReauthorizationRequired, match="holds no access token") as info:
        await Authenticator(provider, oauth).apply(auth, OutgoingRequest("GET", "https://x/"), connector_id="hs")
    assert info.value.connector_id == "hs" and info.value.http_status == 409 and isinstance(info.value, AuthError)
    # Expired, nothing to refresh with:
    provider = StaticCredentials({"hs": {"access_token": "old-token", "expires_at": 900}})
    with pytest.raises(ReauthorizationRequired, match="expired and the connection has no refresh token"):
        await Authenticator(provider, oauth).apply(auth, OutgoingRequest("GET", "https://x/"), connector_id="hs")
    # Within the leeway but still valid, nothing to refresh with: used as it is.
    provider = StaticCredentials({"hs": {"access_token": "old-token", "expires_at": 1030}})
    out = await Authenticator(provider, oauth).apply(auth, OutgoingRequest("GET", "https://x/"), connector_id="hs")
    assert out.headers["Authorization"] == "Bearer old-token"
    assert oauth.token_requests == 0


def test_token_set_from_response_and_masking() -> None:
    tokens = TokenSet.from_response(
        {"access_token": "AT-value", "token_type": "bearer", "expires_in": "120", "refresh_token": "RT-value", "scope": ["a", "b"]},
        now=1000.5,
    )
    assert (tokens.token_type, tokens.expires_at, tokens.scope) == ("Bearer", 1120, "a b")
    for text in (repr(tokens), str(tokens)):
        assert "AT-value" not in text and "RT-value" not in text and "***" in text
    assert tokens.to_credentials() == {"access_token": "AT-value", "refresh_token": "RT-value", "token_type": "Bearer", "expires_at": 1120, "scope": "a b"}
    assert TokenSet.from_credentials(tokens.to_credentials()) == tokens
    assert tokens.expires_within(60, 1059) is False and tokens.expires_within(60, 1060) is True
    assert not tokens.is_expired(1119) and tokens.is_expired(1120)
    kept = TokenSet.from_response({"access_token": "x", "expires_in": None}, now=0, previous_refresh_token="old-rt")
    assert kept.refresh_token == "old-rt" and kept.expires_at is None and not kept.expires_within(60, 10**12)
    for bad in ({}, {"access_token": ""}, {"access_token": 5}):
        with pytest.raises(ValueError, match="no access_token"):
            TokenSet.from_response(bad, now=0)
    assert TokenSet.from_response({"access_token": "x", "expires_in": "soon"}, now=0).expires_at is None
    assert TokenSet.from_response({"access_token": "x", "expires_in": -5}, now=0).expires_at is None
    assert TokenSet.from_credentials({"access_token": "x", "expires_at": "garbage"}).expires_at is None
    assert TokenSet.from_credentials({"refresh_token": "only"}) is None


def test_authorization_url_with_pkce_scopes_and_extras() -> None:
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    verifier, state = new_code_verifier(), new_state()
    assert 43 <= len(verifier) <= 128 and verifier != new_code_verifier() and state != new_state()
    url = authorization_url(CODE_FLOW, client_id="client 1", redirect_uri="https://app.example/cb?x=1", state=state, code_verifier=verifier)
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "auth.example.com", "/authorize")
    query = urllib.parse.parse_qs(parts.query)
    assert query == {
        "audience": ["api"],
        "response_type": ["code"],
        "client_id": ["client 1"],
        "redirect_uri": ["https://app.example/cb?x=1"],
        "scope": ["contacts.read offline_access"],
        "state": [state],
        "code_challenge": [create_s256_code_challenge(verifier)],
        "code_challenge_method": ["S256"],
        "access_type": ["offline"],
    }, "the extra 'state' cannot override the real one"
    no_pkce = CODE_FLOW.model_copy(update={"pkce": False, "scope_separator": ",", "extra_authorize_params": {}})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorization_url(no_pkce, client_id="c", redirect_uri="https://a/cb", state="s")).query)
    assert query["scope"] == ["contacts.read,offline_access"] and "code_challenge" not in query


@pytest.mark.parametrize(
    ("auth", "kwargs", "message"),
    [
        (CODE_FLOW, {"code_verifier": None}, "PKCE"),
        (CODE_FLOW, {"state": ""}, "must not be empty"),
        (OAuth2Auth(flow="client_credentials", token_url="https://a/token"), {}, "authorization_code"),
    ],
)
def test_authorization_url_refuses_bad_input(auth, kwargs, message) -> None:
    args = {"client_id": "c", "redirect_uri": "https://a/cb", "state": "s", "code_verifier": "v" * 43} | kwargs
    with pytest.raises(ValueError, match=message):
        authorization_url(auth, **args)
