"""``switchboard schema``: the JSON Schemas of connector and workflow specs."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("schema")
@click.argument("kind", required=False, type=click.Choice(["connector", "workflow"]))
@click.option("--write", "directory", type=click.Path(file_okay=False, path_type=Path), help="Write <kind>.schema.json files here instead.")
def schema(kind: str | None, directory: Path | None) -> None:
    """Print the JSON Schema of KIND (connector or workflow; both when omitted)."""
    from engine.specs import SCHEMA_MODELS, spec_json_schema, write_json_schemas

    if directory is not None:
        for path in write_json_schemas(directory):
            click.echo(f"wrote {path}")
        return
    kinds = [kind] if kind else list(SCHEMA_MODELS)
    out = {k: spec_json_schema(k) for k in kinds}
    click.echo(json.dumps(out[kind] if kind else out, indent=2, sort_keys=True))
