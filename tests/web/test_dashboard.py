"""/dashboard/: scope per role, the period links, suppression, the CSV (neutralised), bad input."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from app.models import MemberStatus, Platform, Role, utcnow
from tests import conftest, factories
from tests.services.test_dashboard import add


@pytest.fixture
def world(app, db):  # type: ignore[no-untyped-def]
    pii = app.extensions["pii"]
    pd, xh = factories.district(db, "PD", "浦东"), factories.district(db, "XH", "徐汇")
    zj = factories.workplace(db, pd, "PD-ZJ01", "=HYPERLINK(1)")  # a name a spreadsheet would run
    xs = factories.workplace(db, xh, "XH-XS01", "徐家汇站")
    yesterday = utcnow() - timedelta(days=1)
    for n in range(7):
        add(db, pii, pd, yesterday, station=zj, status=MemberStatus.approved, decided_after=timedelta(hours=n + 1))
    add(db, pii, pd, yesterday, platform=Platform.didi)
    for _ in range(9):
        add(db, pii, xh, yesterday, station=xs, platform=Platform.huolala)
    db.commit()
    conftest.make_staff(db, "pd@example.org", Role.official, ["PD"])
    conftest.make_staff(db, "org@example.org", Role.organizer, ["PD"])
    conftest.make_staff(db, "admin@example.org", Role.admin)
    return pd, xh


def signed_in(client, db, email: str):  # type: ignore[no-untyped-def]
    conftest.sign_in(client, db, email)
    return client


def csv_of(response) -> list[list[str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_official_sees_only_their_districts(client, db, world):
    signed_in(client, db, "pd@example.org")
    page = client.get("/dashboard/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<svg" in html and "浦东" in html
    assert "XH" not in html and "徐汇" not in html and "徐家汇站" not in html and "Huolala" not in html
    assert "Applications by platform" in html or "按平台" in html
    rows = csv_of(client.get("/dashboard/dashboard.csv?days=90"))
    text = "\n".join(",".join(row) for row in rows)
    assert "XH" not in text and "徐家汇站" not in text and "huolala" not in text
    # PD's total for yesterday: 8 applications, district figures in full
    assert any(row[0] == "joins_district" and row[2] == "PD" and row[5] == "8" for row in rows)


def test_small_station_and_platform_counts_show_as_under_five(client, db, world):
    signed_in(client, db, "pd@example.org")
    html = client.get("/dashboard/").get_data(as_text=True)
    assert "&lt;5" in html
    rows = csv_of(client.get("/dashboard/dashboard.csv"))
    platform_totals = {row[3]: row[5] for row in rows if row[0] == "joins_platform" and row[1] == ""}
    # didi's 1 is hidden; the period's total (8) is shown, so meituan's 7 is hidden as its complement.
    assert platform_totals == {"didi": "<5", "meituan": "<5"}


def test_csv_cells_are_neutralised(client, db, world):
    signed_in(client, db, "pd@example.org")
    rows = csv_of(client.get("/dashboard/dashboard.csv"))
    names = {row[4] for row in rows if row[0] == "joins_station"}
    assert "'=HYPERLINK(1)" in names and "=HYPERLINK(1)" not in names


def test_organizer_sees_funnels_but_no_member_figures(client, db, world):
    signed_in(client, db, "org@example.org")
    html = client.get("/dashboard/").get_data(as_text=True)
    assert "<svg" in html
    for member_figure in ("Applications by platform", "按平台", "Median time to decision", "DiDi", "滴滴"):
        assert member_figure not in html
    rows = csv_of(client.get("/dashboard/dashboard.csv"))
    assert rows[0][0] == "section"
    assert {row[0] for row in rows[1:]} <= {
        f"funnel_{step}" for step in ("scans", "forms", "sent", "verified", "approved")
    }
    assert any(row[0] == "funnel_approved" and row[3] == "PD-ZJ01 v1" and row[5] == "7" for row in rows)


def test_admin_sees_every_district(client, db, world):
    signed_in(client, db, "admin@example.org")
    html = client.get("/dashboard/?days=90").get_data(as_text=True)
    assert "浦东" in html and "徐汇" in html
    assert 'aria-current="page">' in html


@pytest.mark.parametrize("days", ["7", "abc", "99999999999999999999", "-30", ""])
def test_a_bad_period_is_a_400(client, db, world, days):
    signed_in(client, db, "pd@example.org")
    assert client.get(f"/dashboard/?days={days}").status_code == 400
    assert client.get(f"/dashboard/dashboard.csv?days={days}").status_code == 400


def test_signed_out_goes_to_sign_in(client, world):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_platforms_per_day_are_on_the_page_and_suppressed(client, db, world):
    signed_in(client, db, "pd@example.org")
    html = client.get("/dashboard/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    day = (utcnow() - timedelta(days=1)).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    per_day = html.split("Per day", 1)[1]
    row = per_day.split(f'<th scope="row">{day}</th>', 1)[1].split("</tr>", 1)[0]
    assert row.count("&lt;5") == 2  # DiDi 1, Meituan 7 as its complement
