"""The web admin through the test client, CSRF on: places, staff accounts and set-up links, API tokens."""

from __future__ import annotations

import io
import re

import pytest
from sqlmodel import Session, select

from app.models import ApiToken, AuditEvent, District, Role, User, Workplace, utcnow
from app.services import api_tokens, places, users
from tests import conftest, factories
from tests.conftest import hidden_fields

LINK_RE = re.compile(r'id="setup-link" readonly rows="4" class="secret">([^<]+)<')
TOKEN_RE = re.compile(r'id="api-token" readonly rows="2" class="secret">([^<]+)<')
NEW_PASSWORD = "my own long passphrase"


@pytest.fixture
def admin(app, db):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    factories.workplace(db, district)
    user = conftest.make_staff(db, "admin@example.org", Role.admin)
    conftest.enrol(app, db, user)
    return user


@pytest.fixture
def signed_in(client, db, admin):  # type: ignore[no-untyped-def]
    conftest.sign_in(client, db, "admin@example.org")
    return client


def post(client, path: str, data: dict[str, object] | None = None, page: str | None = None):  # type: ignore[no-untyped-def]
    """POST `data` with the CSRF token of the form page `page` (default: the path itself)."""
    form = client.get(page or path)
    return client.post(path, data={**hidden_fields(form.text), **(data or {})})


def fresh(db: Session, model, **where):  # type: ignore[no-untyped-def]
    db.commit()
    query = select(model).execution_options(populate_existing=True)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.exec(query).first()


def test_admin_pages_are_for_admins_only(client, app, db, admin):
    assert client.get("/admin/places").status_code == 302
    conftest.make_staff(db, "org@example.org", Role.organizer, ["PD"])
    conftest.sign_in(client, db, "org@example.org")
    for path in ("/admin/places", "/admin/staff", "/admin/staff/new", f"/admin/staff/{admin.id}"):
        assert client.get(path).status_code == 403, path
    home = client.get("/home")
    assert client.post(f"/admin/staff/{admin.id}/deactivate", data=hidden_fields(home.text)).status_code == 403


def test_admin_creates_edits_and_retires_places(signed_in, app, db):
    client = signed_in
    assert post(client, "/admin/places/new", {"code": "MH", "name": "闵行区总工会"}).status_code == 303
    response = post(client, "/admin/places/MH/new", {"code": "MH-01", "name": "莘庄站", "kind": "rest_station"})
    assert response.status_code == 303
    assert post(client, "/admin/places/MH-01/edit", {"name": "莘庄驿站", "kind": "hub"}).status_code == 303
    station = fresh(db, Workplace, code="MH-01")
    assert (station.name, station.kind.value) == ("莘庄驿站", "hub")
    signer, today = app.extensions["qr_signer"], utcnow().date()
    token = places.token_for(signer, station)
    assert places.resolve(db, signer, token, today).workplace.code == "MH-01"
    page = client.get("/admin/places/MH/retire")
    assert "莘庄驿站" in page.text
    assert client.post("/admin/places/MH/retire", data=hidden_fields(page.text)).status_code == 303
    db.commit()
    db.expire_all()
    with pytest.raises(places.PlaceReplaced):
        places.resolve(db, signer, token, today)
    assert "/admin/places/MH/new" not in client.get("/admin/places").text
    actions = [e.action for e in db.exec(select(AuditEvent).where(AuditEvent.action.startswith("place.")))]
    assert actions == ["place.create", "place.create", "place.edit", "place.retire", "place.retire"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"code": "PD-ZJ01", "name": "重复"}, "已被另一个地点使用"),
        ({"code": "a b", "name": "空格"}, "字母、数字"),
        ({"code": "OK", "name": "名字\U0001f600"}, "名称必填"),
    ],
)
def test_bad_places_are_422_in_chinese_and_write_nothing(signed_in, db, data, words):
    response = post(signed_in, "/admin/places/new", data)
    assert response.status_code == 422 and words in response.text
    assert fresh(db, District, code=data["code"]) is None


def test_place_import_reports_each_row(signed_in, db):
    page = signed_in.get("/admin/places/import")
    text = (
        "district_code,district_name,workplace_code,workplace_name,kind\nMH,闵行,MH-01,莘庄站,驿站\nPD,浦东,x y,坏,\n"
    )
    data = {**hidden_fields(page.text), "file": (io.BytesIO(text.encode("utf-8-sig")), "places.csv")}
    response = signed_in.post("/admin/places/import", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    assert re.search(r"新建的行</th><td>1<", response.text) and "<td>3</td>" in response.text
    assert "workplace_code 须为字母、数字" in response.text
    assert fresh(db, Workplace, code="MH-01").kind.value == "rest_station"
    event = fresh(db, AuditEvent, action="place.import")
    assert event.details == {"created": 1, "updated": 0, "rejected": 1}


def test_new_official_sets_up_through_the_link_once(signed_in, app, db):
    response = post(
        signed_in, "/admin/staff/new", {"email": "new@example.org", "role": "official", "districts": ["PD"]}
    )
    assert response.status_code == 200 and "new@example.org" in response.text
    link = LINK_RE.search(response.text).group(1)
    assert link.startswith(app.config["PUBLIC_BASE_URL"] + "/setup/")
    official = app.test_client()
    path = link.removeprefix(app.config["PUBLIC_BASE_URL"])
    mismatch = post(official, path, {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD + "x"})
    assert mismatch.status_code == 422 and "不一致" in mismatch.text
    done = post(official, path, {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"].endswith("/login/setup")
    assert conftest.code_step(official, db, "new@example.org").status_code == 200  # recovery codes
    assert official.get("/roster/").status_code == 200
    again = official.get(path)
    assert again.status_code == 410 and "已经用过" in again.text
    user = fresh(db, User, email="new@example.org")
    assert users.district_codes(db, user) == ["PD"] and user.setup_hash is None
    for event in db.exec(select(AuditEvent)):
        assert "@" not in f"{event.target_id} {event.details}"


def test_a_bad_link_is_404_and_an_account_cannot_be_made_twice(signed_in, client):
    assert client.get("/setup/not-a-real-token").status_code == 404
    data = {"email": "admin@example.org", "role": "admin"}
    response = post(signed_in, "/admin/staff/new", data)
    assert response.status_code == 422 and "已有使用此邮箱的账号" in response.text
    response = post(signed_in, "/admin/staff/new", {"email": "x@example.org", "role": "official"})
    assert response.status_code == 422 and "至少需要一个区" in response.text


def test_admin_changes_access_resets_unlocks_and_deactivates(signed_in, app, db, admin):
    factories.district(db, "MH", "闵行区总工会")
    official = conftest.make_staff(db, "off@example.org", Role.official, ["PD"])
    conftest.enrol(app, db, official)
    official.locked_at = utcnow()
    db.add(official)
    db.commit()
    base = f"/admin/staff/{official.id}"
    assert post(signed_in, base + "/access", {"role": "organizer", "districts": ["MH"]}, base).status_code == 303
    assert post(signed_in, base + "/reset-mfa", page=base).status_code == 303
    assert post(signed_in, base + "/unlock", page=base).status_code == 303
    assert "停用 off@example.org？" in signed_in.get(base + "/deactivate").text
    assert post(signed_in, base + "/deactivate", page=base + "/deactivate").status_code == 303
    user = fresh(db, User, id=official.id)
    assert user.role is Role.organizer and users.district_codes(db, user) == ["MH"]
    assert user.totp_secret_enc is None and user.locked_at is None and not user.active
    mine = f"/admin/staff/{admin.id}"
    assert post(signed_in, mine + "/deactivate", page=mine).status_code == 403
    assert post(signed_in, mine + "/access", {"role": "official", "districts": ["PD"]}, mine).status_code == 403
    actions = {e.action for e in db.exec(select(AuditEvent).where(AuditEvent.target_id == str(official.id)))}
    assert {"user.access", "user.mfa_reset", "user.unlock", "user.deactivate"} <= actions


def test_api_tokens_with_scope_and_expiry(signed_in, client, db, admin):
    base = f"/admin/staff/{admin.id}"
    made = post(signed_in, base + "/tokens", {"scope": "read", "days": "30"}, base)
    raw = TOKEN_RE.search(made.text).group(1)
    token = fresh(db, ApiToken, token_hash=api_tokens.digest(raw))
    assert token.scope == "read" and (token.expires_at - utcnow()).days == 29
    bearer = {"Authorization": f"Bearer {raw}"}
    api = client.application.test_client()
    assert api.get("/api/v1/places", headers=bearer).status_code == 200
    refused = api.post("/api/v1/places", json={"district_code": "PD", "workplace_code": "A1"}, headers=bearer)
    assert refused.status_code == 403
    assert raw not in signed_in.get(base).text
    assert post(signed_in, f"{base}/tokens/{token.id}/revoke", page=base).status_code == 303
    assert api.get("/api/v1/places", headers=bearer).status_code == 401
    db.commit()  # no read snapshot of before the requests: SQLite would refuse the write
    _token, expired_raw = api_tokens.issue(db, admin, now=utcnow(), expires_at=utcnow())
    db.commit()
    assert api.get("/api/v1/places", headers={"Authorization": f"Bearer {expired_raw}"}).status_code == 401


def test_every_admin_form_needs_its_csrf_token(signed_in, db, admin):
    official = conftest.make_staff(db, "off@example.org", Role.official, ["PD"])
    for path in (
        "/admin/places/new",
        "/admin/places/PD/retire",
        "/admin/places/import",
        "/admin/staff/new",
        f"/admin/staff/{official.id}/deactivate",
        f"/admin/staff/{official.id}/tokens",
    ):
        response = signed_in.post(path, data={"code": "X1", "name": "x", "email": "y@example.org", "role": "admin"})
        assert response.status_code in (400, 422), path
    assert fresh(db, User, id=official.id).active and fresh(db, District, code="X1") is None
    assert fresh(db, ApiToken, user_id=official.id) is None and fresh(db, User, email="y@example.org") is None


def test_import_reasons_are_translated_and_unknown_ones_kept(app):
    from app.web.admin.place_import import reason_text

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        bad = "workplace_name has a character that cannot be printed on a poster (U+1F600): use letters"
        assert reason_text(bad) == "站点名称含有无法打印的字符（U+1F600）"
        assert reason_text("code PD is already a district") == "代码 PD 已是一个区"
        assert reason_text("something new") == "something new"


def test_changes_are_limited_per_admin(signed_in):
    form = hidden_fields(signed_in.get("/admin/places/new").text)
    codes = [
        signed_in.post("/admin/places/new", data={**form, "code": "a b", "name": "x"}).status_code for _ in range(61)
    ]
    assert codes[:60] == [422] * 60 and codes[60] == 429
    assert signed_in.get("/admin/places").status_code == 200  # reading is not limited
