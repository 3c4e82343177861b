"""`flask backup`: a consistent copy of the database (SQLite online backup, or pg_dump)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.services import backup


@click.command("backup")
@with_appcontext
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
def backup_command(output: Path | None) -> None:
    """Write a consistent backup (default: INSTANCE_PATH/backups/scanjoin-<time>.db or .dump)."""
    url = current_app.config["DATABASE_URL"]
    if output is None:
        suffix = "db" if url.startswith("sqlite") else "dump"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        output = Path(current_app.instance_path) / "backups" / f"scanjoin-{stamp}.{suffix}"
    try:
        written = backup.write(url, output)
    except backup.BackupFailed as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backup written: {written}")


def register(app: Flask) -> None:
    app.cli.add_command(backup_command)
