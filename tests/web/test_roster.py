"""The roster pages through the test client, CSRF on: roles, scope, live changes, decisions, exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from app.models import AuditEvent, Member, MemberStatus, Role
from tests import conftest, factories
from tests.conftest import checked_out, hidden_fields
from tests.services.test_roster import make_member


@pytest.fixture
def pii(app):  # type: ignore[no-untyped-def]
    return app.extensions["pii"]


@pytest.fixture
def places(db):  # type: ignore[no-untyped-def]
    pd = factories.district(db, "PD", "浦东")
    xh = factories.district(db, "XH", "徐汇")
    db.commit()
    return pd, xh


def sign_in(
    client,
    db,
    email: str = "official@example.org",
    role: Role = Role.official,  # type: ignore[no-untyped-def]
    districts: list[str] | None = ("PD",),
) -> None:  # type: ignore[assignment]
    conftest.make_staff(db, email, role, list(districts) if districts else None)
    conftest.sign_in(client, db, email)


def fresh(db, member_id: int) -> Member | None:  # type: ignore[no-untyped-def]
    db.commit()
    db.expire_all()
    return db.get(Member, member_id)


def post_form(client, page_path: str, action: str, **data: object):  # type: ignore[no-untyped-def]
    page = client.get(page_path)
    fields = {k: v for k, v in hidden_fields(page.text).items() if k == "csrf_token"}
    return client.post(action, data={**fields, **data})


def test_roster_needs_official_or_admin(client, db, places):
    assert client.get("/roster/").status_code in (302, 401)
    sign_in(client, db, "org@example.org", Role.organizer)
    for path in ["/roster/", "/roster/export.csv", "/roster/export.xlsx", "/roster/changes", "/roster/audit"]:
        assert client.get(path).status_code == 403, path


def test_roster_lists_only_my_district_with_counts(client, db, pii, places):
    pd, xh = places
    make_member(db, pii, pd, 1, name="李雷")
    make_member(db, pii, pd, 2, name="韩梅梅", status=MemberStatus.approved)
    other = make_member(db, pii, xh, 3, name="外区人")
    db.commit()
    sign_in(client, db)
    page = client.get("/roster/")
    assert page.status_code == 200
    assert "李雷" in page.text and "韩梅梅" in page.text and "外区人" not in page.text
    assert 'data-count="pending">1<' in page.text and 'data-count="approved">1<' in page.text
    assert "<script>" not in page.text and "roster.js" in page.text
    assert client.get(f"/roster/{other.id}").status_code == 404
    pending = client.get("/roster/?status=pending")
    assert "李雷" in pending.text and "韩梅梅" not in pending.text
    assert client.get("/roster/?q=" + factories.phone(2)[-4:]).text.count("data-id=") == 1
    assert client.get("/roster/?status=nope").status_code == 400
    assert client.get("/roster/?cursor=zzz").status_code == 400


def test_overdue_flag_follows_the_setting(client, db, pii, places, app):
    pd, _ = places
    make_member(db, pii, pd, 1, age_days=40)  # past 15 working days whatever the holidays
    db.commit()
    sign_in(client, db)
    assert 'class="overdue"' in client.get("/roster/").text
    app.config["ROSTER_OVERDUE_DAYS"] = 60  # working days
    assert 'class="overdue"' not in client.get("/roster/").text


def test_keyset_next_page_link(client, db, pii, places):
    pd, _ = places
    for n in range(1, 53):
        make_member(db, pii, pd, n)
    db.commit()
    sign_in(client, db)
    first = client.get("/roster/")
    assert first.text.count("data-id=") == 50
    link = re.search(r'href="([^"]+cursor=[^"]+)" rel="next"', first.text)
    assert link
    second = client.get(link.group(1).replace("&amp;", "&"))
    assert second.text.count("data-id=") == 2


def test_changes_endpoint_reports_new_rows(client, db, pii, places):
    pd, xh = places
    sign_in(client, db)
    marker = re.search(r'data-marker="(\d+)"', client.get("/roster/").text).group(1)
    quiet = client.get(f"/roster/changes?marker={marker}").get_json()
    assert quiet["changed"] is False
    from app.services import audit

    outside = make_member(db, pii, xh, 9, name="外区人")
    audit.record(db, "member.created", target_type="member", target_id=outside.id, district_id=xh.id)
    db.commit()
    assert client.get(f"/roster/changes?marker={marker}").get_json()["changed"] is False
    member = make_member(db, pii, pd, 1, name="新来的")
    audit.record(db, "member.created", target_type="member", target_id=member.id, district_id=pd.id)
    db.commit()
    body = client.get(f"/roster/changes?marker={marker}").get_json()
    assert body["changed"] is True and "新来的" in body["rows"] and "外区人" not in body["rows"]
    assert body["counts"]["pending"] == 1 and int(body["marker"]) > int(marker)


def test_approve_sends_neutral_sms_and_second_click_is_told_who(client, db, pii, places, sms, app):
    pd, _ = places
    member = make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)
    response = post_form(client, f"/roster/{member.id}", f"/roster/{member.id}/approve")
    assert response.status_code == 200 and "PD-000001" in response.text
    assert fresh(db, member.id).member_number == "PD-000001"
    assert len(sms.sent) == 1 and sms.sent[0].to == factories.phone(1)
    body = sms.sent[0].body
    assert "https://join.example.org/status/" in body and "工会" not in body and "union" not in body.lower()
    again = post_form(client, "/roster/", f"/roster/{member.id}/reject", reason="late")
    assert again.status_code == 409 and "official@example.org" in again.text
    assert fresh(db, member.id).status is MemberStatus.approved and len(sms.sent) == 1


def test_reject_needs_reason_and_out_of_scope_is_404(client, db, pii, places, sms):
    pd, xh = places
    mine, theirs = make_member(db, pii, pd, 1), make_member(db, pii, xh, 2)
    db.commit()
    sign_in(client, db)
    post_form(client, "/roster/", f"/roster/{mine.id}/reject", reason="")
    assert fresh(db, mine.id).status is MemberStatus.pending
    ok = post_form(client, "/roster/", f"/roster/{mine.id}/reject", reason="不在本区工作")
    assert ok.status_code == 200 and fresh(db, mine.id).reject_reason == "不在本区工作"
    assert post_form(client, "/roster/", f"/roster/{theirs.id}/approve").status_code == 404
    assert fresh(db, theirs.id).status is MemberStatus.pending
    assert len(sms.sent) == 1


def test_bulk_gives_a_result_per_row(client, db, pii, places, sms):
    pd, xh = places
    a, b = make_member(db, pii, pd, 1), make_member(db, pii, pd, 2)
    done = make_member(db, pii, pd, 3, status=MemberStatus.rejected)
    theirs = make_member(db, pii, xh, 4)
    db.commit()
    sign_in(client, db)
    page = client.get("/roster/")
    data = {
        "csrf_token": hidden_fields(page.text)["csrf_token"],
        "action": "approve",
        "ids": [str(a.id), str(b.id), str(done.id), str(theirs.id)],
    }
    response = client.post("/roster/decide", data=data)
    assert response.status_code == 200
    assert response.text.count("result-approved") == 2
    assert response.text.count("result-already_decided") == 1 and response.text.count("result-not_found") == 1
    numbers = sorted(fresh(db, m.id).member_number for m in (a, b))
    assert numbers == ["PD-000001", "PD-000002"]
    assert fresh(db, theirs.id).status is MemberStatus.pending and len(sms.sent) == 2


def test_quick_approve_button_in_the_list(client, db, pii, places, sms):
    pd, _ = places
    member = make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)
    response = post_form(client, "/roster/", "/roster/decide", one=str(member.id))
    assert response.status_code == 200 and fresh(db, member.id).status is MemberStatus.approved


def test_a_submission_without_approve_or_reject_decides_no_one(client, db, pii, places, sms):
    """What Enter in a roster field sends (no button's name): nobody is approved or rejected."""
    pd, _ = places
    first, second = make_member(db, pii, pd, 1), make_member(db, pii, pd, 2)
    db.commit()
    sign_in(client, db)
    for extra in ({}, {"action": "none"}, {"action": "approve-all"}):
        token = hidden_fields(client.get("/roster/").text)["csrf_token"]
        data = {"csrf_token": token, "ids": [str(second.id)], "reason": "不在本区", **extra}
        response = client.post("/roster/decide", data=data)
        assert response.status_code == 303
        assert "未作任何决定" in client.get(response.headers["Location"]).text
    assert fresh(db, first.id).status is MemberStatus.pending
    assert fresh(db, second.id).status is MemberStatus.pending
    assert sms.sent == []


def test_the_bulk_forms_default_button_is_disabled(client, db, pii, places):
    """Implicit submission (Enter) uses the form's first submit button: it must be a disabled one."""
    pd, _ = places
    make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)
    page = client.get("/roster/").text
    form = page[page.index('action="/roster/decide"') :]
    first_button = re.search(r"<button[^>]*>", form).group(0)
    assert "disabled" in first_button and 'type="submit"' in first_button


def test_csv_export_is_scoped_neutralised_and_audited(client, db, pii, places):
    pd, xh = places
    make_member(db, pii, pd, 1, name='=HYPERLINK("http://x")')
    make_member(db, pii, pd, 2, name="韩梅梅")
    make_member(db, pii, xh, 3, name="外区人")
    db.commit()
    sign_in(client, db)
    response = client.get("/roster/export.csv?q=")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    names = sorted(row[1] for row in rows[1:])
    assert names == ['\'=HYPERLINK("http://x")', "韩梅梅"]
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "roster.export")).one()
    assert event.details["rows"] == 2 and event.details["format"] == "csv" and event.details["complete"]
    assert "韩梅梅" not in str(event.details)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_holds_no_connection_before_it_is_read_or_after_it_is_closed(client, app, db, pii, places, fmt):
    pd, _ = places
    for n in range(1, 4):
        make_member(db, pii, pd, n)
    db.commit()
    sign_in(client, db)
    db.close()
    engine = app.extensions["db_engine"]
    response = client.get(f"/roster/export.{fmt}", buffered=False)
    assert response.status_code == 200
    assert checked_out(engine) == 0, "the request's session went back at its teardown; the stream uses its own"
    next(iter(response.response))
    response.close()  # the client went away after the first chunk
    assert checked_out(engine) == 0
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "roster.export")).one()
    assert event.details["format"] == fmt


def test_xlsx_export_filters_and_records_the_filter_shape(client, db, pii, places):
    pd, _ = places
    make_member(db, pii, pd, 1, name="李雷")
    make_member(db, pii, pd, 2, name="韩梅梅", status=MemberStatus.approved)
    db.commit()
    sign_in(client, db)
    response = client.get("/roster/export.xlsx?status=approved&q=韩梅梅")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data), read_only=True)["members"]
    values = [row for row in sheet.iter_rows(values_only=True)]
    assert len(values) == 2 and values[1][1] == "韩梅梅"
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "roster.export")).one()
    assert event.details["filter"] == {"status": "approved", "q": "name", "sort": "applied"}


def test_audit_view_is_for_admins_and_filters(client, db, pii, places):
    pd, _ = places
    member = make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db, "boss@example.org", Role.admin, districts=None)
    post_form(client, f"/roster/{member.id}", f"/roster/{member.id}/approve")
    page = client.get("/roster/audit?action=member.approve")
    assert page.status_code == 200 and "member.approve" in page.text and "boss@example.org" in page.text
    assert "user.create" not in page.text
    assert "user.create" in client.get("/roster/audit").text
    assert "member.approve" not in client.get("/roster/audit?actor=nobody@example.org").text
    assert client.get("/roster/audit?start=notadate").status_code == 400


def test_official_cannot_open_the_audit_view(client, db, places):
    sign_in(client, db)
    assert client.get("/roster/audit").status_code == 403


def test_exports_are_rate_limited_per_account(client, db, places):
    sign_in(client, db)
    statuses = [client.get("/roster/export.csv").status_code for _ in range(21)]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429


def test_district_filter_for_admins(client, db, pii, places):
    pd, xh = places
    make_member(db, pii, pd, 1, name="李雷")
    make_member(db, pii, xh, 2, name="外区人")
    db.commit()
    sign_in(client, db, "boss@example.org", Role.admin, districts=None)
    page = client.get("/roster/?district=XH")
    assert "外区人" in page.text and "李雷" not in page.text


def test_ids_beyond_an_integer_column_are_404_not_a_database_error(app, client, db):
    """PostgreSQL refuses 2**31 in an integer comparison; such ids must never reach it."""
    district = factories.district(db, code="BIG")
    db.commit()
    conftest.make_staff(db, "big@example.org", Role.official, [district.code])
    conftest.sign_in(client, db, "big@example.org")
    assert client.get(f"/roster/{2**31}").status_code == 404
    assert client.get(f"/roster/{2**63}").status_code == 404
    assert client.get("/roster/audit?before=99999999999999999999").status_code in (200, 403)


def test_each_rows_approve_is_outside_the_bulk_form_and_its_first_enabled_button_decides_nothing(
    client, db, pii, places
):
    """Enter on a checkbox presses the first enabled submit button: never an Approve."""
    pd, _ = places
    member = make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)
    page = client.get("/roster/?status=pending").text
    bulk = page[page.index('id="bulk-decide"') : page.index("</form>", page.index('id="bulk-decide"'))]
    enabled = [b for b in re.findall(r"<button[^>]*>", bulk) if "disabled" not in b]
    assert 'value="none"' in enabled[0]
    row_button = re.search(rf'<button[^>]*name="one" value="{member.id}"[^>]*>', page).group(0)
    assert 'form="row-decide"' in row_button
    row_form = page[page.index('id="row-decide"') : page.index("</form>", page.index('id="row-decide"'))]
    assert 'name="csrf_token"' in row_form and '<input type="text"' not in row_form
    token = hidden_fields(client.get("/roster/").text)["csrf_token"]
    response = client.post("/roster/decide", data={"csrf_token": token, "action": "none", "ids": str(member.id)})
    assert response.status_code == 303
    assert fresh(db, member.id).status is MemberStatus.pending


def test_exports_for_people_speak_the_users_language_and_local_time(client, db, pii, places):
    pd, _ = places
    member = make_member(db, pii, pd, 1, name="韩梅梅")
    member.created_at = datetime(2026, 3, 4, 20, 6, 7, tzinfo=UTC)
    db.commit()
    sign_in(client, db)
    rows = list(csv.reader(io.StringIO(client.get("/roster/export.csv").data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["会员编号", "姓名", "手机号"] and rows[0][8] == "申请时间（Asia/Shanghai）"
    assert rows[1][1:3] == ["韩梅梅", factories.phone(1)[3:]], "a mainland number without +86: no apostrophe"
    assert rows[1][7] == "待审核" and rows[1][8] == "2026-03-05 04:06:07"
    client.get("/lang/en?next=/roster/")
    english = list(csv.reader(io.StringIO(client.get("/roster/export.csv").data.decode("utf-8-sig"))))
    assert english[0][8] == "Applied (Asia/Shanghai)" and english[1][7] == "Pending"
    sheet = load_workbook(io.BytesIO(client.get("/roster/export.xlsx").data))["members"]
    phone = sheet.cell(row=2, column=3)
    assert phone.value == factories.phone(1)[3:] and phone.data_type == "s" and phone.quotePrefix


def test_a_row_whose_decision_notice_finally_failed_is_flagged(app, client, db, pii, places, sms):  # type: ignore[no-untyped-def]
    from app.services.sms import SmsError

    pd, _ = places
    told = make_member(db, pii, pd, 1, name="李雷")
    untold = make_member(db, pii, pd, 2, name="韩梅梅")
    db.commit()
    sign_in(client, db)
    marker = client.get("/roster/").text.split('data-marker="', 1)[1].split('"', 1)[0]
    post_form(client, "/roster/", f"/roster/{told.id}/approve")
    sms.fail_with = SmsError("rejected", 21211)  # permanent: no retry, audited at once
    post_form(client, "/roster/", f"/roster/{untold.id}/approve")

    def row(html: str, member_id: int) -> str:
        return html.split(f'data-id="{member_id}"', 1)[1].split("</tr>", 1)[0]

    page = client.get("/roster/?status=approved").text
    assert "短信通知未送达" in row(page, untold.id) and "短信通知未送达" not in row(page, told.id)
    assert page.count("短信通知未送达") == 1
    live = client.get(f"/roster/changes?marker={marker}").get_json()  # the rows the script swaps in
    assert "短信通知未送达" in row(live["rows"], untold.id) and "短信通知未送达" not in row(live["rows"], told.id)
    english = client.get("/roster/?status=approved", headers={"Accept-Language": "en"}).text
    assert "SMS notice not delivered" in row(english, untold.id)
