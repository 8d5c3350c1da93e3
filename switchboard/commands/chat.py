"""``switchboard chat``: talk to the agents of a running server from the terminal.

It is a client of the threads API (``/v1/threads``), nothing more: it creates a thread, posts the
prompt, follows the run's Server-Sent Events (reconnecting with ``Last-Event-ID`` when the
connection drops, so no event is shown twice or lost), prints tool calls, results and progress,
and at the review interrupt shows the summary and the diff and asks the builder to approve or
reject with comments. The answer resumes the thread; the chat ends when a run ends.

Credentials: the three platform headers, read from ``--credentials`` (default: the
``dev-credentials.json`` that the first ``make run`` writes into the data directory) or from
``SWITCHBOARD_ACCOUNT_ID``, ``SWITCHBOARD_ACCESS_KEY`` and ``SWITCHBOARD_TENANT_ID``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from switchboard.commands import load_settings

# Attempts to reconnect a dropped event stream before giving up.
RECONNECTS = 5
# How much of a tool's arguments or result one line shows.
BRIEF = 160


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a run."""

    id: int | None
    type: str
    data: dict[str, Any]


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Events from the lines of an SSE body (``event:``, ``id:``, ``data:``; comments skipped)."""
    kind, ident, data = "message", None, []
    for line in lines:
        if line == "":
            if data:
                payload = "\n".join(data)
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = {"text": payload}
                yield Event(int(ident) if ident and ident.isdigit() else None, kind,
                            parsed if isinstance(parsed, dict) else {"value": parsed})
            kind, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            kind = value
        elif field == "id":
            ident = value
        elif field == "data":
            data.append(value)


def _credentials(path: Path | None, data_dir: Path) -> dict[str, str]:
    env = {name: os.environ.get(f"SWITCHBOARD_{name.upper()}") for name in ("account_id", "access_key", "tenant_id")}
    if path is None and env["account_id"] and env["access_key"]:
        values = env
    else:
        source = path or data_dir / "dev-credentials.json"
        try:
            values = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise click.ClickException(
                f"no credentials: {source} does not exist (start the server once with `make run`, or pass "
                "--credentials FILE, or set SWITCHBOARD_ACCOUNT_ID and SWITCHBOARD_ACCESS_KEY)") from None
        except ValueError as exc:
            raise click.ClickException(f"{source} is not JSON: {exc}") from None
        if not isinstance(values, dict) or not values.get("account_id") or not values.get("access_key"):
            raise click.ClickException(f"{source} must hold account_id and access_key (and tenant_id)")
    headers = {"x-fastn-account-id": str(values["account_id"]), "x-fastn-access-key": str(values["access_key"])}
    if values.get("tenant_id"):
        headers["x-fastn-account-tenant-id"] = str(values["tenant_id"])
    return headers


def _brief(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= BRIEF else text[: BRIEF - 1] + "…"


def _problem(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    detail = body.get("detail") or body.get("title") or body
    return f"HTTP {response.status_code}: {_brief(detail)}"


class Chat:
    """One conversation with a server's agents, shown on a rich console."""

    def __init__(self, client: Any, console: Any, *, assume: str | None, comments: str | None) -> None:
        self.client = client
        self.console = console
        self.assume = assume
        self.comments = comments
        self.streaming_tokens = False

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One API call; a clear error for anything but 2xx."""
        import httpx

        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach {self.client.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise click.ClickException(f"{method} {path}: {_problem(response)}")
        return response.json()

    def follow(self, run: dict[str, Any]) -> Event:
        """Show the run's events until its last one (done, error or interrupt), reconnecting with
        ``Last-Event-ID`` when the stream drops; returns the last event."""
        import httpx

        last_id: int | None = None
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = str(last_id)
            try:
                with self.client.stream("GET", run["events_url"], headers=headers, timeout=httpx.Timeout(10, read=None)) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise click.ClickException(f"events of run {run['id']}: {_problem(response)}")
                    for event in parse_sse(response.iter_lines()):
                        if event.id is not None:
                            last_id = event.id
                        failures = 0
                        self.show(event)
                        if event.type in ("done", "error", "interrupt"):
                            self.end_tokens()
                            return event
            except httpx.HTTPError as exc:
                failures += 1
                if failures > RECONNECTS:
                    raise click.ClickException(f"lost the event stream of run {run['id']}: {exc}") from None
                self.end_tokens()
                self.console.print(f"[dim]stream dropped ({type(exc).__name__}); reconnecting after event {last_id}[/dim]")
                time.sleep(min(0.2 * 2 ** failures, 3))
                continue
            # The server closed the stream without a last event: ask again from where it stopped.
            failures += 1
            if failures > RECONNECTS:
                raise click.ClickException(f"the event stream of run {run['id']} ended without a result")

    def end_tokens(self) -> None:
        if self.streaming_tokens:
            self.console.print()
            self.streaming_tokens = False

    def show(self, event: Event) -> None:
        """Print one event."""
        data = event.data
        if event.type == "token":
            self.console.print(data.get("delta", ""), end="", markup=False, highlight=False)
            self.streaming_tokens = True
            return
        self.end_tokens()
        if event.type == "tool_call":
            self.console.print(f"[cyan]→ {data.get('name')}[/cyan] {_brief(data.get('args', {}))}", highlight=False)
        elif event.type == "tool_result":
            failed = data.get("status") == "error" or '"error"' in str(data.get("content", ""))[:20]
            mark = "[red]✗[/red]" if failed else "[green]✓[/green]"
            self.console.print(f"  {mark} {data.get('name')}: {_brief(data.get('content', ''))}", highlight=False)
        elif event.type == "step":
            if data.get("progress") is not None:
                self.console.print(f"[dim]· {_brief(data['progress'])}[/dim]", highlight=False)
        elif event.type == "error":
            self.console.print(f"[red]error[/red] {data.get('code', '')}: {data.get('message', _brief(data))}", highlight=False)
        elif event.type == "done":
            usage = data.get("usage") or {}
            self.console.print(f"[bold]run {data.get('status', 'done')}[/bold] "
                               f"(model calls {usage.get('model_calls', 0)}, tokens {usage.get('total_tokens', 0)})")

    def final_text(self, thread_id: str) -> str | None:
        """The last AI message of the thread (the agent's report)."""
        state = self.call("GET", f"/v1/threads/{thread_id}/state")
        for message in reversed(state.get("values", {}).get("messages", [])):
            if message.get("type") == "ai" and message.get("content"):
                return str(message["content"])
        return None

    def review(self, interrupt: dict[str, Any]) -> dict[str, Any]:
        """Show a review interrupt and ask for the answer."""
        from rich.panel import Panel
        from rich.table import Table

        value = interrupt.get("value") or {}
        if not isinstance(value, dict) or value.get("type") != "review":
            self.console.print(Panel(_brief(value), title="the agent asks"))
        else:
            body = [str(value.get("summary") or "(no summary)")]
            if value.get("dry_run"):
                body.append(f"dry run: {_brief(value['dry_run'])}")
            for problem in value.get("problems") or []:
                body.append(f"problem: {_brief(problem)}")
            self.console.print(Panel("\n".join(body), title=f"review: {value.get('kind', 'workflow')} {value.get('workflow') or ''}"))
            diff = value.get("diff") or []
            if diff:
                table = Table("op", "path", "value", title="diff")
                for change in diff[:50]:
                    if isinstance(change, dict):
                        table.add_row(str(change.get("op", "")), str(change.get("path", "")), _brief(change.get("value", "")))
                    else:
                        table.add_row("", "", _brief(change))
                self.console.print(table)
        if self.assume == "approve":
            self.console.print("approved (--yes)")
            return {"action": "approve"}
        if self.assume == "reject":
            self.console.print(f"rejected (--reject): {self.comments}")
            return {"action": "reject", "comments": self.comments or ""}
        if click.confirm("Approve and publish?", default=True):
            return {"action": "approve"}
        return {"action": "reject", "comments": click.prompt("What should change?", default="", show_default=False)}


@click.command("chat")
@click.argument("prompt")
@click.option("--url", envvar="SWITCHBOARD_URL", default=None, help="The server (default http://HOST:PORT of the settings).")
@click.option("--credentials", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A JSON file with account_id, access_key and tenant_id (default: <data dir>/dev-credentials.json).")
@click.option("--agent", default="home", show_default=True,
              help="The graph to talk to: home, integration_agent, connector_agent or setup_assistant.")
@click.option("--thread", "thread_id", default=None, help="Continue this thread instead of starting one.")
@click.option("--yes", "assume", flag_value="approve", help="Approve every review without asking.")
@click.option("--reject", "comments", default=None, help="Reject the first review with these comments.")
def chat(prompt: str, url: str | None, credentials: Path | None, agent: str, thread_id: str | None,
         assume: str | None, comments: str | None) -> None:
    """Send PROMPT to the agents of a running server and follow the run; approve or reject at review."""
    import httpx
    from rich.console import Console

    settings = load_settings()
    base = url or f"http://{settings.host}:{settings.port}"
    headers = _credentials(credentials, settings.data_dir)
    console = Console(highlight=False)
    rejected_once = False
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        session = Chat(client, console, assume="reject" if comments else assume, comments=comments)
        if thread_id is None:
            thread = session.call("POST", "/v1/threads", json={"graph": agent})
            thread_id = thread["id"]
        console.print(f"[dim]thread {thread_id} ({agent}) on {base}[/dim]")
        run = session.call("POST", f"/v1/threads/{thread_id}/messages", json={"content": prompt})
        while True:
            last = session.follow(run)
            if last.type == "error":
                raise click.ClickException(f"the run failed: {last.data.get('message', _brief(last.data))}")
            if last.type == "done":
                report = session.final_text(thread_id)
                if report:
                    console.print(report, markup=False, highlight=False)
                return
            interrupts = last.data.get("interrupts") or [{}]
            answer = session.review(interrupts[0])
            if answer["action"] == "reject" and session.assume == "reject":
                rejected_once = True
            if rejected_once:
                # --reject answers the first review only; later ones follow --yes or ask.
                session.assume = assume
            run = session.call("POST", f"/v1/threads/{thread_id}/resume", json={"resume": answer})
