"""`flask --app wsgi bench-data --members N`: a large made-up roster for benchmarks.

Rows are built like real ones (encrypted name and phone, blind indexes, statuses, member
numbers) and inserted in batches of 20,000 with one Core executemany each, so a million take
about a minute of CPU. Applications arrive over the last year in id order, as real ones do
(ids grow with time), so the table is laid out in `created_at` order like a live one.
Phones are in the +86 170 virtual-operator block; names are "测试" plus a number. The command
refuses to run with APP_ENV=production: made-up members must never reach a live roster.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

import click
from flask import Flask, current_app
from sqlalchemy import func, insert, select
from sqlmodel import col

from app.db import session_scope
from app.models import District, Member, MemberStatus, PlaceKind, Platform, Workplace, WorkplaceKind, utcnow
from app.services import names
from app.services.crypto import PiiCipher
from app.services.phones import last4

BATCH = 20_000
YEAR = 365 * 24 * 3600
PLATFORMS = list(Platform)


@click.command("bench-data")
@click.option("--members", type=click.IntRange(min=1), required=True, help="How many members to add.")
@click.option("--districts", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--workplaces", type=click.IntRange(min=1), default=20, show_default=True, help="Per district.")
@click.option("--seed", type=int, default=6, show_default=True, help="Random seed (same seed, same data).")
def bench_data(members: int, districts: int, workplaces: int, seed: int) -> None:
    """Add N made-up members (60% approved, 30% pending, 10% rejected) over a year of applications."""
    if current_app.config["APP_ENV"] == "production":
        raise click.ClickException("bench-data refuses to run with APP_ENV=production")
    started = time.monotonic()
    places = _places(districts, workplaces)
    rng = random.Random(seed)  # noqa: S311 - made-up data, reproducible on purpose
    first, start = _next_number(), utcnow() - timedelta(seconds=YEAR)
    step = YEAR / members
    pii = current_app.extensions["pii"]
    done = 0
    while done < members:
        count = min(BATCH, members - done)
        rows = [
            _row(first + done + i, start + timedelta(seconds=(done + i) * step), places, rng, pii) for i in range(count)
        ]
        with session_scope() as session:
            session.connection().execute(insert(Member.__table__), rows)  # type: ignore[attr-defined]  # Core executemany
        done += count
        if done % 100_000 == 0 or done == members:
            click.echo(f"{done} members ({time.monotonic() - started:.0f} s)")
    _sync_sequences(places)
    click.echo(f"added {members} members in {time.monotonic() - started:.1f} s")


def _places(districts: int, workplaces: int) -> list[tuple[int, str, list[int]]]:
    """Districts BD01… with their workplaces, made when missing: (district id, code, workplace ids)."""
    out = []
    with session_scope() as session:
        for d in range(1, districts + 1):
            code = f"BD{d:02d}"
            district = session.execute(select(District).where(col(District.code) == code)).scalar_one_or_none()
            if district is None:
                district = District(code=code, name=f"压测区 {d}")
                session.add(district)
                session.flush()
                session.add_all(
                    [
                        Workplace(
                            code=f"{code}-W{w:03d}",
                            name=f"压测站 {d}-{w}",
                            district_id=district.id or 0,
                            kind=WorkplaceKind.delivery_station,
                        )
                        for w in range(1, workplaces + 1)
                    ]
                )
                session.flush()
            ids = list(
                session.execute(select(col(Workplace.id)).where(col(Workplace.district_id) == district.id)).scalars()
            )
            out.append((district.id or 0, code, ids))
    return out


def _next_number() -> int:
    with session_scope() as session:
        return int(session.execute(select(func.coalesce(func.max(Member.id), 0))).scalar_one()) + 1


def _row(
    n: int, created: datetime, places: list[tuple[int, str, list[int]]], rng: random.Random, pii: PiiCipher
) -> dict[str, object]:
    district_id, code, workplace_ids = places[n % len(places)]
    phone, name = f"+86170{n:08d}", f"测试{n}"
    roll = rng.random()
    status = MemberStatus.approved if roll < 0.6 else MemberStatus.pending if roll < 0.9 else MemberStatus.rejected
    decided = created + timedelta(hours=rng.randrange(1, 24 * 20)) if status is not MemberStatus.pending else None
    return {
        "district_id": district_id,
        "workplace_id": rng.choice(workplace_ids) if rng.random() < 0.9 else None,
        "name_enc": pii.encrypt(name),
        "phone_enc": pii.encrypt(phone),
        "phone_index": pii.index(phone),
        "phone_last4_index": pii.index(last4(phone), purpose="last4"),
        "name_index": names.index(pii, name),
        "platform": rng.choice(PLATFORMS).value,
        "status": status.value,
        "consent_version": "bench",
        "consent_at": created,
        "source_kind": PlaceKind.workplace.value,
        "source_qr_version": 1,
        "created_at": created,
        "verified_at": created,
        "decided_at": decided,
        "decided_by_id": None,
        "reject_reason": "bench" if status is MemberStatus.rejected else None,
        "member_number": f"{code}-B{n:09d}" if status is MemberStatus.approved else None,
    }


def _sync_sequences(places: list[tuple[int, str, list[int]]]) -> None:
    """PostgreSQL: move the id sequence past the ids inserted, then VACUUM (ANALYZE) the table now
    (planner statistics, visibility map) rather than whenever autovacuum gets to it, and compact the
    counters: each inserted member's trigger rewrote its district's counter row, and a fill of
    millions leaves those few rows spread over hundreds of MB of emptied pages that every read of
    the tabs would scan (VACUUM frees them but cannot shrink the file; VACUUM FULL of a few dozen
    rows takes milliseconds). SQLite: nothing."""
    with session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.setval("member_id_seq", select(func.max(Member.id)).scalar_subquery())))
    if current_app.extensions["db_engine"].dialect.name == "postgresql":
        with current_app.extensions["db_engine"].connect() as connection:
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            autocommit.exec_driver_sql("VACUUM (ANALYZE) member")
            autocommit.exec_driver_sql("VACUUM FULL district_count")


def register(app: Flask) -> None:
    app.cli.add_command(bench_data)
