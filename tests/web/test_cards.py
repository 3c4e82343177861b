"""The e-card end to end: issued on approval, `/C/<token>` says valid / expired / revoked, the API and the CLI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import time_machine
from sqlmodel import select

from app.models import District, Member, MemberStatus, utcnow
from app.services import cards, roster
from tests import factories
from tests.conftest import hidden_fields
from tests.web.test_api import World, call, world  # noqa: F401  (the fixture)
from tests.web.test_status import decide, joined, only_member, prove

NAME, MASKED = "王小明", "王*明"


def card_of(app, db, member: Member) -> cards.CardView:  # type: ignore[no-untyped-def]
    view = cards.card_for(
        db,
        member,
        signer=app.extensions["card_signer"],
        name=app.extensions["pii"].decrypt(member.name_enc),
        base_url=app.config["PUBLIC_BASE_URL"],
        union_name="",
        now=utcnow(),
        valid_days=app.config["CARD_VALID_DAYS"],
    )
    assert view is not None
    return view


def path_of(url: str) -> str:
    return url[url.index("/C/") :]


def approved(client, app, db, sms, station) -> Member:  # type: ignore[no-untyped-def]
    joined(client, app, sms, station)
    decide(app, db, only_member(db).id, approve=True)
    return only_member(db)


def test_no_card_before_approval(client, app, db, sms, station):
    joined(client, app, sms, station)
    member = only_member(db)
    assert cards.card_for(db, member, signer=app.extensions["card_signer"], name=NAME, base_url="", union_name="",
                          now=utcnow(), valid_days=365) is None  # fmt: skip


def test_approved_card_is_valid_and_shows_only_the_masked_name(client, app, db, sms, station):
    member = approved(client, app, db, sms, station)
    card = card_of(app, db, member)
    assert card.masked_name == MASKED and card.member_number == member.member_number
    assert card.url.startswith("HTTPS://JOIN.EXAMPLE.ORG/C/")
    page = client.get(path_of(card.url))
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"] and "noindex" in page.text
    assert 'class="card-state valid"' in page.text and MASKED in page.text and member.member_number in page.text
    assert "浦东新区总工会" in page.text, "the district's name"
    assert NAME not in page.text and factories.phone(1) not in page.text
    english = client.get(path_of(card.url).lower(), headers={"Accept-Language": "en"})
    assert "Valid: this member is in good standing." in english.text, "lower-case URL, English"
    assert "有效：此人是在册会员。" in client.get(path_of(card.url)).text, "Chinese first"


def test_revoked_after_withdrawal(client, app, db, sms, station):
    member = approved(client, app, db, sms, station)
    url = card_of(app, db, member).url
    worker = app.test_client()
    page = prove(worker, sms, factories.phone(1))
    assert worker.post("/status/withdraw", data={**hidden_fields(page.text), "confirm": "y"}).status_code == 303
    shown = client.get(path_of(url))
    assert shown.status_code == 200 and 'class="card-state revoked"' in shown.text
    assert MASKED not in shown.text, "the data is gone: no name at all"
    runner = app.test_cli_runner()
    assert runner.invoke(args=["cards", "verify", url]).exit_code == 0, "offline, the signature still holds"


def test_revoked_after_rejection_and_after_transfer(client, app, db, sms, station):
    member = approved(client, app, db, sms, station)
    url = card_of(app, db, member).url
    member.status = MemberStatus.rejected  # an appeal overturned the approval
    db.add(member)
    db.commit()
    assert 'class="card-state revoked"' in client.get(path_of(url)).text
    member.status = MemberStatus.approved
    db.add(member)
    db.commit()
    assert 'class="card-state valid"' in client.get(path_of(url)).text
    other = factories.district(db, "XH", "徐汇区总工会")
    member.district_id = other.id
    db.add(member)
    db.commit()
    assert 'class="card-state revoked"' in client.get(path_of(url)).text


def test_decided_again_after_issue_revokes_the_older_card(client, app, db, sms, station):
    member = approved(client, app, db, sms, station)
    url = card_of(app, db, member).url
    member.decided_at = utcnow() + timedelta(minutes=5)
    db.add(member)
    db.commit()
    assert 'class="card-state revoked"' in client.get(path_of(url)).text


def test_expired_card(client, app, db, sms, station):
    member = approved(client, app, db, sms, station)
    url = card_of(app, db, member).url
    with time_machine.travel(utcnow() + timedelta(days=app.config["CARD_VALID_DAYS"] + 2)):
        shown = client.get(path_of(url))
        assert 'class="card-state expired"' in shown.text and member.member_number in shown.text
        assert app.test_cli_runner().invoke(args=["cards", "verify", url]).exit_code == 1


def test_forged_or_tampered_card_is_404(client, app, db, sms, station):
    member = approved(client, app, db, sms, station)
    path = path_of(card_of(app, db, member).url)
    flipped = path[:-1] + ("A" if path[-1] != "A" else "B")
    for bad in (flipped, "/C/" + "A" * 154, "/C/%00", "/C/" + "A" * 300, "/C/x.y"):
        response = client.get(bad)
        assert response.status_code == 404, bad


def test_cli_verify_accepts_the_card_and_refuses_one_changed_character(client, app, db, sms, station, tmp_path: Path):
    member = approved(client, app, db, sms, station)
    url = card_of(app, db, member).url
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["cards", "verify", url.lower()])
    assert ok.exit_code == 0, ok.output
    assert member.member_number in ok.output and "district: PD" in ok.output and "valid until:" in ok.output
    token = cards.token_from(url)
    tampered = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    refused = runner.invoke(args=["cards", "verify", tampered])
    assert refused.exit_code == 1 and member.member_number not in refused.output


def test_cli_public_key_alone_verifies(client, app, db, sms, station, tmp_path: Path):
    member = approved(client, app, db, sms, station)
    url = card_of(app, db, member).url
    runner = app.test_cli_runner()
    pem = runner.invoke(args=["cards", "public-key"]).output
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    raw = runner.invoke(args=["cards", "public-key", "--base64"]).output.strip()
    for text in (pem, raw):
        key = tmp_path / "card.pub"
        key.write_text(text)
        assert runner.invoke(args=["cards", "verify", "--public-key", str(key), url]).exit_code == 0
    stranger = tmp_path / "other.pub"
    stranger.write_text(cards.public_pem(cards.CardSigner.from_settings(cards.generate_private_key(), []).public_key))
    assert runner.invoke(args=["cards", "verify", "--public-key", str(stranger), url]).exit_code == 1


def test_api_card_is_scoped_and_only_for_approved_members(client, app, db, world: World):  # noqa: F811
    official = world.tokens["official"]
    mine = world.mine[0]
    assert call(client, "GET", f"/members/{mine.id}/card", official).status_code == 409
    roster.approve(db, None, mine.id, by=world.users["admin"], now=utcnow())
    db.commit()
    got = call(client, "GET", f"/members/{mine.id}/card", official)
    assert got.status_code == 200
    number = db.exec(select(Member.member_number).where(Member.id == mine.id)).one()
    assert got.json["member_number"] == number and got.json["masked_name"] == MASKED
    assert got.json["url"].startswith("HTTPS://JOIN.EXAMPLE.ORG/C/") and got.json["district"] == "浦东"
    assert 'class="card-state valid"' in client.get(path_of(got.json["url"])).text
    roster.approve(db, None, world.theirs.id, by=world.users["admin"], now=utcnow())
    db.commit()
    assert call(client, "GET", f"/members/{world.theirs.id}/card", official).status_code == 404
    assert call(client, "GET", f"/members/{world.theirs.id}/card", world.tokens["admin"]).status_code == 200
    assert call(client, "GET", f"/members/{mine.id}/card", world.tokens["organizer"]).status_code == 403
    assert db.exec(select(District)).all()
