"""`flask members …`: the roster for operators (decrypted: handle with care)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func
from sqlmodel import Session, col, select

from app.db import engine, get_session
from app.models import District, Member, MemberStatus, Workplace
from app.services import member_import, names, transfers
from app.services.crypto import PiiCipher

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
    found = list(db.exec(query))
    moves = transfers.histories(db, [m.id or 0 for m, _d, _w in found])
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
            "member_number": m.member_number,
            "history": _history(m, d_code, moves.get(m.id or 0, [])),
        }
        for m, d_code, w_code in found
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        where = f"{r['district']:<10} {r['workplace'] or '-':<12}"
        click.echo(f"{r['id']:>6} {r['status']:<9} {where} {r['platform']:<14} {r['name']} {r['phone']}")


def _history(member: Member, district: str, moves: list[transfers.TransferView]) -> list[dict[str, object]]:
    """Each district of an approved member with its dates and member number (transfers), oldest first."""
    if member.decided_at is None or member.status is not MemberStatus.approved:
        return []
    return [
        {
            "district": stay.district,
            "member_number": stay.member_number,
            "since": stay.since.isoformat() if stay.since else None,
            "until": stay.until.isoformat() if stay.until else None,
        }
        for stay in transfers.history(member, district, moves)
    ]


@group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option(
    "--encoding",
    default="auto",
    show_default=True,
    help="The file's encoding: auto (UTF-8 with or without BOM, else GBK), utf-8, gbk or gb18030.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the per-row report here (CSV: row, outcome, reason, masked phone, member number).",
)
def import_command(file: Path, dry_run: bool, encoding: str, report: Path | None) -> None:
    """Import existing members from a CSV file (header: name, phone, district, workplace, platform, join_date,
    member_number). Duplicates are reported, not written; bad rows never stop the others."""
    db, pii = get_session(), current_app.extensions["pii"]
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    try:
        text = member_import.decode(file.read_bytes(), encoding)
        # Checked in a read transaction of its own: on SQLite the writing session's would hold
        # the write lock (joins wait for it) while every row is parsed.
        with (
            click.progressbar(length=text.count("\n"), label="Checking ", file=sys.stderr) as bar,
            Session(engine()) as reader,
        ):
            plan = member_import.plan(
                reader,
                text,
                pii=pii,
                allowed_regions=current_app.config["ALLOWED_REGIONS"],
                today=datetime.now(zone).date(),
                progress=bar.update,
            )
    except member_import.ImportFileError as exc:
        raise click.ClickException(_FILE_ERRORS[exc.reason].format(exc.detail)) from exc
    if dry_run:
        member_import.preview_numbers(plan)
    else:
        _write_batches(db, plan, pii, zone)
    member_import.forget_personal_data(plan)
    member_import.record(db, plan, actor_id=None, dry_run=dry_run, via="cli")
    db.commit()
    _print_report(plan, report, dry_run)


_FILE_ERRORS = {
    "encoding": "The file could not be read as {} text: save it as CSV UTF-8, or give --encoding.",
    "header": "The first row must name the columns; missing: {}.",
    "format": "The file is not a CSV table (line {} could not be read).",
}


def _write_batches(db: Session, plan: member_import.Plan, pii: PiiCipher, zone: ZoneInfo) -> None:
    writer = member_import.Writer(plan, pii, zone)
    pending = len(plan.pending())
    with click.progressbar(length=pending, label="Importing", file=sys.stderr) as bar:
        for batch in member_import.batches(plan):
            writer.write(db, batch)
            db.commit()  # one transaction per batch
            bar.update(len(batch))


def _print_report(plan: member_import.Plan, report: Path | None, dry_run: bool) -> None:
    text = member_import.report_csv(plan)
    if report is not None:
        report.write_text(text, encoding="utf-8-sig")  # Excel opens it as UTF-8
    else:
        for row in plan.rows:
            if row.outcome not in (member_import.IMPORTED, member_import.WOULD_IMPORT):
                click.echo(f"row {row.number}: {row.outcome} {row.reason}")
    counts = ", ".join(f"{k}: {v}" for k, v in plan.counts().items())
    click.echo(("dry run, nothing written. " if dry_run else "") + counts)
    if plan.counts()[member_import.REJECTED]:
        sys.exit(1)  # as `places import`: a rejected row is worth a non-zero exit (good rows are kept)


@group.command("reindex")
@click.option("--batch", default=2000, show_default=True, help="Members per transaction.")
@click.option("--all", "everything", is_flag=True, help="Every member, not only those without an index.")
def reindex_command(batch: int, everything: bool) -> None:
    """Index the names of members that have no name index (after migration 0013), resumable.

    With --all every name is indexed again: run it after PII_INDEX_KEY changes."""
    db, pii = get_session(), current_app.extensions["pii"]
    total = db.execute(select(func.count()).select_from(Member)).scalar_one() if everything else names.missing(db)
    indexed = 0
    with click.progressbar(length=total, label="indexing names") as bar:
        for rows in names.reindex(db, pii, size=max(1, batch), everything=everything):
            db.commit()  # each batch is kept, whatever happens to the next
            indexed += rows
            bar.update(rows)
    click.echo(f"names indexed: {indexed}; still without an index: {names.missing(db)}")


def register(app: Flask) -> None:
    app.cli.add_command(group)
