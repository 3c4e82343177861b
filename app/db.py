"""Engine per app, session per request, SQLite tuned for many readers and one writer."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from queue import Full, Queue
from typing import Any, NamedTuple

from flask import Flask, current_app, g, request
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
BUSY_TIMEOUT_SECONDS = 30.0
WRITE_LOCK_POLL = (0.0005, 0.0015)  # seconds between tries for SQLite's write lock (jittered)


def make_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout, foreign keys and explicit BEGINs."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    kwargs: dict[str, object] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if url in ("sqlite://", "sqlite:///:memory:"):
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: object) -> None:
        # Let SQLAlchemy emit BEGIN itself, so writes can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        busy = f"busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}"
        for pragma in ("journal_mode=WAL", busy, "foreign_keys=ON", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE for writing requests: a deferred read transaction that later upgrades
        # to a write fails with "database is locked" instead of waiting for busy_timeout.
        if conn.get_execution_options().get("sqlite_begin", "DEFERRED") == "IMMEDIATE":
            begin_immediate(conn.connection.dbapi_connection)
        else:
            conn.exec_driver_sql("BEGIN DEFERRED")


def begin_immediate(dbapi_connection: Any, timeout: float | None = None) -> None:
    """BEGIN IMMEDIATE, trying again every millisecond or so until the write lock is free.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, ... up to 100 ms between tries:
    a writer that lost a few races sleeps far longer than the lock is held (about a millisecond
    per join step), and under load those sleeps made the p99 of a join a second (bench.joins).
    Polling keeps the wait close to the time the lock is really taken. Gives up after
    `timeout` seconds (the busy timeout) with "database is locked", as SQLite would.
    """
    timeout = BUSY_TIMEOUT_SECONDS if timeout is None else timeout
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
            time.sleep(random.uniform(*WRITE_LOCK_POLL))  # noqa: S311 - jitter, not a secret
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.close()


def init_app(app: Flask) -> None:
    """Attach the engine and close the request's session at teardown."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["db_engine"] = engine
    app.teardown_appcontext(close_session)


def engine() -> Engine:
    return current_app.extensions["db_engine"]


def writer_engine() -> Engine:
    """The app's engine whose transactions start with BEGIN IMMEDIATE on SQLite."""
    return writing(engine())


def writing(base: Engine) -> Engine:
    """`base` with transactions that start with BEGIN IMMEDIATE on SQLite (no effect elsewhere)."""
    return base.execution_options(sqlite_begin="IMMEDIATE")


def get_session() -> Session:
    """The session of this request (or CLI command), opened on first use."""
    if "db_session" not in g:
        writing = not _in_request() or request.method not in READ_METHODS
        g.db_session = Session(writer_engine() if writing else engine(), expire_on_commit=False)
    return g.db_session


def _in_request() -> bool:
    from flask import has_request_context

    return has_request_context()


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A committed-or-rolled-back session for work outside a request (threads, scripts)."""
    with Session(writer_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_scope() -> Iterator[Session]:
    """A short read-only session, for the reads a writing request makes before it writes.

    On SQLite a writing request's own session starts with BEGIN IMMEDIATE, which takes the
    database's single write lock; reading through this one first keeps the lock for the writes.
    Other databases lock rows, not the database: there the request's own session reads.
    """
    if engine().dialect.name != "sqlite":
        yield get_session()
        return
    with Session(engine(), expire_on_commit=False) as session:
        yield session


# --- reading a large result a batch ahead ------------------------------------------------


class _Failed(NamedTuple):
    error: Exception


def fetched_ahead(batches: Iterator[Any], depth: int = 2) -> Generator[Any, None, None]:
    """`batches` (a streamed result's `partitions()`), each fetched by a thread of its own while
    the caller works on the one before.

    On PostgreSQL the rows come from a server-side cursor a batch at a time: without this, the
    server prepares a batch while this process waits, then this process works while the server
    waits (~3.4 s of a million-row CSV export's ~15 s, measured; app/services/export.py). The
    thread is the only user of the cursor until it ends, and it is stopped and waited for before
    this generator returns, raises or is closed, so the caller's session never closes under it.
    An error while fetching is raised here, in the caller's thread.
    """
    ready: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def fetch() -> None:
        try:
            for batch in batches:
                if not hand_over(batch):
                    return
        except Exception as error:  # noqa: BLE001 - handed to the caller's thread, which raises it
            hand_over(_Failed(error))
            return
        hand_over(done)

    thread = threading.Thread(target=fetch, name="export-fetch", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
