"""`flask places …`: districts and workplaces."""

from __future__ import annotations

import json
import sys
from typing import TextIO

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.db import get_session
from app.models import utcnow
from app.services import places

group = AppGroup("places", help="Districts and workplaces, and their QR codes.")


@group.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
def import_command(csv_file: TextIO) -> None:
    """Upsert places from CSV: district_code,district_name,workplace_code,workplace_name[,kind]."""
    try:
        text = csv_file.read()
    except UnicodeDecodeError:
        raise click.ClickException("the file is not UTF-8 text") from None
    db = get_session()
    report = places.import_csv(db, text)
    db.commit()
    click.echo(f"created: {len(report.created)}, updated: {len(report.updated)}, rejected: {len(report.rejected)}")
    for line_no, reason in report.rejected:
        click.echo(f"line {line_no}: {reason}", err=True)
    if report.rejected:
        sys.exit(1)


def _describe(place: places.Place) -> dict[str, object]:
    signer, base = current_app.extensions["qr_signer"], current_app.config["PUBLIC_BASE_URL"]
    row: dict[str, object] = {"code": place.code, "name": place.name, "kind": places.kind_of(place).value}
    if places.kind_of(place) is places.PlaceKind.workplace:
        row["district"] = _district_code(place)
    row["join_url"] = places.join_url(base, signer, place)
    return row


def _district_code(workplace: places.Place) -> str:
    from app.models import District

    district = get_session().get(District, workplace.district_id)  # type: ignore[union-attr]
    return district.code if district else ""


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of objects.")
@click.option("--district", default=None, help="Only this district and its workplaces.")
def list_command(as_json: bool, district: str | None) -> None:
    """List every place with its join URL."""
    rows = [_describe(place) for place in places.all_places(get_session(), district)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['kind']:<9} {row['code']:<16} {row['name']}  {row['join_url']}")


@group.command("rotate")
@click.argument("code")
def rotate_command(code: str) -> None:
    """Revoke a place's current QR code and print the new join URL."""
    db = get_session()
    try:
        place = places.find_by_code(db, code)
    except places.PlaceNotFound:
        raise click.ClickException(f"no place with code {code}") from None
    places.rotate(db, place, now=utcnow())
    db.commit()
    click.echo(places.join_url(current_app.config["PUBLIC_BASE_URL"], current_app.extensions["qr_signer"], place))


def register(app: Flask) -> None:
    app.cli.add_command(group)
