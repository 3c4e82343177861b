"""`flask seed-demo`: a district, two workplaces and an admin, when the database is empty."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlmodel import select

from app.db import get_session
from app.models import District, Role, User
from app.services import places, users

DEMO_CSV = """district_code,district_name,workplace_code,workplace_name,kind
PD,浦东新区总工会,PD-ZJ01,张江美团骑手站,delivery_station
PD,浦东新区总工会,PD-YZ01,陆家嘴户外劳动者驿站,rest_station
"""
DEMO_ADMIN = "admin@example.org"


@click.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Load demo data when the database is empty; print the demo join URL and sign-in address."""
    db = get_session()
    if db.exec(select(District)).first() is None:
        places.import_csv(db, DEMO_CSV)
        password = users.generate_password()
        if db.exec(select(User).where(User.email == DEMO_ADMIN)).first() is None:
            users.create(db, DEMO_ADMIN, role=Role.admin, password=password)
            db.commit()
            click.echo(f"demo admin: {DEMO_ADMIN}  password (shown once): {password}")
            click.echo(
                "at the first sign-in the admin sets up two-step sign-in with an authenticator app (README, Roles)"
            )
        db.commit()
    base, signer = current_app.config["PUBLIC_BASE_URL"], current_app.extensions["qr_signer"]
    for place in places.all_places(db):
        click.echo(f"join URL for {place.name}: {places.join_url(base, signer, place)}")
    click.echo(f"staff sign-in: {base}/login")


def register(app: Flask) -> None:
    app.cli.add_command(seed_demo)
