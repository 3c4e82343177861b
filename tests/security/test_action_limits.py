"""One limit for each action whichever door it comes through (issue 12, item 3): the pages and
the API share one count per account, from app.security.ACTION_LIMITS."""

from __future__ import annotations

from limits import parse

from app.models import User
from app.security import ACTION_LIMITS
from app.services import users
from tests import conftest
from tests.web.test_api import World, world  # noqa: F401 - the fixture

PASSWORD = "official passphrase 2026"


def _web(app, db, user: User):  # type: ignore[no-untyped-def]
    users.set_password(db, user, PASSWORD)
    db.commit()
    client = app.test_client()
    conftest.sign_in(client, db, user.email, PASSWORD)
    return client


def _doors(app, db, world: World):  # type: ignore[no-untyped-def]  # noqa: F811
    """Each action's doors, as calls that do it once for the official."""
    web = _web(app, db, db.get(User, world.users["official"].id))
    api = app.test_client()
    token = {"Authorization": f"Bearer {world.tokens['official']}"}
    return {
        "export": [
            lambda: web.get("/roster/export.csv"),
            lambda: web.get("/roster/export.xlsx"),
            lambda: api.get("/api/v1/members/export", headers=token),
            lambda: api.get("/api/v1/members/export?format=xlsx", headers=token),
        ],
    }


def test_every_action_is_walked_through_every_door(app, db, world: World):  # noqa: F811
    doors = _doors(app, db, world)
    assert set(doors) == set(ACTION_LIMITS), "a new action needs its doors listed here"
    for action, calls in doors.items():
        allowed = parse(ACTION_LIMITS[action]).amount
        answers = [calls[n % len(calls)]().status_code for n in range(allowed)]
        assert answers == [200] * allowed, (action, answers)
        for door, call in enumerate(calls):
            response = call()
            assert response.status_code == 429, (action, door)
            assert response.headers["Retry-After"].isdigit()


def test_the_api_export_alone_is_limited(app, world: World):  # noqa: F811
    client, token = app.test_client(), {"Authorization": f"Bearer {world.tokens['official']}"}
    allowed = parse(ACTION_LIMITS["export"]).amount
    assert [client.get("/api/v1/members/export", headers=token).status_code for _ in range(allowed)] == [200] * allowed
    refused = client.get("/api/v1/members/export", headers=token)
    assert refused.status_code == 429 and refused.json["error"] == "rate_limited"


def test_another_account_has_its_own_count(app, world: World):  # noqa: F811
    client = app.test_client()
    for _ in range(parse(ACTION_LIMITS["export"]).amount):
        client.get("/api/v1/members/export", headers={"Authorization": f"Bearer {world.tokens['official']}"})
    other = client.get("/api/v1/members/export", headers={"Authorization": f"Bearer {world.tokens['admin']}"})
    assert other.status_code == 200
