"""Fonts for posters: the CJK font search, a glyph check, and fitting text into a box.

A font without Chinese glyphs is refused with a message that says what to install (and names
no server path: the message may reach an organizer's page; the log has the path). A character
the font lacks in a place's text (an emoji, a rare symbol) is drawn as REPLACEMENT instead of
failing the poster, and control characters as spaces.
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

from app.services import numbers
from app.services.posters.templates import TextBlock

FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:/Windows/Fonts",
)
# Preferred file names, best first: Noto CJK (fonts-noto-cjk), WenQuanYi (fonts-wqy-*), the
# fonts macOS and Windows ship, Droid Sans Fallback (fonts-droid-fallback).
FONT_NAMES = {
    "bold": ("NotoSansCJK-Bold.ttc", "NotoSansCJKsc-Bold.otf", "NotoSansSC-Bold.otf"),
    "regular": (
        "NotoSansCJK-Regular.ttc",
        "NotoSansCJKsc-Regular.otf",
        "NotoSansSC-Regular.otf",
        "wqy-microhei.ttc",
        "wqy-zenhei.ttc",
        "PingFang.ttc",
        "Hiragino Sans GB.ttc",
        "STHeiti Medium.ttc",
        "msyh.ttc",
        "simhei.ttf",
        "DroidSansFallbackFull.ttf",
    ),
}
INSTALL_HINT = (
    "install a CJK font (Debian/Ubuntu: apt-get install fonts-noto-cjk, or the small "
    "fonts-wqy-microhei; Fedora: google-noto-sans-cjk-fonts) or set POSTER_FONT to a "
    "font file with Chinese glyphs"
)
log = logging.getLogger(__name__)
PROBE = "扫码加入工会"
# Drawn for a character the font has no glyph for; "?" when the font lacks this one too.
REPLACEMENT = "□"
LINE_HEIGHT = 1.25
ELLIPSIS = "…"
NEWLINE = "\n"


class PosterFontError(RuntimeError):
    """No usable CJK font; the message says what to install or set."""


@dataclass(frozen=True)
class FontFace:
    path: str
    index: int

    def at(self, px: int) -> ImageFont.FreeTypeFont:
        return _truetype(self.path, self.index, px)


@dataclass(frozen=True)
class FontSet:
    regular: FontFace
    bold: FontFace

    def face(self, weight: str) -> FontFace:
        return self.bold if weight == "bold" else self.regular


@functools.lru_cache(maxsize=256)
def _truetype(path: str, index: int, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px, index=index)


def _chinese_index(path: str) -> int:
    """In a font collection, the Simplified Chinese face (Noto CJK puts JP first)."""
    faces = []
    for index in range(16):
        try:
            faces.append(ImageFont.truetype(path, 20, index=index).getname()[0] or "")
        except OSError:
            break
    for marks in ((" SC", "GB", "Hans"), ("CN", "Hei", "Song")):
        for index, family in enumerate(faces):
            if any(mark in family for mark in marks):
                return index
    return 0


def _face(spec: str) -> FontFace:
    path, _, index = spec.partition("#")
    if not Path(path).is_file():
        log.error("POSTER_FONT %s is not a file", path)
        raise PosterFontError(f"POSTER_FONT is not a font file; {INSTALL_HINT}")
    try:
        face = FontFace(path, int(index) if numbers.digits(index) else _chinese_index(path))
        face.at(20)
    except OSError as exc:
        log.error("font %s cannot be read: %s", path, exc)
        raise PosterFontError(f"the poster font cannot be read; {INSTALL_HINT}") from None
    return face


@functools.lru_cache(maxsize=1)
def _installed_fonts() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in FONT_DIRS:
        for root, _dirs, files in os.walk(os.path.expanduser(folder)):
            for name in files:
                found.setdefault(name, os.path.join(root, name))
    return found


def _search(names: Iterable[str]) -> FontFace | None:
    installed = _installed_fonts()
    path = next((installed[name] for name in names if name in installed), None)
    return _face(path) if path else None


@functools.lru_cache(maxsize=8)
def find_fonts(setting: str = "") -> FontSet:
    """The CJK fonts to print with: POSTER_FONT (`PATH` or `PATH#INDEX`), else a system search."""
    if setting:
        face = _face(setting)
        fonts = FontSet(face, face)
    else:
        regular = _search(FONT_NAMES["regular"])
        if regular is None:
            raise PosterFontError(f"no Chinese font found in the system's font folders: {INSTALL_HINT}")
        fonts = FontSet(regular, _search(FONT_NAMES["bold"]) or regular)
    for face in {fonts.regular, fonts.bold}:
        if missing_glyphs(face, PROBE):
            log.error("font %s has no Chinese glyphs", face.path)
            raise PosterFontError(f"the poster font has no Chinese glyphs: {INSTALL_HINT}")
    return fonts


@functools.lru_cache(maxsize=4096)
def _glyph(face: FontFace, char: str) -> tuple[tuple[int, int], bytes]:
    mask = face.at(48).getmask(char)
    return mask.size, bytes(mask)


def missing_glyphs(face: FontFace, text: str) -> str:
    """The characters of `text` the font would draw as its 'missing' box (or not at all)."""
    notdef = _glyph(face, "\u0378")  # an unassigned code point: the font's .notdef glyph
    chars = dict.fromkeys(ch for ch in text if not ch.isspace())
    return "".join(ch for ch in chars if _glyph(face, ch) == notdef)


def fit(
    text: str, face: FontFace, block: TextBlock, dpi: int, width: int, height: int
) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest size at which the text wraps into the box; at the smallest, cut with '…'."""
    size = block.size_pt
    while True:
        font = face.at(max(1, round(size / 72 * dpi)))
        lines = wrap(text, font, width)
        rows = min(block.max_lines, max(1, int(height // (font.size * LINE_HEIGHT))))
        if len(lines) <= rows:
            return font, lines
        if size <= block.min_size_pt:
            return font, [*lines[: rows - 1], _cut("".join(lines[rows - 1 :]), font, width)]
        size = max(block.min_size_pt, size * 0.94)


def _tokens(text: str) -> list[str]:
    """Break points: after every CJK character, after each space-ended Latin word."""
    tokens: list[str] = []
    for ch in text:
        latin = ch.isascii() and not ch.isspace()
        if ch == "\n":
            tokens.append(ch)
        elif tokens and latin and tokens[-1][-1:].isascii() and not tokens[-1][-1:].isspace():
            tokens[-1] += ch
        elif tokens and ch.isspace() and tokens[-1] != "\n":
            tokens[-1] += ch
        else:
            tokens.append(ch)
    return tokens


def wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy line breaking; explicit newlines are kept; a too-long word is broken by letter."""
    lines, line = [], ""
    for token in _tokens(text):
        if token == NEWLINE:
            lines.append(line.rstrip())
            line = ""
            continue
        if font.getlength((line + token).rstrip()) <= width:
            line += token
            continue
        if line:
            lines.append(line.rstrip())
        line = token.lstrip() if font.getlength(token.rstrip()) <= width else ""
        if not line:
            for ch in token.lstrip():
                if line and font.getlength(line + ch) > width:
                    lines.append(line)
                    line = ""
                line += ch
    lines.append(line.rstrip())
    return lines


def _cut(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    text = text.strip()
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + ELLIPSIS) > width:
        text = text[:-1]
    return text.rstrip() + ELLIPSIS


def drawable(face: FontFace, text: str) -> str:
    """The text with control characters as spaces and each character the font lacks as REPLACEMENT."""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Cs") else ch for ch in text)
    missing = missing_glyphs(face, text)
    if not missing:
        return text
    stand_in = "?" if missing_glyphs(face, REPLACEMENT) else REPLACEMENT
    return "".join(stand_in if ch in missing else ch for ch in text)
