"""Fixtures: a migrated database per test, an app on it, no socket leaving the machine.

`TEST_DATABASE=postgres` runs every test on a fresh PostgreSQL database cloned from a template
migrated once per session (`CREATE DATABASE … TEMPLATE …`, dropped after the test); the default
is a copy of a migrated SQLite file. `TEST_POSTGRES_URL` names the server (an admin database on
it, default `postgresql://postgres@127.0.0.1:5432/test`).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import pyotp
import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlmodel import Session, select
from werkzeug.test import TestResponse

from app import create_app
from app.cli.database import upgrade
from app.models import Role, User, utcnow
from app.services import mfa, users
from app.services.sms import MemoryGateway
from config import TestingConfig, new_card_key

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
pytest_plugins = ["tests.plugins.log_leak"]  # DEBUG logging; the session fails on a phone or code in a log
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def need(condition: bool, reason: str) -> None:
    """Skip when a real peer is missing, but fail in CI (REQUIRE_SERVICES=1)."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a host other than loopback fails the test."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address):  # type: ignore[no-untyped-def]
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in LOOPBACK:
            raise RuntimeError(f"test tried to reach {host}: tests stay on this machine")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    return {
        "SECRET_KEY": "test-secret-key-" + "s" * 40,
        "QR_SECRET": "test-qr-key-" + "q" * 40,
        "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PII_INDEX_KEY": "test-index-key-" + "i" * 40,
        "CARD_SIGNING_KEY": new_card_key(),
    }


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test gets a copy (the real migrations, once)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


class PostgresServer:
    """Creates and drops this session's databases on a local PostgreSQL server."""

    PREFIX = "scanjoin_t"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.session_tag = f"{self.PREFIX}_{os.getpid()}_{secrets.token_hex(3)}"
        self._count = 0

    def reachable(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=3):
                return True
        except psycopg.Error:
            return False

    def url(self, name: str) -> str:
        """The SQLAlchemy URL of database `name` on this server."""
        base = self.admin_url.split("://", 1)[1].rsplit("/", 1)[0]
        return f"postgresql+psycopg://{base}/{name}"

    def new_name(self) -> str:
        self._count += 1
        return f"{self.session_tag}_{self._count}"

    def create(self, name: str, template: str | None = None) -> str:
        clause = f" TEMPLATE {template} STRATEGY WAL_LOG" if template else ""
        self._execute(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_stale(self) -> None:
        """Drop databases left by test sessions whose process is gone (killed runs)."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{self.PREFIX}\\_%",)
                )
            ]
        for name in names:
            pid = name.split("_")[2]
            if pid.isdigit() and not _process_alive(int(pid)):
                self.drop(name)

    def _execute(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real local Redis (database 15 unless TEST_REDIS_URL says otherwise); skip without it, fail in CI."""
    import redis

    try:
        reachable = bool(redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        reachable = False
    need(reachable, f"Redis not reachable at {REDIS_TEST_URL} (set TEST_REDIS_URL)")
    return REDIS_TEST_URL


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """The local PostgreSQL server (skip without it; fail in CI)."""
    server = PostgresServer(POSTGRES_ADMIN_URL)
    need(server.reachable(), f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} (set TEST_POSTGRES_URL)")
    return server


class DatabasePool:
    """Clones of the template made ahead in a thread, so a test does not wait for CREATE DATABASE."""

    def __init__(self, server: PostgresServer, template: str, ahead: int = 2) -> None:
        self.server, self.template = server, template
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-clones")
        self.ready = deque(self._order() for _ in range(ahead))

    def _order(self) -> Future[str]:
        name = self.server.new_name()
        return self.executor.submit(lambda: self.server.create(name, template=self.template) and name)

    def take(self) -> str:
        """The name of a fresh clone; another one is started at once."""
        name = self.ready.popleft().result()
        self.ready.append(self._order())
        return name

    def give_back(self, name: str) -> None:
        self.executor.submit(self.server.drop, name)

    def close(self) -> None:
        for future in self.ready:
            self.executor.submit(self.server.drop, future.result())
        self.executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> Iterator[str]:
    """A PostgreSQL database migrated to head once per session; tests get clones of it."""
    postgres.drop_stale()
    name = f"{postgres.session_tag}_template"
    upgrade(postgres.create(name))
    yield name
    postgres.drop(name)


@pytest.fixture(scope="session")
def postgres_clones(postgres: PostgresServer, postgres_template: str) -> Iterator[DatabasePool]:
    pool = DatabasePool(postgres, postgres_template)
    yield pool
    pool.close()


@pytest.fixture
def postgres_url(postgres: PostgresServer, postgres_clones: DatabasePool) -> Iterator[str]:
    """A fresh migrated PostgreSQL database for one test, dropped after it."""
    name = postgres_clones.take()
    yield postgres.url(name)
    postgres_clones.give_back(name)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's own migrated database: SQLite by default, PostgreSQL with TEST_DATABASE=postgres."""
    if TEST_DATABASE == "postgres":
        return request.getfixturevalue("postgres_url")
    if TEST_DATABASE != "sqlite":
        pytest.fail(f"TEST_DATABASE must be sqlite or postgres, not {TEST_DATABASE!r}")
    database = tmp_path / "test.db"
    shutil.copy(request.getfixturevalue("migrated_template"), database)
    return f"sqlite:///{database}"


@pytest.fixture
def env(tmp_path: Path, keys: dict[str, str], database_url: str) -> dict[str, str]:
    return {
        **keys,
        "APP_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "SMS_OUTBOX": str(tmp_path / "outbox.jsonl"),
    }


def checked_out(engine) -> int:  # type: ignore[no-untyped-def]
    """Connections of the engine's pool that someone holds right now (0 for pools that do not count)."""
    count = getattr(engine.pool, "checkedout", None)
    return count() if count is not None else 0


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[Flask]:
    app = create_app(TestingConfig(env))
    yield app
    engine = app.extensions["db_engine"]
    held = checked_out(engine)
    engine.dispose()
    # A connection still checked out here was leaked by the app (a session nobody closed, an
    # unfinished stream): it would only go back when the garbage collector found it, possibly
    # after its PostgreSQL clone was dropped. Fail the test that leaked it instead.
    assert held == 0, f"{held} database connection(s) still checked out at the end of the test"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sms(app: Flask) -> MemoryGateway:
    gateway = app.extensions["sms"]
    assert isinstance(gateway, MemoryGateway)
    return gateway


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A session of the test's own, outside any app context (requests get theirs)."""
    with Session(app.extensions["db_engine"], expire_on_commit=False) as session:
        yield session


@pytest.fixture
def station(app: Flask, db: Session):  # type: ignore[no-untyped-def]
    """One district with one station, committed: the place most tests join at."""
    from tests import factories

    district = factories.district(db)
    workplace = factories.workplace(db, district)
    db.commit()
    return workplace


@pytest.fixture
def path(app: Flask, station) -> str:  # type: ignore[no-untyped-def]
    """The station's join path (`/<token>`)."""
    from tests import factories

    return factories.join_path(app, station)


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input[^>]*type="hidden"[^>]*>')
ATTR_RE = re.compile(r'(name|value)="([^"]*)"')


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page (CSRF token, form key), as a browser would send them."""
    fields: dict[str, str] = {}
    for tag in HIDDEN_RE.findall(html):
        attrs = dict(ATTR_RE.findall(tag))
        if "name" in attrs:
            fields[attrs["name"]] = attrs.get("value", "")
    return fields


# --- staff accounts and sign-in (password, then the TOTP code) ----------------------------------

STAFF_PASSWORD = "correct horse battery staple"


def make_staff(
    db: Session, email: str, role: Role, districts: list[str] | None = None, password: str = STAFF_PASSWORD
) -> User:
    """A staff account (not yet enrolled in TOTP: its first sign-in sets the app up)."""
    user = users.create(db, email, role=role, password=password, district_codes=districts)
    db.commit()
    return user


def enrol(app: Flask, db: Session, user: User) -> str:
    """Give `user` an authenticator app as /login/setup does; returns the TOTP secret."""
    cipher = app.extensions["pii"]
    secret = mfa.pending_secret(db, cipher, user)
    mfa.confirm(db, cipher, user, pyotp.TOTP(secret).now(), now=utcnow())
    db.commit()
    return secret


def _fresh_user(db: Session, email: str) -> User:
    db.commit()  # end the test's read snapshot: see what the requests wrote
    # populate_existing reloads this row only: the test's other objects keep their loaded state.
    query = select(User).where(User.email == email).execution_options(populate_existing=True)
    return db.exec(query).one()


def totp_code(app: Flask, db: Session, email: str, *, pending: bool = False) -> str:
    """The current code of the account's app (or of the one being set up), as the phone shows it."""
    user = _fresh_user(db, email)
    encrypted = user.totp_pending_enc if pending else user.totp_secret_enc
    db.commit()  # hold no read snapshot: on SQLite a later write by the test would be refused
    assert encrypted is not None, "no TOTP secret for this account"
    return pyotp.TOTP(app.extensions["pii"].decrypt(encrypted)).now()


def password_step(client: FlaskClient, email: str, password: str = STAFF_PASSWORD, next_: str = "") -> TestResponse:
    """The first sign-in step only: 302 to the code step or to setup, 422 or 429 otherwise."""
    page = client.get("/login")
    assert page.status_code == 200
    return client.post("/login" + next_, data={**hidden_fields(page.text), "email": email, "password": password})


def code_step(client: FlaskClient, db: Session, email: str, code: str | None = None) -> TestResponse:
    """Post a code on the step the session is at (/login/code, or /login/setup for a new account)."""
    app = client.application
    page = client.get("/login/code", follow_redirects=True)
    setup = page.request.path == "/login/setup"
    if code is None:
        # Tests sign in many times within one 30-second step; replay is tested on its own (test_mfa).
        db.execute(update(User).where(User.email == email).values(totp_last_step=None))
        code = totp_code(app, db, email, pending=setup)
    return client.post(page.request.path, data={**hidden_fields(page.text), "code": code})


def sign_in(
    client: FlaskClient, db: Session, email: str, password: str = STAFF_PASSWORD, next_: str = ""
) -> TestResponse:
    """Sign in through both steps as a browser would (setting the app up first when there is none)."""
    first = password_step(client, email, password, next_)
    assert first.status_code == 302, first.text[:300]
    second = code_step(client, db, email)
    assert second.status_code in (200, 302), second.text[:300]
    return second
