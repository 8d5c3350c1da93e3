"""The embedded Postgres (pgserver) used when no ``DATABASE_URL`` is configured.

pgserver runs a real PostgreSQL 16 with pgvector from a wheel, listening only on a Unix socket
inside its data directory, so several instances on different directories run side by side
without port clashes. Processes share one instance per directory: pgserver keeps a list of the
processes holding it in ``<data_dir>/.handle_pids.json`` and the last one to let go stops it.
When run as root, pgserver creates a system user ``pgserver`` to own the cluster and opens
read/traverse permissions on the directory's parents.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.errors import EmbeddedPostgresError

_HANDLES_FILE = ".handle_pids.json"


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root, containers); its /tmp fallback is fine.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

    return pgserver


@dataclass
class EmbeddedPostgres:
    """A handle on a running embedded server. ``conninfo`` is a libpq URI for its ``postgres`` database."""

    data_dir: Path
    conninfo: str
    keep_running: bool
    _server: Any = field(repr=False)

    def stop(self) -> None:
        """Release this process's handle; the server stops when no other process holds it.

        With ``keep_running`` the server is left running for later commands.
        """
        self._server.cleanup()


def _prune_dead_handles(data_dir: Path, psutil: Any) -> None:
    # A process killed without running its atexit hooks leaves its pid in the handle list, and
    # pgserver would then never stop the server. Forget pids that no longer exist.
    handles = data_dir / _HANDLES_FILE
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _log_tail(data_dir: Path, lines: int = 20) -> str:
    try:
        text = (data_dir / "log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def start_embedded(data_dir: Path | str, *, keep_running: bool = False) -> EmbeddedPostgres:
    """Start (or join) the embedded Postgres whose cluster lives in ``data_dir``; create it if new.

    ``data_dir`` and its parents are created as needed. With ``keep_running`` the server outlives
    this process; otherwise it stops when the last process using it exits or calls ``stop()``.
    Raises ``EmbeddedPostgresError`` with the server log's tail when it cannot start.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedPostgresError(data_dir, f"cannot create its parent directory: {exc}") from exc
    pgserver = _pgserver()
    import psutil  # a pgserver dependency

    try:
        with pgserver.PostgresServer._lock:
            _prune_dead_handles(data_dir, psutil)
        server = pgserver.get_server(data_dir, cleanup_mode=None if keep_running else "stop")
        conninfo = server.get_uri()
    except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
        reason = str(exc) or type(exc).__name__
        tail = _log_tail(data_dir)
        raise EmbeddedPostgresError(data_dir, f"{reason}\n{tail}" if tail else reason) from exc
    return EmbeddedPostgres(data_dir=data_dir, conninfo=conninfo, keep_running=keep_running, _server=server)


def resolve_conninfo(database_url: str | None, data_dir: Path | str, *, keep_running: bool = False) -> tuple[str, EmbeddedPostgres | None]:
    """Return the conninfo to use and the embedded server started for it (None when ``database_url`` is set).

    ``data_dir`` is the embedded cluster's directory, used only when ``database_url`` is None.
    Raises ``EmbeddedPostgresError`` as ``start_embedded`` does.
    """
    if database_url:
        return database_url, None
    embedded = start_embedded(data_dir, keep_running=keep_running)
    return embedded.conninfo, embedded
