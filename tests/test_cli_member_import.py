"""`flask members import FILE.csv [--dry-run]`, run through Flask's CLI runner."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import select

from app.models import AuditEvent, Member
from tests import factories
from tests.factories import phone

HEADER = "name,phone,district,workplace,platform,join_date,member_number\n"


def run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["members", "import", *args], catch_exceptions=False)


def setup_places(db) -> None:  # type: ignore[no-untyped-def]
    factories.workplace(db, factories.district(db))
    db.commit()


def register(tmp_path, text: str, encoding: str = "utf-8"):  # type: ignore[no-untyped-def]
    path = tmp_path / "members.csv"
    path.write_bytes(text.encode(encoding))
    return path


def count(db) -> int:  # type: ignore[no-untyped-def]
    db.commit()
    return len(db.exec(select(Member)).all())


def test_import_writes_rows_and_reports_the_bad_ones_with_exit_1(app, db, tmp_path, caplog):
    setup_places(db)
    caplog.set_level(logging.DEBUG)
    path = register(tmp_path, HEADER + f"张三,{phone(1)[3:]},PD,PD-ZJ01,美团,2024-03-01,\n李四,123,PD,,,,\n")
    report = tmp_path / "report.csv"
    result = run(app, str(path), "--report", str(report))
    assert result.exit_code == 1
    assert "imported: 1" in result.output and "rejected: 1" in result.output
    assert count(db) == 1
    text = report.read_text(encoding="utf-8-sig")
    assert "3,rejected,phone_malformed" in text and "170****0001" in text
    everything = result.output + text + caplog.text
    assert phone(1)[3:] not in everything and "张三" not in everything and "李四" not in everything
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "member.import")).one()
    assert event.details["via"] == "cli" and event.details["imported"] == 1


def test_dry_run_writes_nothing(app, db, tmp_path):
    setup_places(db)
    path = register(tmp_path, HEADER + f"张三,{phone(1)},PD,,,,\n")
    result = run(app, str(path), "--dry-run")
    assert result.exit_code == 0 and "dry run, nothing written" in result.output and "would_import: 1" in result.output
    assert count(db) == 0
    assert db.exec(select(AuditEvent.action)).all() == ["member.import_dry_run"]


def test_excel_utf8_with_bom_and_gbk_files(app, db, tmp_path):
    setup_places(db)
    bom = register(tmp_path, "\ufeff" + HEADER + f"张三,{phone(1)},浦东新区总工会,,,,\n")
    assert run(app, str(bom)).exit_code == 0
    gbk = register(tmp_path, "姓名,手机号,区\n" + f"李四,{phone(2)},浦东新区总工会\n", encoding="gbk")
    assert run(app, str(gbk)).exit_code == 0
    assert run(app, str(gbk), "--encoding", "gbk").output.count("duplicate_existing") == 2  # row and count


def test_a_wrong_encoding_or_header_is_a_clear_error(app, db, tmp_path):
    setup_places(db)
    gbk = register(tmp_path, HEADER + f"张三,{phone(1)},PD,,,,\n", encoding="gbk")
    result = app.test_cli_runner().invoke(args=["members", "import", str(gbk), "--encoding", "utf-8"])
    assert result.exit_code != 0 and "--encoding" in result.output
    bad = register(tmp_path, "who,what\nx,y\n")
    result = app.test_cli_runner().invoke(args=["members", "import", str(bad)])
    assert result.exit_code != 0 and "missing: name, phone, district" in result.output
    assert count(db) == 0


def test_checking_the_rows_holds_no_write_lock(app, db, tmp_path, monkeypatch):
    """While rows are parsed (seconds for a big file), a join must still be able to write (SQLite's one writer)."""
    import sqlite3

    from app.services.member_import import rows as member_import

    url = app.config["DATABASE_URL"]
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's single write lock; PostgreSQL locks rows")
    setup_places(db)
    db.close()
    real_parse, writes = member_import._parse, []

    def parse_then_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not writes:
            other = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0.2, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # "database is locked" if the import held the lock
            other.execute("ROLLBACK")
            other.close()
            writes.append(True)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(member_import, "_parse", parse_then_write)
    path = register(tmp_path, HEADER + f"张三,{phone(1)},PD,,,,\n")
    assert run(app, str(path)).exit_code == 0 and writes == [True]
