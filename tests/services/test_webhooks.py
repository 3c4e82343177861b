"""Webhooks (app/services/webhooks/): the SSRF guard, Standard Webhooks signatures, what a
payload holds, and tries, retries and failures against a real HTTP server on loopback."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook

from app.models import Delivery, Role, WebhookDelivery, utcnow
from app.services import decisions, webhooks
from app.services.webhooks import endpoints, transport
from app.services.webhooks.delivery import Settings, Webhooks
from tests import factories
from tests.conftest import hidden_fields
from tests.http_receiver import receiving
from tests.web.test_api import make_member, make_user


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    return {**env, "WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_RETRY_BASE_SECONDS": "1", "WEBHOOK_TIMEOUT_SECONDS": "2"}


@pytest.fixture
def place(app, db):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    station = factories.workplace(db, district)
    official = make_user(db, "official@example.org", Role.official, [district])
    db.commit()
    return district, station, official


def register(app, db, url: str, events: str = "member.approved", district: str | None = None):  # type: ignore[no-untyped-def]
    endpoint, secret = endpoints.add(
        db, app.extensions["pii"], url, endpoints.parse_events(events), district_code=district, allow_private=True
    )
    db.commit()
    return endpoint, secret


def outbox_rows(db):  # type: ignore[no-untyped-def]
    db.commit()  # a fresh read
    return db.exec(select(Delivery).where(Delivery.kind == "webhook")).all()


def new_session(app):  # type: ignore[no-untyped-def]
    return lambda: Session(app.extensions["db_engine"], expire_on_commit=False)


def approve(app, db, place, n: int = 1, approve: bool = True):  # type: ignore[no-untyped-def]
    district, station, official = place
    member = make_member(db, app.extensions["pii"], district, n, name="王小明", workplace=station)
    db.commit()
    decisions.decide_one(db, None, member.id, by=official, approve=approve, reason="不符合条件", now=utcnow())
    db.commit()
    return member


# -- the guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(url):  # type: ignore[no-untyped-def]
    with pytest.raises(transport.UrlRefused, match="WEBHOOK_ALLOW_PRIVATE"):
        transport.check_url(url, allow_private=False)
    assert transport.check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/x",
        "https://user:pw@example.org/",
        "example.org/hook",
        "http://:80/",
        "http://[::1",
        "http://[zz]/",
        "http://example.org:99999/",
    ],
)
def test_malformed_urls_are_refused(url):  # type: ignore[no-untyped-def]
    with pytest.raises(transport.UrlRefused):
        transport.check_url(url, allow_private=True, resolve=False)


def test_a_name_that_resolves_to_loopback_is_refused_at_send_time_too(app, db, place):  # type: ignore[no-untyped-def]
    hooks = app.extensions["webhooks"]
    with receiving() as receiver:
        # Allowed when registered (WEBHOOK_ALLOW_PRIVATE=1 then), refused once the setting is off.
        register(app, db, receiver.url.replace("127.0.0.1", "localhost"))
        hooks.settings = Settings(allow_private=False)
        approve(app, db, place)
        assert receiver.wait_for(1, within=0.5) == []
    row = db.exec(select(WebhookDelivery)).one()
    assert row.status == "failed" and "loopback" in (row.last_error or "")
    assert outbox_rows(db) == []  # a permanent failure: nothing owed any more


# -- what is sent ------------------------------------------------------------------------------


def test_an_approval_is_posted_signed_with_ids_and_no_name_or_phone(app, db, place):  # type: ignore[no-untyped-def]
    with receiving() as receiver:
        _, secret = register(app, db, receiver.url + "/scanjoin?x=1")
        member = approve(app, db, place)
        [got] = receiver.wait_for(1, within=5)
    assert got.path == "/scanjoin?x=1"
    payload = Webhook(secret).verify(got.body, got.headers)  # raises unless the signature is right
    assert payload["type"] == "member.approved" and payload["timestamp"].endswith("Z")
    data = payload["data"]
    assert data["member_id"] == member.id and data["district"] == "PD" and data["workplace"] == "PD-ZJ01"
    assert data["status"] == "approved" and data["member_number"] == "PD-000001" and data["platform"] == "meituan"
    text = got.body.decode()
    assert factories.phone(1)[-8:] not in text and "王小明" not in text and "phone" not in text
    assert got.headers["webhook-id"].startswith("msg_")
    row = db.exec(select(WebhookDelivery)).one()
    assert (row.status, row.attempts, row.last_error) == ("delivered", 1, None)


def test_a_wrong_secret_does_not_verify(app, db, place):  # type: ignore[no-untyped-def]
    with receiving() as receiver:
        register(app, db, receiver.url)
        approve(app, db, place)
        [got] = receiver.wait_for(1, within=5)
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoints.new_secret()).verify(got.body, got.headers)


def test_only_the_events_and_district_an_endpoint_asked_for(app, db, place):  # type: ignore[no-untyped-def]
    other = factories.district(db, "XH", "徐汇")
    db.commit()
    with receiving() as rejected, receiving() as elsewhere:
        register(app, db, rejected.url, events="member.rejected")
        register(app, db, elsewhere.url, events="member.approved,member.rejected", district=other.code)
        approve(app, db, place, 1)
        approve(app, db, place, 2, approve=False)
        assert [r.json()["type"] for r in rejected.wait_for(1, within=5)] == ["member.rejected"]
        assert elsewhere.received == []


def test_a_rolled_back_approval_sends_nothing(app, db, place):  # type: ignore[no-untyped-def]
    district, station, official = place
    with receiving() as receiver:
        register(app, db, receiver.url)
        member = make_member(db, app.extensions["pii"], district, 1, workplace=station)
        db.commit()
        decisions.decide_one(db, None, member.id, by=official, approve=True, now=utcnow())
        db.rollback()
        assert receiver.wait_for(1, within=0.5) == []
    assert db.exec(select(WebhookDelivery)).all() == []


def test_unknown_events_are_refused():  # type: ignore[no-untyped-def]
    with pytest.raises(webhooks.WebhookError, match="member.approved"):
        endpoints.parse_events("member.approved,member.deleted")
    with pytest.raises(webhooks.WebhookError):
        endpoints.parse_events(" , ")


# -- tries and retries -------------------------------------------------------------------------


def test_a_500_is_retried_later_with_the_same_id_and_a_fresh_valid_signature(app, db, place):  # type: ignore[no-untyped-def]
    outbox = app.extensions["tasks"]
    with receiving([500, 200]) as receiver:
        _, secret = register(app, db, receiver.url)
        approve(app, db, place)
        [first] = receiver.wait_for(1, within=5)
        row = db.exec(select(WebhookDelivery)).one()
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 500")
        [owed] = outbox_rows(db)  # the next try waits WEBHOOK_RETRY_BASE_SECONDS (1 s)
        assert owed.owner_id == row.id and owed.due_at > utcnow() and owed.due_at < utcnow() + timedelta(seconds=2)
        assert outbox.deliver(owed.id) == "taken"  # not before its time
        assert outbox.deliver(owed.id, now=utcnow() + timedelta(seconds=2)) == "sent"
        second = receiver.wait_for(2, within=5)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"] and second.body == first.body
    Webhook(secret).verify(second.body, second.headers)
    db.commit()  # end the read snapshot: see the consumer's write
    db.refresh(row)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
    assert outbox_rows(db) == []


def test_a_4xx_fails_at_once_and_resend_tries_again(app, db, place):  # type: ignore[no-untyped-def]
    hooks = app.extensions["webhooks"]
    with receiving([404, 200]) as receiver:
        register(app, db, receiver.url)
        approve(app, db, place)
        receiver.wait_for(1, within=5)
        row = db.exec(select(WebhookDelivery)).one()
        assert (row.status, row.last_error) == ("failed", "HTTP 404")
        assert outbox_rows(db) == []
        owed = hooks.resend(db, row.id)
        db.commit()
        hooks.outbox.wake_one(owed.id)
        assert len(receiver.wait_for(2, within=5)) == 2
    db.commit()  # end the read snapshot: see the consumer's write
    db.refresh(row)
    assert row.status == "delivered" and row.attempts == 2


def test_no_answer_in_time_and_no_server_are_temporary(app, db, place):  # type: ignore[no-untyped-def]
    outbox = app.extensions["tasks"]
    with receiving(delay=3) as slow:
        register(app, db, slow.url)
        approve(app, db, place)
        row = db.exec(select(WebhookDelivery)).one()
        assert row.status == "pending" and row.last_error in ("ReadTimeoutError", "deadline")
    # The server is gone now: the port refuses the connection.
    [owed] = outbox_rows(db)
    assert outbox.deliver(owed.id, now=utcnow() + timedelta(seconds=5)) == "later"
    db.commit()  # end the read snapshot: see the consumer's write
    db.refresh(row)
    assert row.attempts == 2 and row.last_error in ("NewConnectionError", "MaxRetryError", "ProtocolError")


def test_retries_double_up_to_an_hour_and_stop_after_the_retry_time():  # type: ignore[no-untyped-def]
    hooks = Webhooks.__new__(Webhooks)
    hooks.settings = Settings(retry_base=60, retry_hours=24)
    start = utcnow()
    assert [hooks.next_delay(n, start, start) for n in (1, 2, 3, 7, 20)] == [60, 120, 240, 3600, 3600]
    assert hooks.next_delay(5, start, start + timedelta(hours=23, minutes=50)) is None
    assert hooks.next_delay(1, start, start + timedelta(hours=23, minutes=58)) == 60


def test_a_removed_endpoint_stops_its_deliveries(app, db, place):  # type: ignore[no-untyped-def]
    with receiving([500]) as receiver:
        endpoint, _ = register(app, db, receiver.url)
        approve(app, db, place)
        assert len(outbox_rows(db)) == 1
        endpoints.remove(db, endpoint.id)
        db.commit()
        assert outbox_rows(db) == [] and db.exec(select(WebhookDelivery)).all() == []
        assert len(receiver.received) == 1


def test_a_delivery_owed_when_the_process_died_is_sent_by_the_sweep(app, db, place, monkeypatch):  # type: ignore[no-untyped-def]
    outbox = app.extensions["tasks"]
    with receiving() as receiver:
        register(app, db, receiver.url)
        monkeypatch.setattr(outbox, "wake_one", lambda row_id: None)  # killed between the commit and the wake-up
        approve(app, db, place)
        assert receiver.wait_for(1, within=0.3) == [] and len(outbox_rows(db)) == 1
        outbox.sweep(now=utcnow() + timedelta(seconds=30))
        assert len(receiver.wait_for(1, within=5)) == 1
    assert outbox_rows(db) == []


def test_the_secret_is_stored_encrypted(app, db):  # type: ignore[no-untyped-def]
    endpoint, secret = register(app, db, "http://127.0.0.1:9/x")
    assert secret.startswith("whsec_") and secret not in endpoint.secret_enc
    assert app.extensions["pii"].decrypt(endpoint.secret_enc) == secret
    assert json.loads(json.dumps(endpoint.events)) == ["member.approved"]


def test_a_join_and_a_withdrawal_through_the_worker_pages_are_told(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    from tests.web.test_status import joined, prove

    with receiving() as receiver:
        _, secret = register(app, db, receiver.url, events="member.submitted,member.withdrawn")
        joined(client, app, sms, station)
        worker = app.test_client()
        page = prove(worker, sms, factories.phone(1))
        done = worker.post("/status/withdraw", data={**hidden_fields(page.text), "confirm": "y"})
        assert done.status_code == 303
        got = receiver.wait_for(2, within=5)
    submitted, withdrawn = (Webhook(secret).verify(item.body, item.headers) for item in got)
    assert submitted["type"] == "member.submitted" and submitted["data"]["status"] == "pending"
    assert submitted["data"]["member_number"] is None and submitted["data"]["workplace"] == "PD-ZJ01"
    assert withdrawn["type"] == "member.withdrawn" and withdrawn["data"]["status"] == "withdrawn"
    assert withdrawn["data"]["member_id"] == submitted["data"]["member_id"] and withdrawn["data"]["district"] == "PD"
    for item in got:
        assert factories.phone(1)[-8:] not in item.body.decode() and "王小明" not in item.body.decode()


def test_the_rows_a_writer_owed_go_to_that_very_event_s_wake_up():  # type: ignore[no-untyped-def]
    from app.services.events import MemberDecided
    from app.services.webhooks.delivery import Owed

    owed, first, equal = Owed(), MemberDecided(1, 1, True), MemberDecided(1, 1, True)
    owed.add(first, Delivery(id=5, kind="webhook", owner_id="msg_a", due_at=utcnow()))
    owed.add(first, Delivery(id=6, kind="webhook", owner_id="msg_b", due_at=utcnow()))
    assert owed.take(equal) == [] and owed.take(first) == [5, 6] and owed.take(first) == []
    for n in range(Owed.CAP + 10):  # commits that failed after their writer ran leave no growing pile
        owed.add(MemberDecided(n, 1, True), Delivery(id=n, kind="webhook", owner_id="x", due_at=utcnow()))
    assert len(owed._rows) <= Owed.CAP


def test_a_receiver_answering_a_byte_at_a_time_is_cut_off_when_the_time_is_up():  # type: ignore[no-untyped-def]
    """Each byte beats the read timeout; the whole call still ends at `timeout` (the watchdog)."""
    import socket  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415

    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    sent = []
    listener = socket.create_server(("127.0.0.1", 0))

    def drip() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        try:
            for byte in answer:
                conn.sendall(bytes([byte]))
                sent.append(byte)
                time.sleep(0.3)
        except OSError:
            pass  # the client shut the connection
        finally:
            conn.close()

    server = threading.Thread(target=drip, daemon=True)
    server.start()
    port = listener.getsockname()[1]
    result = transport.post(f"http://127.0.0.1:{port}/hook", b"{}", {}, timeout=1.0, allow_private=True)
    server.join(timeout=30)
    listener.close()
    assert (result.outcome, result.error) == (transport.Outcome.temporary, "deadline")
    assert len(sent) < len(answer), "the receiver was cut off before its answer was through"
