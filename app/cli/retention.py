"""`flask retention …`: delete personal data past its retention period (run it hourly)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.db import get_session
from app.models import utcnow
from app.services import retention

group = AppGroup("retention", help="Delete drafts and rejected applications past their retention period.")


@group.command("run")
def run_command() -> None:
    """Delete old drafts, status checks and old rejected applications; print the counts."""
    config, db = current_app.config, get_session()
    report = retention.purge(
        db, now=utcnow(), draft_hours=config["RETENTION_DRAFT_HOURS"], rejected_days=config["RETENTION_REJECTED_DAYS"]
    )
    db.commit()
    click.echo(
        f"deleted drafts: {report.drafts}, finished attempts: {report.finished}, "
        f"rejected applications: {report.rejected}, status checks: {report.status_checks}, "
        f"outbox rows: {report.deliveries}"
    )


def register(app: Flask) -> None:
    app.cli.add_command(group)
