"""Data at rest (docs/security.md F5, F6; scenario 56): no name or phone in clear in the database."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg
import pytest

import config as settings
from app import create_app
from app.cli.database import upgrade
from app.models import MemberStatus
from tests import factories
from tests.conftest import need
from tests.security.conftest import browser, code_from, members, send_code, spread_phone, submit

PEOPLE = [
    ("王小明", spread_phone(1)),
    ("李秀英", spread_phone(2)),
    ("Zhang Wei", spread_phone(3)),
    ("陈静", spread_phone(4)),
    ("刘洋", spread_phone(5)),
]


def run_joins(app, db) -> None:  # type: ignore[no-untyped-def]
    """Five workers join; one is approved and one rejected (every column gets written)."""
    district = factories.district(db)
    station = factories.workplace(db, district)
    db.commit()
    path = factories.join_path(app, station)
    for n, (name, phone) in enumerate(PEOPLE):
        client = browser(app, ip=f"203.0.113.{n + 1}")
        assert submit(client, path, phone=phone, name=name).status_code == 303
        if n < 4:  # the last one stays a draft
            assert send_code(client, code_from(app.extensions["sms"])).status_code == 303
    first, second, *_ = members(db)
    first.status, second.status = MemberStatus.approved, MemberStatus.rejected
    db.add_all([first, second])
    db.commit()


def needles(phone: str) -> list[bytes]:
    national = phone[3:]
    spaced = f"{national[:3]} {national[3:7]} {national[7:]}"
    return [s.encode() for s in (phone, national, spaced, national[-8:])]


def assert_nothing_in_clear(raw: bytes, index_key: str) -> None:
    for name, phone in PEOPLE:
        assert name.encode() not in raw and name.encode("utf-16-le") not in raw, name
        for needle in needles(phone):
            assert needle not in raw, needle
        # The blind index is keyed: an unkeyed hash of the number (enumerable) is not in there.
        assert hashlib.sha256(phone.encode()).hexdigest().encode() not in raw
        assert hashlib.sha256(f"phone\x00{phone}".encode()).hexdigest().encode() not in raw
    assert index_key.encode() not in raw, "the index key lives outside the database"


def test_sqlite_file_holds_no_name_or_phone(app, db, env, tmp_path):
    if not env["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("this run's database is not SQLite (the pg_dump test covers PostgreSQL)")
    run_joins(app, db)
    db.close()
    app.extensions["db_engine"].dispose()
    database = Path(env["DATABASE_URL"].removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert len(raw) > 10_000
    assert_nothing_in_clear(raw, env["PII_INDEX_KEY"])
    pii = app.extensions["pii"]
    assert pii.index(PEOPLE[0][1]).encode() in raw, "the index is there, under the key"


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def dump_database():  # type: ignore[no-untyped-def]
    need(_postgres_reachable() and shutil.which("pg_dump") is not None, "PostgreSQL at 127.0.0.1:5432 and pg_dump")
    name = "scanjoin_sec_" + secrets.token_hex(4)
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_postgres_dump_holds_no_name_or_phone(env, dump_database):
    name, url = dump_database
    upgrade(url)
    app = create_app(settings.TestingConfig({**env, "DATABASE_URL": url}))
    from sqlmodel import Session

    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        run_joins(app, db)
    app.extensions["db_engine"].dispose()
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--data-only", name],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert b"COPY public.member" in dump
    assert_nothing_in_clear(dump, env["PII_INDEX_KEY"])
