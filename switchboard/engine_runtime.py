"""The process's outbound HTTP client from settings (the engine itself is assembled by
``runtime.build_engine``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
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
    return HttpClient(egress=EgressPolicy(allow=allow), timeouts=timeouts, wait_scale=settings.retry_delay_scale)
