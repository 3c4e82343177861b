"""Importing an existing register: normalisation, duplicates, bad rows, numbers, no half-written rows."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from app.models import AuditEvent, District, Member, MemberSource, MemberStatus, Platform
from app.services import member_import
from app.services.roster import decisions
from tests import factories
from tests.factories import phone

TODAY = date(2026, 12, 1)
ZONE = ZoneInfo("Asia/Shanghai")
HEADER = "name,phone,district,workplace,platform,join_date,member_number\n"


def national(n: int) -> str:
    """The factories' phone as typed on paper: the 11 national digits."""
    return phone(n)[3:]


@pytest.fixture
def places(db: Session):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    factories.workplace(db, district)
    other = factories.district(db, code="HP", name="黄浦区总工会")
    factories.workplace(db, other, code="HP-01", name="外滩站")
    db.commit()
    return district


def plan(app, db: Session, text: str) -> member_import.Plan:  # type: ignore[no-untyped-def]
    return member_import.plan(
        db, text, pii=app.extensions["pii"], allowed_regions=app.config["ALLOWED_REGIONS"], today=TODAY
    )


def run(app, db: Session, text: str, *, batch: int = 1000) -> member_import.Plan:  # type: ignore[no-untyped-def]
    result = plan(app, db, text)
    db.rollback()
    writer = member_import.Writer(result, app.extensions["pii"], ZONE)
    for rows in member_import.batches(result, batch):
        writer.write(db, rows)
        db.commit()
    return result


def outcomes(result: member_import.Plan) -> list[tuple[int, str, str]]:
    return [(r.number, r.outcome, r.reason) for r in result.rows]


def members(db: Session) -> list[Member]:
    db.commit()
    return list(db.exec(select(Member).order_by(Member.id)))


def test_a_row_is_stored_encrypted_approved_and_marked_imported(app, db, places):
    pii = app.extensions["pii"]
    result = run(app, db, HEADER + f"张三,{national(1)},PD,PD-ZJ01,美团,2024-03-01,\n")
    assert outcomes(result) == [(2, "imported", "")]
    (member,) = members(db)
    assert pii.decrypt(member.name_enc) == "张三" and pii.decrypt(member.phone_enc) == phone(1)
    assert member.phone_index == pii.index(phone(1)), "the same blind index as a join"
    assert member.phone_last4_index == pii.index(phone(1)[-4:], purpose="last4")
    assert member.status is MemberStatus.approved and member.source is MemberSource.import_
    assert member.platform is Platform.meituan and member.workplace_id is not None
    assert member.member_number == "PD-000001"
    assert member.created_at.astimezone(ZONE).date() == date(2024, 3, 1)
    assert db.exec(select(District.member_seq).where(District.code == "PD")).one() == 1


@pytest.mark.parametrize("typed", ["+86 170 0000 0001", "170-0000-0001", "8617000000001", "(+86)17000000001"])
def test_phones_are_normalised_as_the_join_form_does(app, db, places, typed):
    run(app, db, HEADER + f'张三,"{typed}",PD,,,,\n')
    (member,) = members(db)
    assert app.extensions["pii"].decrypt(member.phone_enc) == phone(1)


def test_a_phone_already_a_member_is_reported_not_duplicated(app, db, places):
    run(app, db, HEADER + f"张三,{national(1)},PD,,,,\n")
    again = run(app, db, HEADER + f"张三,+86{national(1)},HP,,,,\n" + f"李四,{national(2)},PD,,,,\n")
    assert outcomes(again) == [(2, "duplicate_existing", "phone_already_member"), (3, "imported", "")]
    assert len(members(db)) == 2


def test_duplicates_inside_the_file_are_reported_with_the_first_row(app, db, places):
    result = run(app, db, HEADER + f"张三,{national(1)},PD,,,,\n李四,{national(2)},PD,,,,\n张三,{phone(1)},PD,,,,\n")
    assert outcomes(result)[2] == (4, "duplicate_in_file", "same_phone_as_row_2")
    assert len(members(db)) == 2


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (f",{national(1)},PD,,,,", "missing_name"),
        ("张三,12345,PD,,,,", "phone_malformed"),
        ("张三,,PD,,,,", "phone_empty"),
        ("张三,+1 202 555 0100,PD,,,,", "phone_region"),  # 555-01xx: fictional
        (f"张三,{national(1)},,,,,", "missing_district"),
        (f"张三,{national(1)},XX,,,,", "unknown_district"),
        (f"张三,{national(1)},PD,NOPE,,,", "unknown_workplace"),
        (f"张三,{national(1)},PD,HP-01,,,", "workplace_other_district"),
        (f"张三,{national(1)},PD,,bicycle,,", "unknown_platform"),
        (f"张三,{national(1)},PD,,,2024-13-01,", "bad_date"),
        (f"张三,{national(1)},PD,,,2099-01-01,", "bad_date"),
        (f"张\x07三,{national(1)},PD,,,,", "control_characters"),
        (f'"张\n三",{national(1)},PD,,,,', "control_characters"),
        (f"张三\u202e,{national(1)},PD,,,,", "control_characters"),
        ("张" * 51 + f",{national(1)},PD,,,,", "name_too_long"),
    ],
)
def test_bad_rows_are_rejected_with_a_clear_reason_and_never_stop_the_others(app, db, places, row, reason):
    result = run(app, db, HEADER + row + "\n" + f"李四,{national(2)},PD,,,,\n")
    assert outcomes(result) == [(2, "rejected", reason), (3, "imported", "")]
    assert len(members(db)) == 1


def test_places_and_platforms_by_name_too(app, db, places):
    result = run(app, db, HEADER + f"张三,{national(1)},浦东新区总工会,张江美团骑手站,饿了么,2024.03.01,\n")
    assert outcomes(result) == [(2, "imported", "")]
    (member,) = members(db)
    assert member.platform is Platform.eleme and member.workplace_id is not None


def test_chinese_headers_and_columns_in_any_order(app, db, places):
    text = f"手机号,姓名,会员编号,区\n{national(1)},张三,PD-000005,PD\n"
    assert outcomes(run(app, db, text)) == [(2, "imported", "")]
    assert members(db)[0].member_number == "PD-000005"


def test_a_header_without_the_required_columns_is_refused(app, db, places):
    with pytest.raises(member_import.ImportFileError) as caught:
        plan(app, db, "姓名,平台\n张三,美团\n")
    assert caught.value.reason == "header" and "phone" in caught.value.detail


def test_numbers_kept_when_well_formed_and_free_else_the_next_gapless_one(app, db, places):
    text = HEADER + "".join(
        [
            f"a,{national(1)},PD,,,,PD-000003\n",  # kept
            f"b,{national(2)},PD,,,,\n",  # 1 (3 is kept for row 2)
            f"c,{national(3)},PD,,,,PD-000003\n",  # repeated in the file: 2
            f"d,{national(4)},PD,,,,HP-000009\n",  # another district's: 4
            f"e,{national(5)},PD,,,,PD-12\n",  # malformed: 5
            f"f,{national(6)},HP,,,,HP-000002\n",  # kept
            f"g,{national(7)},HP,,,,\n",  # 1
        ]
    )
    result = run(app, db, text, batch=2)
    assert {r.outcome for r in result.rows} == {"imported"}, outcomes(result)
    assert [r.member_number for r in result.rows] == [
        "PD-000003",
        "PD-000001",
        "PD-000002",
        "PD-000004",
        "PD-000005",
        "HP-000002",
        "HP-000001",
    ]
    counters = dict(db.exec(select(District.code, District.member_seq)).all())
    assert counters == {"PD": 5, "HP": 2}


def test_a_number_at_or_below_the_counter_is_not_kept_and_approval_continues_after(app, db, places, client):
    db.execute(update(District).where(District.code == "PD").values(member_seq=4))
    db.commit()
    run(app, db, HEADER + f"a,{national(1)},PD,,,,PD-000004\nb,{national(2)},PD,,,,PD-000009\n")
    assert [m.member_number for m in members(db)] == ["PD-000005", "PD-000009"]
    assert db.exec(select(District.member_seq).where(District.code == "PD")).one() == 9


def test_an_approval_between_batches_never_collides(app, db, places):
    from app.models import Role
    from tests.conftest import make_staff

    admin = make_staff(db, "admin@example.org", Role.admin)
    pii = app.extensions["pii"]
    pending = Member(
        district_id=places.id,
        name_enc=pii.encrypt("x"),
        phone_enc=pii.encrypt(phone(99)),
        phone_index=pii.index(phone(99)),
        phone_last4_index=pii.index("0099", purpose="last4"),
        platform=Platform.other,
        consent_version="v",
        consent_at=member_import_now(),
        source_kind="district",
        source_qr_version=1,
        verified_at=member_import_now(),
    )
    db.add(pending)
    db.commit()
    text = HEADER + f"a,{national(1)},PD,,,,\nb,{national(2)},PD,,,,PD-000003\nc,{national(3)},PD,,,,\n"
    result = plan(app, db, text)
    db.rollback()
    writer = member_import.Writer(result, pii, ZONE)
    first, second = member_import.batches(result, 1), None
    writer.write(db, next(first))
    db.commit()
    approved = decisions.approve(db, None, pending.id, by=admin, now=member_import_now())
    db.commit()
    for second in first:
        writer.write(db, second)
        db.commit()
    numbers = sorted(m.member_number for m in members(db))
    assert approved.member_number == "PD-000002"
    assert numbers == ["PD-000001", "PD-000002", "PD-000003", "PD-000004"]


def member_import_now():  # type: ignore[no-untyped-def]
    from app.models import utcnow

    return utcnow()


def test_a_phone_written_since_the_plan_is_reported_and_the_batch_keeps_its_other_rows(app, db, places):
    text = HEADER + f"a,{national(1)},PD,,,,\nb,{national(2)},PD,,,,\n"
    result = plan(app, db, text)
    db.rollback()
    run(app, db, HEADER + f"b,{national(2)},HP,,,,\n")  # a join (or import) got there first
    writer = member_import.Writer(result, app.extensions["pii"], ZONE)
    for rows in member_import.batches(result):
        writer.write(db, rows)
        db.commit()
    assert outcomes(result) == [(2, "imported", ""), (3, "duplicate_existing", "phone_already_member")]
    assert [r.member_number for r in result.rows] == ["PD-000001", ""], "the lost row used no number"
    assert db.exec(select(District.member_seq).where(District.code == "PD")).one() == 1


def test_a_dry_run_writes_nothing_but_previews_numbers(app, db, places):
    result = plan(app, db, HEADER + f"a,{national(1)},PD,,,,\nb,{national(2)},PD,,,,PD-000001\n")
    member_import.preview_numbers(result)
    assert [r.outcome for r in result.rows] == ["would_import"] * 2
    assert [r.member_number for r in result.rows] == ["PD-000002", "PD-000001"]
    assert members(db) == []


def test_the_report_and_audit_hold_no_name_or_phone(app, db, places):
    result = run(app, db, HEADER + f"张三,{national(1)},PD,,,,\n李四,123,PD,,,,\n")
    member_import.forget_personal_data(result)
    member_import.record(db, result, actor_id=None, dry_run=False, via="cli")
    db.commit()
    report = member_import.report_csv(result)
    assert report.splitlines() == [
        "row,outcome,reason,phone,member_number",
        "2,imported,,170****0001,PD-000001",
        "3,rejected,phone_malformed,,",
    ]
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "member.import")).one()
    assert event.details["imported"] == 1 and event.details["rejected"] == 1
    assert "张三" not in str(event.details) and national(1) not in str(event.details)
    assert all(not r.name and not r.phone for r in result.rows)


def test_utf8_with_bom_and_gbk_are_both_read(app, db, places):
    text = HEADER + f"张三,{national(1)},浦东新区总工会,,美团,,\n"
    assert member_import.decode(("\ufeff" + text).encode("utf-8")) == text
    assert member_import.decode(text.encode("gbk")) == text
    assert member_import.decode(text.encode("gbk"), "gbk") == text
    with pytest.raises(member_import.ImportFileError):
        member_import.decode(text.encode("gbk"), "utf-8")
    assert outcomes(run(app, db, member_import.decode(text.encode("gbk")))) == [(2, "imported", "")]


def test_a_number_clash_at_insert_gets_the_next_free_number(app, db, places, monkeypatch):
    """The defence behind the check under the lock: a clash on the number re-numbers that row."""
    result = plan(app, db, HEADER + f"a,{national(1)},PD,,,,PD-000002\nb,{national(2)},PD,,,,\n")
    db.rollback()
    run(app, db, HEADER + f"x,{national(9)},HP,,,,\n")
    db.execute(update(Member).values(member_number="PD-000002"))  # as if another writer took it
    db.commit()
    monkeypatch.setattr(member_import.Writer, "_drop_taken_numbers", lambda self, session, batch: None)
    writer = member_import.Writer(result, app.extensions["pii"], ZONE)
    for rows in member_import.batches(result):
        writer.write(db, rows)
        db.commit()
    assert outcomes(result) == [(2, "imported", "number_taken"), (3, "imported", "")]
    assert sorted(r.member_number for r in result.rows) == ["PD-000001", "PD-000003"]


def test_an_explicit_encoding_strips_a_bom_and_gbk_reads_gb18030_names(app, db, places):
    assert member_import.decode(("\ufeff" + HEADER).encode("utf-8"), "UTF_8") == HEADER
    rare = "张㛃"  # in GB18030, not in GBK
    assert member_import.decode(rare.encode("gb18030"), "gbk") == rare
    with pytest.raises(member_import.ImportFileError):
        member_import.decode(b"x", "rot13")
