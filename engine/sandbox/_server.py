"""Running a sandbox app with uvicorn: blocking (the CLI) or in a background thread (tests, agent tools)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import uvicorn

from ..errors import SandboxStartError
from ..openapi import OpenAPIDocument
from ._app import create_sandbox_app
from ._sandbox import Sandbox

_START_TIMEOUT_S = 10.0


def serve_sandbox(
    source: OpenAPIDocument | str | Path,
    *,
    host: str = "127.0.0.1",
    port: int,
    seed_file: str | Path | None = None,
    log_level: str = "info",
) -> None:
    """Serve a sandbox of ``source`` on ``host``:``port`` until interrupted (blocking).

    Raises:
        OpenAPIImportError: the document cannot be loaded.
        SandboxSetupError: the seed file does not fit the document.
    """
    app = create_sandbox_app(source, seed=seed_file)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


class SandboxServer:
    """A sandbox served by uvicorn in a background thread, on an ephemeral port by default.

    ``base_url`` is ``http://HOST:PORT`` plus the document's base path (the path
    of its first server URL): the URL a connector's ``base_url`` is replaced with.
    ``admin_url`` is ``http://HOST:PORT/__sandbox``. Use as a context manager, or
    call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        source: OpenAPIDocument | str | Path | Sandbox,
        *,
        seed: dict | str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
    ):
        self.sandbox = source if isinstance(source, Sandbox) else Sandbox(source, seed=seed, clock=clock)
        self.app = create_sandbox_app(self.sandbox)
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.sandbox.base_path

    @property
    def admin_url(self) -> str:
        return self.origin + "/__sandbox"

    def start(self) -> "SandboxServer":
        """Bind, start serving in a daemon thread and return once requests are accepted.

        Raises:
            SandboxStartError: the port cannot be bound or the server does not come up.
        """
        if self._thread is not None:
            return self
        try:
            # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (no Nagle stalls).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # accepted connections inherit this; without it Nagle meets delayed ACK and every reply waits ~40 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            raise SandboxStartError(self.host, self.port, exc.strerror or str(exc)) from None
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                         name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SandboxStartError(self.host, self.port, "uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
