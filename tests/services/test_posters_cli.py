"""`flask posters templates` and `flask posters render`."""

from __future__ import annotations

import pytest
from PIL import Image

from app.services import places
from tests import factories
from tests.services.test_posters import assert_scans, open_kit_or_skip, pdf_pages


@pytest.fixture(autouse=True)
def _font(app) -> None:
    open_kit_or_skip(app)


@pytest.fixture
def seeded(db):
    district = factories.district(db)
    stations = [
        factories.workplace(db, district, "PD-ZJ01", "张江美团骑手站"),
        factories.workplace(db, district, "PD-YZ01", "陆家嘴户外劳动者驿站"),
    ]
    other = factories.district(db, "JA", "静安区总工会")
    db.commit()
    return [district, *stations], other


def payload(app, place) -> str:
    return places.qr_payload(app.config["PUBLIC_BASE_URL"], app.extensions["qr_signer"], place)


def test_templates_prints_name_then_size_and_nothing_else(app):
    result = app.test_cli_runner().invoke(args=["posters", "templates"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["a3 297x420mm", "a4 210x297mm", "a6-card 105x148mm", "sticker-60 60x60mm"]


def test_district_pdf_has_one_scannable_page_per_place(app, seeded, tmp_path):
    district_places, other = seeded
    out = tmp_path / "district.pdf"
    result = app.test_cli_runner().invoke(
        args=["posters", "render", "--district", "PD", "--template", "a4", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the progress bar and the summary go to stderr
    assert "rendering" in result.stderr and "3 page(s)" in result.stderr
    pages = pdf_pages(out.read_bytes(), dpi=150)
    assert len(pages) == 3
    in_code_order = [district_places[0], district_places[2], district_places[1]]  # PD, PD-YZ01, PD-ZJ01
    for image, place in zip(pages, in_code_order, strict=True):
        assert_scans(image, payload(app, place))
    assert payload(app, other) not in {payload(app, p) for p in district_places}


def test_pages_drawn_in_worker_processes_make_the_same_pdf_in_the_same_order(app, seeded, tmp_path):
    files = {}
    for workers in ("1", "2"):
        out = tmp_path / f"district-{workers}.pdf"
        result = app.test_cli_runner().invoke(
            args=[
                "posters",
                "render",
                "--district",
                "PD",
                "--template",
                "a6-card",
                "--workers",
                workers,
                "-o",
                str(out),
            ]
        )
        assert result.exit_code == 0, result.output
        files[workers] = out.read_bytes()
    assert files["2"] == files["1"], "the same bytes, page for page, whichever process drew them"


def test_png_for_one_place(app, seeded, tmp_path):
    district_places, _other = seeded
    out = tmp_path / "station.png"
    result = app.test_cli_runner().invoke(
        args=["posters", "render", "PD-YZ01", "--template", "sticker-60", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    assert image.size == (709, 709)
    assert_scans(image, payload(app, district_places[2]))


def test_codes_list_makes_a_pdf_in_the_order_given(app, seeded, tmp_path):
    district_places, other = seeded
    out = tmp_path / "two.pdf"
    result = app.test_cli_runner().invoke(
        args=["posters", "render", "JA", "PD-ZJ01", "--template", "a6-card", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    pages = pdf_pages(out.read_bytes(), dpi=150)
    for image, place in zip(pages, [other, district_places[1]], strict=True):
        assert_scans(image, payload(app, place))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["PD-ZJ01", "PD-YZ01", "--template", "a4", "-o", "x.png"], 2, "a PNG holds one place, not 2"),
        (["PD-ZJ01", "--template", "poster", "-o", "x.pdf"], 2, "no template 'poster'"),
        (["NOPE", "--template", "a4", "-o", "x.pdf"], 1, "no place with code NOPE"),
        (["--district", "NOPE", "--template", "a4", "-o", "x.pdf"], 1, "no place with code NOPE"),
        (["PD", "--template", "a4", "-o", "x.svg"], 2, "must end in .pdf or .png"),
        (["--template", "a4", "-o", "x.pdf"], 2, "at least one place"),
    ],
)
def test_render_refuses_what_it_cannot_do(app, seeded, tmp_path, monkeypatch, args, code, message):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    result = app.test_cli_runner().invoke(args=["posters", "render", *args])
    assert result.exit_code == code
    assert message in result.output
    assert list(out.iterdir()) == []  # no half-written file left behind


def test_a_broken_template_is_named_with_its_field(app, seeded, tmp_path):
    (tmp_path / "bad.toml").write_text('name = "bad"\n[page]\nwidth_mm = "wide"\n', encoding="utf-8")
    app.config["POSTER_TEMPLATES"] = str(tmp_path)
    runner = app.test_cli_runner()
    render = ["posters", "render", "PD", "--template", "bad", "-o", str(tmp_path / "x.pdf")]
    for args in (["posters", "templates"], render):
        result = runner.invoke(args=args)
        assert result.exit_code == 1
        assert "bad.toml: field 'page.width_mm': must be a number" in result.output
        assert result.stdout == ""
