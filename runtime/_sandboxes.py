"""Hosted sandboxes: every connector imported from an OpenAPI document gets a stateful sandbox of
its API (``engine.sandbox``), one per organization and connector, that runs, connection tests,
agents' tools and the API's own routes share.

Where things live:

* Postgres keeps what must agree between processes and survive a restart: the document the
  connector was imported from and the seed its sandbox resets to (``store.SandboxDocuments``).
* This process keeps the live records (what calls created, changed or deleted since the last
  reset), in at most ``kept`` sandboxes, least recently used dropped first. A sandbox dropped,
  or one served by another process (a worker on another machine), starts again from its seed:
  the records calls made are lost then, by design. A reset is the same everywhere.

How calls reach a sandbox: never over the network. A connection whose ``target`` is
``sandbox`` runs with its connector's base URL set to ``SANDBOX_ORIGIN/<org>/<connector>`` plus
the document's base path, and the engine's ``HttpClient`` is a view (``HttpClient.mounted``)
that sends exactly those URL prefixes to the sandbox's ASGI app in this process. The egress
guard stays as strict as it was for every other URL: no loopback or platform address is
allowed for this, and ``SANDBOX_ORIGIN`` is in the reserved ``.invalid`` domain, which resolves
nowhere if a URL of it ever reached the network.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx

import store
from engine.errors import SandboxSetupError
from engine.http import HttpClient
from engine.openapi import load_openapi
from engine.sandbox import Sandbox, create_sandbox_app
from runtime._access import Principal
from runtime.errors import SandboxSeedInvalid, SandboxUnavailable

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from runtime._platform import Platform

# Reserved by RFC 2606: a name that can never resolve, so a sandbox URL cannot leave the process.
SANDBOX_ORIGIN = "https://sandboxes.switchboard.invalid"
DEFAULT_SANDBOXES_KEPT = 32


@dataclass(frozen=True)
class HostedSandbox:
    """One organization's sandbox of one connector: the engine's ``Sandbox``, its ASGI app, and
    the checksum of the document it was built from."""

    org_id: str
    connector_id: str
    connector_key: str
    checksum: str
    sandbox: Sandbox
    app: Starlette

    @property
    def prefix(self) -> str:
        """The URL prefix runs reach this sandbox under (in-process only)."""
        return f"{SANDBOX_ORIGIN}/{self.org_id}/{self.connector_key}"

    @property
    def base_url(self) -> str:
        """The connector's base URL when it runs against this sandbox (prefix plus the document's base path)."""
        return self.prefix + self.sandbox.base_path

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that answers requests under :attr:`prefix` from this sandbox."""
        return _SandboxTransport(self.app, self.prefix)


@dataclass(frozen=True)
class SandboxRoute:
    """What a run needs to send a set of connectors' calls to their sandboxes: the HTTP client view
    and the base URL of each connector by key."""

    http: HttpClient
    base_urls: dict[str, str]


class _SandboxTransport(httpx.AsyncBaseTransport):
    """Strips the in-process prefix and hands the request to the sandbox's ASGI app."""

    def __init__(self, app: Starlette, prefix: str) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._prefix = httpx.URL(prefix).raw_path.rstrip(b"/")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = request.url.raw_path
        rest = raw[len(self._prefix):] if raw.startswith(self._prefix) else raw
        if not rest.startswith(b"/"):
            rest = b"/" + rest
        url = request.url.copy_with(raw_path=rest)
        forwarded = httpx.Request(request.method, url, headers=request.headers, stream=request.stream,
                                  extensions=request.extensions)
        return await self._asgi.handle_async_request(forwarded)


class SandboxService:
    """The organization's hosted sandboxes (one per imported connector), over one :class:`Platform`.

    Admin use cases (``state``, ``describe``, ``seed``, ``reset``) check the principal's
    permission (``connectors:read``, ``connectors:write``) and are scoped to its organization:
    another organization's connector is not found. ``route`` and ``hosted`` serve runs, tools
    and the hosted API.
    """

    def __init__(self, platform: Platform, *, kept: int = DEFAULT_SANDBOXES_KEPT) -> None:
        self.platform = platform
        self.kept = kept
        self._lock = threading.Lock()
        self._sandboxes: OrderedDict[tuple[str, str], HostedSandbox] = OrderedDict()

    # -- admin ---------------------------------------------------------------------------------

    async def state(self, principal: Principal, connector: str) -> dict[str, Any]:
        """Every record of the connector's sandbox, by collection path (``{"connector", "collections"}``)."""
        principal.require("connectors", "read")
        hosted = await self.hosted(principal.org_id, connector)
        return {"connector": hosted.connector_key, "collections": hosted.sandbox.state()}

    async def describe(self, principal: Principal, connector: str) -> dict[str, Any]:
        """The sandbox's resources and the role of each operation, with the URL runs reach it at."""
        principal.require("connectors", "read")
        hosted = await self.hosted(principal.org_id, connector)
        return {"connector": hosted.connector_key, "base_path": hosted.sandbox.base_path, **hosted.sandbox.describe()}

    async def seed(self, principal: Principal, connector: str, seed: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the seed (collection -> records, as ``engine.sandbox`` reads it) and reset the
        sandbox to it; the seed is stored, so a reset in any process returns to it.

        Raises ``SandboxSeedInvalid`` (422, ``pointer`` into ``seed``) and leaves the earlier seed
        and records as they were.
        """
        principal.require("connectors", "write")
        org_id = principal.org_id
        hosted = await self.hosted(org_id, connector)
        data = dict(seed)
        try:
            # Sandbox.load_seed stages every record before it replaces anything: a refused seed
            # leaves the live sandbox as it was.
            hosted.sandbox.load_seed(data)
        except SandboxSetupError as exc:
            raise SandboxSeedInvalid(hosted.connector_key, exc.pointer, exc.reason) from None

        def save() -> None:
            with self.platform.db.tenant(org_id) as tx:
                store.SandboxDocuments(tx).set_seed(org_id, hosted.connector_id, data)

        try:
            await anyio.to_thread.run_sync(save)
        except BaseException:
            self._forget(org_id, hosted.connector_id)  # rebuilt from the stored seed next time
            raise
        return {"connector": hosted.connector_key, "seeded": True, "collections": hosted.sandbox.state()}

    async def reset(self, principal: Principal, connector: str) -> dict[str, Any]:
        """Back to the stored seed: every record calls created, changed or deleted is undone."""
        principal.require("connectors", "write")
        org_id = principal.org_id
        hosted = await self.hosted(org_id, connector)

        def read() -> dict[str, Any]:
            with self.platform.db.tenant(org_id) as tx:
                return store.SandboxDocuments(tx).seed(org_id, hosted.connector_id)

        hosted.sandbox.load_seed(await anyio.to_thread.run_sync(read))
        return {"connector": hosted.connector_key, "reset": True, "collections": hosted.sandbox.state()}

    # -- serving -------------------------------------------------------------------------------

    async def hosted(self, org_id: str, connector: str) -> HostedSandbox:
        """The organization's sandbox of ``connector`` (key or id), built from its stored document
        and seed when this process holds none (or holds one of an older document).

        Raises ``NotFound`` (no such connector in the organization) and ``SandboxUnavailable``
        (not imported from a document).
        """
        return await anyio.to_thread.run_sync(self._hosted, org_id, connector)

    async def route(self, org_id: str, connectors: Iterable[str], http: HttpClient | None = None) -> SandboxRoute:
        """The HTTP client view and base URLs that send ``connectors``' calls (keys) to the
        organization's sandboxes; every other URL goes through ``http`` (default: the
        platform's guarded client) unchanged. Pass both to ``build_engine``."""
        base = http if http is not None else self.platform.http
        mounts: dict[str, httpx.AsyncBaseTransport] = {}
        base_urls: dict[str, str] = {}
        for key in sorted(set(connectors)):
            hosted = await self.hosted(org_id, key)
            mounts[hosted.prefix] = hosted.transport()
            base_urls[key] = hosted.base_url
        return SandboxRoute(base.mounted(mounts) if mounts else base, base_urls)

    def _forget(self, org_id: str, connector_id: str) -> None:
        with self._lock:
            self._sandboxes.pop((org_id, connector_id), None)

    def _hosted(self, org_id: str, connector: str) -> HostedSandbox:
        with self.platform.db.tenant(org_id) as tx:
            row = store.Connectors(tx).get(org_id, connector)
            documents = store.SandboxDocuments(tx)
            checksum = documents.checksum(org_id, row["id"])
            if checksum is None:
                raise SandboxUnavailable(row["key"])
            with self._lock:
                cached = self._sandboxes.get((org_id, row["id"]))
                if cached is not None and cached.checksum == checksum:
                    self._sandboxes.move_to_end((org_id, row["id"]))
                    return cached
            document, seed = documents.document(org_id, row["id"]), documents.seed(org_id, row["id"])
        loaded = load_openapi(document or {}, source_name=f"<connector {row['key']}>", keep_refs=True)
        try:
            sandbox = Sandbox(loaded, seed=seed, clock=self.platform.clock)
        except SandboxSetupError:
            # A stored seed the document no longer takes: serve the document empty rather than not at all.
            sandbox = Sandbox(loaded, clock=self.platform.clock)
        hosted = HostedSandbox(org_id, row["id"], row["key"], checksum, sandbox, create_sandbox_app(sandbox))
        with self._lock:
            current = self._sandboxes.get((org_id, row["id"]))
            if current is not None and current.checksum == checksum:
                return current  # built by another thread meanwhile: one live sandbox per connector
            self._sandboxes[(org_id, row["id"])] = hosted
            while len(self._sandboxes) > self.kept:
                self._sandboxes.popitem(last=False)
        return hosted
