"""`flask reminders …`: the officials' daily reminder of what is due or overdue (also run daily by `flask worker`)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from huey.exceptions import TaskLockedException

from app.db import get_session
from app.models import utcnow
from app.services import lifecycle

group = AppGroup("reminders", help="Remind each district's officials of applications due or overdue.")


@group.command("send")
@click.option("--force", is_flag=True, help="Send again to districts already reminded today.")
def send_command(force: bool) -> None:
    """Remind each district with something due, overdue or waiting (counts only); print what was sent."""
    db, huey = get_session(), current_app.extensions["tasks"].huey
    try:
        with huey.lock_task("daily_reminders"):  # not while a consumer sends them (app/__init__.py)
            days = current_app.config["APPROVAL_WORKING_DAYS"]
            sent = lifecycle.send_reminders(db, now=utcnow(), days=days, force=force)
            db.commit()
    except TaskLockedException:
        raise click.ClickException("reminders are being sent right now by a consumer: try again in a minute") from None
    for r in sent:
        click.echo(
            f"{r.district_code}: {r.due} due, {r.overdue} overdue, {r.waiting} waiting for an answer; "
            f"{len(r.official_ids)} officials"
        )
    click.echo(f"reminded districts: {len(sent)}")


def register(app: Flask) -> None:
    app.cli.add_command(group)
