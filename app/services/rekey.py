"""Re-encrypt every encrypted field under the current key, so an old key can be removed.

The encrypted fields are the `*_enc` columns of every table (names, phones, TOTP secrets).
Work goes table by table in batches of rows ordered by primary key; each batch is its own
transaction, and a value already sealed by the current key is left alone, so a run that stops
(a deploy, a killed process) is simply started again and goes on where the work remains.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Column, Table, func, select, update
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from app.services.crypto import PiiCipher

SUFFIX = "_enc"


@dataclass(frozen=True)
class Batch:
    table: str
    rows: int  # rows read
    changed: int  # values sealed again
    last: object  # primary key of the last row read: where the next batch starts


def encrypted_tables() -> list[tuple[Table, Column, list[Column]]]:
    """Each table with encrypted columns: (table, its primary key column, those columns)."""
    found = []
    for table in SQLModel.metadata.sorted_tables:
        columns = [column for column in table.columns if column.name.endswith(SUFFIX)]
        if columns:
            [key] = list(table.primary_key.columns)
            found.append((table, key, columns))
    return found


def count_rows(session: Session) -> int:
    return sum(
        session.execute(select(func.count()).select_from(table)).scalar_one() for table, _, _ in encrypted_tables()
    )


def stale_values(session: Session, cipher: PiiCipher, size: int = 1000) -> int:
    """How many stored values the current key did not seal (0: the old keys can go)."""
    stale = 0
    for table, key, columns in encrypted_tables():
        after = None
        while True:
            rows = _rows(session, table, key, columns, after, size)
            if not rows:
                break
            stale += sum(1 for row in rows for value in row[1:] if value is not None and not cipher.is_current(value))
            after = rows[-1][0]
    return stale


def rotate(session: Session, cipher: PiiCipher, size: int = 500) -> Iterator[Batch]:
    """Seal every value again under the current key, one batch at a time; the caller commits
    after each batch it is given. Raises ValueError if a value decrypts with no configured key."""
    for table, key, columns in encrypted_tables():
        after = None
        while True:
            rows = _rows(session, table, key, columns, after, size)
            if not rows:
                break
            changed = 0
            for row in rows:
                values = {
                    column.name: cipher.reencrypt(value)
                    for column, value in zip(columns, row[1:], strict=True)
                    if value is not None and not cipher.is_current(value)
                }
                if values:
                    session.execute(update(table).where(key == row[0]).values(**values))
                    changed += len(values)
            after = rows[-1][0]
            yield Batch(table.name, len(rows), changed, after)


def _rows(session: Session, table: Table, key: Column, columns: list[Column], after: object, size: int) -> list:
    query = select(key, *columns).order_by(key).limit(size)
    if after is not None:
        query = query.where(key > after)
    return list(session.execute(query).all())
