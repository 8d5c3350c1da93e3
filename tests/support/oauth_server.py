"""A real OAuth 2.0 authorization server for tests (authlib's Flask integration).

Grants: authorization code with PKCE (S256), refresh token (rotating by default), client
credentials. Storage is in memory. A test user approves every authorization request, so
``GET /authorize?...`` answers 302 to the redirect URI with ``code`` and ``state``.
``GET /api/me`` is a resource protected by the bearer token.

Test switches (methods, called from the test's thread):
``expires_in`` (token lifetime), ``revoke_refresh_token``, ``revoke_access_token``,
``fail_next_token_requests(n, status)``, ``answer_next_token_requests(n, status, body)``,
``hold_next_token_request()`` (the next ``/token`` request waits until the test releases it);
``token_requests`` lists the grant type of every request that reached ``/token``.

    with OAuthTestServer() as server:
        server.add_client("app", "s3cret", redirect_uris=["http://127.0.0.1/cb"])
        ...
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

TEST_USER = {"id": "user-1", "email": "ada@example.com", "name": "Ada Lovelace"}
SCOPES = ("contacts.read", "contacts.write", "offline_access")
HOLD_LIMIT = 30.0  # seconds a held token request waits at most


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    scope: str = " ".join(SCOPES)
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials")
    token_endpoint_auth_method: str = "client_secret_basic"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: dict
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):
    client_id: str
    access_token: str
    refresh_token: str | None
    scope: str
    expires_in: int
    user: dict | None
    issued_at: float = field(default_factory=time.time)
    access_revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return self.issued_at + self.expires_in < time.time()

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> dict | None:
        return self.user

    def get_client(self) -> Any:
        return None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class OAuthTestServer:
    """The server, run by werkzeug in a thread on 127.0.0.1 (an ephemeral port).

    ``rotate_refresh_tokens``: each refresh issues a new refresh token and revokes the
    old one (False: the old one stays valid and none is issued). ``expires_in`` is the
    lifetime of issued access tokens (settable at any time).
    """

    def __init__(self, *, expires_in: int = 3600, rotate_refresh_tokens: bool = True):
        self.expires_in = expires_in
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: list[Token] = []
        self.token_requests: list[str] = []
        self._canned: tuple[int, tuple[str, int, dict[str, str]]] = (0, ("", 200, {}))
        self._hold: tuple[threading.Event, threading.Event] | None = None
        self._lock = threading.Lock()
        self.app = self._build_app()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def start(self) -> OAuthTestServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="oauth-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OAuthTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test switches ---------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str | None,
        *,
        redirect_uris: list[str] | None = None,
        token_endpoint_auth_method: str = "client_secret_basic",
        grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials"),
    ) -> Client:
        client = Client(
            client_id,
            client_secret,
            list(redirect_uris or []),
            token_endpoint_auth_method=token_endpoint_auth_method,
            grant_types=grant_types,
        )
        self.clients[client_id] = client
        return client

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Revoke a refresh token: a later refresh with it gets ``invalid_grant``."""
        with self._lock:
            for token in self.tokens:
                if token.refresh_token == refresh_token:
                    token.refresh_revoked = True

    def revoke_access_token(self, access_token: str) -> None:
        """Revoke an access token: ``/api/me`` answers 401 to it."""
        with self._lock:
            for token in self.tokens:
                if token.access_token == access_token:
                    token.access_revoked = True

    def fail_next_token_requests(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests to ``/token`` with ``status`` (a transient failure)."""
        self.answer_next_token_requests(count, status, "the token service is down for maintenance")

    def answer_next_token_requests(self, count: int, status: int, body: str, content_type: str = "text/plain") -> None:
        """Answer the next ``count`` requests to ``/token`` with this response instead of the real one."""
        with self._lock:
            self._canned = (count, (body, status, {"Content-Type": content_type}))

    def hold_next_token_request(self) -> tuple[threading.Event, threading.Event]:
        """Make the next request to ``/token`` wait before it is answered. Returns ``(held,
        release)``: ``held`` is set once the request waits, and it is answered (for real) once the
        test sets ``release``, or after HOLD_LIMIT seconds so a failing test cannot hang."""
        held, release = threading.Event(), threading.Event()
        with self._lock:
            self._hold = (held, release)
        return held, release

    def token(self, access_token: str) -> Token | None:
        return next((t for t in self.tokens if t.access_token == access_token), None)

    # -- the app -----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("oauth-test-server")
        app.config["OAUTH2_SCOPES_SUPPORTED"] = list(SCOPES)
        harness = self

        def query_client(client_id: str) -> Client | None:
            return harness.clients.get(client_id)

        def save_token(token: dict, req: Any) -> None:
            with harness._lock:
                harness.tokens.append(
                    Token(
                        client_id=req.client.client_id,
                        access_token=token["access_token"],
                        refresh_token=token.get("refresh_token"),
                        scope=token.get("scope", ""),
                        expires_in=token["expires_in"],
                        user=req.user,
                    )
                )

        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        server.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: generate_token(42),
                refresh_token_generator=lambda **_: generate_token(48),
                expires_generator=lambda client, grant_type: harness.expires_in,
            ),
        )

        class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

            def save_authorization_code(self, code: str, req: Any) -> AuthorizationCode:
                item = AuthorizationCode(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope or "",
                    user=req.user,
                    code_challenge=req.payload.data.get("code_challenge"),
                    code_challenge_method=req.payload.data.get("code_challenge_method"),
                )
                harness.codes[code] = item
                return item

            def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
                item = harness.codes.get(code)
                if item and item.client_id == client.client_id and time.time() - item.issued_at < 600:
                    return item
                return None

            def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
                harness.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: AuthorizationCode) -> dict:
                return authorization_code.user

        class RefreshTokenGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
            INCLUDE_NEW_REFRESH_TOKEN = self.rotate_refresh_tokens

            def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
                with harness._lock:
                    return next(
                        (t for t in harness.tokens if t.refresh_token == refresh_token and not t.refresh_revoked), None
                    )

            def authenticate_user(self, token: Token) -> dict | None:
                return token.user

            def revoke_old_credential(self, token: Token) -> None:
                with harness._lock:
                    token.access_revoked = True
                    if harness.rotate_refresh_tokens:
                        token.refresh_revoked = True

        class ClientCredentialsGrant(grants.ClientCredentialsGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True)])
        server.register_grant(RefreshTokenGrant)
        server.register_grant(ClientCredentialsGrant)

        class Validator(BearerTokenValidator):
            def authenticate_token(self, token_string: str) -> Token | None:
                return harness.token(token_string)

        require_oauth = ResourceProtector()
        require_oauth.register_token_validator(Validator())

        @app.get("/authorize")
        def authorize():  # noqa: ANN202
            try:
                grant = server.get_consent_grant(end_user=TEST_USER)
            except OAuth2Error as error:
                return jsonify(dict(error.get_body())), error.status_code
            return server.create_authorization_response(grant_user=TEST_USER, grant=grant)

        @app.post("/token")
        def issue_token():  # noqa: ANN202
            with harness._lock:
                harness.token_requests.append(request.form.get("grant_type", ""))
                count, canned = harness._canned
                if count > 0:
                    harness._canned = (count - 1, canned)
                hold, harness._hold = harness._hold, None
            if hold is not None:
                hold[0].set()
                hold[1].wait(HOLD_LIMIT)
            if count > 0:
                return canned
            return server.create_token_response()

        @app.get("/api/me")
        @require_oauth()
        def me():  # noqa: ANN202
            token = current_token
            body = dict(token.user or {"client_id": token.client_id})
            body["scope"] = token.scope
            return jsonify(body)

        return app
