"""Every route × every text input with NUL, C0/C1 controls, bidi overrides, unassigned code
points and (in JSON) lone surrogates: never a 5xx, on SQLite and on PostgreSQL (issue 12, item 5).

Run on PostgreSQL with TEST_DATABASE=postgres: there a NUL byte or a lone surrogate that reached
the database would be a 500.
"""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.routing import Rule

from app.models import Role
from tests import conftest, factories
from tests.conftest import hidden_fields
from tests.security.test_input_boundary import NASTY
from tests.web.test_api import World, world  # noqa: F401 - the fixture

FIELDS = [
    "name", "phone", "platform", "workplace", "consent", "code", "email", "password", "reason", "status", "q",
    "next", "ids", "one", "action", "since", "before", "cursor", "event", "actor", "district", "district_code",
    "district_name", "workplace_code", "workplace_name", "kind", "answer", "format", "limit", "lang", "csv",
    "text", "question", "note",
]  # fmt: skip
SKIPPED = {"auth.logout", "static", "auth.change_password"}  # they end the session the fuzz signs in with
JSON_SURROGATES = ["\\ud800", "a\\udfffb", "\\u0000", "\\u202e"]


def _rules(app: Flask) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint not in SKIPPED]


def _fill(rule: Rule, value: str) -> str:
    path = rule.rule
    for arg in rule.arguments:
        converter = type(rule._converters[arg]).__name__  # type: ignore[attr-defined]
        fill = "1" if "Id" in converter or "Integer" in converter else value
        start = path.index("<")
        path = path[:start] + fill + path[path.index(">", start) + 1 :]
    return path


@pytest.fixture
def admin(app, db, world):  # type: ignore[no-untyped-def]  # noqa: F811
    factories.workplace(db, world.pd, "PD-AA01", "站")
    user = conftest.make_staff(db, "fuzz-admin@example.org", Role.admin)
    conftest.enrol(app, db, user)
    client = app.test_client()
    conftest.sign_in(client, db, "fuzz-admin@example.org")
    return client


def test_every_text_input_of_every_route_never_5xx(app, admin, world: World):  # noqa: F811
    token = {"Authorization": f"Bearer {world.tokens['admin']}"}
    form = hidden_fields(admin.get("/roster/").text)
    failures = []
    for rule in _rules(app):
        for value in NASTY:
            path = _fill(rule, value)
            query = {field: value for field in FIELDS}
            for method in sorted(rule.methods & {"GET", "POST"}):  # type: ignore[operator]
                if method == "GET":
                    sent = [admin.get(path, query_string=query), admin.get(path, query_string=query, headers=token)]
                else:
                    sent = [
                        admin.post(path, data={**form, **query}),
                        admin.post(path, json=query, headers=token),
                    ]
                failures += [(method, path, value, r.status_code) for r in sent if r.status_code >= 500]
    assert not failures, failures[:10]


def test_lone_surrogates_and_nul_in_json_never_5xx(app, world: World):  # noqa: F811
    client = app.test_client()
    token = {"Authorization": f"Bearer {world.tokens['admin']}", "Content-Type": "application/json"}
    failures = []
    for rule in _rules(app):
        if not rule.rule.startswith("/api/") or "POST" not in (rule.methods or ()):
            continue
        for raw in JSON_SURROGATES:
            body = "{" + ", ".join(f'"{field}": "{raw}"' for field in FIELDS) + "}"
            response = client.post(_fill(rule, "PD"), data=body, headers=token)
            if response.status_code >= 500:
                failures.append((rule.rule, raw, response.status_code))
    assert not failures, failures


def test_unauthenticated_sign_in_with_nul_is_refused_not_500(client):
    page = client.get("/login")
    for value in NASTY:
        response = client.post("/login", data={**hidden_fields(page.text), "email": value, "password": value})
        assert response.status_code in (422, 429), value
