"""/api/v1 through the test client; every response is checked against the OpenAPI description."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import pytest
import schemathesis
from sqlmodel import Session, select

from app.models import (
    AuditEvent,
    District,
    Member,
    MemberStatus,
    PlaceKind,
    Platform,
    Role,
    User,
    UserDistrict,
    Workplace,
    utcnow,
)
from app.services import api_tokens, names, users
from app.services.phones import last4
from app.web import openapi
from tests import conftest, factories
from tests.conftest import hidden_fields

DOCUMENT = openapi.document()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
PREFIX = "/api/v1"


def call(client, method: str, path: str, token: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
    """Send a request and hold the response to the OpenAPI description of its operation."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    response = client.open(PREFIX + path, method=method, headers=headers, **kwargs)
    template = re.sub(r"/\d+", "/{member_id}", path.split("?")[0])
    template = re.sub(r"^/exports/file/.*", "/exports/file/{token}", template).replace(
        "/exports/{member_id}", "/exports/{job_id}"
    )
    documented = DOCUMENT["paths"][template][method.lower()]["responses"]
    assert str(response.status_code) in documented, f"{response.status_code} is not documented for {template}"
    SCHEMA[template][method].validate_response(response)
    return response


def make_member(
    db: Session,
    pii,
    district: District,
    n: int,
    *,
    name: str = "王小明",  # type: ignore[no-untyped-def]
    workplace: Workplace | None = None,
    platform: Platform = Platform.meituan,
    age_days: float = 0,
) -> Member:
    phone = factories.phone(n)
    at = utcnow() - timedelta(days=age_days)
    member = Member(
        district_id=district.id or 0,
        workplace_id=workplace.id if workplace else None,
        name_enc=pii.encrypt(name),
        phone_enc=pii.encrypt(phone),
        phone_index=pii.index(phone),
        phone_last4_index=pii.index(last4(phone), purpose="last4"),
        name_index=names.index(pii, name),
        platform=platform,
        consent_version="test",
        consent_at=at,
        source_kind=PlaceKind.district,
        source_qr_version=1,
        created_at=at,
        verified_at=at,
    )
    db.add(member)
    db.flush()
    return member


@dataclass
class World:
    pd: District
    xh: District
    station: Workplace
    mine: list[Member]
    theirs: Member
    tokens: dict[str, str]
    users: dict[str, User]


def make_user(db: Session, email: str, role: Role, districts: list[District]) -> User:
    user = User(email=email, password_hash="x", role=role)
    db.add(user)
    db.flush()
    for district in districts:
        db.add(UserDistrict(user_id=user.id or 0, district_id=district.id or 0))
    return user


@pytest.fixture
def world(app, db) -> World:  # type: ignore[no-untyped-def]
    pii = app.extensions["pii"]
    pd, xh = factories.district(db, "PD", "浦东"), factories.district(db, "XH", "徐汇")
    station = factories.workplace(db, pd, "PD-ZJ01", "张江站")
    mine = [
        make_member(db, pii, pd, 1, name="王小明", workplace=station, age_days=3),
        make_member(db, pii, pd, 2, name="李四", platform=Platform.eleme, age_days=2),
        make_member(db, pii, pd, 3, name="张三", age_days=1),
    ]
    theirs = make_member(db, pii, xh, 4, name="赵六")
    people = {
        "admin": make_user(db, "admin@example.org", Role.admin, []),
        "official": make_user(db, "official@example.org", Role.official, [pd]),
        "organizer": make_user(db, "organizer@example.org", Role.organizer, [pd]),
    }
    tokens = {role: api_tokens.issue(db, user, now=utcnow())[1] for role, user in people.items()}
    db.commit()
    return World(pd, xh, station, mine, theirs, tokens, people)


def test_openapi_document_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.json["openapi"].startswith("3.1")
    assert "/members/{member_id}/approve" in response.json["paths"]


def test_no_or_bad_token_is_401_json(client, world, db):
    response = call(client, "GET", "/members")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert call(client, "GET", "/members", "sj_not-a-real-token").status_code == 401
    assert call(client, "GET", "/places", "x").status_code == 401
    api_tokens.revoke(db, world.users["official"], now=utcnow())
    db.commit()
    assert call(client, "GET", "/members", world.tokens["official"]).status_code == 401


def test_official_sees_only_their_district_in_keyset_pages(client, world):
    token, seen, cursor = world.tokens["official"], [], None
    for _ in range(5):
        response = call(client, "GET", "/members?limit=1" + (f"&cursor={cursor}" if cursor else ""), token)
        assert response.status_code == 200
        seen += [item["id"] for item in response.json["items"]]
        cursor = response.json["next_cursor"]
        if cursor is None:
            break
    assert seen == [m.id for m in reversed(world.mine)], "newest first, each once, none from XH"


def test_member_fields(client, world):
    member = world.mine[0]
    body = call(client, "GET", f"/members/{member.id}", world.tokens["official"]).json
    assert body["name"] == "王小明" and body["phone"] == factories.phone(1)
    assert body["workplace"] == "PD-ZJ01" and body["district"] == "PD" and body["status"] == "pending"
    assert body["member_number"] is None and body["decided_at"] is None and body["created_at"]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=pending", [3, 2, 1]),
        ("platform=eleme", [2]),
        ("workplace=PD-ZJ01", [1]),
        ("q=李四", [2]),
        ("q=李", []),  # the whole name: no partial search (docs/security.md)
        (f"q={factories.phone(3)[-4:]}", [3]),
        ("status=approved", []),
    ],
)
def test_filters(client, world, query, expected):
    response = call(client, "GET", f"/members?{query}", world.tokens["official"])
    assert [item["id"] for item in response.json["items"]] == [world.mine[n - 1].id for n in expected]


def test_since_filter(client, world):
    since = (utcnow() - timedelta(days=1, hours=12)).isoformat()
    response = call(client, "GET", "/members", world.tokens["official"], query_string={"since": since})
    assert [item["id"] for item in response.json["items"]] == [world.mine[2].id]


@pytest.mark.parametrize(
    "query",
    ["status=maybe", "platform=x", "limit=0", "limit=201", "limit=a", "cursor=%%%", "since=yesterday", "sort=decided"],
)
def test_bad_query_is_400_json(client, world, query):
    response = call(client, "GET", f"/members?{query}", world.tokens["official"])
    assert response.status_code == 400 and response.json["message"]


def test_out_of_scope_is_404(client, world, db):
    token, other = world.tokens["official"], world.theirs.id
    assert call(client, "GET", f"/members/{other}", token).status_code == 404
    assert call(client, "POST", f"/members/{other}/approve", token).status_code == 404
    assert call(client, "POST", f"/members/{other}/reject", token, json={"reason": "no"}).status_code == 404
    assert call(client, "GET", "/members/999999", token).status_code == 404
    db.commit()
    assert db.get(Member, other).status is MemberStatus.pending
    assert call(client, "GET", f"/members/{other}", world.tokens["admin"]).status_code == 200


def test_approve_then_409_saying_who_and_when(client, world, sms):
    member = world.mine[0]
    response = call(client, "POST", f"/members/{member.id}/approve", world.tokens["official"])
    assert response.status_code == 200
    assert response.json["status"] == "approved" and response.json["member_number"].startswith("PD-")
    assert sms.sent and sms.sent[-1].to == factories.phone(1), "the worker hears back"
    again = call(client, "POST", f"/members/{member.id}/reject", world.tokens["admin"], json={"reason": "late"})
    assert again.status_code == 409
    assert again.json["decided_by"] == "official@example.org" and again.json["decided_at"]
    assert "official@example.org" in again.json["message"]


def test_reject_needs_a_reason(client, world):
    path, token = f"/members/{world.mine[1].id}/reject", world.tokens["official"]
    assert call(client, "POST", path, token, json={}).status_code == 422
    assert call(client, "POST", path, token, json={"reason": "   "}).status_code == 422
    assert call(client, "POST", path, token, json={"reason": "x" * 501}).status_code == 422
    assert call(client, "POST", path, token, data="not json", content_type="application/json").status_code == 400
    assert call(client, "POST", path, token, json=["reason"]).status_code == 400
    response = call(client, "POST", path, token, json={"reason": "not a rider"})
    assert response.status_code == 200 and response.json["reject_reason"] == "not a rider"


def test_organizer_gets_no_member_data(client, world):
    token = world.tokens["organizer"]
    for method, path in [
        ("GET", "/members"),
        ("GET", f"/members/{world.mine[0].id}"),
        ("POST", f"/members/{world.mine[0].id}/approve"),
        ("GET", "/members/export"),
    ]:
        assert call(client, method, path, token).status_code == 403


def test_export_csv_is_scoped_and_audited(client, world, db):
    response = call(client, "GET", "/members/export?format=csv", world.tokens["official"])
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    names = {row[1] for row in rows[1:]}
    assert names == {"王小明", "李四", "张三"}
    db.commit()
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "roster.export")).one()
    assert event.actor_id == world.users["official"].id and event.details["rows"] == 3


def test_export_xlsx_and_bad_format(client, world):
    response = call(client, "GET", "/members/export?format=xlsx&status=pending", world.tokens["admin"])
    assert response.status_code == 200 and response.data[:2] == b"PK"
    assert call(client, "GET", "/members/export?format=pdf", world.tokens["admin"]).status_code == 400


def test_a_large_export_is_refused_not_streamed(app, client, world):
    app.config["EXPORT_STREAM_MAX_ROWS"] = 1
    response = call(client, "GET", "/members/export?format=csv", world.tokens["admin"])
    assert response.status_code == 422 and response.json["error"] == "export_too_large"
    assert "POST /api/v1/exports" in response.json["message"]


def test_an_export_job_through_the_api(app, client, world):
    response = call(client, "POST", "/exports?format=csv&status=pending", world.tokens["official"])
    assert response.status_code == 202 and response.headers["Location"].endswith(f"/exports/{response.json['id']}")
    job = call(client, "GET", f"/exports/{response.json['id']}", world.tokens["official"]).json
    assert job["status"] == "done" and job["rows_done"] == job["rows_total"] and job["download_url"]
    assert call(client, "GET", f"/exports/{job['id']}", world.tokens["admin"]).status_code == 404, "not your job"
    path = job["download_url"].removeprefix("/api/v1")
    body = call(client, "GET", path, world.tokens["official"])
    assert body.status_code == 200 and body.mimetype == "text/csv"
    assert call(client, "GET", path + "x", world.tokens["official"]).status_code == 404
    assert call(client, "POST", "/exports?format=pdf", world.tokens["official"]).status_code == 400
    assert call(client, "POST", "/exports", world.tokens["organizer"]).status_code == 403


def test_places_are_scoped(client, world):
    codes = [p["code"] for p in call(client, "GET", "/places", world.tokens["organizer"]).json["items"]]
    assert codes == ["PD", "PD-ZJ01"]
    everything = call(client, "GET", "/places", world.tokens["admin"]).json["items"]
    assert {p["code"] for p in everything} == {"PD", "PD-ZJ01", "XH"}
    station = next(p for p in everything if p["code"] == "PD-ZJ01")
    assert station["join_url"].startswith("https://join.example.org/") and station["district"] == "PD"
    assert call(client, "GET", "/places?district=../x", world.tokens["admin"]).status_code == 400


def test_organizer_adds_a_workplace_in_their_district_only(client, world, db):
    token = world.tokens["organizer"]
    new = {"district_code": "PD", "workplace_code": "PD-HB02", "workplace_name": "花木驿站", "kind": "rest_station"}
    response = call(client, "POST", "/places", token, json=new)
    assert response.status_code == 201 and response.json["workplace_kind"] == "rest_station"
    renamed = call(client, "POST", "/places", token, json={**new, "workplace_name": "花木骑手驿站"})
    assert renamed.status_code == 200 and renamed.json["name"] == "花木骑手驿站"
    assert call(client, "POST", "/places", token, json={**new, "district_code": "XH"}).status_code == 404
    new_district = {"district_code": "NEW", "district_name": "新"}
    assert call(client, "POST", "/places", token, json=new_district).status_code == 404
    assert call(client, "POST", "/places", token, json={"district_code": "PD", "district_name": "x"}).status_code == 403
    assert call(client, "POST", "/places", world.tokens["official"], json=new).status_code == 403
    db.commit()
    assert db.exec(select(Workplace).where(Workplace.code == "PD-HB02")).one().name == "花木骑手驿站"


def test_admin_creates_a_district_and_bad_places_are_422(client, world):
    token = world.tokens["admin"]
    response = call(client, "POST", "/places", token, json={"district_code": "JA", "district_name": "静安"})
    assert response.status_code == 201 and response.json["kind"] == "district"
    for body in [
        {"district_code": "NEW"},
        {"district_code": "a b"},
        {"district_code": "PD", "kind": "moon"},
        {"district_code": "PD", "workplace_code": "W1"},
        {"district_code": "PD", "extra": "x"},
        {"district_code": 5},
        {"district_code": "PD", "workplace_code": "XH", "workplace_name": "clash"},
        {"district_code": "PD", "workplace_code": "PD-E1", "workplace_name": "张江😀"},
    ]:
        assert call(client, "POST", "/places", token, json=body).status_code == 422, body
    # A control character is refused at the API's door, naming the field (never silently removed).
    body = {"district_code": "PD", "workplace_code": "PD-E2", "workplace_name": "张江\u0007站"}
    refused = call(client, "POST", "/places", token, json=body)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_text", refused.json
    assert "body.workplace_name" in refused.json["message"]
    listed = call(client, "GET", "/members?q=" + quote("王\u202e小明"), token)
    assert listed.status_code == 400 and "q" in listed.json["message"]


def test_unknown_paths_and_methods_answer_json(client, world):
    missing = client.get("/api/v1/nothing-here", headers={"Authorization": f"Bearer {world.tokens['admin']}"})
    assert missing.status_code == 404 and missing.is_json
    wrong = client.delete("/api/v1/places", headers={"Authorization": f"Bearer {world.tokens['admin']}"})
    assert wrong.status_code == 405 and wrong.is_json and "GET" in wrong.headers["Allow"]


def test_cookie_requests_need_csrf_bearer_requests_do_not(client, world, db):
    users.set_password(db, db.get(User, world.users["official"].id), "official passphrase 2026")
    db.commit()
    conftest.sign_in(client, db, "official@example.org", "official passphrase 2026")
    assert call(client, "GET", "/members").status_code == 200, "a signed-in official may read with the cookie"
    path = f"/members/{world.mine[0].id}/approve"
    assert call(client, "POST", path).status_code == 403, "no CSRF token"
    token = hidden_fields(client.get("/home").text)["csrf_token"]
    cross = call(client, "POST", path, headers={"X-CSRFToken": token, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    db.commit()
    assert db.get(Member, world.mine[0].id).status is MemberStatus.pending
    assert call(client, "POST", path, headers={"X-CSRFToken": token}).status_code == 200
    bearer = call(client, "POST", f"/members/{world.mine[1].id}/approve", world.tokens["admin"])
    assert bearer.status_code == 200, "a bearer request needs no CSRF token"


def test_cli_token_prints_it_alone_on_the_last_line_and_revoke_works(app, client, world):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "token", "official@example.org"])
    assert result.exit_code == 0
    token = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"sj_[A-Za-z0-9_-]{40,}", token)
    assert call(client, "GET", "/members", token).status_code == 200
    listing = runner.invoke(args=["users", "tokens", "official@example.org"])
    assert token not in listing.output and "live" in listing.output
    assert runner.invoke(args=["users", "revoke-token", "official@example.org"]).exit_code == 0
    assert call(client, "GET", "/members", token).status_code == 401
    assert runner.invoke(args=["users", "token", "nobody@example.org"]).exit_code != 0
