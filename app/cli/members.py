"""`flask members …`: the roster for operators (decrypted: handle with care)."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlmodel import col, select

from app.db import get_session
from app.models import District, Member, MemberStatus, Workplace

group = AppGroup("members", help="Members and applications.")


@group.command("list")
@click.option("--status", type=click.Choice([s.value for s in MemberStatus]), default=None)
@click.option("--district", default=None, help="District code.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of objects.")
def list_command(status: str | None, district: str | None, as_json: bool) -> None:
    """List members with their decrypted name and phone."""
    db, pii = get_session(), current_app.extensions["pii"]
    query = select(Member, col(District.code), col(Workplace.code)).join(
        District, col(District.id) == col(Member.district_id)
    )
    query = query.outerjoin(Workplace, col(Workplace.id) == col(Member.workplace_id)).order_by(col(Member.id))
    if status:
        query = query.where(Member.status == MemberStatus(status))
    if district:
        query = query.where(District.code == district)
    rows = [
        {
            "id": m.id,
            "name": pii.decrypt(m.name_enc),
            "phone": pii.decrypt(m.phone_enc),
            "platform": m.platform.value,
            "workplace": w_code,
            "district": d_code,
            "status": m.status.value,
            "created_at": m.created_at.isoformat(),
        }
        for m, d_code, w_code in db.exec(query)
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        where = f"{r['district']:<10} {r['workplace'] or '-':<12}"
        click.echo(f"{r['id']:>6} {r['status']:<9} {where} {r['platform']:<14} {r['name']} {r['phone']}")


def register(app: Flask) -> None:
    app.cli.add_command(group)
