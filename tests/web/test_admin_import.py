"""The admin's import page: admins only, CSRF, UTF-8 with BOM and GBK, dry run, a report without personal data."""

from __future__ import annotations

import io
import logging

import pytest
from sqlmodel import select

from app.models import AuditEvent, Member, Role
from tests.conftest import hidden_fields, make_staff, sign_in
from tests.factories import phone

HEADER = "name,phone,district,workplace,platform,join_date,member_number\n"


@pytest.fixture
def admin(client, db, station):  # type: ignore[no-untyped-def]
    make_staff(db, "admin@example.org", Role.admin)
    sign_in(client, db, "admin@example.org")
    return client


def upload(client, content: bytes, *, dry_run: bool = False, encoding: str = "auto", csrf: bool = True):  # type: ignore[no-untyped-def]
    page = client.get("/admin/import")
    assert page.status_code == 200
    data = {**(hidden_fields(page.text) if csrf else {}), "encoding": encoding}
    if dry_run:
        data["dry_run"] = "y"
    data["file"] = (io.BytesIO(content), "members.csv")
    return client.post("/admin/import", data=data, content_type="multipart/form-data")


def members(db) -> list[Member]:  # type: ignore[no-untyped-def]
    db.commit()
    return list(db.exec(select(Member)))


def test_the_page_is_chinese_first_and_works_without_script(admin):
    page = admin.get("/admin/import")
    assert "导入会员" in page.text and 'enctype="multipart/form-data"' in page.text
    assert "<script" not in page.text and 'name="csrf_token"' in page.text


def test_an_import_writes_members_and_reports_bad_rows_masked(admin, db, caplog):
    caplog.set_level(logging.DEBUG)
    text = HEADER + f"张三,{phone(1)[3:]},PD,PD-ZJ01,美团,2024-03-01,\n李四,123,PD,,,,\n王五,{phone(1)},PD,,,,\n"
    response = upload(admin, text.encode("utf-8-sig"))
    assert response.status_code == 200
    for shown in ("导入完成", "不是有效的手机号", "与第 2 行手机号相同"):
        assert shown in response.text
    assert "170****0001" in response.text
    for secret in ("张三", "李四", "王五", phone(1)[3:]):
        assert secret not in response.text and secret not in caplog.text
    (member,) = members(db)
    assert member.member_number == "PD-000001"
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "member.import")).one()
    assert event.details["via"] == "web" and event.details["imported"] == 1 and event.actor_id is not None


def test_a_dry_run_writes_nothing(admin, db):
    response = upload(admin, (HEADER + f"张三,{phone(1)},PD,,,,\n").encode(), dry_run=True)
    assert response.status_code == 200 and "没有写入任何数据" in response.text
    assert members(db) == []


def test_a_gbk_file_from_chinese_excel(admin, db):
    text = "姓名,手机号,区,站点\n" + f"张三,{phone(1)},浦东新区总工会,张江美团骑手站\n"
    assert upload(admin, text.encode("gbk")).status_code == 200
    assert upload(admin, text.encode("gbk"), encoding="gbk").status_code == 200  # then a duplicate
    assert len(members(db)) == 1


def test_an_unreadable_file_or_header_is_explained_not_a_500(admin, db):
    response = upload(admin, (HEADER + f"张三,{phone(1)},PD,,,,\n").encode("gbk"), encoding="utf-8")
    assert response.status_code == 422 and "无法读取" in response.text
    response = upload(admin, b"who,what\nx,y\n")
    assert response.status_code == 422 and "name, phone, district" in response.text
    response = upload(admin, b"\x00\xff" * 10)
    assert response.status_code == 422 and "无法读取" in response.text
    response = upload(admin, HEADER.encode() + b'"' + b"x" * 200_000 + b'"\n')
    assert response.status_code == 422 and "不是 CSV 表格" in response.text
    assert members(db) == []


def test_no_csrf_token_no_import(admin, db):
    response = upload(admin, (HEADER + f"张三,{phone(1)},PD,,,,\n").encode(), csrf=False)
    assert response.status_code == 422 and members(db) == []


def test_a_file_larger_than_the_limit_is_refused(admin, db):
    from app.web.admin_import import UPLOAD_LIMIT

    response = upload(admin, b"x" * (UPLOAD_LIMIT + 1))
    assert response.status_code == 413 and members(db) == []


def test_a_file_above_the_site_limit_but_under_the_upload_limit_is_read(admin, db, app):
    rows = "".join(f"测试{n},{phone(n)},PD,,,,\n" for n in range(1, 2501))
    assert len(rows.encode()) > app.config["MAX_CONTENT_LENGTH"]
    response = upload(admin, (HEADER + rows).encode())
    assert response.status_code == 200 and len(members(db)) == 2500


@pytest.mark.parametrize("role", [Role.official, Role.organizer])
def test_only_admins(client, db, station, role):
    make_staff(db, "staff@example.org", role, districts=["PD"])
    sign_in(client, db, "staff@example.org")
    assert client.get("/admin/import").status_code == 403
    response = client.post("/admin/import", data={"file": (io.BytesIO(b"x"), "m.csv")})
    assert response.status_code in (400, 403)
    assert members(db) == []


def test_signed_out_goes_to_sign_in(client, db, station):
    assert client.get("/admin/import").status_code in (302, 401)
