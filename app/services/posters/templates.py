"""Poster templates: one TOML file each in qr_templates/, checked field by field when loaded.

A template is data, not code: the page, the QR box, the colours and the text blocks. Text
may name the fields `{place_name}`, `{district_name}`, `{union_name}`, `{url}` and
`{expires}`; a malformed file raises TemplateError naming the file and the field.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELDS = frozenset({"place_name", "district_name", "union_name", "url", "expires"})
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
ECC_LEVELS = ("L", "M", "Q", "H")
# Share of the symbol a centre logo may hide at each level (recovery capacity less a margin).
LOGO_MAX_SHARE = {"L": 0.0, "M": 0.0, "Q": 0.08, "H": 0.15}
MIN_QUIET_ZONE = 4  # modules: ISO/IEC 18004


class TemplateError(ValueError):
    """A template file is malformed; the message names the file and the field."""

    def __init__(self, path: Path, field: str, problem: str) -> None:
        super().__init__(f"{path.name}: field '{field}': {problem}")
        self.path, self.field, self.problem = path, field, problem


@dataclass(frozen=True)
class Page:
    width_mm: float
    height_mm: float
    dpi: int
    background: str

    def px(self, mm: float) -> int:
        return round(mm / 25.4 * self.dpi)

    @property
    def size_px(self) -> tuple[int, int]:
        return self.px(self.width_mm), self.px(self.height_mm)

    @property
    def size_pt(self) -> tuple[float, float]:
        """The paper size in PDF points (1/72 inch)."""
        return self.width_mm / 25.4 * 72, self.height_mm / 25.4 * 72


@dataclass(frozen=True)
class QrBox:
    x_mm: float
    y_mm: float
    size_mm: float  # the whole symbol including its quiet zone
    quiet_zone: int
    ecc: str
    color: str
    logo: Path | None
    logo_share: float


@dataclass(frozen=True)
class Rect:
    x_mm: float
    y_mm: float
    w_mm: float
    h_mm: float
    color: str


@dataclass(frozen=True)
class TextBlock:
    text: str
    x_mm: float
    y_mm: float
    w_mm: float
    h_mm: float
    size_pt: float
    min_size_pt: float
    max_lines: int
    weight: str
    color: str
    align: str
    valign: str


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    path: Path
    page: Page
    qr: QrBox
    rects: tuple[Rect, ...]
    blocks: tuple[TextBlock, ...]

    @property
    def size_label(self) -> str:
        return f"{_num(self.page.width_mm)}x{_num(self.page.height_mm)}mm"

    def colors(self) -> list[str]:
        """Every colour the template uses, paper first (the palette of the rendered page)."""
        used = [self.page.background, self.qr.color, *(r.color for r in self.rects), *(b.color for b in self.blocks)]
        return list(dict.fromkeys(c.lower() for c in [*used, "#ffffff", "#000000"]))


def _num(value: float) -> str:
    return f"{value:g}"


class _Reader:
    """Pulls typed, checked values out of a parsed table; errors name file and dotted field."""

    def __init__(self, path: Path, data: dict[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix

    def fail(self, key: str, problem: str) -> TemplateError:
        return TemplateError(self.path, f"{self.prefix}{key}", problem)

    def table(self, key: str) -> _Reader:
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self.fail(key, "missing table" if value is None else "must be a table")
        return _Reader(self.path, value, f"{self.prefix}{key}.")

    def tables(self, key: str) -> list[_Reader]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.fail(key, "must be an array of tables ([[" + key + "]])")
        return [_Reader(self.path, item, f"{self.prefix}{key}[{i}].") for i, item in enumerate(value)]

    def number(self, key: str, low: float, high: float, default: float | None = None) -> float:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(key, "missing")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, not {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"must be between {_num(low)} and {_num(high)}, not {_num(value)}")
        return float(value)

    def string(self, key: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(key, "missing")
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {value!r}")
        if choices and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def color(self, key: str, default: str | None = None) -> str:
        value = self.string(key, default)
        if not COLOR_RE.match(value):
            raise self.fail(key, f"must be a colour like #1b1b1b, not {value!r}")
        return value


def load(path: Path) -> Template:
    """Parse and check one template file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(path, "(file)", f"not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(path, "(file)", f"cannot be read: {exc}") from exc
    root = _Reader(path, data)
    name = root.string("name")
    if not NAME_RE.match(name):
        raise root.fail("name", "must be lower-case letters, digits, - or _ (at most 32)")
    page = _page(root.table("page"))
    template = Template(
        name=name,
        title=root.string("title", name),
        path=path,
        page=page,
        qr=_qr(root.table("qr"), page),
        rects=tuple(_rect(r, page) for r in root.tables("rect")),
        blocks=tuple(_block(b, page) for b in root.tables("text")),
    )
    if not template.blocks:
        raise root.fail("text", "a template needs at least one [[text]] block")
    return template


def _page(t: _Reader) -> Page:
    return Page(
        width_mm=t.number("width_mm", 20, 1200),
        height_mm=t.number("height_mm", 20, 1200),
        dpi=int(t.number("dpi", 72, 1200, 300)),
        background=t.color("background", "#ffffff"),
    )


def _within(t: _Reader, page: Page, x: float, y: float, w: float, h: float) -> None:
    if x + w > page.width_mm + 1e-6 or y + h > page.height_mm + 1e-6:
        raise t.fail("x_mm", f"the box ({_num(x)}, {_num(y)}, {_num(w)} x {_num(h)} mm) runs off the page")


def _qr(t: _Reader, page: Page) -> QrBox:
    x, y = t.number("x_mm", 0, page.width_mm), t.number("y_mm", 0, page.height_mm)
    size = t.number("size_mm", 15, 1000)
    _within(t, page, x, y, size, size)
    ecc = t.string("ecc", "Q", ECC_LEVELS)
    quiet = t.number("quiet_zone", MIN_QUIET_ZONE, 20, MIN_QUIET_ZONE)
    logo_name = t.data.get("logo")
    share = t.number("logo_share", 0, 1, 0.06 if logo_name else 0)
    logo = None
    if logo_name is not None:
        logo = t.path.parent / t.string("logo")
        if not logo.is_file():
            raise t.fail("logo", f"no such file next to the template: {logo.name}")
        if share > LOGO_MAX_SHARE[ecc]:
            room = LOGO_MAX_SHARE[ecc]
            raise t.fail("logo_share", f"error correction {ecc} leaves room for a logo of at most {room:.0%}")
    return QrBox(
        x_mm=x,
        y_mm=y,
        size_mm=size,
        quiet_zone=int(quiet),
        ecc=ecc,
        color=t.color("color", "#000000"),
        logo=logo,
        logo_share=share,
    )


def _rect(t: _Reader, page: Page) -> Rect:
    x, y = t.number("x_mm", 0, page.width_mm), t.number("y_mm", 0, page.height_mm)
    w, h = t.number("w_mm", 0.1, page.width_mm), t.number("h_mm", 0.1, page.height_mm)
    _within(t, page, x, y, w, h)
    return Rect(x_mm=x, y_mm=y, w_mm=w, h_mm=h, color=t.color("color"))


def _block(t: _Reader, page: Page) -> TextBlock:
    text = t.string("text")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise t.fail("text", f"bad placeholder: {exc}") from exc
    unknown = names - FIELDS
    if unknown:
        raise t.fail("text", f"unknown field {{{sorted(unknown)[0]}}} (known: {', '.join(sorted(FIELDS))})")
    x, y = t.number("x_mm", 0, page.width_mm), t.number("y_mm", 0, page.height_mm)
    w, h = t.number("w_mm", 1, page.width_mm), t.number("h_mm", 1, page.height_mm)
    _within(t, page, x, y, w, h)
    size = t.number("size_pt", 3, 400)
    return TextBlock(
        text=text,
        x_mm=x,
        y_mm=y,
        w_mm=w,
        h_mm=h,
        size_pt=size,
        min_size_pt=t.number("min_size_pt", 3, size, min(size, max(3.0, size / 2))),
        max_lines=int(t.number("max_lines", 1, 20, 1)),
        weight=t.string("weight", "regular", ("regular", "bold")),
        color=t.color("color", "#000000"),
        align=t.string("align", "left", ("left", "center", "right")),
        valign=t.string("valign", "top", ("top", "middle", "bottom")),
    )


def load_all(folder: Path) -> dict[str, Template]:
    """Every *.toml in the folder, by name (a duplicate name is an error too)."""
    found: dict[str, Template] = {}
    for path in sorted(folder.glob("*.toml")):
        template = load(path)
        if template.name in found:
            raise TemplateError(path, "name", f"{template.name!r} is also used by {found[template.name].path.name}")
        found[template.name] = template
    if not found:
        raise FileNotFoundError(f"no poster templates (*.toml) in {folder}")
    return found
