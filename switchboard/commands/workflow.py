"""``switchboard workflow``: run a workflow inline against connectors (sandboxes or real apps)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from switchboard.commands import load_settings


@click.group("workflow")
def workflow() -> None:
    """Run and check workflows."""


def _read_mapping(path: Path | None, what: str) -> dict:
    from engine.specs import parse_document

    if path is None:
        return {}
    data = parse_document(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a mapping of {what}")
    return data


def _base_urls(pairs: tuple[str, ...]) -> dict[str, str]:
    urls = {}
    for pair in pairs:
        connector_id, sep, url = pair.partition("=")
        if not sep or not connector_id or not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"expected CONNECTOR=http(s)://..., got {pair!r}", param_hint="--base-url")
        urls[connector_id] = url
    return urls


@workflow.command("run")
@click.argument("workflow_file", metavar="WORKFLOW", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--connectors", "connectors_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of connector specs (*.yaml, *.json).")
@click.option("--input", "input_json", default="{}", show_default=True, help="The workflow input as JSON.")
@click.option("--base-url", "base_urls", multiple=True, metavar="CONNECTOR=URL", help="Call CONNECTOR at URL (a sandbox); repeatable.")
@click.option("--credentials", "credentials_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON/YAML {connector: {credential: value}}; connectors without get placeholders.")
@click.option("--secrets", "secrets_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON/YAML {name: value} that steps read as secrets.NAME.")
@click.option("--trace-bodies", is_flag=True, help="Keep request and response bodies in the trace (credentials masked).")
@click.option("--record", "record_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the run record (replayable) here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: status, output, error, trace.")
def run_command(workflow_file: Path, connectors_dir: Path, input_json: str, base_urls: tuple[str, ...], credentials_file: Path | None,
                secrets_file: Path | None, trace_bodies: bool, record_file: Path | None, as_json: bool) -> None:
    """Run WORKFLOW once, inline, and print its result and trace. Exits 1 when the run fails."""
    from engine.specs import load_connectors_dir, load_workflow
    from engine.workflow import Dependencies, Interpreter, StaticSecrets, WorkflowRegistry
    from switchboard.engine_runtime import build_executor, build_http_client, operator_hosts

    settings = load_settings()
    try:
        run_input = json.loads(input_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
    spec = load_workflow(workflow_file)
    connectors = load_connectors_dir(connectors_dir)
    missing = sorted(spec.connectors() - set(connectors))
    if missing:
        raise click.ClickException(f"{workflow_file} uses connectors not in {connectors_dir}: {', '.join(missing)}")
    urls = _base_urls(base_urls)
    unknown = sorted(set(urls) - set(connectors))
    if unknown:
        raise click.BadParameter(f"no connector {', '.join(unknown)} in {connectors_dir}", param_hint="--base-url")
    credentials = _read_mapping(credentials_file, "credentials by connector")
    secrets = _read_mapping(secrets_file, "secrets by name")

    async def go():
        http = build_http_client(settings, extra_allow=operator_hosts(urls.values()))
        try:
            executor = build_executor(connectors, http, credentials=credentials, base_urls=urls, trace_bodies=trace_bodies)
            deps = Dependencies(invoker=executor, secrets=StaticSecrets({k: str(v) for k, v in secrets.items()}),
                                workflows=WorkflowRegistry([spec]))
            return await Interpreter(deps).run(spec, run_input)
        finally:
            await http.aclose()

    result = asyncio.run(go())
    if record_file is not None:
        record_file.write_text(json.dumps(result.record.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    error = None
    if result.error is not None:
        # The record's copy of the error has secret values redacted; the exception's text may not.
        recorded = result.record.error
        message = recorded.message if recorded is not None else "the run failed"
        error = {"code": result.error.code, "step": getattr(result.error, "step_id", None), "message": message}
    if as_json:
        click.echo(json.dumps({"run_id": result.run_id, "status": result.status, "output": result.output, "error": error,
                               "trace": [t.to_dict() for t in result.traces]}, indent=2, default=str))
    else:
        click.echo(f"run {result.run_id}: {result.status}")
        if error:
            click.echo(f"error at step {error['step']}: {error['message']} [{error['code']}]")
        click.echo("output: " + json.dumps(result.output, indent=2, default=str))
        click.echo(f"trace ({len(result.traces)} calls):")
        for t in result.traces:
            outcome = t.status if t.status is not None else t.error
            click.echo(f"  {t.seq:>6} {t.step_path:32} {t.connector}.{t.action:24} {t.method:6} {outcome} "
                       f"{t.latency_ms:.1f}ms attempt {t.attempt} {t.url}")
    if not result.succeeded:
        raise SystemExit(1)
