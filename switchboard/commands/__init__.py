"""Click command groups, one module per area (``db``, ``run``, ...). ``switchboard.cli`` registers
them from an explicit list.

Helpers shared by the command modules live here. Commands import heavy packages (FastAPI,
psycopg, the engine) inside their functions so that ``switchboard --help`` stays fast.
"""

from __future__ import annotations

import click
from pydantic import ValidationError

from switchboard.errors import ConfigurationError
from switchboard.logging import configure_logging
from switchboard.settings import Settings


def load_settings(**overrides: object) -> Settings:
    """Read ``Settings`` from the environment, apply non-None ``overrides``, configure logging.

    Raises ``click.ClickException`` (exit status 1) naming each invalid setting.
    """
    values = {name: value for name, value in overrides.items() if value is not None}
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise click.ClickException(f"invalid settings: {reasons}") from exc
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings.log_level, settings.log_format or "console")
    return settings
