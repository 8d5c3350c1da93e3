"""Bearer JWT verification against a real local OIDC issuer (discovery and JWKS over HTTP)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from api._oidc import OidcVerifier, url_problem
from api.errors import IdentityProviderUnavailable, InvalidToken, OidcConfigInvalid, coded_error_response
from switchboard.settings import Settings
from support.oidc import DEFAULT_AUDIENCE, OidcTestIssuer, new_private_key


class FakeClock:
    """Monotonic time for the key cache, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def shared_idp() -> Iterator[OidcTestIssuer]:
    with OidcTestIssuer() as issuer:
        yield issuer


@pytest.fixture
def idp(shared_idp: OidcTestIssuer) -> OidcTestIssuer:
    """The module's issuer, reset: one fresh kid, serving, no requests recorded. Tests may rotate
    keys or make it fail; each builds its own verifier, so no cached keys leak between tests."""
    shared_idp.reset()
    return shared_idp


@pytest.fixture(scope="module")
def foreign_rsa_key():
    """An RSA key the issuer never published."""
    return new_private_key("RS256")


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module's verifiers (creating one builds an SSL context: slow)."""
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(http, idp: OidcTestIssuer) -> Iterator[OidcVerifier]:
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, http=http) as v:
        yield v


def refused(verifier: OidcVerifier, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    if token:
        assert token not in str(info.value) and token not in info.value.reason
    return info.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_parts(header: dict, claims: dict) -> str:
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())


def valid_claims(idp: OidcTestIssuer) -> dict:
    now = int(time.time())
    return {"iss": idp.issuer, "sub": "mallory", "aud": DEFAULT_AUDIENCE, "iat": now, "exp": now + 300}


# -- accepted --------------------------------------------------------------------------------


def test_valid_token_returns_its_claims(idp, verifier):
    token = idp.issue("user-1", org_id="org_1", email="ada@example.com", extra={"name": "Ada"})
    claims = verifier.verify(token)
    assert claims["sub"] == "user-1"
    assert claims["org_id"] == "org_1"
    assert claims["email"] == "ada@example.com"
    assert claims["name"] == "Ada"
    assert claims["iss"] == idp.issuer
    # Discovery once, JWKS once; a second token is verified from the cache.
    verifier.verify(idp.issue("user-2"))
    assert idp.requests == ["/.well-known/openid-configuration", "/jwks.json"]


@pytest.mark.parametrize("alg", ["PS256", "ES256", "ES384"])
def test_other_asymmetric_algorithms_are_accepted(http, idp, alg):
    idp.rotate(alg)
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, http=http) as verifier:
        assert verifier.verify(idp.issue("user-1"))["sub"] == "user-1"


def test_keys_published_without_alg_take_the_tokens_algorithm(http, idp, foreign_rsa_key):
    idp.publish_alg = False
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, http=http) as verifier:
        assert verifier.verify(idp.issue("user-1"))["sub"] == "user-1"
        assert verifier.verify(idp.issue("user-1", alg="PS256"))["sub"] == "user-1"
        forged = idp.issue("admin", alg="PS256", signing_key=foreign_rsa_key)
        assert refused(verifier, forged).reason == "bad signature"
        signing_input = unsigned_parts({"alg": "ES256", "kid": idp.current_kid}, valid_claims(idp))
        mismatched = signing_input + "." + b64(b"\x01" * 64)
        assert refused(verifier, mismatched).reason == "token algorithm ES256 does not match the key type"


def test_configured_jwks_url_skips_discovery(http, idp):
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, idp.jwks_url, http=http) as verifier:
        verifier.verify(idp.issue("user-1"))
    assert idp.count("/.well-known/openid-configuration") == 0
    assert idp.count("/jwks.json") == 1


def test_keys_are_cached(http, idp, clock):
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, clock=clock, cache_seconds=300, http=http) as verifier:
        for n in range(3):
            verifier.verify(idp.issue(f"user-{n}"))
        assert idp.count("/jwks.json") == 1
        clock.now += 301
        verifier.verify(idp.issue("user-late"))
        assert idp.count("/jwks.json") == 2


def test_no_audience_configured_accepts_any_audience(http, idp):
    with OidcVerifier(idp.issuer, None, http=http) as verifier:
        assert verifier.verify(idp.issue("user-1", audience="some-other-client"))["sub"] == "user-1"
        assert verifier.verify(idp.issue("user-1", audience=None))["sub"] == "user-1"


def test_audience_list_containing_ours_is_accepted(idp, verifier):
    assert verifier.verify(idp.issue("user-1", audience=["other", DEFAULT_AUDIENCE]))["sub"] == "user-1"


def test_leeway_tolerates_small_clock_skew(idp, verifier):
    assert verifier.verify(idp.issue("user-1", expires_in=-5))["sub"] == "user-1"
    future = int(time.time()) + 10
    assert verifier.verify(idp.issue("user-1", extra={"nbf": future, "iat": future}))["sub"] == "user-1"


# -- refused tokens ------------------------------------------------------------------------


def test_expired_token_is_refused(idp, verifier):
    error = refused(verifier, idp.issue("user-1", expires_in=-120))
    assert error.reason == "token has expired"
    assert error.code == "invalid_token" and error.http_status == 401


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_from_the_future_is_refused(idp, verifier, claim):
    error = refused(verifier, idp.issue("user-1", extra={claim: int(time.time()) + 600}))
    assert error.reason == "token is not yet valid"


def test_wrong_audience_is_refused(idp, verifier):
    assert refused(verifier, idp.issue("user-1", audience="another-app")).reason == "wrong audience"
    assert refused(verifier, idp.issue("user-1", audience=None)).reason == "missing claim 'aud'"


def test_wrong_issuer_is_refused(idp, verifier):
    token = idp.issue("user-1", issuer="https://evil.example.com")
    assert refused(verifier, token).reason == "wrong issuer"
    # A trailing slash is another issuer: OIDC compares issuers exactly.
    assert refused(verifier, idp.issue("user-1", issuer=idp.issuer + "/")).reason == "wrong issuer"


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"exp": None}, "missing claim 'exp'"),
        ({"iss": None}, "missing claim 'iss'"),
        ({"exp": "tomorrow"}, "malformed token"),
        ({"iat": "yesterday"}, "claim 'iat' is not a number"),
        ({"sub": ""}, "claim 'sub' must be a non-empty string"),
        ({"sub": 42}, "claim 'sub' must be a string"),
    ],
)
def test_bad_required_claims_are_refused(idp, verifier, extra, reason):
    token = idp.issue("user-1", extra=extra)
    assert refused(verifier, token).reason == reason


def test_token_without_sub_is_refused(idp, verifier):
    assert refused(verifier, idp.issue(None)).reason == "missing claim 'sub'"


def test_signed_by_another_key_with_the_same_kid_is_refused(idp, verifier, foreign_rsa_key):
    verifier.verify(idp.issue("user-1"))  # the real key works
    forged = idp.issue("admin", kid=idp.current_kid, signing_key=foreign_rsa_key)
    assert refused(verifier, forged).reason == "bad signature"


def test_tampered_claims_are_refused(idp, verifier):
    header, _, signature = idp.issue("user-1").split(".")
    claims = {**valid_claims(idp), "sub": "admin"}
    tampered = header + "." + b64(json.dumps(claims).encode()) + "." + signature
    assert refused(verifier, tampered).reason == "bad signature"


def test_alg_none_is_refused(idp, verifier):
    token = unsigned_parts({"alg": "none", "kid": idp.current_kid, "typ": "JWT"}, valid_claims(idp)) + "."
    assert refused(verifier, token).reason == "algorithm 'none' is not accepted"


def test_hs256_signed_with_the_public_key_is_refused(idp, verifier):
    # The classic confusion attack: HMAC keyed with the issuer's public key, which anyone can read.
    public_pem = idp.public_key(idp.current_kid).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, json.dumps(idp.jwks()["keys"][0]).encode()):
        signing_input = unsigned_parts({"alg": "HS256", "kid": idp.current_kid}, valid_claims(idp))
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = signing_input + "." + b64(mac)
        assert refused(verifier, token).reason == "algorithm 'HS256' is not accepted"


def test_algorithm_that_does_not_fit_the_key_is_refused(idp, verifier):
    signing_input = unsigned_parts({"alg": "ES256", "kid": idp.current_kid}, valid_claims(idp))
    token = signing_input + "." + b64(b"\x01" * 64)
    assert refused(verifier, token).reason == "token algorithm ES256 does not match the key's algorithm RS256"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJSUzI1NiJ9",  # a header alone
        b64(b"not json") + "." + b64(b"{}") + ".sig",
        b64(b"[1, 2]") + "." + b64(b"{}") + ".sig",
        "x" * 20_000,
    ],
)
def test_malformed_tokens_are_refused(verifier, token):
    assert refused(verifier, token).reason == "malformed token"


def test_kid_that_is_not_a_string_is_refused(idp, verifier):
    token = unsigned_parts({"alg": "RS256", "kid": 7}, valid_claims(idp)) + "." + b64(b"sig")
    assert refused(verifier, token).reason == "malformed token"


def test_token_without_kid_uses_the_only_key(http, idp):
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, http=http) as verifier:
        assert verifier.verify(idp.issue("user-1", include_kid=False))["sub"] == "user-1"
        idp.rotate()
        with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, http=http) as fresh:
            error = refused(fresh, idp.issue("user-1", include_kid=False))
    assert "publishes several" in error.reason


# -- key rotation and refetching -----------------------------------------------------------


def test_unknown_kid_refetches_once_and_picks_up_the_rotated_key(http, idp, clock):
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, clock=clock, min_refetch_seconds=10, http=http) as verifier:
        verifier.verify(idp.issue("user-1"))
        assert idp.count("/jwks.json") == 1

        clock.now += 60
        new_kid = idp.rotate()
        token = idp.issue("user-2")
        assert verifier.verify(token)["sub"] == "user-2"
        assert idp.count("/jwks.json") == 2

        # Unknown kids within the minimum interval do not reach the issuer again.
        for n in range(5):
            bogus = idp.issue("user-3", kid=f"bogus-{n}", signing_key=new_private_key("ES256"), alg="ES256")
            assert refused(verifier, bogus).reason == "unknown signing key"
        assert idp.count("/jwks.json") == 2

        # After the interval, a still-unknown kid costs exactly one more fetch.
        clock.now += 11
        assert refused(verifier, bogus).reason == "unknown signing key"
        assert idp.count("/jwks.json") == 3
        assert verifier.verify(token)["sub"] == "user-2"
        assert idp.count("/jwks.json") == 3
        assert new_kid == idp.current_kid


def test_concurrent_requests_with_a_new_kid_fetch_once(http, idp, clock):
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, clock=clock, http=http) as verifier:
        verifier.verify(idp.issue("user-1"))
        clock.now += 60
        idp.rotate("ES256")
        tokens = [idp.issue(f"user-{n}") for n in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            subjects = [claims["sub"] for claims in pool.map(verifier.verify, tokens)]
    assert subjects == [f"user-{n}" for n in range(8)]
    assert idp.count("/jwks.json") == 2


def test_rotation_within_the_minimum_interval_waits_for_it(http, idp, clock):
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, clock=clock, min_refetch_seconds=10, http=http) as verifier:
        verifier.verify(idp.issue("user-1"))
        idp.rotate()
        token = idp.issue("user-2")
        assert refused(verifier, token).reason == "unknown signing key"
        clock.now += 10
        assert verifier.verify(token)["sub"] == "user-2"


def test_retired_key_stops_verifying_after_the_cache_expires(http, idp, clock):
    old_kid = idp.current_kid
    old_token = idp.issue("user-1")
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, clock=clock, cache_seconds=300, http=http) as verifier:
        verifier.verify(old_token)
        idp.rotate()
        idp.retire(old_kid)
        assert verifier.verify(old_token)["sub"] == "user-1"  # still cached
        clock.now += 301
        assert refused(verifier, old_token).reason == "unknown signing key"
        assert verifier.verify(idp.issue("user-2"))["sub"] == "user-2"


# -- the identity provider failing ---------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_issuer_down_is_unavailable_not_invalid(idp):
    issuer = closed_port_url()
    with OidcVerifier(issuer, DEFAULT_AUDIENCE) as verifier:
        token = idp.issue("user-1", issuer=issuer)
        with pytest.raises(IdentityProviderUnavailable) as info:
            verifier.verify(token)
    error = info.value
    assert error.http_status == 503 and error.code == "identity_provider_unavailable"
    assert error.issuer == issuer
    assert "ConnectError" in error.reason
    assert token not in str(error)


@pytest.mark.parametrize("status", [500, 404, 302])
def test_issuer_error_is_unavailable_and_not_hammered(http, idp, clock, status):
    idp.fail_with(status)
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, clock=clock, min_refetch_seconds=10, http=http) as verifier:
        token = idp.issue("user-1")
        for _ in range(3):
            with pytest.raises(IdentityProviderUnavailable) as info:
                verifier.verify(token)
            assert f"answered HTTP {status}" in info.value.reason
        assert idp.count("/.well-known/openid-configuration") == 1
        idp.fail_with(None)
        clock.now += 10
        assert verifier.verify(token)["sub"] == "user-1"


def test_cached_keys_survive_an_outage(http, idp, clock, caplog):
    verifier = OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, idp.jwks_url, clock=clock, cache_seconds=300, http=http)
    with verifier:
        verifier.verify(idp.issue("user-1"))
        idp.fail_with(503)
        clock.now += 301
        with caplog.at_level(logging.WARNING, logger="switchboard.api"):
            assert verifier.verify(idp.issue("user-2"))["sub"] == "user-2"
        assert idp.count("/jwks.json") == 2
        assert any("keeping the cached keys" in r.getMessage() for r in caplog.records)
        # A token signed by a key we never saw cannot be checked while the issuer is down.
        clock.now += 11
        idp.rotate()
        with pytest.raises(IdentityProviderUnavailable):
            verifier.verify(idp.issue("user-3"))


def test_failed_jwks_fetch_rediscovers_the_jwks_url(http, idp, clock):
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, clock=clock, http=http) as verifier:
        verifier.verify(idp.issue("user-1"))
        idp.fail_with(500)
        clock.now += 301
        verifier.verify(idp.issue("user-2"))  # stale keys
        idp.fail_with(None)
        clock.now += 11
        verifier.verify(idp.issue("user-3"))
    discovery, jwks = "/.well-known/openid-configuration", "/jwks.json"
    # The provider may have moved its JWKS: after a failure the URL is looked up again.
    assert idp.requests == [discovery, jwks, jwks, discovery, jwks]


def test_discovery_naming_another_issuer_is_refused(http, idp):
    # The issuer is configured with a trailing slash the provider does not use.
    with OidcVerifier(idp.issuer + "/", DEFAULT_AUDIENCE, http=http) as verifier:
        with pytest.raises(IdentityProviderUnavailable) as info:
            verifier.verify(idp.issue("user-1"))
    assert "names issuer" in info.value.reason


def test_jwks_that_is_not_a_key_set_is_unavailable(http, idp):
    # The discovery document is JSON but has no "keys": served as the JWKS URL.
    jwks_url = idp.issuer + "/.well-known/openid-configuration"
    with OidcVerifier(idp.issuer, DEFAULT_AUDIENCE, jwks_url, http=http) as verifier:
        with pytest.raises(IdentityProviderUnavailable) as info:
            verifier.verify(idp.issue("user-1"))
    assert "'keys' list" in info.value.reason


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example.com",
        "http://10.0.0.5/realms/x",
        "http://localhost.example.com",
        "ftp://idp.example.com",
        "idp.example.com",
        "https://user:pw@idp.example.com",
        "https://idp.example.com/?x=1",
        "https://",
    ],
)
def test_insecure_or_odd_issuer_is_refused(url):
    with pytest.raises(OidcConfigInvalid) as info:
        OidcVerifier(url, DEFAULT_AUDIENCE)
    assert info.value.setting == "oidc_issuer"
    with pytest.raises(OidcConfigInvalid) as info:
        OidcVerifier("https://idp.example.com", DEFAULT_AUDIENCE, jwks_url=url)
    assert info.value.setting == "oidc_jwks_url"


@pytest.mark.parametrize(
    "url",
    [
        "https://idp.example.com/realms/acme",
        "http://localhost:8080/realms/acme",
        "http://auth.localhost",
        "http://127.0.0.1:9000",
        "http://127.8.9.10",
        "http://[::1]:9000",
    ],
)
def test_https_or_loopback_issuer_is_accepted(url):
    assert url_problem(url) is None
    OidcVerifier(url, DEFAULT_AUDIENCE).close()


def test_from_settings():
    assert OidcVerifier.from_settings(Settings(oidc_issuer=None)) is None
    settings = Settings(oidc_issuer="https://idp.example.com", oidc_audience="console",
                        oidc_jwks_url="https://idp.example.com/keys")
    verifier = OidcVerifier.from_settings(settings)
    assert verifier is not None
    with verifier:
        assert (verifier.issuer, verifier.audience) == ("https://idp.example.com", "console")
    with pytest.raises(OidcConfigInvalid):
        OidcVerifier.from_settings(Settings(oidc_issuer="http://idp.example.com"))


def test_errors_become_problem_responses(idp, verifier):
    token = idp.issue("user-1", expires_in=-120)
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    response = coded_error_response(info.value, "/v1/me")
    assert response is not None and response.status_code == 401
    body = json.loads(response.body)
    assert body["code"] == "invalid_token"
    assert body["reason"] == "token has expired"
    assert token not in response.body.decode()
