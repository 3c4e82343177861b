"""`flask robots …`: a district's WeCom or DingTalk group robot."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.db import get_session
from app.models import utcnow
from app.services import robots
from app.services.webhooks import UrlRefused

group = AppGroup("robots", help="District group-chat robots (WeCom, DingTalk): new applications, overdue digest.")


@group.command("set")
@click.argument("district")
@click.option("--kind", type=click.Choice(robots.KINDS), required=True)
@click.option("--url-stdin", is_flag=True, help="Read the robot's webhook URL from standard input (it holds its key).")
@click.option("--url", default=None, help="The robot's webhook URL (else --url-stdin).")
@click.option("--secret-stdin", is_flag=True, help="DingTalk 加签: read the signing secret (SEC…) from standard input.")
def set_command(district: str, kind: str, url_stdin: bool, url: str | None, secret_stdin: bool) -> None:
    """Connect (or replace) DISTRICT's robot of this kind."""
    lines = iter(sys.stdin.readline, "") if (url_stdin or secret_stdin) else iter(())
    if url_stdin:
        url = next(lines, "").strip()
    secret = next(lines, "").strip() if secret_stdin else None
    if not url:
        raise click.ClickException("give the robot's URL with --url or --url-stdin")
    db = get_session()
    try:
        robot = robots.connect(
            db,
            current_app.extensions["pii"],
            district,
            kind,
            url,
            secret,
            allow_private=current_app.config["WEBHOOK_ALLOW_PRIVATE"],
        )
    except (robots.RobotError, UrlRefused) as exc:
        raise click.ClickException(f"robot not connected: {exc}") from None
    db.commit()
    click.echo(f"connected {kind} robot {robot.id} to {district.strip().upper()}")


@group.command("list")
def list_command() -> None:
    """Every robot: id, district, kind, signed or not (never the URL: it holds the key)."""
    for robot, code in robots.listed(get_session()):
        click.echo(f"{robot.id:<5} {code:<10} {robot.kind:<9} {'signed' if robot.secret_enc else ''}")


@group.command("remove")
@click.argument("robot_id", type=int)
def remove_command(robot_id: int) -> None:
    db = get_session()
    try:
        robots.remove(db, robot_id)
    except robots.RobotError as exc:
        raise click.ClickException(str(exc)) from None
    db.commit()
    click.echo(f"removed robot {robot_id}")


@group.command("digest")
def digest_command() -> None:
    """Queue each district's overdue digest (run once a day from cron)."""
    days = current_app.config["APPROVAL_WORKING_DAYS"]
    chat, db = current_app.extensions["robots"], get_session()
    owed = chat.owe_digest(db, utcnow(), days)
    db.commit()
    for row in owed:
        chat.outbox.wake_one(row.id)
    click.echo(f"queued {len(owed)} digest message(s)")


def register(app: Flask) -> None:
    app.cli.add_command(group)
