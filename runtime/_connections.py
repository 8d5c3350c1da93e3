"""Connections as use cases: testing one with a real authenticated call, and finishing an OAuth 2.0
authorization when the provider sends the browser back. Connecting and reading credentials live in
``runtime._credentials``; this module composes them with the engine (:func:`build_engine`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread

import store
from engine.auth import OAuth2Client
from engine.errors import EngineError, OAuthError, ReauthorizationRequired
from engine.specs import ConnectorSpec
from runtime._access import Principal
from runtime._credentials import (
    ConnectionCredentials,
    Connector,
    OAuthSetup,
    connector_for_connections,
    credentials_for_connection,
    oauth_setup,
)
from runtime._engine import build_engine
from runtime._rate_limits import SharedRateLimits
from runtime._runs import Transactions

if TYPE_CHECKING:
    from runtime._platform import Platform

TEST_ACTION = "test"
MAX_DETAIL = 300


def probe_action(spec: ConnectorSpec) -> str | None:
    """The action a connection test calls: the connector's ``test`` action, else its first GET
    action that needs no input; None when it has neither."""
    if TEST_ACTION in spec.actions:
        return TEST_ACTION
    for name, action in spec.actions.items():
        if action.method == "GET" and not action.input.get("required") and not action.path_placeholders():
            return name
    return None


def _excerpt(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


@dataclass
class ConnectionTest:
    """The outcome of a connection test: whether the provider accepted the call, its status, a
    short detail, the action called and the connection as it is afterwards."""

    ok: bool
    status: int | None
    detail: str
    action: str
    connection: dict[str, Any]


@dataclass
class _Probe:
    ok: bool = False
    status: int | None = None
    detail: str = ""
    mark: tuple[str, str | None] | None = None  # the status (and last_error) the outcome sets


@dataclass(frozen=True)
class CallbackResult:
    """A finished OAuth callback: the connection now ``connected`` and where the browser goes next."""

    connection_id: str
    return_to: str | None


class ConnectionService:
    """Connection use cases over one :class:`~runtime.Platform`."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def test(self, principal: Principal, connection_id: str, *, transactions: Transactions | None = None
                   ) -> ConnectionTest:
        """Make one real authenticated call with a connection (see :func:`probe_action`). A 401 or 403
        marks it ``needs_reconnect``; a success marks a ``needs_reconnect`` one ``connected`` again;
        OAuth tokens expiring soon are refreshed first (``invalid_grant`` marks it too). Needs
        ``connections:write``. Raises ``NotFound``, ``Conflict`` (pending or disconnected),
        ``InvalidInput`` (no action to test with). ``transactions`` replaces where its transactions
        open (default: bound to the customer the principal names, whatever its credentials)."""
        principal.require("connections", "write")
        platform, org_id = self.platform, principal.org_id
        steps = transactions or Transactions(
            open=lambda p: platform.db.tenant(p.org_id, p.customer_id), step=anyio.to_thread.run_sync
        )

        def tx() -> Any:
            return steps.open(principal)

        def prepare() -> tuple[dict[str, Any], Connector, str]:
            with tx() as t:
                row = store.Connections(t).get(org_id, connection_id)
                ref = connector_for_connections(t, org_id, row["connector_id"])
                action = probe_action(ref.spec)
                if action is None:
                    raise store.InvalidInput(
                        "connection", "connector",
                        f"connector {ref.key} has no action to test with: name one 'test' or add a GET action without required input",
                    )
                return row, ref, action

        row, ref, action = await steps.step(prepare)
        try:
            values = await credentials_for_connection(
                platform.db, org_id, connection_id, customer_id=principal.customer_id, encryptor=platform.encryptor,
                http=platform.http, clock=platform.clock,
            )
        except store.ConnectionNeedsReconnect as exc:  # marked and committed already
            probe = _Probe(detail=f"the connection needs to be reconnected: {exc.reason}")
        else:
            # Tokens the engine renews after a 401 are stored on the connection as they are issued.
            provider = ConnectionCredentials(
                platform.db, org_id, principal.customer_id, platform.encryptor, {ref.spec.id: values},
                {ref.spec.id: connection_id},
            )
            probe = await self._probe(row, ref, action, provider)

        def record() -> dict[str, Any]:
            with tx() as t:
                repo = store.Connections(t)
                if probe.mark is not None:
                    repo.mark(org_id, connection_id, *probe.mark)
                return repo.get(org_id, connection_id)

        connection = await steps.step(record)
        return ConnectionTest(probe.ok, probe.status, probe.detail, action, connection)

    async def _probe(self, row: dict[str, Any], ref: Connector, action: str, provider: ConnectionCredentials) -> _Probe:
        http, base_urls = self.platform.http, None
        if row.get("target") == "sandbox":
            route = await self.platform.sandboxes.route(row["org_id"], [ref.spec.id])
            http, base_urls = route.http, route.base_urls
        engine = build_engine(
            {ref.spec.id: ref.spec}, http, credentials=provider, clock=self.platform.clock, base_urls=base_urls,
            connection_scope=f"{row['org_id']}/{row['customer_id']}",
            rate_store=SharedRateLimits.of(self.platform, row["org_id"]),
        )
        probe = _Probe()
        try:
            response = await engine.executor.call(ref.spec.id, action, {}, paginate_pages=False, raise_for_status=False)
        except ReauthorizationRequired as exc:
            probe.detail = f"the connection needs to be reconnected: {exc.reason}"
            probe.mark = ("needs_reconnect", exc.reason)
        except EngineError as exc:
            probe.detail = str(exc)
        else:
            probe.ok, probe.status = response.ok, response.status
            probe.detail = f"{action} answered HTTP {response.status}" + ("" if response.ok else f": {_excerpt(response.body)}")
            if response.status in (401, 403):
                probe.mark = ("needs_reconnect", f"test call {action} was refused with HTTP {response.status}")
            elif response.ok and (row["status"] != "connected" or row["last_error"]):
                probe.mark = ("connected", None)
        return probe

    async def oauth_callback(
        self, state: str, *, code: str | None, error: str | None, error_description: str | None
    ) -> CallbackResult:
        """Finish an OAuth 2.0 authorization: consume the one-time ``state``, exchange ``code`` for
        tokens (PKCE), store them encrypted and mark the connection ``connected``; every outcome is
        audited. Raises ``OAuthStateInvalid`` (unknown, reused or expired state) and
        ``OAuthCallbackFailed`` (a provider ``error`` or a refused exchange: the connection is left
        ``disconnected`` with ``last_error``)."""
        platform = self.platform
        org_id = store.state_org(state)
        if org_id is None:
            raise store.OAuthStateInvalid("it is missing or not a state this platform issued")
        now = platform.clock()

        def fail(tx: store.Tx, taken: dict[str, Any], kind: str, reason: str, connector: str | None,
                 problem: Any = store.OAuthCallbackFailed) -> None:
            # ``problem``: the error class the browser gets, for the audit entry's code and status.
            store.Connections(tx).mark(org_id, taken["connection_id"], "disconnected",
                                       f"OAuth authorization failed ({kind}): {reason}")
            _audit(tx, org_id, taken, "error", problem.code, problem.http_status, connector)

        def begin() -> tuple[dict[str, Any] | None, OAuthSetup | None, str | None]:
            with platform.db.tenant(org_id) as tx:
                taken = store.OAuthStates(tx).consume(org_id, state, platform.encryptor)
                if taken is None:
                    return None, None, "it is unknown or was already used"
                if taken["expires_at"] <= now:
                    fail(tx, taken, "expired", "the authorization was not completed in time; start again", None,
                         store.OAuthStateInvalid)
                    return None, None, "the authorization expired; start again"
                if error or not code:
                    kind = error or "missing_code"
                    fail(tx, taken, kind, error_description or f"the provider answered {kind}", None)
                    return taken, None, kind
                try:
                    connection = store.Connections(tx).get(org_id, taken["connection_id"])
                    ref = connector_for_connections(tx, org_id, connection["connector_id"])
                    return taken, oauth_setup(tx, org_id, ref, platform.encryptor), None
                except store.ResourceError as exc:
                    fail(tx, taken, exc.code, str(exc), None)
                    return taken, None, exc.code

        taken, setup, refused = await anyio.to_thread.run_sync(begin)
        if taken is None:
            raise store.OAuthStateInvalid(refused or "it is unknown")
        if setup is None:
            raise store.OAuthCallbackFailed(taken["connection_id"], refused or "error",
                                            error_description or "the authorization was refused")
        ref = setup.connector
        client = OAuth2Client(platform.http, clock=lambda: platform.clock().timestamp())
        try:
            tokens = await client.exchange_code(
                setup.auth, client_id=setup.client_id, client_secret=setup.client_secret, code=code or "",
                redirect_uri=taken["redirect_uri"], code_verifier=taken["code_verifier"] if setup.auth.pkce else None,
            )
        except EngineError as exc:
            refused = exc
            kind = exc.error if isinstance(exc, OAuthError) else exc.code

            def failed() -> None:
                with platform.db.tenant(org_id) as tx:
                    fail(tx, taken, kind, str(refused), ref.key,
                         store.OAuthCallbackFailed if isinstance(refused, OAuthError) else type(refused))

            await anyio.to_thread.run_sync(failed)
            if isinstance(exc, OAuthError):
                raise store.OAuthCallbackFailed(taken["connection_id"], exc.error, exc.description or str(exc)) from None
            raise

        def connected() -> None:
            with platform.db.tenant(org_id) as tx:
                store.Connections(tx).save_tokens(org_id, taken["connection_id"], tokens.to_credentials(), platform.encryptor)
                _audit(tx, org_id, taken, "success", None, 303 if taken["return_to"] else 200, ref.key)

        await anyio.to_thread.run_sync(connected)
        return CallbackResult(taken["connection_id"], taken["return_to"])


def _audit(tx: store.Tx, org_id: str, state: dict[str, Any], outcome: str, code: str | None, status: int,
           connector: str | None) -> None:
    store.AuditLog(tx).record(
        org_id, actor_type="system", actor_id="oauth_callback", action="connection.oauth_callback",
        resource_type="connection", resource_id=state["connection_id"], customer_id=state["customer_id"],
        outcome=outcome, error_code=code, status=status, detail={"connector": connector} if connector else {},
    )
