"""Stoplight Prism for tests: install it from npm, serve documents with ``prism mock``, judge its answers.

Prism is a validator nobody here wrote: every request it receives is checked
against the document (path, method, parameters, headers, body, security)
before it answers. A request it finds invalid is answered with a 400/422 (the
document's own, or Prism's ``application/problem+json``) and an
``sl-violations`` header listing what was wrong; a request whose route does
not exist, whose content type is not accepted or whose credentials are absent
gets Prism's own problem+json (404/405, 415, 401). :func:`prism_complaints`
reads those answers; everything else (examples, Prism failing to build a
response) is Prism speaking about the document, not about the request.

    prism = install_prism()                       # once per machine, kept in .cache/prism
    with running_prisms(prism, ["cin7-core-v2-subset.yaml"]) as servers:
        servers["cin7-core-v2-subset.yaml"].url   # http://127.0.0.1:PORT, paths without the server's base path
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.documents import SPECS_DIR

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".cache" / "prism"
PRISM_PACKAGE = "@stoplight/prism-cli"
PRISM_MAJOR = "5"
INSTALL_TIMEOUT = 300.0
START_TIMEOUT = 120.0  # every document starts at once; on 2 busy cores a node start can take long
PRISM_ERRORS = "https://stoplight.io/prism/errors#"

# Prism refuses these at start (tests/data/openapi/INDEX.md): a dangling $ref, and $refs into files that are not there.
REFUSED = {
    "oai-callback-example-v3.0.yaml": "dangling $ref",
    "oai-petstore-separate-extref-v2.json": "external $refs to files that are not there",
}
# Prism's problem types that reject the request itself. Others (NO_RESPONSE_DEFINED, a failure to
# generate an example, ...) are Prism's trouble with the document's responses.
REQUEST_REJECTIONS = frozenset({
    "UNPROCESSABLE_ENTITY", "INVALID_CONTENT_TYPE", "UNAUTHORIZED", "NO_PATH_MATCHED_ERROR",
    "NO_METHOD_MATCHED_ERROR", "NO_SERVER_MATCHED_ERROR", "NOT_ACCEPTABLE",
})
_LISTENING = re.compile(r"Prism is listening on (http://\S+)")


class PrismInstallFailed(RuntimeError):
    """``npm install`` of Prism failed; carries npm's output."""

    def __init__(self, command: Sequence[str], returncode: int | None, output: str):
        self.command, self.returncode, self.output = list(command), returncode, output
        super().__init__(f"{' '.join(command)} exited with {returncode}:\n{output[-4000:]}")


class PrismStartFailed(RuntimeError):
    """A ``prism mock`` process exited or stayed silent instead of listening; carries its log."""

    def __init__(self, document: str, reason: str, log: str):
        self.document, self.reason, self.log = document, reason, log
        super().__init__(f"prism mock {document}: {reason}\n{log[-4000:]}")


def node_missing() -> str | None:
    """Why Prism cannot run here (``node`` or ``npm`` not on PATH), or None when both are."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found on PATH: Stoplight Prism needs Node.js" if missing else None


def served_documents() -> list[str]:
    """File names in tests/data/openapi that Prism serves (all documents but :data:`REFUSED`)."""
    return sorted(
        p.name for p in SPECS_DIR.iterdir()
        if p.suffix in (".yaml", ".yml", ".json") and p.name not in REFUSED
    )


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _installed_version(prefix: Path) -> str | None:
    manifest = prefix / "node_modules" / PRISM_PACKAGE / "package.json"
    try:
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class PrismInstall:
    """An installed Prism: its ``prism`` executable, version, and how long installing took (0 when reused)."""

    executable: Path
    version: str
    install_seconds: float


def install_prism(prefix: Path = CACHE_DIR, *, env: Mapping[str, str] | None = None) -> PrismInstall:
    """Install ``@stoplight/prism-cli@5`` under ``prefix`` with npm, unless it is there already.

    ``env`` replaces npm's environment (tests point it at a registry that is not there).
    A file lock keeps two test sessions sharing the tree from installing at once.

    Raises:
        PrismInstallFailed: npm failed or timed out (no registry, say), with its output.
    """
    prefix.mkdir(parents=True, exist_ok=True)
    executable = prefix / "node_modules" / ".bin" / "prism"
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        version = _installed_version(prefix)
        if version and version.split(".")[0] == PRISM_MAJOR and executable.exists():
            return PrismInstall(executable, version, 0.0)
        command = [
            shutil.which("npm") or "npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
            f"{PRISM_PACKAGE}@{PRISM_MAJOR}",
        ]
        started = time.monotonic()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
            )
        except subprocess.TimeoutExpired as exc:
            output = _text(exc.stdout) + _text(exc.stderr)
            raise PrismInstallFailed(command, None, f"timed out after {INSTALL_TIMEOUT:.0f}s\n{output}") from None
        elapsed = time.monotonic() - started
        version = _installed_version(prefix)
        if done.returncode != 0 or not version or not executable.exists():
            raise PrismInstallFailed(command, done.returncode, done.stdout + done.stderr)
        return PrismInstall(executable, version, elapsed)


class PrismServer:
    """One ``prism mock DOC`` process on an ephemeral 127.0.0.1 port, in its own process group.

    ``url`` is Prism's origin: Prism matches request paths against the document's
    paths without any server base path (it checks servers only when a request names
    one with ``?__server=``), so it is also the base URL for a connector's actions.
    """

    def __init__(self, executable: Path, document: Path, log_dir: Path):
        self.document = document
        self.log_path = log_dir / f"{document.name}.log"
        self.url: str | None = None
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
        # Port 0: the kernel picks a free port and Prism prints it, so there is no race for it.
        # No --errors: Prism rejects invalid requests without it; the flag only turns violations of
        # its own responses (the document's examples) into errors, which say nothing about our requests.
        self.process = subprocess.Popen(
            [str(executable), "mock", "-h", "127.0.0.1", "-p", "0", str(document)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )

    def log(self) -> str:
        """Everything Prism printed so far (its routes, then one block per request)."""
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, deadline: float) -> str:
        """Block until Prism prints its address; return it.

        Raises:
            PrismStartFailed: the process exited, or ``deadline`` (a ``time.monotonic()`` value) passed.
        """
        while self.url is None:
            match = _LISTENING.search(self.log())
            if match:
                self.url = match.group(1).rstrip("/")
                break
            if self.process.poll() is not None:
                raise PrismStartFailed(self.document.name, f"exited with {self.process.returncode}", self.log())
            if time.monotonic() > deadline:
                raise PrismStartFailed(self.document.name, "did not start listening in time", self.log())
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        """Terminate the process group, then kill it if it lingers."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=5)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self._log.close()


@contextmanager
def running_prisms(install: PrismInstall, documents: Sequence[str | Path]) -> Iterator[dict[str, PrismServer]]:
    """Start ``prism mock`` for every document at once and yield them by file name once all listen.

    Documents are tests/data/openapi file names or paths. Every process is stopped on the way out.

    Raises:
        PrismStartFailed: one of them did not start (the others are stopped).
    """
    log_dir = Path(tempfile.mkdtemp(prefix="switchboard-prism-"))
    servers: dict[str, PrismServer] = {}
    try:
        for document in documents:
            path = document if isinstance(document, Path) else SPECS_DIR / document
            servers[path.name] = PrismServer(install.executable, path, log_dir)
        deadline = time.monotonic() + START_TIMEOUT
        for server in servers.values():
            server.wait_listening(deadline)
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


def _violations(headers: Mapping[str, str]) -> list[dict[str, Any]]:
    raw = next((v for k, v in headers.items() if k.lower() == "sl-violations"), None)
    if not raw:
        return []
    try:
        found = json.loads(raw)
    except ValueError:
        # Prism cuts a long list to "Too many violations! <first 8 KB>"; say so rather than guess.
        return [{"location": ["request"], "severity": "Error", "message": raw[:500]}]
    return found if isinstance(found, list) else []


def _where(violation: Mapping[str, Any]) -> str:
    return ".".join(str(p) for p in violation.get("location") or [])


def prism_complaints(status: int, headers: Mapping[str, str], body: Any) -> list[str]:
    """What Prism found wrong with the request it answered; empty when it accepted the request.

    Reads the ``sl-violations`` header (request violations of severity Error, which
    Prism attaches also when it answers with a 400/422 of the document's own) and
    Prism's problem+json answers that reject a request (:data:`REQUEST_REJECTIONS`).
    """
    complaints = [
        f"{_where(v)}: {v.get('message')}"
        for v in _violations(headers)
        if (v.get("location") or [None])[0] == "request" and v.get("severity") == "Error"
    ]
    if isinstance(body, Mapping) and str(body.get("type", "")).startswith(PRISM_ERRORS):
        kind = str(body["type"])[len(PRISM_ERRORS):]
        if kind in REQUEST_REJECTIONS:
            # The body's locations lack the header's leading "request"; one spelling for both.
            details = [
                f"{_where({'location': ['request', *(v.get('location') or [])]})}: {v.get('message')}"
                for v in body.get("validation") or [] if isinstance(v, Mapping)
            ]
            new = [d for d in details if d not in complaints]
            if kind == "UNAUTHORIZED":
                # Prism names the schemes it wanted in WWW-Authenticate; its detail text is boilerplate.
                wanted = next((v for k, v in headers.items() if k.lower() == "www-authenticate"), "?")
                summary = f"{status} {kind}: the operation's security requirements are not met (wanted: {wanted})"
            else:
                summary = f"{status} {kind}: {body.get('detail') or body.get('title')}"
            complaints.extend(new or ([] if complaints else [summary]))
    return complaints


def request_warnings(headers: Mapping[str, str]) -> list[str]:
    """Request violations Prism reports with a severity below Error (it accepts such requests)."""
    return [
        f"{_where(v)}: {v.get('message')} ({v.get('severity')})"
        for v in _violations(headers)
        if (v.get("location") or [None])[0] == "request" and v.get("severity") != "Error"
    ]


@dataclass
class SentRequest:
    """One action call and Prism's verdict on it; ``status`` is None when the engine sent nothing."""

    action: str
    variant: str
    method: str
    url: str | None
    input: Any
    status: int | None
    complaints: list[str]
    warnings: list[str]
    error: str | None = None

    def describe(self) -> str:
        shown = json.dumps(self.input, default=str)
        shown = shown if len(shown) <= 400 else shown[:400] + "..."
        label = f"{self.action} [{self.variant}]"
        if self.status is None:
            return f"{label}: not sent ({self.error})\n    input: {shown}"
        lines = [f"{label}: {self.method} {self.url} -> {self.status}", f"    input: {shown}"]
        lines += [f"    prism: {c}" for c in self.complaints]
        return "\n".join(lines)


def action_inputs(connector: Any) -> Iterator[tuple[str, str, Any]]:
    """``(action, variant, input)`` for every action: its ``required`` and its ``full`` sample input.

    ``required`` is ``engine.sample_input`` with no records known (what ``connector
    test`` sends first); ``full`` also fills every optional parameter, so the way the
    engine serialises optional query parameters and headers (arrays, booleans,
    dates) is judged too. The ``full`` variant is left out where it adds nothing.
    """
    from engine import sample_input
    from engine.samples import sample_from_schema

    for name, action in connector.actions.items():
        required = sample_input(name, action, defs=connector.defs)
        yield name, "required", required
        full = sample_from_schema(connector.standalone(action.input), seed=name, for_request=True)
        if full != required:
            yield name, "full", full


async def send_every_action(connector: Any, executor: Any) -> list[SentRequest]:
    """Send every input of :func:`action_inputs` through ``executor``; keep Prism's verdict on each request.

    Ids come from the actions' own parameter schemas. ``engine.check_connector``
    would thread ids from earlier answers instead, and a stateless Prism answers
    with placeholder examples (``"id": "string"`` where Resend's response schema
    gives no example) that the same document's path parameters (``format: uuid``)
    then refuse: a verdict on Prism's example, not on the engine's request.
    """
    from engine import EngineError

    sent: list[SentRequest] = []
    for name, variant, value in action_inputs(connector):
        action = connector.actions[name]
        try:
            response = await executor.call(connector.id, name, value, paginate_pages=False, raise_for_status=False)
        except EngineError as exc:
            sent.append(SentRequest(name, variant, action.method, None, value, None, [], [], error=f"{exc.code}: {exc}"))
            continue
        sent.append(SentRequest(
            action=name, variant=variant, method=action.method, url=response.url, input=value, status=response.status,
            complaints=prism_complaints(response.status, response.headers, response.body),
            warnings=request_warnings(response.headers),
        ))
    return sent
