"""An organizing day at a station (docs/security.md B4): the riders of a morning meeting share one
address and one poster and all join; SMS pumping from that address stops at 10 unverified codes.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import timedelta

import pytest

from app.services import limits
from tests import factories
from tests.security.conftest import ask_again, asked_to_check, browser, code_from, members, send_code, submit

STATION_WIFI = "203.0.113.50"


def test_sixty_riders_behind_one_address_through_one_poster_all_join(app, db, path, sms):
    """60 riders, up to 8 in flight at once (each has asked for a code, none entered it yet),
    each entering the right code: no picture, no refusal, 60 members."""
    in_flight: deque = deque()
    asked_for_picture, refused = 0, 0

    def enter_oldest() -> None:
        client, code = in_flight.popleft()
        assert send_code(client, code).status_code == 303

    for n in range(1, 61):
        client = browser(app, ip=STATION_WIFI)
        response = submit(client, path, phone=factories.phone(n), solve=False)
        asked_for_picture += asked_to_check(response)
        refused += response.status_code == 429
        assert response.status_code == 303 and not asked_to_check(response), (n, response.status_code)
        in_flight.append((client, code_from(sms)))
        if len(in_flight) == 8:
            enter_oldest()
    while in_flight:
        enter_oldest()
    assert (asked_for_picture, refused) == (0, 0)
    assert len(members(db)) == 60
    assert len(sms.sent) == 60


@pytest.mark.parametrize("solve", [True, False])
def test_pumping_from_one_address_gets_at_most_ten_codes(app, path, sms, solve):
    """20 sends from one address, codes never entered: at most 10 SMS, even when every picture
    is answered; the rest are refused with a wait."""
    answers = [submit(browser(app, ip=STATION_WIFI), path, phone=factories.phone(n), solve=solve) for n in range(20)]
    assert len(sms.sent) <= limits.OUTSTANDING["ip"] == 10
    if solve:
        assert len(sms.sent) == 10
        assert [a.status_code for a in answers[10:]] == [429] * 10
        assert all(0 < int(a.headers["Retry-After"]) <= 3600 for a in answers[10:])


def test_a_verified_code_earns_the_address_its_send_back(app, path, sms):
    """Ten codes outstanding: the address is at its bound; one entered code opens one more send."""
    clients = []
    for n in range(10):
        client = browser(app, ip=STATION_WIFI)
        submit(client, path, phone=factories.phone(n))
        clients.append((client, code_from(sms)))
    assert submit(browser(app, ip=STATION_WIFI), path, phone=factories.phone(50)).status_code == 429
    client, code = clients[0]
    assert send_code(client, code).status_code == 303
    assert submit(browser(app, ip=STATION_WIFI), path, phone=factories.phone(51)).status_code == 303
    assert submit(browser(app, ip=STATION_WIFI), path, phone=factories.phone(52)).status_code == 429


@pytest.mark.parametrize(
    ("lang", "sent_words", "not_sent", "wait_re"),
    [
        ("zh", ["发送了", "已向"], "没有发送验证码", r"请 \d+ 分钟后再试"),
        ("en", ["We sent", "code we sent"], "No code was sent", r"Please try again in \d+ minutes"),
    ],
)
def test_a_refused_send_never_says_sent_and_says_when_to_try_again(app, path, sms, lang, sent_words, not_sent, wait_re):
    for n in range(10):
        submit(browser(app, ip=STATION_WIFI), path, phone=factories.phone(n))
    client = browser(app, ip=STATION_WIFI)
    if lang == "en":
        client.get("/lang/en")
    refused = submit(client, path, phone=factories.phone(60))
    assert refused.status_code == 429 and len(sms.sent) == 10
    assert not any(words in refused.text for words in sent_words), refused.text
    assert not_sent in refused.text and re.search(wait_re, refused.text)
    assert 'name="code"' not in refused.text, "no box for a code that was never sent"


def test_a_refused_resend_says_the_earlier_code_still_works(app, path, sms, clock):
    client = browser(app, ip=STATION_WIFI)
    submit(client, path, phone=factories.phone(1))
    first = code_from(sms)
    for n in range(2, 11):
        submit(browser(app, ip=STATION_WIFI), path, phone=factories.phone(n))
    clock.shift(timedelta(seconds=61))
    asked = ask_again(client)  # post/redirect/get: the refusal's words on the code page, once
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/join/code")
    assert int(asked.headers["Retry-After"]) > 0
    refused = client.get("/join/code")
    assert "没有发送新的验证码" in refused.text and "发送了" not in refused.text
    assert "仍然可以使用" in refused.text and re.search(r"请 \d+ 分钟后再试", refused.text)
    assert send_code(client, first).status_code == 303
