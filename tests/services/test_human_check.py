"""The picture check (docs/security.md B5): bound to one attempt, answered once, expiring, no answer kept."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.services import human_check

KEY = "k" * 50


@pytest.fixture
def answers(monkeypatch):  # type: ignore[no-untyped-def]
    drawn: list[str] = []
    draw = human_check.new_answer
    monkeypatch.setattr(human_check, "new_answer", lambda: drawn.append(draw()) or drawn[-1])
    return drawn


def spender():  # type: ignore[no-untyped-def]
    spent: set[str] = set()

    def spend(nonce: str) -> bool:
        first = nonce not in spent
        spent.add(nonce)
        return first

    return spend


def test_the_right_answer_passes_once(answers):
    ticket, _png = human_check.issue(KEY, "attempt-1", now=1000.0, ttl=300)
    spend = spender()
    human_check.verify(ticket, f" {answers[-1]} ", key=KEY, bound_to="attempt-1", now=1299.0, spend=spend)
    with pytest.raises(human_check.ChallengeUsed):
        human_check.verify(ticket, answers[-1], key=KEY, bound_to="attempt-1", now=1299.0, spend=spend)


def test_a_wrong_answer_spends_the_picture(answers):
    ticket, _png = human_check.issue(KEY, "attempt-1", now=1000.0, ttl=300)
    spend = spender()
    wrong = "0000" if answers[-1] != "0000" else "1111"
    with pytest.raises(human_check.ChallengeWrong):
        human_check.verify(ticket, wrong, key=KEY, bound_to="attempt-1", now=1000.0, spend=spend)
    with pytest.raises(human_check.ChallengeUsed):
        human_check.verify(ticket, answers[-1], key=KEY, bound_to="attempt-1", now=1000.0, spend=spend)


def test_expired_missing_and_foreign_pictures_fail(answers):
    ticket, _png = human_check.issue(KEY, "attempt-1", now=1000.0, ttl=300)
    with pytest.raises(human_check.ChallengeExpired):
        human_check.verify(ticket, answers[-1], key=KEY, bound_to="attempt-1", now=1300.0, spend=spender())
    with pytest.raises(human_check.ChallengeExpired):
        human_check.verify(None, answers[-1], key=KEY, bound_to="attempt-1", now=1000.0, spend=spender())
    with pytest.raises(human_check.ChallengeWrong):
        human_check.verify(ticket, answers[-1], key=KEY, bound_to="attempt-2", now=1000.0, spend=spender())
    with pytest.raises(human_check.ChallengeWrong):
        human_check.verify(ticket, answers[-1], key="other" * 10, bound_to="attempt-1", now=1000.0, spend=spender())


def test_the_ticket_keeps_no_answer_and_survives_the_session(answers):
    ticket, _png = human_check.issue(KEY, "attempt-1", now=1000.0, ttl=300)
    stored = ticket.as_dict()
    assert answers[-1] not in str(stored)
    assert human_check.Ticket.from_dict(stored) == ticket
    assert human_check.Ticket.from_dict({"n": "x"}) is None and human_check.Ticket.from_dict("junk") is None


def test_the_picture_is_a_small_png_and_never_the_same_twice():
    first, second = human_check.render("4817"), human_check.render("4817")
    image = Image.open(io.BytesIO(first))
    assert image.format == "PNG" and image.size == (human_check.WIDTH, human_check.HEIGHT)
    assert len(first) < 8_000 and first != second


def test_without_a_chinese_font_the_digits_still_draw():
    image = Image.open(io.BytesIO(human_check.render("0369", "/no/such/font.ttf")))
    assert image.getextrema()[0] < 100, "something dark was drawn"
