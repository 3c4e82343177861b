"""Exports: formula cells neutralised, rows streamed batch by batch, an audit event at the end."""

from __future__ import annotations

import csv
import io
import threading
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import event

from app.services import export, roster
from tests import factories
from tests.services.test_roster import make_member


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_dangerous_cells_are_neutralised(text):
    assert export.neutralise(text) == "'" + text


@pytest.mark.parametrize("value", ["王小明", "a=b", "", 5, None])
def test_other_cells_are_kept(value):
    assert export.neutralise(value) == value


@pytest.fixture
def pii(app):  # type: ignore[no-untyped-def]
    return app.extensions["pii"]


@pytest.fixture
def district(db):  # type: ignore[no-untyped-def]
    row = factories.district(db)
    db.commit()
    return row


def test_csv_streams_one_query_in_batches(db, pii, district, monkeypatch):
    for n in range(1, 51):
        make_member(db, pii, district, n, name=f"-工人{n}")
    db.commit()
    monkeypatch.setattr(export, "BATCH", 10)
    monkeypatch.setattr(export, "CHUNK", 1)
    selects: list[str] = []
    listener = lambda *args: selects.append(args[2]) if args[2].lstrip().upper().startswith("SELECT") else None  # noqa: E731
    event.listen(db.get_bind(), "before_cursor_execute", listener)
    finished: list[tuple[int, bool]] = []
    stream = export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: finished.append((n, ok)))
    first = next(stream)
    assert len(selects) == 1 and finished == [], "the first bytes leave while the query is still being read"
    body = first + b"".join(stream)
    event.remove(db.get_bind(), "before_cursor_execute", listener)
    assert len(selects) == 1 and finished == [(50, True)], "one query for every row"
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == export.HEADER and len(rows) == 51
    assert all(row[1].startswith("'-工人") for row in rows[1:])


def test_the_stream_reads_on_its_own_connection_and_gives_it_back(db, pii, district, monkeypatch):
    monkeypatch.setattr(export, "CHUNK", 1)
    for n in range(1, 4):
        make_member(db, pii, district, n)
    db.commit()
    pool = db.get_bind().pool
    held = pool.checkedout()
    stream = export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: None)
    assert pool.checkedout() == held, "nothing is opened before the first row is asked for"
    next(stream)
    assert pool.checkedout() == held + 1
    stream.close()
    assert pool.checkedout() == held, "closing the stream gives its connection back"
    b"".join(export.xlsx_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: None))
    assert pool.checkedout() == held


def test_an_interrupted_export_is_still_recorded(db, pii, district, monkeypatch):
    for n in range(1, 6):
        make_member(db, pii, district, n)
    db.commit()
    monkeypatch.setattr(export, "CHUNK", 1)
    finished: list[tuple[int, bool]] = []
    stream = export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: finished.append((n, ok)))
    next(stream)
    stream.close()  # the client went away
    assert finished == [(1, False)]


def test_xlsx_has_text_not_formulas(db, pii, district):
    make_member(db, pii, district, 1, name="=cmd|' /C calc'!A0")
    db.commit()
    finished: list[tuple[int, bool]] = []
    body = b"".join(
        export.xlsx_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: finished.append((n, ok)))
    )
    sheet = load_workbook(io.BytesIO(body))["members"]
    cell = sheet.cell(row=2, column=2)
    # A text cell marked "quote prefix": Excel shows it as typed and never evaluates it.
    assert cell.data_type == "s" and cell.value == "=cmd|' /C calc'!A0" and cell.quotePrefix
    assert finished == [(1, True)]


def people(zone: str = "Asia/Shanghai") -> export.Layout:
    header = [f"h{n}" for n in range(len(export.HEADER))]
    return export.Layout(
        header=header,
        statuses={"pending": "待审核"},
        platforms={"meituan": "美团"},
        zone=ZoneInfo(zone),
        national_phones=True,
    )


def test_a_layout_for_people_local_times_words_and_phones_without_plus86(db, pii, district):
    from datetime import UTC, datetime

    mainland = make_member(db, pii, district, 1)
    mainland.created_at = datetime(2026, 3, 4, 20, 6, 7, 999999, tzinfo=UTC)  # 04:06 the next day in Shanghai
    abroad = make_member(db, pii, district, 2)
    abroad.phone_enc = pii.encrypt("+447700900123")
    abroad.created_at = datetime(2026, 3, 3, 1, 2, 3, tzinfo=UTC)
    db.commit()
    body = b"".join(export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: None, layout=people()))
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == people().header
    assert [(r[2], r[3], r[7], r[8]) for r in rows[1:]] == [
        (factories.phone(1)[3:], "美团", "待审核", "2026-03-05 04:06:07"),
        ("'+447700900123", "美团", "待审核", "2026-03-03 09:02:03"),  # +CC kept, so neutralised
    ]
    book = export.xlsx_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: None, layout=people())
    sheet = load_workbook(io.BytesIO(b"".join(book)))["members"]
    phones = [sheet.cell(row=r, column=3) for r in (2, 3)]
    assert [(c.value, c.data_type, c.quotePrefix) for c in phones] == [
        (factories.phone(1)[3:], "s", True),
        ("+447700900123", "s", True),
    ], "text cells, no visible apostrophe"
    assert sheet.cell(row=2, column=9).value == datetime(2026, 3, 5, 4, 6, 7)  # a date cell, local time


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_the_layout_for_people_still_neutralises_every_formula(db, pii, district, text):
    make_member(db, pii, district, 1, name=text)
    db.commit()
    body = b"".join(export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: None, layout=people()))
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[1][1] == "'" + text


def test_times_are_written_as_before_whichever_database_formats_them(db, pii, district):
    from datetime import UTC, datetime

    from app.models import User

    official = User(email="o@example.org", password_hash="x", role="official")
    db.add(official)
    db.flush()
    decided = make_member(db, pii, district, 1)
    pending = make_member(db, pii, district, 2)
    decided.created_at = datetime(2026, 3, 4, 5, 6, 7, 999999, tzinfo=UTC)
    pending.created_at = datetime(2026, 3, 4, 5, 6, 8, tzinfo=UTC)
    roster.approve(db, None, decided.id, by=official, now=datetime(2026, 3, 5, 23, 59, 59, 500000, tzinfo=UTC))
    db.commit()
    body = b"".join(export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: None))
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [(r["applied_at"], r["decided_at"], r["decided_by"]) for r in rows] == [
        ("2026-03-04T05:06:08+00:00", "", ""),
        ("2026-03-04T05:06:07+00:00", "2026-03-05T23:59:59+00:00", "o@example.org"),
    ]
    assert export._iso(datetime(2026, 3, 4, 5, 6, 7, 999999, tzinfo=UTC)) == "2026-03-04T05:06:07+00:00"


# --- the next batch fetched while this one is written (PostgreSQL; app.db.fetched_ahead) -------


def test_the_stream_fetches_ahead_on_postgresql_only_and_gives_everything_back(db, pii, district, monkeypatch):
    """PostgreSQL's server-side cursor is read a batch ahead by a thread; SQLite reads in-process."""
    for n in range(1, 51):
        make_member(db, pii, district, n)
    db.commit()
    monkeypatch.setattr(export, "BATCH", 10)
    monkeypatch.setattr(export, "CHUNK", 1)
    pool = db.get_bind().pool
    held = pool.checkedout()
    stream = export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: None)
    next(stream)
    fetching = [t for t in threading.enumerate() if t.name == "export-fetch"]
    assert bool(fetching) == (db.get_bind().dialect.name == "postgresql")
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "export-fetch"], "no thread outlives the stream"
    assert pool.checkedout() == held, "the connection went back after the thread ended"
    body = b"".join(export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: None))
    assert len(list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))) == 51
