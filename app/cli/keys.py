"""`flask keys …`: re-encrypt stored names, phones and secrets under the current key."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.db import get_session
from app.services import rekey

group = AppGroup("keys", help="Encryption keys: re-encrypt under the first PII_ENCRYPTION_KEYS key.")


@group.command("rotate")
@click.option("--batch", default=500, show_default=True, help="Rows per transaction.")
def rotate_command(batch: int) -> None:
    """Re-encrypt every encrypted field under the first key (resumable: run it again after a stop).

    Put the new key first in PII_ENCRYPTION_KEYS, keep the old ones after it, deploy, run this,
    then `keys check`; when it says 0, remove the old keys.
    """
    db, cipher = get_session(), current_app.extensions["pii"]
    changed = 0
    with click.progressbar(length=rekey.count_rows(db), label="re-encrypting") as bar:
        for done in rekey.rotate(db, cipher, size=max(1, batch)):
            db.commit()  # each batch is kept, whatever happens to the next
            changed += done.changed
            bar.update(done.rows)
    click.echo(f"values re-encrypted: {changed}")


@group.command("check")
def check_command() -> None:
    """Count stored values the first key did not seal (exit 1 while there are any)."""
    stale = rekey.stale_values(get_session(), current_app.extensions["pii"])
    click.echo(f"values under an old key: {stale}")
    if stale:
        raise SystemExit(1)


def register(app: Flask) -> None:
    app.cli.add_command(group)
