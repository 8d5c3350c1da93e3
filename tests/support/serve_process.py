"""The platform API, or a durable worker, in a separate process, for tests that measure its memory
or kill it.

``python -m support.serve_process`` serves ``create_app(Settings())`` (settings from the
environment) on an ephemeral 127.0.0.1 port and prints the port on its first line of stdout.
``platform_process(...)`` starts it and yields its base URL and ``Popen``; ``worker_process(...)``
starts ``switchboard worker`` and yields its ``Popen``; ``standby_worker(...)`` starts one that
imports everything first and launches when told (a warm spare for tests that kill workers in a loop).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


@contextmanager
def platform_process(admin_conninfo: str, data_dir: Path, **settings: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start the API in a child process on the migrated database ``admin_conninfo`` with its state
    (master key) in ``data_dir``; ``settings`` are extra ``SWITCHBOARD_<NAME>`` values. Yields the
    base URL and the process once /health answers 200; stops (or reaps) it afterwards."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        "SWITCHBOARD_DATABASE_URL": admin_conninfo,
        "SWITCHBOARD_DATA": str(data_dir),
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
        **{f"SWITCHBOARD_{name.upper()}": value for name, value in settings.items()},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.serve_process"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the platform process did not start (exit {proc.wait(10)})")
        url = f"http://127.0.0.1:{int(line)}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the platform process did not become healthy")
            time.sleep(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _worker_env(conninfo: str, data_dir: Path, worker_id: str, settings: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        "SWITCHBOARD_DATABASE_URL": conninfo, "SWITCHBOARD_DATA": str(data_dir),
        "SWITCHBOARD_WORKER_ID": worker_id, "SWITCHBOARD_EGRESS_ALLOW": "127.0.0.1", "SWITCHBOARD_LOG_LEVEL": "WARNING",
        **{f"SWITCHBOARD_{name.upper()}": value for name, value in settings.items()},
    }


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


@contextmanager
def worker_process(conninfo: str, data_dir: Path, worker_id: str, **settings: str) -> Iterator[subprocess.Popen[str]]:
    """``switchboard worker`` with id ``worker_id`` in a child process on the migrated database
    ``conninfo``, its state (the master key) in ``data_dir``, once it says it runs; stopped (or
    reaped) after. ``settings`` are extra ``SWITCHBOARD_<NAME>`` values."""
    proc = subprocess.Popen([sys.executable, "-m", "switchboard", "worker", "--no-migrate"], cwd=ROOT,
                            env=_worker_env(conninfo, data_dir, worker_id, settings), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "running" in line, f"the worker did not start (exit {proc.poll()})"
        yield proc
    finally:
        _reap(proc)


class StandbyWorker:
    """A worker process that has imported everything and opened its platform, and waits, not yet
    launched, until :meth:`launch` (then it runs the same ``runtime.Worker`` as ``switchboard
    worker``). Start the next one while the current one works: a restart then costs DBOS's launch
    only, not the ~2 s of imports and set-up. Only a launched worker takes or recovers executions,
    so a standby with the same id as a running worker is harmless."""

    def __init__(self, conninfo: str, data_dir: Path, worker_id: str, **settings: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "support.serve_process", "standby-worker"], cwd=ROOT,
            env=_worker_env(conninfo, data_dir, worker_id, settings), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)

    def launch(self) -> subprocess.Popen[str]:
        """Launch the worker; returns its process once it says it runs."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", f"the standby worker did not start (exit {proc.poll()})"
        proc.stdin.write("launch\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert "running" in line, f"the worker did not start (exit {proc.poll()})"
        return proc

    def close(self) -> None:
        """Stop (or reap) the process, launched or not."""
        _reap(self.proc)


class WorkerZygote:
    """A process that has imported everything a worker needs and forks a fresh worker process on
    each :meth:`launch` (each one runs the same ``runtime.Worker`` as ``switchboard worker``, with
    this id). A forked child shares the imported code copy-on-write, so a restart costs the
    platform's opening and DBOS's launch, not ~2 s of CPU for imports: what lets a test kill and
    restart workers twenty times on two cores. Children are separate processes (kill them with
    :meth:`kill`, SIGKILL)."""

    def __init__(self, conninfo: str, data_dir: Path, worker_id: str, **settings: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "support.serve_process", "worker-zygote"], cwd=ROOT,
            env=_worker_env(conninfo, data_dir, worker_id, settings), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        self.children: set[int] = set()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "zygote ready":
            _reap(self.proc)
            raise RuntimeError(f"the worker zygote did not start (exit {self.proc.poll()})")

    def launch(self) -> int:
        """Fork a worker; returns its pid once it says it runs."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("fork\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        pid, _, rest = line.partition(" ")
        assert pid.isdigit() and "running" in rest, f"the forked worker did not start: {line!r}"
        self.children.add(int(pid))
        return int(pid)

    def kill(self, pid: int, signum: int = signal.SIGKILL) -> None:
        """Send ``signum`` (default SIGKILL) to worker ``pid`` and wait until it is gone."""
        os.kill(pid, signum)
        deadline = time.monotonic() + STARTUP_SECONDS
        while _alive(pid):
            assert time.monotonic() < deadline, f"worker {pid} did not end"
            time.sleep(0.01)
        self.children.discard(pid)

    def close(self) -> None:
        """Stop every worker still running (SIGTERM), then the zygote."""
        for pid in list(self.children):
            if _alive(pid):
                try:
                    self.kill(pid, signal.SIGTERM)
                except AssertionError:
                    self.kill(pid)
        self.children.clear()
        _reap(self.proc)


def _alive(pid: int) -> bool:
    # The zygote ignores SIGCHLD, so its children are reaped as they end: a gone pid is no process.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


async def _serve_worker(gate=None, announce=print) -> None:
    # What `switchboard worker --no-migrate` does (switchboard/commands/worker.py); ``gate`` (a
    # blocking callable answering whether to go on) runs once the platform is open, before the
    # Worker (DBOS's launch, which recovers this id's executions) starts.
    import asyncio

    import anyio.to_thread

    import store
    from switchboard.app import open_platform, worker_for
    from switchboard.commands import load_settings
    from switchboard.platform_db import prepare

    settings = load_settings()
    conninfo, _ = await anyio.to_thread.run_sync(
        lambda: store.resolve_conninfo(settings.database_url, settings.pg_data_dir))
    ready, _ = await anyio.to_thread.run_sync(lambda: prepare(settings, conninfo, migrate=False))
    ready = ready.model_copy(update={"database_url": conninfo})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_platform(ready) as platform:
        if gate is not None and not await anyio.to_thread.run_sync(gate):
            return
        async with worker_for(platform, ready) as worker:
            announce(f"Switchboard worker {worker.executor_id} running (process {platform.process_id})")
            await stop.wait()


def _worker_zygote() -> None:
    import asyncio

    import dbos  # noqa: F401

    import runtime  # noqa: F401
    import switchboard.app  # noqa: F401
    import switchboard.commands  # noqa: F401
    import switchboard.platform_db  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("zygote ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "fork":
            break
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 0
            try:
                asyncio.run(_serve_worker(announce=lambda text: print(f"{os.getpid()} {text}", flush=True)))
            except BaseException:
                code = 1
            finally:
                os._exit(code)


def _standby_worker() -> None:
    import asyncio

    import dbos  # noqa: F401

    import runtime  # noqa: F401
    import switchboard.app  # noqa: F401

    def gate() -> bool:
        print("ready", flush=True)
        return sys.stdin.readline().strip() == "launch"

    asyncio.run(_serve_worker(gate, announce=lambda text: print(text, flush=True)))


def _serve() -> None:
    import uvicorn

    from switchboard.app import create_app
    from switchboard.settings import Settings

    # IPPROTO_TCP: see support.servers (Nagle on keep-alive responses).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(Settings()), log_config=None, access_log=False, lifespan="on"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    if sys.argv[1:] == ["standby-worker"]:
        _standby_worker()
    elif sys.argv[1:] == ["worker-zygote"]:
        _worker_zygote()
    else:
        _serve()
