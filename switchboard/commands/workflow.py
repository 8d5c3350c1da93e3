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


def read_mapping(path: Path | None, what: str, option: str) -> dict:
    """A YAML/JSON file holding a mapping, or a usage error naming the option and the file."""
    from engine.specs import parse_document

    if path is None:
        return {}
    try:
        data = parse_document(path.read_text(encoding="utf-8"), str(path))
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text", param_hint=option) from None
    if not isinstance(data, dict) or not data:
        raise click.BadParameter(f"{path} must hold a non-empty mapping of {what}", param_hint=option)
    return data


def check_base_url(url: str, option: str = "--base-url") -> str:
    """An absolute http(s) URL with a host and a valid port, or a usage error."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise click.BadParameter(f"{url!r} is not a valid URL: {exc}", param_hint=option) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise click.BadParameter(f"{url!r} must be an http(s) URL with a host and no query", param_hint=option)
    return url


def _workflows_in(directory: Path | None) -> list:
    """The workflow specs in ``directory`` (for call steps); none without one."""
    from engine.specs import load_workflow

    if directory is None:
        return []
    return [load_workflow(p) for p in sorted(directory.iterdir()) if p.suffix.lower() in (".yaml", ".yml", ".json")]


def _base_urls(pairs: tuple[str, ...]) -> dict[str, str]:
    urls = {}
    for pair in pairs:
        connector_id, sep, url = pair.partition("=")
        if not sep or not connector_id:
            raise click.BadParameter(f"expected CONNECTOR=http(s)://..., got {pair!r}", param_hint="--base-url")
        urls[connector_id] = check_base_url(url)
    return urls


def _credentials(path: Path | None, connectors: dict) -> dict:
    credentials = read_mapping(path, "credentials by connector id", "--credentials")
    for connector_id, values in credentials.items():
        if connector_id not in connectors:
            raise click.BadParameter(f"{path}: no connector {connector_id!r} is loaded (expected {{connector id: {{name: value}}}})",
                                     param_hint="--credentials")
        if not isinstance(values, dict) or not all(isinstance(v, (str, int, float)) for v in values.values()):
            raise click.BadParameter(f"{path}: {connector_id!r} must map credential names to values", param_hint="--credentials")
    return credentials


@workflow.command("run")
@click.argument("workflow_file", metavar="WORKFLOW", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--connectors", "connectors_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of connector specs (*.yaml, *.json).")
@click.option("--input", "input_json", default="{}", show_default=True, help="The workflow input as JSON.")
@click.option("--trigger", "trigger_json", default=None, help="The trigger's payload as JSON (steps read it as `trigger`).")
@click.option("--base-url", "base_urls", multiple=True, metavar="CONNECTOR=URL", help="Call CONNECTOR at URL (a sandbox); repeatable.")
@click.option("--credentials", "credentials_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON/YAML {connector: {credential: value}}; connectors without get placeholders.")
@click.option("--secrets", "secrets_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON/YAML {name: value} that steps read as secrets.NAME.")
@click.option("--trace-bodies", is_flag=True, help="Keep request and response bodies in the trace (credentials masked).")
@click.option("--record", "record_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the run record (replayable) here.")
@click.option("--workflows", "workflows_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of other workflows that call steps may run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: status, output, error, trace.")
def run_command(workflow_file: Path, connectors_dir: Path, input_json: str, trigger_json: str | None, base_urls: tuple[str, ...], credentials_file: Path | None,
                secrets_file: Path | None, trace_bodies: bool, record_file: Path | None, workflows_dir: Path | None,
                as_json: bool) -> None:
    """Run WORKFLOW once, inline, and print its result and trace. Exits 1 when the run fails.

    Before anything is sent, the workflow is checked against the connectors: unknown
    actions, expressions that do not parse and references to missing steps are refused.
    """
    from engine import check_workflow
    from engine.errors import SpecValidationError
    from engine.specs import load_connectors_dir, load_workflow
    from engine.workflow import Interpreter, WorkflowRegistry
    from runtime import build_engine, static_credentials
    from switchboard.engine_runtime import build_http_client, operator_hosts

    settings = load_settings()
    try:
        run_input = {} if input_json.strip() == "" else json.loads(input_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
    if not isinstance(run_input, dict):
        raise click.BadParameter("the workflow input must be a JSON object", param_hint="--input")
    try:
        trigger = json.loads(trigger_json) if trigger_json is not None else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--trigger") from None
    spec = load_workflow(workflow_file)
    connectors = load_connectors_dir(connectors_dir)
    others = _workflows_in(workflows_dir)
    missing = sorted(spec.connectors() - set(connectors))
    if missing:
        raise click.ClickException(f"{workflow_file} uses connectors not in {connectors_dir}: {', '.join(missing)}")
    urls = _base_urls(base_urls)
    unknown = sorted(set(urls) - set(connectors))
    if unknown:
        raise click.BadParameter(f"no connector {', '.join(unknown)} in {connectors_dir}", param_hint="--base-url")
    problems = check_workflow(spec, connectors)
    if problems:
        raise SpecValidationError("workflow", problems, str(workflow_file))
    credentials = _credentials(credentials_file, connectors)
    secrets = read_mapping(secrets_file, "secrets by name", "--secrets")

    async def go():
        http = build_http_client(settings, extra_allow=operator_hosts(urls.values()))
        try:
            engine = build_engine(connectors, http, credentials=static_credentials(connectors, credentials),
                                  base_urls=urls, trace_bodies=trace_bodies,
                                  secrets={k: str(v) for k, v in secrets.items()},
                                  workflows=WorkflowRegistry([spec, *others]))
            return await Interpreter(engine.deps).run(spec, run_input, trigger=trigger)
        finally:
            await http.aclose()

    result = asyncio.run(go())
    record_problem = None
    if record_file is not None:
        # A path that cannot be written must not hide the run's output: report it after.
        try:
            record_file.parent.mkdir(parents=True, exist_ok=True)
            record_file.write_text(json.dumps(result.record.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        except OSError as exc:
            record_problem = f"cannot write the run record to {record_file}: {exc.strerror or exc}"
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
    if record_problem:
        raise click.ClickException(record_problem)
    if not result.succeeded:
        raise SystemExit(1)


def _replay_execution(execution_id: str) -> object:
    """Replay a stored execution: its record (with the specs it ran) read from the platform database."""
    import store
    from runtime import replay_record
    from switchboard.platform_db import open_platform

    settings = load_settings()
    with open_platform(settings) as (db, conninfo, _):
        org_id = store.execution_org(conninfo, execution_id)
        if org_id is None:
            raise click.ClickException(f"no execution {execution_id!r} in this database")
        with db.tenant(org_id) as tx:
            stored = store.Executions(tx).record(org_id, execution_id)
    return asyncio.run(replay_record(stored, execution_id))


@workflow.command("replay")
@click.argument("workflow_file", metavar="[WORKFLOW]", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--record", "record_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A run record written by `workflow run --record` (with WORKFLOW).")
@click.option("--execution", "execution_id", help="An execution of the platform: replay its stored record.")
@click.option("--workflows", "workflows_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of the other workflows its call steps ran (with --record).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: run_id, status, output.")
def replay_command(workflow_file: Path | None, record_file: Path | None, execution_id: str | None,
                   workflows_dir: Path | None, as_json: bool) -> None:
    """Replay a recorded run without calling out, and print its output: WORKFLOW with a record file
    (``--record``), or a platform execution (``--execution ID``) with the specs stored with it.

    A replay that diverges from the record (the workflow or its input changed) fails
    naming the run, the step, what was expected and what was recorded.
    """
    from engine.specs import load_workflow
    from engine.workflow import RunRecord, WorkflowRegistry
    from runtime import replay_offline

    if (execution_id is None) == (record_file is None):
        raise click.UsageError("give --execution ID, or WORKFLOW with --record FILE")
    if execution_id is not None:
        if workflow_file is not None or workflows_dir is not None:
            raise click.UsageError("--execution replays the specs stored with the execution: give no WORKFLOW or --workflows")
        result = _replay_execution(execution_id)
    else:
        if workflow_file is None:
            raise click.UsageError("--record needs the WORKFLOW it recorded")
        load_settings()
        spec = load_workflow(workflow_file)
        others = _workflows_in(workflows_dir)
        data = read_mapping(record_file, "a run record", "--record")
        try:
            record = RunRecord.from_dict(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise click.BadParameter(f"{record_file} is not a run record: {exc}", param_hint="--record") from None
        result = asyncio.run(replay_offline(spec, record, WorkflowRegistry([spec, *others])))
    if as_json:
        click.echo(json.dumps({"run_id": result.run_id, "status": result.status, "output": result.output},
                              indent=2, default=str))
    else:
        click.echo(f"replayed run {result.run_id}: {result.status}")
        click.echo("output: " + json.dumps(result.output, indent=2, default=str))
    if not result.succeeded:
        raise SystemExit(1)
