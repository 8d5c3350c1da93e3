"""A local OIDC issuer for tests: real key pairs, discovery and JWKS over real HTTP on 127.0.0.1.

    with OidcTestIssuer() as idp:
        token = idp.issue("user-1", org_id="org_1", email="ada@example.com")
        OidcVerifier(idp.issuer, idp.audience).verify(token)

The issuer URL is the server's base URL. Test switches: ``reset()`` gives a running issuer a
fresh state (one new kid, serving, no recorded requests) so a module can share one server;
``rotate()`` adds a new current key (new ``kid``); ``retire(kid)`` drops one from the JWKS;
``publish_alg = False`` leaves ``alg`` out of the JWKs; ``fail_with(status)`` makes discovery and
JWKS answer an error; ``requests`` lists the paths served (to count fetches).
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from support.servers import serve_app

DEFAULT_AUDIENCE = "switchboard-console"
JWKS_PATH = "/jwks.json"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def new_private_key(alg: str = "RS256") -> PrivateKey:
    """A fresh private key suitable for ``alg`` (RS*/PS*: RSA 2048, ES*: the matching curve)."""
    if alg in _CURVES:
        return ec.generate_private_key(_CURVES[alg]())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    """The public JWK of ``key`` as an issuer publishes it (``kid``, ``alg``, ``use: sig``)."""
    algorithm = jwt.get_algorithm_by_name(alg)
    jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.pop("key_ops", None)  # real issuers rarely publish it
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


class OidcTestIssuer:
    """An OIDC issuer served on 127.0.0.1 for the ``with`` block (see the module docstring)."""

    def __init__(self, *, alg: str = "RS256", audience: str = DEFAULT_AUDIENCE) -> None:
        self.audience = audience
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[PrivateKey, str]] = {}  # kid -> (private key, alg)
        self._current: str = ""
        self._status: int | None = None
        self.publish_alg = True  # False: JWKs without "alg", as some providers publish them
        self._stack = ExitStack()
        self.issuer = ""
        self._first_key = new_private_key(alg)
        self._first_alg = alg
        self.reset()

    def __enter__(self) -> OidcTestIssuer:
        app = Starlette(routes=[
            Route("/.well-known/openid-configuration", self._discovery),
            Route(JWKS_PATH, self._jwks),
        ])
        self.issuer = self._stack.enter_context(serve_app(app))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    @property
    def jwks_url(self) -> str:
        return self.issuer + JWKS_PATH

    @property
    def current_kid(self) -> str:
        return self._current

    def count(self, path: str) -> int:
        """How many requests reached ``path``."""
        with self._lock:
            return self.requests.count(path)

    # -- test switches -----------------------------------------------------------------------

    def reset(self) -> None:
        """Back to one signing key (the first key under a new kid), serving, no requests recorded."""
        with self._lock:
            self._keys.clear()
            self._status = None
            self.publish_alg = True
            self.requests.clear()
        # Reusing the first key keeps resets cheap (RSA generation is slow); the new kid is what
        # makes it a key no earlier verifier has cached.
        self.rotate(self._first_alg, key=self._first_key)

    def rotate(self, alg: str = "RS256", *, key: PrivateKey | None = None) -> str:
        """Add a new key for ``alg`` (``key``, or a fresh one), make it the signing key, and
        return its kid. Old keys stay published until ``retire``."""
        kid = f"key-{uuid.uuid4().hex[:8]}"
        key = key or new_private_key(alg)
        with self._lock:
            self._keys[kid] = (key, alg)
            self._current = kid
        return kid

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid``."""
        with self._lock:
            del self._keys[kid]

    def fail_with(self, status: int | None) -> None:
        """Answer discovery and JWKS requests with ``status`` (None: serve them again)."""
        with self._lock:
            self._status = status

    def public_key(self, kid: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The public half of key ``kid``."""
        with self._lock:
            return self._keys[kid][0].public_key()

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = [public_jwk(key, kid, alg) for kid, (key, alg) in self._keys.items()]
            if not self.publish_alg:
                keys = [{name: value for name, value in jwk.items() if name != "alg"} for jwk in keys]
            return {"keys": keys}

    # -- tokens ------------------------------------------------------------------------------

    def issue(
        self,
        sub: str | None,
        *,
        org_id: str | None = None,
        email: str | None = None,
        expires_in: int = 300,
        audience: str | list[str] | None = DEFAULT_AUDIENCE,
        kid: str | None = None,
        extra: dict[str, Any] | None = None,
        issuer: str | None = None,
        signing_key: PrivateKey | None = None,
        alg: str | None = None,
        include_kid: bool = True,
    ) -> str:
        """A signed JWT: ``iss`` (this issuer unless ``issuer``), ``sub`` (omitted when None),
        ``aud`` (omitted when None), ``iat`` now, ``exp`` now + ``expires_in``, ``org_id`` and
        ``email`` when given, then ``extra`` (which may override any claim, or drop it with None).

        Signed with the key ``kid`` (default: the current key) and its algorithm, unless
        ``signing_key`` (and ``alg``) name another key while the header keeps ``kid``.
        """
        now = int(time.time())
        claims: dict[str, Any] = {"iss": issuer or self.issuer, "iat": now, "exp": now + expires_in}
        if sub is not None:
            claims["sub"] = sub
        if audience is not None:
            claims["aud"] = audience
        if org_id is not None:
            claims["org_id"] = org_id
        if email is not None:
            claims["email"] = email
        claims.update(extra or {})
        claims = {name: value for name, value in claims.items() if value is not None}
        kid = kid or self._current
        with self._lock:
            own_key, own_alg = self._keys.get(kid, (None, "RS256"))
        key = signing_key or own_key
        if key is None:
            raise KeyError(f"no key {kid!r}; pass signing_key")
        headers = {"kid": kid} if include_kid else None
        return jwt.encode(claims, key, algorithm=alg or own_alg, headers=headers)

    # -- endpoints ---------------------------------------------------------------------------

    def _record(self, request: Request) -> Response | None:
        with self._lock:
            self.requests.append(request.url.path)
            status = self._status
        return PlainTextResponse("identity provider failure", status_code=status) if status else None

    async def _discovery(self, request: Request) -> Response:
        if failure := self._record(request):
            return failure
        return JSONResponse({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({alg for _, alg in self._keys.values()}),
        })

    async def _jwks(self, request: Request) -> Response:
        return self._record(request) or JSONResponse(self.jwks())
