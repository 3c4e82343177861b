"""Idempotent joining (docs/security.md G3, G4; scenarios 43–46): retries and races make one row."""

from __future__ import annotations

import threading

from tests import factories
from tests.conftest import hidden_fields
from tests.security.conftest import attempts, browser, code_from, members, send_code, submit

FORM = {"name": "王小明", "phone": factories.phone(1), "platform": "meituan", "consent": "y"}


def twin(app, client, ip: str = "198.51.100.7"):  # type: ignore[no-untyped-def]
    """A second client with the first one's session cookie (the same browser, another connection)."""
    other = browser(app, ip)
    cookie = client.get_cookie("session")
    other.set_cookie("session", cookie.value)
    return other


def concurrently(*calls):  # type: ignore[no-untyped-def]
    results: list = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i, call):  # type: ignore[no-untyped-def]
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_double_tap_at_the_same_moment_makes_one_draft_and_one_sms(app, path, sms, db):
    first = browser(app)
    data = {**hidden_fields(first.get(path).text), **FORM}
    second = twin(app, first)
    responses = concurrently(lambda: first.post(path, data=data), lambda: second.post(path, data=data))
    assert sorted(r.status_code for r in responses) in ([303, 303], [303, 409])
    assert len(attempts(db)) == 1 and len(sms.sent) == 1
    assert send_code(first, code_from(sms)).status_code == 303
    assert len(members(db)) == 1


def test_replayed_posts_after_success_change_nothing(app, path, sms, db):
    client = browser(app)
    data = {**hidden_fields(client.get(path).text), **FORM}
    assert client.post(path, data=data).status_code == 303
    code_page = client.get("/join/code")
    final = {**hidden_fields(code_page.text), "code": code_from(sms)}
    assert client.post("/join/code", data=final).headers["Location"].endswith("/join/done")
    again = client.post("/join/code", data=final)
    assert again.status_code == 303 and again.headers["Location"].endswith("/join/done")
    assert client.post(path, data=data).status_code == 303, "the form replayed after commit"
    assert len(members(db)) == 1 and len(attempts(db)) == 1 and len(sms.sent) == 1


def test_same_key_with_another_payload_is_422(app, path, sms, db):
    client = browser(app)
    data = {**hidden_fields(client.get(path).text), **FORM}
    assert client.post(path, data=data).status_code == 303
    changed = client.post(path, data={**data, "phone": factories.phone(2)})
    assert changed.status_code == 422
    assert len(attempts(db)) == 1 and len(sms.sent) == 1


def test_same_phone_through_two_posters_at_once_makes_one_member(app, db, sms):
    district = factories.district(db)
    one = factories.workplace(db, district)
    two = factories.workplace(db, district, code="PD-ZJ02", name="张江饿了么站")
    db.commit()
    a, b = browser(app, "203.0.113.1"), browser(app, "203.0.113.2")
    submit(a, factories.join_path(app, one))
    code_a = code_from(sms)
    submit(b, factories.join_path(app, two))
    code_b = code_from(sms)
    form_a = {**hidden_fields(a.get("/join/code").text), "code": code_a}
    form_b = {**hidden_fields(b.get("/join/code").text), "code": code_b}
    results = concurrently(lambda: a.post("/join/code", data=form_a), lambda: b.post("/join/code", data=form_b))
    assert [r.status_code for r in results] == [303, 303]
    assert len(members(db)) == 1
    pages = [a.get("/join/done").text, b.get("/join/done").text]
    assert sum("已经" in page for page in pages) == 1, "the second one hears it is already registered"
