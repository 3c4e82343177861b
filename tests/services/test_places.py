"""Places: CSV import that never lets a bad row stop the good ones; rotation; lookup."""

from __future__ import annotations

from sqlmodel import select

from app.models import AuditEvent, District, Workplace, WorkplaceKind, utcnow
from app.services import places

CSV = """\ufeffdistrict_code,district_name,workplace_code,workplace_name,kind
PD,浦东新区总工会,PD-ZJ01,张江美团骑手站,delivery_station
PD,浦东新区总工会,PD-YZ01,陆家嘴驿站,驿站
XH,徐汇区总工会,,,
bad code!,名字,,,
XH,徐汇区总工会,XH-01,徐家汇站,spaceship
XH,,XH-02,漕河泾站,hub
"""


def test_import_reports_created_updated_rejected_with_line_numbers(db):
    report = places.import_csv(db, CSV)
    assert report.created == [2, 3, 4]
    assert [line for line, _ in report.rejected] == [5, 6, 7]
    assert "kind" in dict(report.rejected)[6]
    codes = {w.code: w for w in db.exec(select(Workplace))}
    assert set(codes) == {"PD-ZJ01", "PD-YZ01"}
    assert codes["PD-YZ01"].kind is WorkplaceKind.rest_station
    assert {d.code for d in db.exec(select(District))} == {"PD", "XH"}


def test_import_again_updates_names_without_duplicates(db):
    places.import_csv(db, CSV)
    report = places.import_csv(db, "PD,浦东新区总工会（新）,PD-ZJ01,张江站,hub\n")
    assert report.updated == [1] and report.created == []
    assert db.exec(select(District).where(District.code == "PD")).one().name == "浦东新区总工会（新）"
    assert db.exec(select(Workplace).where(Workplace.code == "PD-ZJ01")).one().kind is WorkplaceKind.hub


def test_import_refuses_moving_a_workplace_or_reusing_a_code(db):
    places.import_csv(db, CSV)
    report = places.import_csv(db, "XH,徐汇区总工会,PD-ZJ01,张江站\nPD-YZ01,冲突,,\n")
    assert [line for line, _ in report.rejected] == [1, 2]
    assert db.exec(select(Workplace).where(Workplace.code == "PD-ZJ01")).one().district_id == (
        db.exec(select(District).where(District.code == "PD")).one().id
    )


def test_import_of_a_short_row_is_rejected_not_crashing(db):
    report = places.import_csv(db, "PD\n,,,\n\nPD,浦东,W1,站,other,extra\n")
    assert [line for line, _ in report.rejected] == [1, 4]


def test_rotate_bumps_the_version_and_audits(db):
    places.import_csv(db, CSV)
    workplace = db.exec(select(Workplace).where(Workplace.code == "PD-ZJ01")).one()
    places.rotate(db, workplace, now=utcnow())
    assert workplace.qr_version == 2
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "place.rotate")).one()
    assert event.target_id == "PD-ZJ01" and event.details == {"qr_version": 2}


def test_find_by_code_prefers_workplaces_and_raises_when_unknown(db):
    places.import_csv(db, CSV)
    assert isinstance(places.find_by_code(db, "PD-ZJ01"), Workplace)
    assert isinstance(places.find_by_code(db, "PD"), District)
    try:
        places.find_by_code(db, "NOPE")
    except places.PlaceNotFound:
        pass
    else:
        raise AssertionError("unknown code must raise")


def test_place_names_are_checked_on_the_way_in(db):
    # Issue 12 item 8: an emoji or control character in a name broke every poster of a district.
    text = "\n".join(
        [
            "PD,浦东新区,PD-A,张江站 😀",  # an emoji
            "PD,浦东新区,PD-B,陆家嘴\x07驿站",  # a control character
            "PD,浦东新区,PD-C,金桥\u200b站",  # an invisible format character
            "PD,浦东新区,PD-D,周浦\ue000站",  # private use: prints as a box
            "PD,浦东新区,PD-E,  花木   (东) 驿站·1号 + A&B ",  # letters, punctuation, signs: fine
            "XH,徐汇🏠,,",  # a district name too
        ]
    )
    report = places.import_csv(db, text)
    assert report.created == [5]
    assert [line for line, _message in report.rejected] == [1, 2, 3, 4, 6]
    assert "workplace_name" in report.rejected[0][1] and "U+1F600" in report.rejected[0][1]
    assert "U+0007" in report.rejected[1][1] and "district_name" in report.rejected[4][1]
    assert db.exec(select(Workplace).where(Workplace.code == "PD-E")).one().name == "花木 (东) 驿站·1号 + A&B"


def test_a_district_name_stored_before_the_check_does_not_block_its_workplaces(db):
    places.import_csv(db, "PD,浦东新区,,")
    district = db.exec(select(District).where(District.code == "PD")).one()
    district.name = "浦东😀"
    db.add(district)
    db.flush()
    report = places.import_csv(db, "PD,浦东😀,PD-F,花木站")
    assert report.rejected == [] and report.created == [1]
    assert places.clean_name("  a\u0301 b ") == "\u00e1 b"
