"""Exports: formula cells neutralised, rows streamed batch by batch, an audit event at the end."""

from __future__ import annotations

import csv
import io

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


def test_csv_streams_batch_by_batch(db, pii, district, monkeypatch):
    for n in range(1, 51):
        make_member(db, pii, district, n, name=f"-工人{n}")
    db.commit()
    monkeypatch.setattr(roster, "SCAN_BATCH", 10)
    monkeypatch.setattr(export, "CHUNK", 1)
    selects: list[str] = []
    listener = lambda *args: selects.append(args[2]) if args[2].lstrip().upper().startswith("SELECT") else None  # noqa: E731
    event.listen(db.get_bind(), "before_cursor_execute", listener)
    finished: list[tuple[int, bool]] = []
    stream = export.csv_stream(db, pii, None, roster.RosterFilter(), finish=lambda n, ok: finished.append((n, ok)))
    first = next(stream)
    assert len(selects) == 1, "the first bytes leave before the second batch is read"
    body = first + b"".join(stream)
    event.remove(db.get_bind(), "before_cursor_execute", listener)
    assert len(selects) == 6 and finished == [(50, True)]
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == export.HEADER and len(rows) == 51
    assert all(row[1].startswith("'-工人") for row in rows[1:])


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
    body = b"".join(export.xlsx_stream(db, pii, None, roster.RosterFilter(),
                                       finish=lambda n, ok: finished.append((n, ok))))
    sheet = load_workbook(io.BytesIO(body))["members"]
    cell = sheet.cell(row=2, column=2)
    assert cell.data_type == "s" and cell.value == "'=cmd|' /C calc'!A0"
    assert finished == [(1, True)]
