"""Redis down: every door answers 503, the API as JSON, never 500 (issue 12, item 6)."""

from __future__ import annotations

import config as settings
from app import create_app
from tests.web.test_api import PREFIX, SCHEMA, World, world  # noqa: F401 - the fixture

REFUSING = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every connection is refused


def test_the_api_answers_503_json_when_the_limit_store_refuses(env, world: World):  # noqa: F811
    app = create_app(settings.TestingConfig({**env, "RATELIMIT_STORAGE_URI": REFUSING, "REDIS_URL": REFUSING}))
    client = app.test_client()
    token = {"Authorization": f"Bearer {world.tokens['official']}"}
    for method, path, body in [
        ("GET", "/members", None),
        ("GET", "/places", None),
        ("GET", "/members/export", None),
        ("POST", f"/members/{world.mine[0].id}/reject", {"reason": "no"}),
        ("GET", "/members", None),
    ]:
        response = client.open(PREFIX + path, method=method, headers=token, json=body)
        assert response.status_code == 503 and response.json["error"] == "unavailable", (path, response.status_code)
        SCHEMA[path.replace(str(world.mine[0].id), "{member_id}")][method].validate_response(response)
    assert client.get("/login").status_code in (200, 503)
    app.extensions["db_engine"].dispose()
