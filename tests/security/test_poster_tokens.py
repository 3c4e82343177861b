"""Poster tokens (docs/security.md C1–C5, B4; scenarios 21, 23–25, 27, 28)."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

import config as settings
from app import create_app
from app.models import PlaceKind, utcnow
from app.services import limits, places
from app.services.tokens import QrSigner
from tests import factories
from tests.security.conftest import attempts, browser, spread_phone, submit

NAMES = ("张江", "浦东")


def app_with(env, **overrides):  # type: ignore[no-untyped-def]
    return create_app(settings.TestingConfig({**env, **overrides}))


def test_tampered_tokens_are_404s_that_name_nothing(app, path):
    for i in range(1, len(path)):
        swapped = "A" if path[i].upper() != "A" else "B"
        response = browser(app, ip=f"198.51.100.{i}").get(path[:i] + swapped + path[i + 1 :])
        assert response.status_code == 404, i
        assert not any(name in response.text for name in NAMES)


def test_expired_and_future_dated_posters_are_refused(app, station, db):
    signer: QrSigner = app.extensions["qr_signer"]
    future = signer.dumps(PlaceKind.workplace, station.id, station.qr_version, utcnow().date() + timedelta(days=30))
    response = browser(app).get("/" + future)
    assert response.status_code in (404, 410) and not any(name in response.text for name in NAMES)
    import time_machine

    with time_machine.travel(utcnow() + timedelta(days=366)):
        assert browser(app).get(factories.join_path(app, station)).status_code == 410


def test_rotation_revokes_the_old_poster_at_once(app, path, station, db):
    places.rotate(db, station, now=utcnow())
    db.commit()
    assert browser(app).get(path).status_code == 410
    assert browser(app).get(factories.join_path(app, station)).status_code == 200


def test_previous_key_works_until_it_is_removed(env, station):
    old, new = "old-qr-key-" + "o" * 40, "new-qr-key-" + "n" * 40
    path = factories.join_path(app_with(env, QR_SECRET=old), station)
    assert browser(app_with(env, QR_SECRET=f"{new},{old}")).get(path).status_code == 200
    assert browser(app_with(env, QR_SECRET=new)).get(path).status_code == 404
    fresh = app_with(env, QR_SECRET=f"{new},{old}")
    assert browser(app_with(env, QR_SECRET=new)).get(factories.join_path(fresh, station)).status_code == 200


def test_guessing_tokens_gets_an_address_blocked(app, station, clock):
    signer: QrSigner = app.extensions["qr_signer"]
    genuine = signer.dumps(PlaceKind.workplace, station.id, station.qr_version, station.qr_issued_at.date())
    client = browser(app, ip="198.51.100.66")
    codes = []
    for place_id in range(1, 1001):  # sequential ids, random signatures
        forged = genuine[:4] + format(place_id, "05d").translate(str.maketrans("0123456789", "ABCDEFGHIJ"))
        forged = (forged + secrets.token_hex(8).upper().translate(str.maketrans("0189", "WXYZ")))[:21]
        codes.append(client.get("/" + forged).status_code)
    assert 200 not in codes and codes[:20] == [404] * 20 and set(codes[20:]) == {429}
    assert client.get("/" + genuine).status_code == 429, "the address is blocked, not the poster"
    assert browser(app, ip="198.51.100.67").get("/" + genuine).status_code == 200
    clock.shift(timedelta(minutes=1, seconds=1))
    assert client.get("/" + genuine).status_code == 200


def test_leaked_poster_flood_stops_at_twenty_unverified_codes(app, path, sms):
    """Every address and prefix new, no code ever entered: the poster's outstanding codes stop it."""
    codes = [
        submit(browser(app, ip=f"203.0.{n // 200}.{n % 200 + 1}"), path, phone=spread_phone(n + 1)).status_code
        for n in range(21)
    ]
    assert codes == [303] * 20 + [429]
    assert len(sms.sent) == 20 == limits.OUTSTANDING["poster"]


def test_a_poster_takes_at_most_three_hundred_join_starts_an_hour(app):
    guard = app.extensions["phone_proof"].limits
    with app.app_context():
        for _ in range(300):
            guard.reserve_join_start("POSTER")
        with pytest.raises(limits.LimitExceeded) as refused:
            guard.reserve_join_start("POSTER")
    assert refused.value.scope == "poster" and 0 < refused.value.retry_after <= 3600


def attempts_of(app):  # type: ignore[no-untyped-def]
    from sqlmodel import Session

    with Session(app.extensions["db_engine"]) as db:
        return attempts(db)
