"""No API answer tells a record outside the caller's districts from one that does not exist
(issue 12, item 9): the README promises 404 for both."""

from __future__ import annotations

import pytest

from app.models import WorkplaceKind
from tests import factories
from tests.web.test_api import World, call, world  # noqa: F401 - the fixture


@pytest.fixture
def elsewhere(db, world: World):  # type: ignore[no-untyped-def]  # noqa: F811
    station = factories.workplace(db, world.xh, "XH-01", "徐汇站")
    station.kind = WorkplaceKind.hub
    db.commit()
    return station


@pytest.mark.parametrize("code", ["XH-01", "XH"])
def test_an_organizer_cannot_learn_another_districts_place_codes(client, world: World, elsewhere, code):  # noqa: F811
    body = {"district_code": "PD", "workplace_code": code, "workplace_name": "x"}
    response = call(client, "POST", "/places", world.tokens["organizer"], json=body)
    assert response.status_code == 404 and response.json["error"] == "not_found"
    assert "district" not in response.json["message"] or response.json["message"] == "no such district"
    assert "XH" not in response.get_data(as_text=True)


def test_the_place_outside_is_untouched(client, db, world: World, elsewhere):  # noqa: F811
    body = {"district_code": "PD", "workplace_code": "XH-01", "workplace_name": "renamed", "kind": "other"}
    call(client, "POST", "/places", world.tokens["organizer"], json=body)
    db.refresh(elsewhere)
    assert elsewhere.name == "徐汇站" and elsewhere.district_id == world.xh.id


@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        ("GET", "/members/{}", None),
        ("POST", "/members/{}/approve", None),
        ("POST", "/members/{}/reject", {"reason": "no"}),
    ],
)
def test_a_member_outside_answers_as_one_that_does_not_exist(client, world: World, method, template, body):  # noqa: F811
    token = world.tokens["official"]
    outside = call(client, method, template.format(world.theirs.id), token, json=body)
    missing = call(client, method, template.format(world.theirs.id + 1000), token, json=body)
    assert outside.status_code == missing.status_code == 404
    assert outside.json == missing.json


def test_a_filter_on_a_workplace_outside_answers_as_an_unknown_one(client, world: World, elsewhere):  # noqa: F811
    token = world.tokens["official"]
    outside = call(client, "GET", "/members?workplace=XH-01", token)
    missing = call(client, "GET", "/members?workplace=NOPE-1", token)
    assert outside.status_code == missing.status_code == 200 and outside.json == missing.json
