"""Text from outside is cleaned once, at the boundary, for every door (issue 12, items 2 and 5).

Form and query values go through the Request class's parameter storage, JSON bodies through the
app's JSON provider (app/security.py): no view sees a control, format, unassigned or surrogate
character. The fuzz test sends such characters in every text input of every route, on both
databases, and expects no 5xx; the export test stores such a name directly (a row from before
the fix) and expects both exports to work.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

import pytest
from flask import jsonify, request
from hypothesis import given, settings
from hypothesis import strategies as st

from app.extensions import csrf
from app.models import Role
from app.security import DROPPED_CATEGORIES, clean_text
from tests import conftest
from tests.web.test_api import World, make_member, world  # noqa: F401 - the fixture

NASTY = ["\x00", "x\x01y", "\x1b[31m", "\x7f", "\x85", "\x9f", "a\u202eb", "\u200b", "\u0378", "\ufffe", "\U000e0001"]
SURROGATES = ['"\\ud800"', '"a\\udfffb"']  # lone surrogates are only possible in JSON text


@given(st.text())
@settings(max_examples=500)
def test_clean_text_keeps_no_dropped_character_and_is_stable(value):
    cleaned = clean_text(value)
    assert not any(unicodedata.category(ch) in DROPPED_CATEGORIES for ch in cleaned)
    assert unicodedata.is_normalized("NFC", cleaned)
    assert clean_text(cleaned) == cleaned


def test_newlines_are_kept_only_in_a_multiline_field():
    assert clean_text("a\r\nb\rc\x00") == "abc"
    assert clean_text("a\r\nb\rc\x00", multiline=True) == "a\nb\nc"


def test_decomposed_text_is_composed():
    assert clean_text("e\u0301") == "\u00e9"


@pytest.fixture
def echo(app):  # type: ignore[no-untyped-def]
    @app.post("/_echo")
    def _echo():  # type: ignore[no-untyped-def]
        return jsonify(form=request.form.to_dict(), args=request.args.to_dict(), json=request.get_json(silent=True))

    csrf.exempt(_echo)
    return app.test_client()


@pytest.mark.parametrize("value", NASTY)
def test_every_door_sees_clean_text(echo, value):
    expected = clean_text(value)
    form = echo.post("/_echo?q=" + quote(value), data={"name": value, value: "k"}).json
    assert form["args"] == {"q": expected}
    assert form["form"]["name"] == expected and form["form"].get(expected) == "k"
    body = echo.post("/_echo", json={"reason": value, "list": [value], value: {"n": value}}).json["json"]
    assert body == {"reason": expected, "list": [expected], expected: {"n": expected}}


@pytest.mark.parametrize("raw", SURROGATES)
def test_lone_surrogates_in_json_are_dropped(echo, raw):
    body = echo.post("/_echo", data="{" + f'"reason": {raw}' + "}", content_type="application/json").json["json"]
    assert body["reason"] in ("", "ab")


def _staff(app, db, email: str, role: Role, districts: list[str]):  # type: ignore[no-untyped-def]
    user = conftest.make_staff(db, email, role, districts)
    conftest.enrol(app, db, user)
    client = app.test_client()
    conftest.sign_in(client, db, email)
    return client


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_both_exports_survive_a_control_character_stored_before_the_fix(app, db, world: World, fmt):  # noqa: F811
    make_member(db, app.extensions["pii"], world.pd, 9, name="x\x01y")
    db.commit()
    web = _staff(app, db, "exporter@example.org", Role.official, ["PD"])
    response = web.get(f"/roster/export.{fmt}")
    assert response.status_code == 200 and len(response.data) > 0
    api = app.test_client().get(
        f"/api/v1/members/export?format={fmt}", headers={"Authorization": f"Bearer {world.tokens['official']}"}
    )
    assert api.status_code == 200 and len(api.data) > 0
