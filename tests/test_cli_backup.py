"""`flask backup`: a consistent backup, and a restore test: the members read back from it."""

from __future__ import annotations

import shutil
import subprocess

from flask import Flask
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

import config
from app import create_app
from app.models import Member
from tests import factories
from tests.conftest import TEST_DATABASE, need
from tests.services.test_roster import make_member


def readable_members(app: Flask) -> list[tuple[str, str]]:
    pii = app.extensions["pii"]
    with Session(app.extensions["db_engine"]) as db:
        rows = db.exec(select(Member).order_by(Member.id)).all()  # type: ignore[arg-type]
        found = [(pii.decrypt(m.name_enc), pii.decrypt(m.phone_enc)) for m in rows]
    app.extensions["db_engine"].dispose()
    return found


def test_backup_then_restore_reads_every_member(env, tmp_path, request):  # type: ignore[no-untyped-def]
    app = create_app(config.TestingConfig(env))
    with Session(app.extensions["db_engine"]) as db:
        district = factories.district(db)
        for n in range(5):
            make_member(db, app.extensions["pii"], district, n + 1, name=f"张{n}")
        db.commit()
    expected = readable_members(app)
    assert len(expected) == 5
    target = tmp_path / "backups" / "copy.bin"
    result = app.test_cli_runner().invoke(args=["backup", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.stat().st_size > 0
    restored_url = _restore(target, env["DATABASE_URL"], tmp_path, request)
    restored = create_app(config.TestingConfig({**env, "DATABASE_URL": restored_url}))
    assert readable_members(restored) == expected


def _restore(backup, url: str, tmp_path, request) -> str:  # type: ignore[no-untyped-def]
    if TEST_DATABASE != "postgres":
        return f"sqlite:///{backup}"  # an SQLite backup is a database file, ready to open
    need(shutil.which("pg_restore") is not None, "pg_restore on PATH")
    server = request.getfixturevalue("postgres")
    name = server.new_name()
    restored = server.create(name)
    request.addfinalizer(lambda: server.drop(name))
    plain = make_url(restored).set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(["pg_restore", "--no-owner", f"--dbname={plain}", str(backup)], check=True)  # noqa: S603,S607
    return restored


def test_a_failed_backup_is_a_clean_error(env, tmp_path):  # type: ignore[no-untyped-def]
    app = create_app(config.TestingConfig({**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}))
    result = app.test_cli_runner().invoke(args=["backup", "--output", str(tmp_path / "x.db")])
    assert result.exit_code != 0 and "does not exist" in result.output
