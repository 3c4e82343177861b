"""`flask cards …`: the e-card public key, and checking a card offline (no database, no network)."""

from __future__ import annotations

import base64
import sys
from typing import TextIO

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.models import utcnow
from app.services import cards
from app.services.deadlines import local_date

group = AppGroup("cards", help="Member e-cards.")


@group.command("public-key")
@click.option("--base64", "as_base64", is_flag=True, help="Base64 of the 32 raw bytes instead of PEM.")
@click.option("--all", "every", is_flag=True, help="Also the older keys whose cards are still accepted.")
def public_key_command(as_base64: bool, every: bool) -> None:
    """Print the Ed25519 public key that checks new cards (give it to verifiers)."""
    signer: cards.CardSigner = current_app.extensions["card_signer"]
    for key in signer.public_keys if every else signer.public_keys[:1]:
        text = base64.b64encode(cards.raw_public(key)).decode() if as_base64 else cards.public_pem(key)
        click.echo(text, nl=as_base64)


@group.command("verify")
@click.argument("token_or_url")
@click.option(
    "--public-key",
    "key_file",
    type=click.File("r"),
    multiple=True,
    help="Check with this public key (PEM or base64) instead of the app's keys; may be repeated.",
)
def verify_command(token_or_url: str, key_file: tuple[TextIO, ...]) -> None:
    """Check a card URL or token offline: exit 0 and print it, or exit 1 (forged, tampered, expired).

    Revocation (withdrawal, transfer) needs the database: open the card URL for that.
    """
    if key_file:
        verifier = cards.CardVerifier([cards.load_public_key(f.read()) for f in key_file])
    else:
        verifier = current_app.extensions["card_signer"]
    try:
        card = verifier.loads(token_or_url, local_date(utcnow()))
    except cards.CardInvalid:
        click.echo("invalid: not a card signed by this union's keys", err=True)
        sys.exit(1)
    except cards.CardExpired as exc:
        click.echo(f"expired: member {exc.card.member_number}, valid until {exc.card.valid_until}", err=True)
        sys.exit(1)
    click.echo(f"valid\nmember number: {card.member_number}\ndistrict: {card.district_code}")
    click.echo(f"valid until: {card.valid_until.isoformat()}")


def register(app: Flask) -> None:
    app.cli.add_command(group)
