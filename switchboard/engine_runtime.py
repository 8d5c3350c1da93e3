"""Building the engine's per-process and per-run dependencies from settings (CLI and API share this)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from engine.http import HttpClient

    from switchboard.settings import Settings


def operator_hosts(urls: Iterable[str]) -> tuple[str, ...]:
    """Hosts of URLs an operator typed on the command line (``--base-url``).

    The SSRF guard keeps connectors and agents away from private addresses; a
    sandbox URL the operator names explicitly is their decision, so those
    hosts join the allow-list for that command only.
    """
    hosts = []
    for url in urls:
        host = urlsplit(url).hostname
        if host:
            hosts.append(host)
    return tuple(dict.fromkeys(hosts))


def build_http_client(settings: "Settings", *, extra_allow: Iterable[str] = ()) -> "HttpClient":
    """The process's one :class:`engine.http.HttpClient`, configured from settings."""
    from engine.http import EgressPolicy, HttpClient, Timeouts

    allow = tuple(dict.fromkeys([*settings.egress_allow, *extra_allow]))
    timeouts = Timeouts(connect=settings.http_connect_timeout, total=settings.http_timeout)
    return HttpClient(egress=EgressPolicy(allow=allow), timeouts=timeouts)


def _placeholders(connector: Any) -> dict[str, Any]:
    from engine.auth import placeholder_credentials

    values = placeholder_credentials(connector.auth)
    for action in connector.actions.values():
        if action.auth is not None:
            values = {**placeholder_credentials(action.auth), **values}
    return values


def build_executor(
    connectors: Mapping[str, Any],
    http: "HttpClient",
    *,
    credentials: Mapping[str, Mapping[str, Any]] | None,
    base_urls: Mapping[str, str],
    trace_bodies: bool = False,
):
    """An :class:`engine.actions.ActionExecutor` with static credentials.

    Connectors without credentials get placeholders of the right shape, so a
    sandbox (which checks presence, not value) can be called without secrets.
    """
    from engine.actions import ActionExecutor
    from engine.auth import Authenticator, OAuth2Client, StaticCredentials

    values = {cid: dict((credentials or {}).get(cid) or _placeholders(spec)) for cid, spec in connectors.items()}
    auth = Authenticator(StaticCredentials(values), OAuth2Client(http))
    return ActionExecutor(connectors, http=http, auth=auth, base_urls=base_urls, trace_bodies=trace_bodies)
