"""Templates are data: the shipped ones load, and a malformed one names its file and field."""

from __future__ import annotations

import pytest

from app.services.posters.templates import TemplateError, load, load_all
from tests.conftest import ROOT

GOOD = """
name = "card"
[page]
width_mm = 105
height_mm = 148
[qr]
x_mm = 20
y_mm = 40
size_mm = 60
[[text]]
text = "{place_name}"
x_mm = 5
y_mm = 5
w_mm = 95
h_mm = 10
size_pt = 14
"""


def test_the_shipped_templates_cover_the_print_kit():
    templates = load_all(ROOT / "qr_templates")
    sizes = {name: t.size_label for name, t in templates.items()}
    assert sizes == {"a3": "297x420mm", "a4": "210x297mm", "a6-card": "105x148mm", "sticker-60": "60x60mm"}
    for template in templates.values():
        printed = " ".join(block.text for block in template.blocks)
        for field in ("{place_name}", "{url}", "{expires}", "{union_name}"):
            assert field in printed, f"{template.name} does not print {field}"
        assert template.page.dpi == 300 and template.qr.ecc == "Q" and template.qr.quiet_zone >= 4


def test_a_good_minimal_template_gets_defaults(tmp_path):
    path = tmp_path / "card.toml"
    path.write_text(GOOD, encoding="utf-8")
    template = load(path)
    assert (template.page.dpi, template.qr.ecc, template.qr.quiet_zone) == (300, "Q", 4)
    assert template.blocks[0].max_lines == 1 and template.blocks[0].min_size_pt == 7


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (("size_mm = 60", ""), "qr.size_mm", "missing"),
        (("size_mm = 60", 'size_mm = "big"'), "qr.size_mm", "must be a number"),
        (("size_mm = 60", "size_mm = 200"), "qr.x_mm", "runs off the page"),
        (("[qr]", "[qr]\nquiet_zone = 2"), "qr.quiet_zone", "between 4 and 20"),
        (("[qr]", '[qr]\necc = "X"'), "qr.ecc", "must be one of L, M, Q, H"),
        (("[qr]", '[qr]\ncolor = "black"'), "qr.color", "must be a colour"),
        (("{place_name}", "{place}"), "text[0].text", "unknown field {place}"),
        (("size_pt = 14", 'size_pt = 14\nweight = "heavy"'), "text[0].weight", "must be one of regular, bold"),
        (("w_mm = 95", "w_mm = 195"), "text[0].w_mm", "between 1 and 105"),
        (("[page]", "[paper]"), "page", "missing table"),
        (('name = "card"', 'name = "Card 1"'), "name", "lower-case"),
        (("[[text]]", "[[texts]]"), "text", "at least one"),
        (("[qr]", '[qr]\nlogo = "missing.png"'), "qr.logo", "no such file"),
        (("x_mm = 20", "x_mm = 20 x"), "(file)", "not valid TOML"),
    ],
)
def test_a_malformed_template_names_file_and_field(tmp_path, change, field, problem):
    path = tmp_path / "broken.toml"
    path.write_text(GOOD.replace(*change, 1), encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"broken.toml: field '{field}': "), message
    assert problem in message


def test_a_logo_needs_room_in_the_error_correction(tmp_path):
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    path = tmp_path / "logo.toml"
    path.write_text(GOOD.replace("[qr]", '[qr]\necc = "M"\nlogo = "logo.png"'), encoding="utf-8")
    with pytest.raises(TemplateError, match=r"logo.toml: field 'qr.logo_share': error correction M leaves room"):
        load(path)
    path.write_text(GOOD.replace("[qr]", '[qr]\necc = "Q"\nlogo = "logo.png"\nlogo_share = 0.2'), encoding="utf-8")
    with pytest.raises(TemplateError, match="at most 8%"):
        load(path)


def test_two_templates_with_one_name_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.toml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(TemplateError, match="b.toml: field 'name': 'card' is also used by a.toml"):
        load_all(tmp_path)


def test_adding_a_template_is_adding_a_file(tmp_path):
    (tmp_path / "card.toml").write_text(GOOD, encoding="utf-8")
    assert list(load_all(tmp_path)) == ["card"]
    (tmp_path / "tent.toml").write_text(GOOD.replace('"card"', '"tent"'), encoding="utf-8")
    assert list(load_all(tmp_path)) == ["card", "tent"]
