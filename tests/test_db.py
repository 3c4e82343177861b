"""The data layer: SQLite tuned for one writer and many readers, PostgreSQL through psycopg 3."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app import db as app_db
from app.db import fetched_ahead, make_engine
from app.models import Workplace
from tests.conftest import TEST_DATABASE


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_template: Path) -> str:
    path = tmp_path / "pragma.db"
    path.write_bytes(migrated_template.read_bytes())
    return f"sqlite:///{path}"


def pragma(connection, name: str):  # type: ignore[no-untyped-def]
    return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_connections_use_wal_busy_timeout_foreign_keys_and_normal_sync(sqlite_url: str):
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert pragma(connection, "journal_mode") == "wal"
        assert pragma(connection, "busy_timeout") == 30000
        assert pragma(connection, "foreign_keys") == 1
        assert pragma(connection, "synchronous") == 1  # NORMAL: safe in WAL, one fsync per checkpoint
    engine.dispose()


def test_sqlite_enforces_foreign_keys(sqlite_url: str):
    engine = make_engine(sqlite_url)
    with Session(engine) as session, pytest.raises(IntegrityError):
        session.add(Workplace(code="X-1", name="nowhere", district_id=999))
        session.commit()
    engine.dispose()


def other_writer(url: str) -> sqlite3.Connection:
    """A second process's view: a plain connection that gives up at once when the file is locked."""
    return sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)


def test_writer_sessions_take_the_write_lock_at_begin(sqlite_url: str):
    engine = make_engine(sqlite_url)
    writer = engine.execution_options(sqlite_begin="IMMEDIATE")
    with Session(writer) as session:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]  # a read only: the lock is already held
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other_writer(sqlite_url).execute("BEGIN IMMEDIATE")
    other_writer(sqlite_url).execute("BEGIN IMMEDIATE")  # released at the end of the session
    engine.dispose()


def test_reading_sessions_do_not_block_a_writer(sqlite_url: str):
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        session.exec(text("SELECT count(*) FROM member"))  # type: ignore[call-overload]
        conn = other_writer(sqlite_url)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO district (code, name, member_seq, qr_version, qr_issued_at, created_at) "
            "VALUES ('W1', 'w', 0, 1, '2026-01-01', '2026-01-01')"
        )
        conn.execute("COMMIT")
    engine.dispose()


def test_requests_that_write_begin_immediate_and_reads_do_not(app):  # type: ignore[no-untyped-def]
    if not app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("BEGIN IMMEDIATE is SQLite's; PostgreSQL locks rows")
    with app.test_request_context("/", method="POST"):
        assert app_db.get_session().bind.get_execution_options()["sqlite_begin"] == "IMMEDIATE"
    with app.test_request_context("/", method="GET"):
        assert "sqlite_begin" not in app_db.get_session().bind.get_execution_options()


def test_memory_database_is_one_shared_connection():
    engine = make_engine("sqlite://")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x)")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    engine.dispose()


def test_postgresql_through_psycopg3(postgres_url: str):
    engine = make_engine(postgres_url)
    with engine.connect() as connection:
        assert engine.dialect.driver == "psycopg"
        assert int(connection.exec_driver_sql("SHOW server_version_num").scalar()) >= 130000  # DROP … FORCE
        tables = set(
            connection.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").scalars()
        )
    assert {"member", "join_attempt", "district", "alembic_version"} <= tables
    engine.dispose()


def test_postgresql_enforces_foreign_keys(postgres_url: str):
    engine = make_engine(postgres_url)
    with Session(engine) as session, pytest.raises(IntegrityError):
        session.add(Workplace(code="X-1", name="nowhere", district_id=999))
        session.commit()
    engine.dispose()


def test_the_suite_database_is_the_one_asked_for(env):  # type: ignore[no-untyped-def]
    expected = "postgresql+psycopg://" if TEST_DATABASE == "postgres" else "sqlite:///"
    assert env["DATABASE_URL"].startswith(expected)


def test_the_pool_check_sees_a_connection_left_checked_out(app):
    from sqlalchemy import text
    from sqlmodel import Session

    from tests.conftest import checked_out

    engine = app.extensions["db_engine"]
    session = Session(engine)
    session.execute(text("SELECT 1"))
    assert checked_out(engine) == 1, "what the app fixture fails a test for at its end"
    session.close()
    assert checked_out(engine) == 0


def test_a_writer_waits_for_the_write_lock_then_takes_it(sqlite_url: str):
    import threading

    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release_later() -> None:
        released.wait(5)
        holder.execute("COMMIT")

    threading.Thread(target=release_later).start()
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        threading.Timer(0.05, released.set).start()
        app_db.begin_immediate(raw, timeout=10)  # polls until the holder commits
        assert raw.in_transaction
        raw.execute("ROLLBACK")
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 30000, "restored after the wait"
    engine.dispose()


def test_a_writer_gives_up_after_the_busy_timeout_with_database_is_locked(sqlite_url: str):
    from sqlalchemy.exc import OperationalError

    holder = other_writer(sqlite_url)
    holder.execute("BEGIN IMMEDIATE")
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        with pytest.raises(OperationalError, match="locked"):
            app_db.begin_immediate(raw, timeout=0.2)
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    holder.execute("ROLLBACK")
    engine.dispose()


# --- fetched_ahead: a streamed result read a batch ahead by a thread -------------------------


def test_batches_fetched_ahead_come_in_order_and_end():
    batches = [[n, n + 1] for n in range(0, 40, 2)]
    assert list(fetched_ahead(iter(batches))) == batches
    assert list(fetched_ahead(iter([]))) == []


def test_an_error_while_fetching_is_raised_to_the_caller():
    def failing():  # type: ignore[no-untyped-def]
        yield [1]
        yield [2]
        raise RuntimeError("the cursor broke")

    got = []
    with pytest.raises(RuntimeError, match="the cursor broke"):
        for batch in fetched_ahead(failing()):
            got.append(batch)
    assert got == [[1], [2]]
    assert not [t for t in threading.enumerate() if t.name == "export-fetch"]


def test_closing_early_stops_and_waits_for_the_fetching_thread():
    fetched = []

    def endless():  # type: ignore[no-untyped-def]
        n = 0
        while True:
            fetched.append(n)
            yield [n]
            n += 1

    ahead = fetched_ahead(endless())
    assert next(ahead) == [0]
    ahead.close()
    assert not [t for t in threading.enumerate() if t.name == "export-fetch"], "the thread ended with the close"
    assert len(fetched) <= 4, "it fetched at most the queue's depth ahead, then stopped"
