"""The ``switchboard`` command.

Command groups live in ``switchboard/commands/<area>.py`` and are registered below from an
explicit list; add a new area by importing its module and appending its commands to ``COMMANDS``.
"""

from __future__ import annotations

from typing import Any

import click

from switchboard.commands import chat, connector, db, keys, prune, run, sandbox, schema, tenants, worker, workflow


class _Group(click.Group):
    """A click group that reports Switchboard's coded errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except Exception as exc:
            code = getattr(type(exc), "code", None)
            if isinstance(code, str) and isinstance(getattr(type(exc), "http_status", None), int):
                raise click.ClickException(f"{exc} [{code}]") from exc
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="switchboard", prog_name="switchboard")
def cli() -> None:
    """Switchboard: an open integration platform. Settings come from the environment (see README)."""


# (command, name) pairs; name None keeps the command's own name.
COMMANDS: list[tuple[click.Command, str | None]] = [
    (run.run, None),
    (run.run, "serve"),
    (db.db, None),
    (tenants.org, None),
    (tenants.key, "api-key"),
    (tenants.customer, None),
    (keys.keys, None),
    (schema.schema, None),
    (connector.connector, None),
    (sandbox.sandbox, None),
    (workflow.workflow, None),
    (worker.worker, None),
    (prune.prune, None),
    (chat.chat, None),
]

for _command, _name in COMMANDS:
    cli.add_command(_command, _name)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="switchboard")
