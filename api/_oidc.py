"""Verifying console users' ``Authorization: Bearer <JWT>`` tokens against an OIDC issuer's keys.

The issuer publishes its signing keys as a JWKS, found through
``<issuer>/.well-known/openid-configuration`` (``jwks_uri``) unless a JWKS URL is configured.
Keys are cached for ``cache_seconds``; a token naming an unknown ``kid`` triggers one refetch (the
issuer rotated its key), at most once per ``min_refetch_seconds`` so forged ``kid`` values cannot
make us hammer the issuer. When a refresh fails while keys are cached, the cached keys stay in use
and the failure is logged: an identity provider outage should not log every console user out.

Only asymmetric algorithms are accepted. ``none`` is unsigned, and HS* would use the *public* key
material from the JWKS as an HMAC secret, letting anyone who can read the JWKS mint tokens.

``verify`` is blocking (it may fetch the JWKS with a sync ``httpx.Client``); call it from a sync
dependency or a worker thread.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import jwt

from api.errors import IdentityProviderUnavailable, InvalidToken, OidcConfigInvalid

DEFAULT_LEEWAY = 30
DEFAULT_CACHE_SECONDS = 300
DEFAULT_MIN_REFETCH_SECONDS = 10.0
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_TOKEN_CHARS = 16 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
ALLOWED_ALGORITHMS = _RSA_ALGORITHMS | frozenset(_EC_CURVES)
_REQUIRED_CLAIMS = ["exp", "iss", "sub"]

_logger = logging.getLogger("switchboard.api")


class _OidcSettings(Protocol):
    oidc_issuer: str | None
    oidc_audience: str | None
    oidc_jwks_url: str | None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an issuer or JWKS URL, or None when it can.

    Tokens are trusted because of the keys fetched from these URLs, so over plain HTTP anyone on
    the network path could substitute their own JWKS and mint tokens for any user. Plain HTTP is
    allowed only to loopback hosts (local development and tests), where the traffic never leaves
    the machine. Host names are not resolved: a name that resolves to 127.0.0.1 today may not
    tomorrow.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https URL"
    if parts.scheme == "http" and not _is_loopback(host):
        return "must use https (plain http is allowed only for localhost and loopback addresses)"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _SigningKey:
    """One usable key of the JWKS. ``alg`` is the key's declared algorithm, if any."""

    kid: str | None
    jwk: dict[str, Any]
    alg: str | None
    _by_alg: dict[str, jwt.PyJWK] = field(default_factory=dict)

    def for_algorithm(self, alg: str) -> jwt.PyJWK:
        """The key bound to ``alg`` (PyJWK fixes one algorithm per key); raises InvalidToken when
        the token's algorithm does not fit the key."""
        if self.alg is not None and alg != self.alg:
            raise InvalidToken(f"token algorithm {alg} does not match the key's algorithm {self.alg}")
        kty = self.jwk.get("kty")
        if (alg in _RSA_ALGORITHMS and kty != "RSA") or (
            alg in _EC_CURVES and (kty != "EC" or self.jwk.get("crv") != _EC_CURVES[alg])
        ):
            raise InvalidToken(f"token algorithm {alg} does not match the key type")
        key = self._by_alg.get(alg)
        if key is None:
            try:
                key = jwt.PyJWK(self.jwk, algorithm=alg)
            except jwt.PyJWTError:
                raise InvalidToken(f"the issuer's key cannot verify {alg}") from None
            self._by_alg[alg] = key
        return key


@dataclass(frozen=True)
class _KeySet:
    keys: tuple[_SigningKey, ...]
    fetched_at: float

    def find(self, kid: str | None) -> _SigningKey | None:
        if kid is None:
            # A token without ``kid`` is unambiguous only when the issuer has a single key.
            if len(self.keys) == 1:
                return self.keys[0]
            raise InvalidToken("token names no signing key (kid) and the issuer publishes several")
        return next((key for key in self.keys if key.kid == kid), None)


class OidcVerifier:
    """Verifies bearer JWTs issued by one OIDC issuer.

    ``issuer`` must equal the tokens' ``iss`` exactly. ``audience``, when given, must appear in
    ``aud``; when None, ``aud`` is not checked (any client of the issuer is accepted).
    ``jwks_url`` skips discovery. ``http`` is used for every fetch (one is created, and closed by
    ``close()``, when omitted). ``leeway`` (seconds) applies to ``exp``, ``nbf`` and ``iat``.
    ``clock`` (monotonic seconds) times the key cache only; claim times use the wall clock.

    Raises OidcConfigInvalid when the issuer or JWKS URL is not https (or http to loopback).
    """

    def __init__(
        self,
        issuer: str,
        audience: str | None,
        jwks_url: str | None = None,
        *,
        http: httpx.Client | None = None,
        leeway: int = DEFAULT_LEEWAY,
        cache_seconds: int = DEFAULT_CACHE_SECONDS,
        min_refetch_seconds: float = DEFAULT_MIN_REFETCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for setting, value in (("oidc_issuer", issuer), ("oidc_jwks_url", jwks_url)):
            if value is not None and (problem := url_problem(value)):
                raise OidcConfigInvalid(setting, value, problem)
        if leeway < 0 or cache_seconds < 0 or min_refetch_seconds < 0:
            raise ValueError("leeway, cache_seconds and min_refetch_seconds must not be negative")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self._configured_jwks_url = jwks_url
        self._jwks_url = jwks_url
        self._clock = clock
        # Redirects are not followed: one could lead from https to plain http.
        self._http = http if http is not None else httpx.Client(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
        self._owns_http = http is None
        self._lock = threading.Lock()
        self._keys: _KeySet | None = None
        self._last_attempt: float | None = None
        self._last_failure: str | None = None  # reason of the last failed fetch

    @classmethod
    def from_settings(cls, settings: _OidcSettings, *, http: httpx.Client | None = None) -> OidcVerifier | None:
        """The verifier for ``settings.oidc_issuer`` / ``oidc_audience`` / ``oidc_jwks_url``, or None
        when no issuer is configured. Raises OidcConfigInvalid as the constructor does."""
        if not settings.oidc_issuer:
            return None
        return cls(settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url, http=http)

    def close(self) -> None:
        """Close the HTTP client if this verifier created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> OidcVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def verify(self, token: str) -> dict[str, Any]:
        """Verify ``token`` (the JWT, without ``Bearer``) and return its claims.

        Checks the signature against the issuer's JWKS (RS*, PS*, ES* only), ``iss``, ``aud`` when
        an audience is configured, ``exp`` (required), ``nbf`` and ``iat`` with the leeway, and a
        non-empty string ``sub``. Raises InvalidToken (401) naming the reason, or
        IdentityProviderUnavailable (503) when the keys cannot be fetched.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            shown = alg if isinstance(alg, str) and len(alg) <= 16 else "?"
            raise InvalidToken(f"algorithm {shown!r} is not accepted")
        key = self._signing_key(kid).for_algorithm(alg)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(_reason(exc)) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("claim 'sub' must be a non-empty string")
        return claims

    # -- keys --------------------------------------------------------------------------------

    def _signing_key(self, kid: str | None) -> _SigningKey:
        keys = self._keys
        if keys is None or self._clock() - keys.fetched_at >= self.cache_seconds:
            keys = self._refresh(stale_ok=True)
        found = keys.find(kid)
        if found is None:
            # An unknown kid usually means the issuer rotated its key since we fetched.
            keys = self._refresh(stale_ok=False)
            found = keys.find(kid)
        if found is None:
            raise InvalidToken("unknown signing key")
        return found

    def _refresh(self, *, stale_ok: bool) -> _KeySet:
        """Fetch the JWKS unless another thread just did or the last attempt was too recent.

        ``stale_ok``: on failure keep serving cached keys (the cache merely expired); otherwise (an
        unknown kid) a failed fetch means the token cannot be checked and is reported as such.
        """
        with self._lock:
            now = self._clock()
            keys = self._keys
            if keys is not None and stale_ok and now - keys.fetched_at < self.cache_seconds:
                return keys  # refreshed by another thread while we waited
            if self._last_attempt is not None and now - self._last_attempt < self.min_refetch_seconds:
                # After a failed attempt only a stale-tolerant caller gets the cached keys: a token
                # with an unknown kid cannot be checked while the issuer is down.
                if keys is not None and (stale_ok or self._last_failure is None):
                    return keys
                # Report the last failure again rather than retry on every request.
                raise self._unavailable(self._last_failure or "the last attempt to fetch its keys failed")
            self._last_attempt = now
            try:
                self._keys = keys = _KeySet(self._fetch_keys(), now)
                self._last_failure = None
                return keys
            except IdentityProviderUnavailable as exc:
                self._last_failure = exc.reason
                if keys is None or not stale_ok:
                    raise
                _logger.warning("OIDC key refresh failed; keeping the cached keys", extra={"reason": exc.reason})
                return keys

    def _fetch_keys(self) -> tuple[_SigningKey, ...]:
        jwks_url = self._jwks_url or self._discover_jwks_url()
        try:
            document = self._get_json(jwks_url)
            return self._parse_jwks(document)
        except IdentityProviderUnavailable:
            if self._configured_jwks_url is None:
                self._jwks_url = None  # rediscover next time: the issuer may have moved its JWKS
            raise

    def _discover_jwks_url(self) -> str:
        document = self._get_json(self.issuer.rstrip("/") + DISCOVERY_PATH)
        if not isinstance(document, dict):
            raise self._unavailable("the discovery document is not a JSON object")
        # OpenID Connect Discovery 1.0, section 4.3: the document must name exactly this issuer.
        if document.get("issuer") != self.issuer:
            raise self._unavailable(f"the discovery document names issuer {str(document.get('issuer'))[:200]!r}")
        jwks_url = document.get("jwks_uri")
        if not isinstance(jwks_url, str):
            raise self._unavailable("the discovery document has no jwks_uri")
        if problem := url_problem(jwks_url):
            raise self._unavailable(f"jwks_uri {jwks_url[:200]!r} {problem}")
        self._jwks_url = jwks_url
        return jwks_url

    def _parse_jwks(self, document: Any) -> tuple[_SigningKey, ...]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise self._unavailable("the JWKS is not an object with a 'keys' list")
        keys: list[_SigningKey] = []
        for jwk in document["keys"]:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC"):
                continue
            alg = jwk.get("alg")
            if alg is not None and alg not in ALLOWED_ALGORITHMS:
                continue
            kid = jwk.get("kid")
            if (kid is not None and not isinstance(kid, str)) or any(key.kid == kid for key in keys):
                continue
            try:
                jwt.PyJWK(jwk)  # refuse keys whose numbers do not parse now, not at the first token
            except jwt.PyJWTError:
                continue
            keys.append(_SigningKey(kid=kid, jwk=jwk, alg=alg))
        if not keys:
            raise self._unavailable("the JWKS has no usable signing keys")
        return tuple(keys)

    def _get_json(self, url: str) -> Any:
        try:
            with self._http.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise self._unavailable(f"{url} answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise self._unavailable(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
        except httpx.TimeoutException:
            raise self._unavailable(f"{url} timed out") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{url} failed ({type(exc).__name__})") from None
        try:
            return json.loads(body)
        except ValueError:
            raise self._unavailable(f"{url} did not answer JSON") from None

    def _unavailable(self, reason: str) -> IdentityProviderUnavailable:
        return IdentityProviderUnavailable(self.issuer, reason)


def _reason(exc: jwt.PyJWTError) -> str:
    """A reason for the caller, from PyJWT's exception; PyJWT's messages never contain the token,
    but ours are fixed phrases so the vocabulary stays ours."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token is not yet valid"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim!r}"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not accepted"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "claim 'iat' is not a number"
    if isinstance(exc, jwt.exceptions.InvalidSubjectError):
        return "claim 'sub' must be a string"
    if isinstance(exc, jwt.exceptions.InvalidJTIError):
        return "claim 'jti' must be a string"
    if isinstance(exc, jwt.DecodeError):
        return "malformed token"
    return "invalid token"
