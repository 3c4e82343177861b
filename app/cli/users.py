"""`flask users …`: staff accounts."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.db import get_session
from app.models import Role
from app.services import users

group = AppGroup("users", help="Staff accounts (admins, officials, organizers).")


@group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--district", "districts", multiple=True, help="District code (repeat for several).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_command(email: str, role: str, districts: tuple[str, ...], password_stdin: bool) -> None:
    """Create a user; without --password-stdin a password is generated and printed once."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else users.generate_password()
    db = get_session()
    try:
        users.create(db, email, role=Role(role), password=password, district_codes=list(districts))
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    db.commit()
    click.echo(f"created {role} {email.strip().lower()}")
    if not password_stdin:
        click.echo(f"password (shown once): {password}")


def register(app: Flask) -> None:
    app.cli.add_command(group)
