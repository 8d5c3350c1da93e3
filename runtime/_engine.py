"""The one way the platform assembles the engine: for real runs, dry runs, connection tests and
the CLI's local runs.

:func:`build_engine` composes an ``ActionExecutor`` (over the process's guarded HTTP client and an
``Authenticator`` over a credential provider), wraps it for a dry run (``DryRunHttp``: GETs are
sent, other requests answered synthetically and marked ``sent: false``) and returns the
``Dependencies`` the interpreter runs with. Nothing else in the platform builds an executor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.actions import ActionExecutor
from engine.auth import Authenticator, CredentialProvider, OAuth2Client, StaticCredentials, placeholder_credentials
from engine.http import HttpClient, RateStore
from engine.specs import ConnectorSpec, WorkflowSpec
from engine.workflow import ActionInvoker, Dependencies, DryRunHttp, DryRunInvoker, StaticSecrets, WorkflowLookup


def placeholders(connector: ConnectorSpec) -> dict[str, Any]:
    """Credentials of the right shape and no value, for dry runs and sandboxes (which check
    presence, not value) of connectors nobody connected."""
    values = placeholder_credentials(connector.auth)
    for action in connector.actions.values():
        if action.auth is not None:
            values = {**placeholder_credentials(action.auth), **values}
    return values


def static_credentials(
    connectors: Mapping[str, ConnectorSpec], given: Mapping[str, Mapping[str, Any]] | None = None
) -> StaticCredentials:
    """In-memory credentials: ``given`` by connector id, placeholders for the others."""
    given = given or {}
    return StaticCredentials({cid: dict(given.get(cid) or placeholders(spec)) for cid, spec in connectors.items()})


@dataclass(frozen=True)
class Engine:
    """An assembled engine: the executor (for single calls), the invoker runs use (the executor, or
    its dry-run wrapper) and the interpreter's dependencies."""

    executor: ActionExecutor
    invoker: ActionInvoker
    deps: Dependencies
    dry_run: bool

    def traces(self, result: Any) -> list[dict[str, Any]]:
        """A run result's traces as JSON; a dry run's marked ``sent`` per attempt."""
        if self.dry_run:
            assert isinstance(self.invoker, DryRunInvoker)
            return self.invoker.annotate(result.traces)
        return [t.to_dict() for t in result.traces]


def build_engine(
    connectors: Mapping[str, ConnectorSpec],
    http: HttpClient,
    *,
    credentials: CredentialProvider,
    clock: Callable[[], datetime] | None = None,
    dry_run: bool = False,
    trace_bodies: bool | None = None,
    base_urls: Mapping[str, str] | None = None,
    connection_scope: str | None = None,
    secrets: Mapping[str, str] | None = None,
    workflows: WorkflowLookup | None = None,
    rate_store: RateStore | None = None,
    **seams: Any,
) -> Engine:
    """Assemble the engine for ``connectors``.

    ``credentials`` hands out (and keeps renewed) connection credentials; ``clock`` is what OAuth
    refreshes read the time from; ``connection_scope`` qualifies per-connection rate limits (the
    platform passes ``org/customer``: customer ids repeat across organizations) and ``rate_store``
    keeps declared limits' schedules where every process shares them (the platform passes
    ``SharedRateLimits`` of the organization). ``trace_bodies``
    defaults to ``dry_run``. ``seams`` go to ``Dependencies`` as they are (an observer, a budget).
    """
    oauth = OAuth2Client(http, clock=lambda: clock().timestamp()) if clock is not None else OAuth2Client(http)
    executor = ActionExecutor(
        connectors, http=DryRunHttp(http) if dry_run else http, auth=Authenticator(credentials, oauth),
        base_urls=base_urls, trace_bodies=dry_run if trace_bodies is None else trace_bodies,
        connection_scope=connection_scope, rate_store=rate_store,
    )
    invoker: ActionInvoker = DryRunInvoker(executor, connectors) if dry_run else executor
    options: dict[str, Any] = {"invoker": invoker, "secrets": StaticSecrets(dict(secrets or {}))}
    if workflows is not None:
        options["workflows"] = workflows
    options.update({k: v for k, v in seams.items() if v is not None})
    return Engine(executor, invoker, Dependencies(**options), dry_run)


def lookup_in(called: Mapping[tuple[str, int | None], WorkflowSpec]) -> WorkflowLookup:
    """A workflow lookup over the specs a plan read for its call steps."""

    def lookup(key: str, version: int | None) -> WorkflowSpec | None:
        return called.get((key, version))

    return lookup


def build_executor(
    connectors: Mapping[str, ConnectorSpec],
    http: HttpClient,
    *,
    credentials: Mapping[str, Mapping[str, Any]] | None = None,
    base_urls: Mapping[str, str] | None = None,
    trace_bodies: bool = False,
) -> ActionExecutor:
    """:func:`build_engine`'s executor with static credentials (placeholders for connectors given
    none): for local runs against sandboxes, connector checks and benches."""
    engine = build_engine(connectors, http, credentials=static_credentials(connectors, credentials),
                          base_urls=base_urls, trace_bodies=trace_bodies)
    return engine.executor
