"""`flask users …`: staff accounts and their API tokens."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlmodel import Session, select

from app.db import get_session
from app.models import Role, User, utcnow
from app.services import api_tokens, mfa, users

group = AppGroup("users", help="Staff accounts (admins, officials, organizers) and API tokens.")


def _user(db: Session, email: str) -> User:
    try:
        return users.find(db, email)
    except users.UserNotFound:
        raise click.ClickException(f"no user with email {email.strip().lower()}") from None


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


@group.command("list")
def list_command() -> None:
    """Every account with its role, state and districts."""
    db = get_session()
    for user in db.exec(select(User).order_by(User.email)):
        state = "inactive" if not user.active else "locked" if user.locked_at else "active"
        totp = "totp" if mfa.enrolled(user) else "no-totp"
        click.echo(f"{user.email:<40} {user.role.value:<10} {state:<8} {totp:<7} failures={user.failed_logins}")


@group.command("unlock")
@click.argument("email")
def unlock_command(email: str) -> None:
    """Clear a lock after too many failed sign-ins (and the failure count)."""
    db = get_session()
    users.unlock(db, _user(db, email))
    db.commit()
    click.echo(f"unlocked {email.strip().lower()}")


@group.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def set_password_command(email: str, password_stdin: bool) -> None:
    """Replace a password (every session of the user ends); generated and printed once by default."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else users.generate_password()
    db = get_session()
    try:
        users.set_password(db, _user(db, email), password)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    db.commit()
    click.echo(f"password changed for {email.strip().lower()}")
    if not password_stdin:
        click.echo(f"password (shown once): {password}")


@group.command("reset-mfa")
@click.argument("email")
def reset_mfa_command(email: str) -> None:
    """Forget an account's authenticator app and recovery codes: it sets them up again at its next
    sign-in, and every session it has ends now."""
    db = get_session()
    mfa.reset(db, _user(db, email))
    db.commit()
    click.echo(f"two-step sign-in reset for {email.strip().lower()}: it is set up again at the next sign-in")


@group.command("deactivate")
@click.argument("email")
def deactivate_command(email: str) -> None:
    """Switch an account off: its sessions and API tokens stop working at once."""
    db = get_session()
    users.deactivate(db, _user(db, email))
    db.commit()
    click.echo(f"deactivated {email.strip().lower()}")


@group.command("token")
@click.argument("email")
def token_command(email: str) -> None:
    """Issue an API bearer token; it is printed once, alone on the last line."""
    db = get_session()
    user = _user(db, email)
    if not user.active:
        raise click.ClickException("this account is inactive")
    token, raw = api_tokens.issue(db, user, now=utcnow())
    db.commit()
    click.echo(f"token {token.id} for {user.email} (shown once; keep it secret):")
    click.echo(raw)


@group.command("tokens")
@click.argument("email")
def tokens_command(email: str) -> None:
    """List a user's API tokens (ids and dates, never the secret)."""
    db = get_session()
    for token in api_tokens.tokens_of(db, _user(db, email)):
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "live"
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        click.echo(f"{token.id:>5} created {token.created_at:%Y-%m-%d %H:%M} used {used} {state}")


@group.command("revoke-token")
@click.argument("email")
@click.option("--id", "token_id", type=int, default=None, help="Revoke only this token (default: all of them).")
def revoke_token_command(email: str, token_id: int | None) -> None:
    """Revoke a user's API tokens (all, or one by --id)."""
    db = get_session()
    try:
        revoked = api_tokens.revoke(db, _user(db, email), now=utcnow(), token_id=token_id)
    except api_tokens.TokenNotFound:
        raise click.ClickException(f"no live token {token_id} for this user") from None
    db.commit()
    click.echo(f"revoked {len(revoked)} token(s)")


def register(app: Flask) -> None:
    app.cli.add_command(group)
