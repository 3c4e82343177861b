"""Proofs under concurrency, with real processes on 127.0.0.1 and the suite's database
(SQLite by default, PostgreSQL with TEST_DATABASE=postgres). Each is bounded in time by the
harness's deadlines; none asserts on speed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from app import create_app
from app.models import AuditEvent, District, JoinAttempt, Member, MemberStatus, Platform, Role, User, utcnow
from app.services import membership, places, verification
from app.services.sms import MemoryGateway
from bench.harness import Browser, Joiner, Outbox, Server, hidden_fields, phone, posters_for, prepare, server_env

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def load_env(database_url: str, workdir: Path) -> dict[str, str]:
    return server_env(database_url, workdir)


def app_on(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """The app in this process, on the server's database (for setup and for looking)."""
    return create_app(env={**env, "SMS_BACKEND": "memory"})


def count_members(env: dict[str, str], **where: object) -> int:
    app = app_on(env)
    with Session(app.extensions["db_engine"]) as session:
        query = select(func.count()).select_from(Member)
        for name, value in where.items():
            query = query.where(getattr(Member, name) == value)
        total = session.exec(query).one()
    app.extensions["db_engine"].dispose()
    return total


def verified_attempts_for_one_phone(env: dict[str, str], path: str, n: int) -> list[tuple[str, str]]:
    """`n` drafts for the same phone, each with a known code: (attempt id, code) pairs.

    Drafts are made in the database because the per-phone SMS limit (2 per 10 minutes) would
    stop the second send: the race under test is the code check, not the sending.
    """
    app = app_on(env)
    pii, key = app.extensions["pii"], app.config["SECRET_KEY"]
    pairs = []
    with Session(app.extensions["db_engine"], expire_on_commit=False) as session:
        place = places.resolve(session, app.extensions["qr_signer"], path.lstrip("/"), date.today())
        for i in range(n):
            applicant = membership.Applicant(
                name=f"同一人 {i}", phone=phone(1), platform=Platform.meituan, workplace_id=None, locale="zh"
            )
            attempt, _ = membership.start_attempt(
                session, place, applicant, form_key=f"race-{i}", pii=pii, now=utcnow()
            )
            code = verification.issue(attempt, gateway=MemoryGateway(), key=key, now=utcnow(), ttl=600)
            session.add(attempt)
            pairs.append((attempt.id, code or ""))
        session.commit()
    cookie_for = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    app.extensions["db_engine"].dispose()
    return [(cookie_for.dumps({"attempt": attempt_id}), code) for attempt_id, code in pairs]


def test_100_concurrent_verified_joins_for_one_phone_make_exactly_one_member(load_env, workdir):
    paths = prepare(load_env, 1)
    drafts = verified_attempts_for_one_phone(load_env, paths[0], 100)
    answers: list[int] = []
    ready = threading.Barrier(len(drafts), timeout=120)

    def check(cookie: str, code: str) -> None:
        browser = Browser(server.port)
        browser.cookies["session"] = cookie
        status, _, page = browser.request("GET", "/join/code")
        fields = hidden_fields(page) if status == 200 else {}
        ready.wait()
        status, head, _ = browser.request("POST", "/join/code", {**fields, "code": code})
        answers.append(status if head.get("location", "").endswith("/join/done") else -status)

    with Server(load_env, workdir, workers=4, threads=8) as server:
        threads = [threading.Thread(target=check, args=pair) for pair in drafts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
    assert answers == [303] * 100, server.log()[-3000:]
    assert count_members(load_env) == 1
    app = app_on(load_env)
    with Session(app.extensions["db_engine"]) as session:
        outcomes = sorted(a.outcome or "" for a in session.exec(select(JoinAttempt)))
        created = session.exec(select(func.count()).where(AuditEvent.action == "member.created")).one()
    app.extensions["db_engine"].dispose()
    assert outcomes == ["created"] + ["pending"] * 99
    assert created == 1


def test_4_workers_8_clients_100_joins_each_are_all_stored(load_env, workdir):
    clients, joins_each = 8, 100
    paths = prepare(load_env, posters_for(clients * joins_each))
    with Server(load_env, workdir, workers=4, threads=8) as server:
        joiner = Joiner(server.port, Outbox(workdir / "outbox.jsonl"), paths)
        from bench.harness import run_clients

        results = run_clients(joiner, clients, joins_each)
        log = server.log()
    failed = [(n, r.step, r.detail[:120]) for n, r in results if not r.ok]
    assert failed == [], log[-3000:]
    assert "database is locked" not in log
    assert count_members(load_env, status=MemberStatus.pending) == clients * joins_each


def test_a_worker_killed_mid_load_loses_no_verified_join(load_env, workdir):
    clients, joins_each = 8, 40
    paths = prepare(load_env, posters_for(clients * joins_each))
    with Server(load_env, workdir, workers=2, threads=8) as server:
        joiner = Joiner(server.port, Outbox(workdir / "outbox.jsonl"), paths)
        from bench.harness import run_clients

        outcome: list = []
        runner = threading.Thread(target=lambda: outcome.extend(run_clients(joiner, clients, joins_each)))
        runner.start()
        victim = server.worker_pids()[0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _codes_sent(workdir / "outbox.jsonl") < clients * joins_each // 4:
            time.sleep(0.2)
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=300)
        assert victim not in server.worker_pids()  # the arbiter replaced it
    app = app_on(load_env)
    pii = app.extensions["pii"]
    with Session(app.extensions["db_engine"]) as session:
        stored = set(session.exec(select(Member.phone_index)))
        verified = session.exec(select(JoinAttempt).where(JoinAttempt.verified_at.is_not(None))).all()  # type: ignore[union-attr]
    app.extensions["db_engine"].dispose()
    confirmed = [n for n, result in outcome if result.ok]
    lost = [n for n in confirmed if pii.index(phone(n)) not in stored]
    assert len(outcome) == clients * joins_each
    assert confirmed, "some joins went through"
    assert lost == []
    assert all(attempt.member_id is not None for attempt in verified)  # verified ⇒ member, in one commit


def _codes_sent(outbox: Path) -> int:
    """Cheap progress: lines in the outbox (a new app per poll would load the machine)."""
    return outbox.read_bytes().count(b"\n") if outbox.exists() else 0


def _approve_race(env: dict[str, str], user_id: int, member_ids: list[int], barrier, results) -> None:  # type: ignore[no-untyped-def]
    """One official's process: approve each member at the same moment as the other official."""
    from app.services import roster

    app = create_app(env={**env, "SMS_BACKEND": "memory"})
    engine = app.extensions["db_engine"]
    with Session(engine, expire_on_commit=False) as session:
        official = session.get(User, user_id)
    writer = engine.execution_options(sqlite_begin="IMMEDIATE")  # as a POST request's session
    for member_id in member_ids:
        barrier.wait(timeout=60)
        with Session(writer, expire_on_commit=False) as session:
            try:
                roster.approve(session, None, member_id, by=official, now=utcnow())
                session.commit()
                results.put((member_id, user_id, "approved"))
            except roster.AlreadyDecided:
                session.rollback()
                results.put((member_id, user_id, "already"))
    engine.dispose()


def test_two_officials_approving_the_same_application_make_one_decision(load_env):
    pytest.importorskip("app.services.roster")
    rounds = 20
    app = app_on(load_env)
    prepare(load_env, 1)
    with Session(app.extensions["db_engine"], expire_on_commit=False) as session:
        district = session.exec(select(District)).one()
        officials = [User(email=f"official{i}@example.org", password_hash="x", role=Role.admin) for i in (1, 2)]
        members = [
            Member(
                district_id=district.id,
                name_enc="x",
                phone_enc="x",
                phone_index=f"race-{i}",
                phone_last4_index="x",
                platform=Platform.meituan,
                consent_version="v",
                consent_at=utcnow(),
                source_kind="district",
                source_qr_version=1,
                verified_at=utcnow(),
            )
            for i in range(rounds)
        ]
        session.add_all([*officials, *members])
        session.commit()
        user_ids, member_ids = [u.id for u in officials], [m.id for m in members]
    app.extensions["db_engine"].dispose()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [
        context.Process(target=_approve_race, args=(load_env, uid, member_ids, barrier, results)) for uid in user_ids
    ]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * rounds)]
    for racer in racers:
        racer.join(timeout=60)
    for member_id in member_ids:
        mine = sorted(kind for mid, _, kind in outcomes if mid == member_id)
        assert mine == ["already", "approved"], (member_id, mine)
    app = app_on(load_env)
    with Session(app.extensions["db_engine"]) as session:
        approvals = session.exec(select(func.count()).where(AuditEvent.action == "member.approve")).one()
        numbers = set(session.exec(select(Member.member_number)))
        winners = {m.id: m.decided_by_id for m in session.exec(select(Member))}
    app.extensions["db_engine"].dispose()
    assert approvals == rounds
    assert len(numbers) == rounds and None not in numbers
    expected = {mid: uid for mid, uid, kind in outcomes if kind == "approved"}
    assert winners == expected
