"""Posters scan: every template, as PNG and as PDF pages, decodes with a real QR decoder."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageChops

from app.services import places, posters
from app.services.posters import fonts as poster_fonts
from app.services.posters.templates import load_all
from tests import factories
from tests.conftest import ROOT, need

TEMPLATES = sorted(load_all(ROOT / "qr_templates"))


@pytest.fixture
def kit(app) -> posters.Kit:
    return open_kit_or_skip(app)


def open_kit_or_skip(app) -> posters.Kit:
    """The app's print kit; skips (fails in CI) when no CJK font is installed."""
    try:
        return posters.open_kit(app.config, app.extensions["qr_signer"])
    except poster_fonts.PosterFontError as exc:
        need(False, str(exc))
        raise


@pytest.fixture
def district_places(db):
    district = factories.district(db)
    stations = [
        factories.workplace(db, district, "PD-ZJ01", "张江美团骑手站"),
        factories.workplace(db, district, "PD-YZ01", "陆家嘴户外劳动者驿站"),
    ]
    db.commit()
    return [district, *stations]


def decode(image: Image.Image) -> list[zxingcpp.Barcode]:
    return [code for code in zxingcpp.read_barcodes(image.convert("L")) if code.format == zxingcpp.BarcodeFormat.QRCode]


def phone_photo(image: Image.Image) -> Image.Image:
    """The poster as a phone sees it from a distance: 300 px wide, JPEG quality 50."""
    small = image.convert("RGB")
    small = small.resize((300, round(300 * small.height / small.width)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=50)
    return Image.open(io.BytesIO(out.getvalue()))


def pdf_pages(data: bytes, dpi: int = 300) -> list[Image.Image]:
    try:
        import pypdfium2
    except ImportError:
        need(False, "pypdfium2 is not installed (pip install -r requirements-test.txt)")
        raise
    document = pypdfium2.PdfDocument(data)
    return [document[i].render(scale=dpi / 72).to_pil() for i in range(len(document))]


def assert_scans(image: Image.Image, payload: str) -> None:
    [full] = decode(image)
    assert full.text == payload
    version = int(full.extra["Version"])  # as the decoder read it from the symbol
    assert version <= 3, f"QR version {version} for a 24-character base URL"
    assert full.ec_level == "Q"
    assert [code.text for code in decode(phone_photo(image))] == [payload]


def test_the_test_base_url_has_24_characters(app):
    assert len(app.config["PUBLIC_BASE_URL"]) == 24


@pytest.mark.parametrize("name", TEMPLATES)
def test_png_of_every_template_scans_to_the_join_url(name, app, db, kit, district_places):
    station = district_places[1]
    data = kit.data(db, station)
    png = posters.png_bytes(posters.render(kit.template(name), data, kit.fonts), 300)
    image = Image.open(io.BytesIO(png))
    assert image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    assert data.payload == places.qr_payload(app.config["PUBLIC_BASE_URL"], app.extensions["qr_signer"], station)
    assert_scans(image, data.payload)


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_pdf_page_scans_to_its_own_place(name, app, db, kit, district_places):
    template = kit.template(name)
    pages = [kit.data(db, place) for place in district_places]
    body = b"".join(posters.pdf(template, pages, kit.fonts, title="PD"))
    images = pdf_pages(body, dpi=150)
    assert len(images) == len(district_places)
    for image, data in zip(images, pages, strict=True):
        assert image.width == pytest.approx(template.page.size_px[0] / 2, abs=2)
        assert_scans(image, data.payload)


def test_pdf_page_size_is_the_template_paper_size(db, kit, district_places):
    import pypdfium2

    pages = [kit.data(db, district_places[0])]
    document = pypdfium2.PdfDocument(b"".join(posters.pdf(kit.template("a4"), pages, kit.fonts)))
    width, height = document[0].get_size()
    assert (width, height) == pytest.approx((595.28, 841.89), abs=0.05)


def test_pdf_is_written_a_page_at_a_time(db, kit, district_places):
    pulled = []

    def pages():
        for n in range(1000):
            pulled.append(n)
            yield kit.data(db, district_places[n % 3])

    stream = posters.pdf(kit.template("sticker-60"), pages(), kit.fonts)
    first = next(stream)
    assert first.startswith(b"%PDF-1.4")
    assert len(pulled) == 1  # one page rendered, 999 still to come: nothing is held back


def test_qr_version_3_at_q_for_the_join_url(app, db, district_places):
    payload = places.qr_payload(app.config["PUBLIC_BASE_URL"], app.extensions["qr_signer"], district_places[1])
    assert len(payload) == 46
    _matrix, version = posters.qr_matrix(payload, "Q")
    assert version == 3


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_quiet_zone_is_white_and_whole(name, db, kit, district_places):
    template = kit.template(name)
    data = kit.data(db, district_places[1])
    image = posters.render(template, data, kit.fonts).convert("L")
    spot, _matrix = posters.place_qr(template, data.payload)
    ring = spot.module * spot.quiet_zone
    side = spot.module * spot.modules
    outer = image.crop((spot.left - ring, spot.top - ring, spot.left + side + ring, spot.top + side + ring))
    assert spot.quiet_zone >= 4
    inner = Image.new("L", (side, side), 255)
    masked = outer.copy()
    masked.paste(inner, (ring, ring))
    assert masked.getextrema() == (255, 255)  # only white around the symbol
    assert image.getpixel((spot.left, spot.top)) == 0  # the finder pattern starts right there


def _changed_box(template, base, other, fonts):
    diff = ImageChops.difference(
        posters.render(template, base, fonts).convert("L"), posters.render(template, other, fonts).convert("L")
    )
    return diff.getbbox()


def _block_px(template, block):
    px = template.page.px
    return px(block.x_mm), px(block.y_mm), px(block.x_mm + block.w_mm), px(block.y_mm + block.h_mm)


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("field", ["expires", "url", "union_name", "place_name"])
def test_each_field_is_printed_in_its_block(name, field, db, kit, district_places):
    template = kit.template(name)
    base = replace(kit.data(db, district_places[1]), union_name="浦东新区快递行业工会")
    changes = {
        "expires": date(2031, 7, 9),
        "url": base.url.replace("join", "jain"),
        "union_name": "静安区总工会",
        "place_name": "曹家渡饿了么站",
    }
    box = _changed_box(template, base, replace(base, **{field: changes[field]}), kit.fonts)
    assert box is not None, f"{field} is not printed on {name}"
    blocks = [_block_px(template, b) for b in template.blocks if "{" + field + "}" in b.text]
    assert any(b[0] <= box[0] and b[1] <= box[1] and box[2] <= b[2] and box[3] <= b[3] for b in blocks)


def test_long_names_wrap_then_shrink_and_stay_in_their_box(kit):
    template = kit.template("a4")
    block = next(b for b in template.blocks if b.text == "{place_name}")
    left, top, right, bottom = _block_px(template, block)
    face = kit.fonts.face(block.weight)
    short_font, short = poster_fonts.fit("张江站", face, block, 300, right - left, bottom - top)
    name = "上海市浦东新区张江高科技园区美团外卖众包骑手第三服务站（晨晖路川和路口）"
    long_font, lines = poster_fonts.fit(name, face, block, 300, right - left, bottom - top)
    assert short == ["张江站"]
    assert 1 < len(lines) <= block.max_lines
    assert long_font.size < short_font.size
    assert "".join(lines) == name
    assert all(long_font.getlength(line) <= right - left for line in lines)


def test_a_name_too_long_for_the_smallest_size_is_cut_with_an_ellipsis(kit):
    template = kit.template("sticker-60")
    block = next(b for b in template.blocks if b.text == "{place_name}")
    left, top, right, bottom = _block_px(template, block)
    font, lines = poster_fonts.fit("很长的站名" * 30, kit.fonts.regular, block, 300, right - left, bottom - top)
    assert len(lines) == 1 and lines[0].endswith("…")
    assert font.getlength(lines[0]) <= right - left


def test_latin_words_break_at_spaces(kit):
    font = kit.fonts.regular.at(40)
    width = int(max(font.getlength("Scan the code with"), font.getlength("your phone camera"))) + 1
    assert font.getlength("Scan the code with your") > width
    lines = poster_fonts.wrap("Scan the code with your phone camera", font, width)
    assert lines == ["Scan the code with", "your phone camera"]


def test_the_font_in_use_has_the_chinese_glyphs(kit):
    text = "扫码加入工会浦东驿站骑手"
    for face in (kit.fonts.regular, kit.fonts.bold):
        bitmaps = [poster_fonts._glyph(face, ch) for ch in text]
        assert all(sum(pixels) > 0 for _size, pixels in bitmaps)  # not blank
        assert len(set(bitmaps)) == len(text)  # a missing glyph would draw one shared box
        assert poster_fonts.missing_glyphs(face, text) == ""
    assert poster_fonts.missing_glyphs(kit.fonts.regular, "\U000f0001") == "\U000f0001"


def test_a_character_missing_from_the_font_is_replaced_not_fatal(db, kit, district_places):
    # Issue 12 item 8: one emoji in a place name broke the place's posters and the district PDF.
    template, place = kit.template("a4"), kit.data(db, district_places[1])
    drawn = posters.render(template, replace(place, place_name="张江\U000f0001站"), kit.fonts)
    stand_in = posters.render(template, replace(place, place_name="张江□站"), kit.fonts)
    assert drawn.tobytes() == stand_in.tobytes()
    assert poster_fonts.drawable(kit.fonts.regular, "a\x00b\u200b😀") == "a b " + "□"


def test_no_cjk_font_installed_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(poster_fonts, "FONT_DIRS", (str(tmp_path),))
    poster_fonts._installed_fonts.cache_clear()
    poster_fonts.find_fonts.cache_clear()
    try:
        with pytest.raises(poster_fonts.PosterFontError, match="fonts-noto-cjk"):
            poster_fonts.find_fonts("")
    finally:
        poster_fonts._installed_fonts.cache_clear()
        poster_fonts.find_fonts.cache_clear()


def test_poster_font_setting_must_be_a_font_with_chinese(tmp_path):
    not_a_font = tmp_path / "x.ttf"
    not_a_font.write_bytes(b"not a font")
    with pytest.raises(poster_fonts.PosterFontError, match="cannot be read") as unreadable:
        poster_fonts.find_fonts(str(not_a_font))
    with pytest.raises(poster_fonts.PosterFontError, match="not a font file") as missing:
        poster_fonts.find_fonts(str(tmp_path / "missing.ttf"))
    assert str(tmp_path) not in str(unreadable.value) + str(missing.value), "the message may reach a page"
    latin = [
        p
        for p in (
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        )
        if Path(p).is_file()
    ]
    if not latin:
        pytest.skip("no Latin-only font on this machine to try")
    with pytest.raises(poster_fonts.PosterFontError, match="no Chinese glyphs.*fonts-noto-cjk"):
        poster_fonts.find_fonts(latin[0])


def test_poster_font_setting_picks_the_simplified_chinese_face(kit):
    path = kit.fonts.regular.path
    fonts = poster_fonts.find_fonts(path)
    assert fonts.regular.path == path
    if path.endswith(".ttc") and "Noto" in path:
        assert "SC" in fonts.regular.at(20).getname()[0]


def test_a_logo_fits_only_where_error_correction_leaves_room(tmp_path, db, kit, district_places):
    logo = tmp_path / "logo.png"
    Image.new("RGB", (64, 64), "#b22222").save(logo)
    source = (ROOT / "qr_templates" / "a6-card.toml").read_text(encoding="utf-8")
    (tmp_path / "card.toml").write_text(
        source.replace('ecc = "Q"', 'ecc = "Q"\nlogo = "logo.png"\nlogo_share = 0.06'), encoding="utf-8"
    )
    template = load_all(tmp_path)["a6-card"]
    data = kit.data(db, district_places[1])
    image = posters.render(template, data, kit.fonts)
    spot, _ = posters.place_qr(template, data.payload)
    middle = spot.left + spot.module * spot.modules // 2, spot.top + spot.module * spot.modules // 2
    assert image.convert("RGB").getpixel(middle) == (178, 34, 34)  # the logo is there
    assert_scans(image, data.payload)


def test_render_cache_keeps_one_token_version_per_place(tmp_path):
    cache = posters.RenderCache(tmp_path)
    calls = []

    def produce(body: bytes):
        return lambda: calls.append(body) or body

    assert cache.get("w1", "v1-a", "a4.png", produce(b"one")) == b"one"
    assert cache.get("w1", "v1-a", "a4.png", produce(b"again")) == b"one"
    assert cache.get("w1", "v1-a", "a6.png", produce(b"card")) == b"card"
    assert cache.get("w1", "v2-b", "a4.png", produce(b"two")) == b"two"
    assert calls == [b"one", b"card", b"two"]
    assert len(list((tmp_path / "w1").iterdir())) == 1  # version 1's files are gone


def test_select_places_takes_codes_then_the_district_once_each(db, district_places):
    district, first, second = district_places
    chosen = posters.select_places(db, ["PD-YZ01"], "PD")
    assert [p.code for p in chosen] == ["PD-YZ01", "PD", "PD-ZJ01"]
    with pytest.raises(places.PlaceNotFound):
        posters.select_places(db, [], "NOPE")


@pytest.mark.parametrize("name", TEMPLATES)
def test_pdf_layers_cover_everything_that_differs_between_places(name, db, kit, district_places):
    """A PDF page is the shared background plus crops: every changing pixel must be in a crop."""
    template = kit.template(name)
    long_name = "上海市浦东新区张江高科技园区美团外卖众包骑手第三服务站" * 2
    one = replace(kit.data(db, district_places[1]), place_name=long_name)
    other = replace(kit.data(db, district_places[0]), union_name="静安区总工会", expires=date(2031, 1, 1))
    diff = ImageChops.difference(
        posters.render(template, one, kit.fonts).convert("L"), posters.render(template, other, kit.fonts).convert("L")
    )
    assert diff.getbbox() is not None
    for box in posters._changing_boxes(template):
        diff.paste(0, box)
    assert diff.getbbox() is None
    page = posters.pdf_page(template, one, kit.fonts)
    assert len(page.layers) == 1 + len(posters._changing_boxes(template))
    assert page.layers[0].shared  # the background is stored once per PDF


def test_a_district_pdf_stores_the_background_once(db, kit, district_places):
    pages = [kit.data(db, place) for place in district_places]
    body = b"".join(posters.pdf(kit.template("a4"), pages, kit.fonts))
    background = posters.png_bytes(posters._background(kit.template("a4"), kit.fonts), 300)
    assert body.count(b"/Subtype /Image") == 1 + 3 * len(posters._changing_boxes(kit.template("a4")))
    assert len(body) < len(background) + 3 * 60_000
