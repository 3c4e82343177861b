"""The admin's webhooks page: admins only, the secret shown once, private addresses refused, the
delivery log with "send again", remove."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select
from standardwebhooks.webhooks import Webhook

from app.models import Role, WebhookDelivery, WebhookEndpoint
from tests.conftest import hidden_fields, make_staff, sign_in
from tests.http_receiver import receiving
from tests.services.test_webhooks import approve, place  # noqa: F401  (a fixture)

SECRET = re.compile(r'<code class="secret">(whsec_[A-Za-z0-9+/=]+)</code>')


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    return {**env, "WEBHOOK_ALLOW_PRIVATE": "1"}


@pytest.fixture
def admin(client, db, place):  # type: ignore[no-untyped-def]  # noqa: F811
    make_staff(db, "admin@example.org", Role.admin)
    sign_in(client, db, "admin@example.org")
    return client


def add(client, url: str, events: list[str], district: str = ""):  # type: ignore[no-untyped-def]
    page = client.get("/admin/webhooks/")
    assert page.status_code == 200
    return client.post(
        "/admin/webhooks/", data={**hidden_fields(page.text), "url": url, "events": events, "district": district}
    )


def test_an_admin_adds_an_endpoint_sees_its_secret_once_and_it_verifies(app, admin, db, place):  # type: ignore[no-untyped-def]  # noqa: F811
    page = admin.get("/admin/webhooks/")
    assert "添加" in page.text and "<script" not in page.text and 'type="checkbox"' in page.text
    with receiving() as receiver:
        answer = add(admin, receiver.url, ["member.approved"], "PD")
        assert answer.status_code == 200
        secret = SECRET.search(answer.text).group(1)  # type: ignore[union-attr]
        assert secret not in admin.get("/admin/webhooks/").text, "shown once"
        approve(app, db, place)
        [got] = receiver.wait_for(1, within=5)
    assert Webhook(secret).verify(got.body, got.headers)["type"] == "member.approved"
    listing = admin.get("/admin/webhooks/").text
    assert receiver.url in listing and "已送达" in listing


def test_bad_input_is_422_and_stores_nothing(app, admin, db):  # type: ignore[no-untyped-def]
    assert add(admin, "", ["member.approved"]).status_code == 422
    assert add(admin, "http://127.0.0.1:9/", []).status_code == 422
    assert add(admin, "ftp://example.org/", ["member.approved"]).status_code == 422
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    refused = add(admin, "http://169.254.169.254/latest", ["member.approved"])
    assert refused.status_code == 422 and "拒绝" in refused.text
    db.commit()
    assert db.exec(select(WebhookEndpoint)).all() == []


def test_send_again_and_remove(app, admin, db, place):  # type: ignore[no-untyped-def]  # noqa: F811
    with receiving([500, 200]) as receiver:
        add(admin, receiver.url, ["member.approved"])
        approve(app, db, place)
        receiver.wait_for(1, within=5)
        delivery = db.exec(select(WebhookDelivery)).one()
        page = admin.get("/admin/webhooks/")
        assert "HTTP 500" in page.text
        again = admin.post(f"/admin/webhooks/deliveries/{delivery.id}/resend", data=hidden_fields(page.text))
        assert again.status_code == 303
        assert len(receiver.wait_for(2, within=5)) == 2
    assert admin.post("/admin/webhooks/deliveries/msg_nope/resend", data=hidden_fields(page.text)).status_code == 404
    gone = admin.post(f"/admin/webhooks/{delivery.endpoint_id}/remove", data=hidden_fields(page.text))
    assert gone.status_code == 303
    db.commit()
    assert db.exec(select(WebhookEndpoint)).all() == []


def test_officials_may_not(client, db, place):  # type: ignore[no-untyped-def]  # noqa: F811
    make_staff(db, "official2@example.org", Role.official, ["PD"])
    sign_in(client, db, "official2@example.org")
    assert client.get("/admin/webhooks/").status_code == 403
