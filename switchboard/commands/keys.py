"""``switchboard keys``: the master keys that protect secrets and credentials at rest."""

from __future__ import annotations

import os

import click

from switchboard.commands import load_settings


@click.group("keys")
def keys() -> None:
    """Manage the master keys that wrap each organization's data key."""


@keys.command("rotate")
def rotate_command() -> None:
    """Re-wrap every data key under a new master key; encrypted values stay readable.

    With the keyring file (the local default, SWITCHBOARD_MASTER_KEY_FILE) a new key is generated
    into it and the keys no data key uses any more are removed. With SWITCHBOARD_MASTER_KEY, stop
    the app, put the new key (openssl rand -base64 32) in SWITCHBOARD_NEW_MASTER_KEY, run this,
    then set SWITCHBOARD_MASTER_KEY to the new key and start the app. Prints counts and key ids,
    never key material.
    """
    import store
    from store._crypto import NEW_MASTER_KEY_SETTING, rotate_master_key
    from store.errors import StoreError

    settings = load_settings()
    conninfo, embedded = store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
    try:
        report = rotate_master_key(
            conninfo,
            settings.master_key_path,
            master_key=settings.master_key,
            new_key=os.environ.get(NEW_MASTER_KEY_SETTING) or None,
        )
    except StoreError as exc:
        raise click.ClickException(f"{exc} [{exc.code}]") from exc
    finally:
        if embedded is not None:
            embedded.stop()
    click.echo(f"re-wrapped {report.rewrapped} data key(s) under master key {report.new_key_id}")
    if report.old_key_ids:
        click.echo(f"retired master key(s): {', '.join(report.old_key_ids)}")
    if settings.master_key is not None and settings.master_key.get_secret_value().strip():
        click.echo(f"now set SWITCHBOARD_MASTER_KEY to the value of {NEW_MASTER_KEY_SETTING} and start the app")
