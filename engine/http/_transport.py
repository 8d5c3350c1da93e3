"""An httpx transport whose connections go only to addresses the egress guard vetted.

httpcore asks its network backend to ``connect_tcp(host, port)``. ``GuardedBackend``
resolves the host itself (once), vets every address and opens the socket to a vetted IP,
so there is no second DNS lookup between check and connect (no DNS-rebinding window).
TLS is unaffected: httpcore starts it on the returned stream with the URL's hostname as
SNI and for certificate verification. A pooled connection is vetted when it is opened and
reused afterwards, so keep-alive requests pay nothing for the guard.
"""

from __future__ import annotations

import ssl
import typing

import anyio
import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.auto import AutoBackend

from ._egress import EgressGuard

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)


class GuardedBackend(AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses ``guard`` permits."""

    def __init__(self, guard: EgressGuard, inner: AsyncNetworkBackend | None = None):
        self._guard = guard
        self._inner = inner or AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._guard.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        except (OSError, ValueError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        errors: list[str] = []
        last: Exception = httpcore.ConnectError(f"{host!r} resolved to no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                errors.append(f"{address}: {exc or type(exc).__name__}")
                last = exc
        raise type(last)(f"cannot connect to {host!r} port {port} ({'; '.join(errors)})") from last

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):  # noqa: ANN001
        raise httpcore.ConnectError("unix sockets are not an allowed egress destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool uses a ``GuardedBackend``.

    No proxies: a proxy would make the connection, out of the guard's sight.
    """

    def __init__(
        self,
        guard: EgressGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        http2: bool = False,
    ) -> None:
        # Not calling super().__init__: it builds a pool we would throw away. The base
        # class needs nothing but ``_pool`` from its constructor.
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=GuardedBackend(guard),
        )
