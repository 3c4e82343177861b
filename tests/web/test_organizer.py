"""Organizer pages: their districts' places only, previews, downloads, rotation, funnels."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlmodel import Session

from app.models import PlaceKind, Role, utcnow
from app.services import places, posters, stats
from app.services.posters import fonts as poster_fonts
from tests import conftest, factories
from tests.conftest import hidden_fields
from tests.services.test_posters import assert_scans, open_kit_or_skip, pdf_pages


@pytest.fixture
def kit(app) -> posters.Kit:
    return open_kit_or_skip(app)


@pytest.fixture
def world(db):
    """Two districts; the organizer works in PD only."""
    pd = factories.district(db)
    zj = factories.workplace(db, pd, "PD-ZJ01", "张江美团骑手站")
    yz = factories.workplace(db, pd, "PD-YZ01", "陆家嘴户外劳动者驿站")
    ja = factories.district(db, "JA", "静安区总工会")
    cjd = factories.workplace(db, ja, "JA-CJD1", "曹家渡饿了么站")
    db.commit()
    return {"pd": pd, "zj": zj, "yz": yz, "ja": ja, "cjd": cjd}


def sign_in(client, db, role: Role = Role.organizer, districts=("PD",), email="organizer@example.org") -> None:  # type: ignore[no-untyped-def]
    conftest.make_staff(db, email, role, list(districts))
    conftest.sign_in(client, db, email)


def payload(app, place) -> str:
    return places.qr_payload(app.config["PUBLIC_BASE_URL"], app.extensions["qr_signer"], place)


def test_signed_out_goes_to_sign_in(client, world):
    response = client.get("/organizer/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_index_lists_only_the_organizers_districts(client, db, world, kit):
    sign_in(client, db)
    page = client.get("/organizer/")
    assert page.status_code == 200
    for name in ("浦东新区总工会", "张江美团骑手站", "陆家嘴户外劳动者驿站"):
        assert name in page.text
    assert "静安区总工会" not in page.text and "曹家渡" not in page.text
    assert not re.search(r'(src|href|action)="(https?:)?//', page.text)  # nothing from another origin
    assert "<script" not in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/organizer/places/JA-CJD1",
        "/organizer/places/JA",
        "/organizer/places/JA-CJD1/a4/preview.png",
        "/organizer/places/JA-CJD1/a4/poster.png",
        "/organizer/places/JA-CJD1/a4/poster.pdf",
        "/organizer/districts/JA/posters.pdf?template=a4",
        "/organizer/places/NOPE",
    ],
)
def test_another_districts_place_is_a_404(client, db, world, kit, path):
    sign_in(client, db)
    assert client.get(path).status_code == 404


def test_an_official_of_the_district_may_print_but_a_stranger_may_not(client, db, world, kit):
    sign_in(client, db, role=Role.official, districts=("JA",), email="official@example.org")
    assert client.get("/organizer/places/JA-CJD1").status_code == 200
    assert client.get("/organizer/places/PD-ZJ01").status_code == 404


def test_admin_sees_every_district(client, db, world, kit):
    conftest.make_staff(db, "admin@example.org", Role.admin)
    conftest.sign_in(client, db, "admin@example.org")
    text = client.get("/organizer/").text
    assert "静安区总工会" in text and "浦东新区总工会" in text


def test_place_page_shows_previews_downloads_and_the_human_url(app, client, db, world, kit):
    sign_in(client, db)
    page = client.get("/organizer/places/PD-ZJ01")
    assert page.status_code == 200
    assert places.join_url(app.config["PUBLIC_BASE_URL"], app.extensions["qr_signer"], world["zj"]) in page.text
    for name in kit.templates:
        assert f"/organizer/places/PD-ZJ01/{name}/preview.png" in page.text
        assert f"/organizer/places/PD-ZJ01/{name}/poster.pdf" in page.text
        assert f"/organizer/places/PD-ZJ01/{name}/poster.png" in page.text


def test_preview_is_a_small_png_that_still_scans(app, client, db, world, kit):
    sign_in(client, db)
    response = client.get("/organizer/places/PD-ZJ01/a4/preview.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    image = Image.open(io.BytesIO(response.data))
    assert image.width == 600
    assert_scans(image, payload(app, world["zj"]))


@pytest.mark.parametrize("name", ["a4", "sticker-60"])
def test_png_and_pdf_downloads_scan_to_the_place(app, client, db, world, kit, name):
    sign_in(client, db)
    png = client.get(f"/organizer/places/PD-YZ01/{name}/poster.png")
    assert png.status_code == 200
    assert png.headers["Content-Disposition"] == f'attachment; filename="PD-YZ01-{name}.png"'
    assert_scans(Image.open(io.BytesIO(png.data)), payload(app, world["yz"]))
    pdf = client.get(f"/organizer/places/PD-YZ01/{name}/poster.pdf")
    assert pdf.mimetype == "application/pdf"
    [page] = pdf_pages(pdf.data, dpi=150)
    assert_scans(page, payload(app, world["yz"]))


def test_district_pdf_is_streamed_one_place_a_page(app, client, db, world, kit):
    sign_in(client, db)
    response = client.get("/organizer/districts/PD/posters.pdf?template=a6-card")
    assert response.status_code == 200 and response.is_streamed
    pages = pdf_pages(response.data, dpi=150)
    expected = [world["pd"], world["yz"], world["zj"]]
    assert len(pages) == len(expected)
    for image, place in zip(pages, expected, strict=True):
        assert_scans(image, payload(app, place))


def test_unknown_template_is_a_404(client, db, world, kit):
    sign_in(client, db)
    assert client.get("/organizer/places/PD-ZJ01/poster-b0/preview.png").status_code == 404
    assert client.get("/organizer/districts/PD/posters.pdf?template=b0").status_code == 404
    assert client.get("/organizer/places/PD-ZJ01/a4/poster.svg").status_code == 404


def test_rendered_images_are_cached_per_token_version(client, db, world, kit, monkeypatch):
    sign_in(client, db)
    calls = []
    real = posters.render
    monkeypatch.setattr(posters, "render", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = client.get("/organizer/places/PD-ZJ01/a6-card/poster.png").data
    client.get("/organizer/places/PD-ZJ01/a6-card/preview.png")
    client.get("/organizer/places/PD-ZJ01/a6-card/poster.pdf")
    assert client.get("/organizer/places/PD-ZJ01/a6-card/poster.png").data == first
    assert len(calls) == 1  # one render served the PNG, the preview and the PDF
    places.rotate(db, world["zj"], now=utcnow())
    db.commit()
    assert client.get("/organizer/places/PD-ZJ01/a6-card/poster.png").data != first
    assert len(calls) == 2


def test_rotate_needs_the_csrf_token_then_replaces_the_old_poster(app, client, db, world, kit):
    sign_in(client, db)
    old_path = factories.join_path(app, world["zj"])
    old_png = client.get("/organizer/places/PD-ZJ01/a4/poster.png").data
    assert client.post("/organizer/places/PD-ZJ01/rotate").status_code == 400
    page = client.get("/organizer/places/PD-ZJ01/rotate")
    response = client.post("/organizer/places/PD-ZJ01/rotate", data=hidden_fields(page.text))
    assert response.status_code == 303
    db.expire_all()
    assert db.get(type(world["zj"]), world["zj"].id).qr_version == 2
    assert client.get(old_path).status_code == 410  # the old poster shows the "replaced" page
    new_png = client.get("/organizer/places/PD-ZJ01/a4/poster.png").data
    assert new_png != old_png
    fresh = db.get(type(world["zj"]), world["zj"].id)
    assert_scans(Image.open(io.BytesIO(new_png)), payload(app, fresh))
    assert client.get("/" + payload(app, fresh).rsplit("/", 1)[1].lower()).status_code == 200


def version_of(db, place) -> int:  # type: ignore[no-untyped-def]
    with Session(db.get_bind()) as fresh:
        return fresh.get(type(place), place.id).qr_version


def test_rotating_asks_first_and_says_what_stops_working(client, db, world, kit):
    """One click on the place page no longer voids the printed posters: a confirmation page does."""
    day, zj = utcnow().date(), world["zj"].id
    for step, n in {"scans": 7, "joins": 3}.items():
        for _ in range(n):
            stats.bump(db, kind=PlaceKind.workplace, place_id=zj, qr_version=1, step=step, day=day)
    stats.bump(db, kind=PlaceKind.workplace, place_id=zj, qr_version=0, step="scans", day=day)  # an older poster
    db.commit()
    sign_in(client, db)
    place_page = client.get("/organizer/places/PD-ZJ01").text
    assert 'action="/organizer/places/PD-ZJ01/rotate"' not in place_page, "no one-click rotation"
    assert 'href="/organizer/places/PD-ZJ01/rotate"' in place_page
    confirm = client.get("/organizer/places/PD-ZJ01/rotate")
    assert confirm.status_code == 200 and "<script" not in confirm.text
    count = re.search(r'<p id="rotate-count">([^<]*)</p>', confirm.text).group(1)
    assert re.findall(r"\d+", count) == ["1", "7", "3"], "version 1: scanned 7 times, 3 joins"
    fields = hidden_fields(confirm.text)
    assert fields["version"] == "1"
    # A POST without the confirmed version (a forged or stale form) only shows the confirmation.
    bare = {k: v for k, v in fields.items() if k != "version"}
    response = client.post("/organizer/places/PD-ZJ01/rotate", data=bare)
    assert response.status_code == 303 and response.headers["Location"].endswith("/organizer/places/PD-ZJ01/rotate")
    assert version_of(db, world["zj"]) == 1
    assert client.post("/organizer/places/PD-ZJ01/rotate", data=fields).status_code == 303
    # The same confirmation pressed twice rotates once.
    assert client.post("/organizer/places/PD-ZJ01/rotate", data=fields).status_code == 303
    assert version_of(db, world["zj"]) == 2
    assert "已经更换过了" in client.get("/organizer/places/PD-ZJ01").text  # "already replaced"


def test_the_confirmation_of_another_districts_place_is_a_404(client, db, world, kit):
    sign_in(client, db)
    assert client.get("/organizer/places/JA-CJD1/rotate").status_code == 404


def test_rotating_another_districts_place_is_a_404(client, db, world, kit):
    sign_in(client, db)
    page = client.get("/organizer/places/PD-ZJ01/rotate")
    assert client.post("/organizer/places/JA-CJD1/rotate", data=hidden_fields(page.text)).status_code == 404
    db.expire_all()
    assert db.get(type(world["cjd"]), world["cjd"].id).qr_version == 1


def test_funnel_per_place_and_token_version(client, db, world, kit):
    day, zj = utcnow().date(), world["zj"].id
    steps = {1: {"scans": 9, "forms": 4, "verified": 3, "joins": 2}, 2: {"scans": 5, "forms": 1}}
    for version, counts in steps.items():
        for step, n in counts.items():
            for _ in range(n):
                stats.bump(db, kind=PlaceKind.workplace, place_id=zj, qr_version=version, step=step, day=day)
    stats.bump(db, kind=PlaceKind.workplace, place_id=world["cjd"].id, qr_version=1, step="scans", day=day)
    world["zj"].qr_version = 2
    db.add(world["zj"])
    db.commit()
    sign_in(client, db)
    page = client.get("/organizer/places/PD-ZJ01").text
    rows = re.findall(r"<tr><td>(\d+)[^<]*(?:<span[^>]*>[^<]*</span>)?</td>((?:\s*<td>[^<]*</td>)+)", page)
    table = {int(v): re.findall(r"<td>([^<]*)</td>", cells) for v, cells in rows}
    assert table[2] == ["5", "1", "0", "0", "0%"]
    assert table[1] == ["9", "4", "3", "2", "22%"]
    index = client.get("/organizer/").text
    station_row = index[index.index("张江美团骑手站") :].split("</tr>")[0]
    assert re.findall(r"<td>([^<]*)</td>", station_row)[-5:] == ["5", "1", "0", "0", "0%"]  # the current poster


def test_a_missing_font_is_a_clear_503(client, db, world, monkeypatch):
    def no_font(_setting: str = "") -> None:
        raise poster_fonts.PosterFontError("no Chinese font found: install fonts-noto-cjk")

    monkeypatch.setattr(posters, "find_fonts", no_font)
    sign_in(client, db)
    response = client.get("/organizer/places/PD-ZJ01/a4/poster.png")
    assert response.status_code == 503
    assert "fonts-noto-cjk" in response.text and "/usr/share" not in response.text


def test_a_name_the_font_cannot_print_still_prints_the_district_pdf(client, db, world, kit):
    # Issue 12 item 8: a name stored before validation (emoji, control character) prints with a
    # stand-in character; the district's PDF is not a 503.
    world["yz"].name = "陆家嘴\U0001f600驿站\x07"
    db.add(world["yz"])
    db.commit()
    sign_in(client, db)
    response = client.get("/organizer/districts/PD/posters.pdf?template=a4")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    assert client.get("/organizer/places/" + world["yz"].code + "/a4/poster.png").status_code == 200
