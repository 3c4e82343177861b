"""Print kit: posters, cards and stickers at print resolution, as PNG or a streamed PDF.

A package: `templates` (the data files' format), `fonts` (the CJK font search, stand-ins for
missing glyphs, fitting text), `pdf` (the streamed PDF writer); this module draws the pages.
Pages are drawn in palette mode with the template's few colours: at 300 dpi that prints as
crisp as anti-aliased text and encodes several times faster (an A4 page is ~9 MB of pixels).
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import qrcode
from PIL import Image, ImageDraw
from qrcode.util import QRData
from sqlmodel import Session

from app.models import District, Workplace
from app.services import places
from app.services.posters.fonts import LINE_HEIGHT, FontFace, FontSet, drawable, find_fonts, fit, missing_glyphs
from app.services.posters.pdf import Layer, pdf_stream
from app.services.posters.pdf import Page as PdfPage
from app.services.posters.templates import Template, TextBlock, load_all
from app.services.tokens import QrSigner

ECC = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}


class UnknownTemplate(LookupError):
    """No template by this name."""


@dataclass(frozen=True)
class PosterData:
    """What a poster says: the QR payload (upper case) and the fields its text may name."""

    payload: str
    url: str
    place_name: str
    district_name: str
    union_name: str
    expires: date

    def fields(self) -> dict[str, str]:
        return {
            "place_name": self.place_name,
            "district_name": self.district_name,
            "union_name": self.union_name,
            "url": self.url,
            "expires": self.expires.isoformat(),
        }


@functools.lru_cache(maxsize=64)
def qr_matrix(payload: str, ecc: str) -> tuple[list[list[bool]], int]:
    """The QR modules (no border) and the version chosen, smallest that fits."""
    code = qrcode.QRCode(error_correction=ECC[ecc], border=0)
    code.add_data(QRData(payload.encode()), optimize=0)
    code.make(fit=True)
    return code.get_matrix(), int(code.version)


class Canvas:
    """A palette page in the template's colours, measured in millimetres."""

    def __init__(self, template: Template, image: Image.Image | None = None) -> None:
        self.template = template
        self.page = template.page
        self.colors = template.colors()
        if image is None:
            image = Image.new("P", self.page.size_px, self.ink(self.page.background))
            image.putpalette([channel for c in self.colors for channel in bytes.fromhex(c[1:])])
        self.image = image
        self.draw = ImageDraw.Draw(self.image)

    def ink(self, color: str) -> int:
        return self.colors.index(color.lower())

    def box(self, x: float, y: float, w: float, h: float) -> tuple[int, int, int, int]:
        px = self.page.px
        return px(x), px(y), px(x + w), px(y + h)


def _is_static(block: TextBlock) -> bool:
    return "{" not in block.text


@functools.lru_cache(maxsize=8)  # an A3 page is 17 MB in palette mode: keep a handful
def _background(template: Template, fonts: FontSet) -> Image.Image:
    """What every place's page shares: rectangles and text that names no field (drawn once)."""
    canvas = Canvas(template)
    for rect in template.rects:
        left, top, right, bottom = canvas.box(rect.x_mm, rect.y_mm, rect.w_mm, rect.h_mm)
        canvas.draw.rectangle((left, top, right - 1, bottom - 1), fill=canvas.ink(rect.color))  # PIL's end is inclusive
    for block in filter(_is_static, template.blocks):
        _draw_text(canvas, block, block.text.strip(), fonts.face(block.weight))
    return canvas.image


def check_glyphs(template: Template, data: PosterData, fonts: FontSet) -> str:
    """The characters of the place's text the font lacks (drawn as a stand-in, never fatal)."""
    fields = data.fields()
    return "".join(missing_glyphs(fonts.face(block.weight), block.text.format(**fields)) for block in template.blocks)


def render(template: Template, data: PosterData, fonts: FontSet) -> Image.Image:
    """One page of the template for one place, in palette mode at the template's resolution."""
    canvas = Canvas(template, _background(template, fonts).copy())
    _draw_qr(canvas, data.payload)
    fields = data.fields()
    for block in template.blocks:
        if not _is_static(block):
            _draw_text(canvas, block, block.text.format(**fields).strip(), fonts.face(block.weight))
    return canvas.image


@dataclass(frozen=True)
class QrPlacement:
    """Where the symbol lands in pixels: its top-left corner, module size and modules a side."""

    left: int
    top: int
    module: int
    modules: int
    quiet_zone: int
    version: int


def place_qr(template: Template, payload: str) -> tuple[QrPlacement, list[list[bool]]]:
    """Fit the symbol and its quiet zone into the template's QR box, whole pixels a module."""
    qr, px = template.qr, template.page.px
    matrix, version = qr_matrix(payload, qr.ecc)
    box = px(qr.size_mm)
    side = len(matrix) + 2 * qr.quiet_zone
    module = box // side
    if module < 2:
        raise ValueError(f"{template.path.name}: the QR box is too small for {len(payload)} characters")
    offset = (box - module * side) // 2 + module * qr.quiet_zone
    return QrPlacement(px(qr.x_mm) + offset, px(qr.y_mm) + offset, module, len(matrix), qr.quiet_zone, version), matrix


def _draw_qr(canvas: Canvas, payload: str) -> None:
    qr = canvas.template.qr
    spot, matrix = place_qr(canvas.template, payload)
    left, top, box = canvas.page.px(qr.x_mm), canvas.page.px(qr.y_mm), canvas.page.px(qr.size_mm)
    canvas.draw.rectangle((left, top, left + box - 1, top + box - 1), fill=canvas.ink("#ffffff"))
    mask = Image.new("1", (spot.modules, spot.modules))
    mask.putdata([1 if dark else 0 for row in matrix for dark in row])
    size = spot.module * spot.modules
    mask = mask.resize((size, size), Image.Resampling.NEAREST)
    canvas.image.paste(canvas.ink(qr.color), (spot.left, spot.top), mask)
    if qr.logo is not None:
        _draw_logo(canvas, qr.logo, (spot.left, spot.top), size, qr.logo_share)


def _draw_logo(canvas: Canvas, path: Path, origin: tuple[int, int], symbol: int, share: float) -> None:
    side = int(symbol * share**0.5)
    logo = Image.open(path).convert("RGB")
    logo.thumbnail((side, side))
    x, y = origin[0] + (symbol - logo.width) // 2, origin[1] + (symbol - logo.height) // 2
    canvas.image.paste(logo.quantize(palette=canvas.image, dither=Image.Dither.NONE), (x, y))


def _draw_text(canvas: Canvas, block: TextBlock, text: str, face: FontFace) -> None:
    text = drawable(face, text).strip()
    if not text:
        return
    left, top, right, bottom = canvas.box(block.x_mm, block.y_mm, block.w_mm, block.h_mm)
    font, lines = fit(text, face, block, canvas.page.dpi, right - left, bottom - top)
    line_h = font.size * LINE_HEIGHT
    height = line_h * len(lines)
    start = {"top": top, "middle": (top + bottom - height) / 2, "bottom": bottom - height}[block.valign]
    x, anchor = {"left": (left, "lm"), "center": ((left + right) / 2, "mm"), "right": (right, "rm")}[block.align]
    for i, line in enumerate(lines):
        y = start + line_h * (i + 0.5)
        canvas.draw.text((x, y), line, font=font, fill=canvas.ink(block.color), anchor=anchor)


def png_bytes(image: Image.Image, dpi: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(dpi, dpi), compress_level=3)  # zlib level 3: the fastest here; 6 is 2x slower
    return out.getvalue()


def preview(image: Image.Image | bytes, width: int = 600) -> bytes:
    """A small anti-aliased PNG for the screen, from a page or its PNG."""
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    small = image.convert("RGB")
    small.thumbnail((width, width * 4), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "PNG", optimize=True)
    return out.getvalue()


@functools.lru_cache(maxsize=16)
def _background_png(template: Template, fonts: FontSet) -> bytes:
    return png_bytes(_background(template, fonts), template.page.dpi)


def _changing_boxes(template: Template) -> list[tuple[int, int, int, int]]:
    """Pixel boxes that differ from place to place: the QR with its quiet zone, and field text."""
    px, (width, height) = template.page.px, template.page.size_px
    qr = template.qr
    boxes = [(px(qr.x_mm), px(qr.y_mm), px(qr.x_mm) + px(qr.size_mm), px(qr.y_mm) + px(qr.size_mm))]
    for block in template.blocks:
        if not _is_static(block):
            pad = px(block.size_pt / 72 * 25.4 * 0.3)  # room for glyphs that reach past the line box
            box = (
                px(block.x_mm) - pad,
                px(block.y_mm) - pad,
                px(block.x_mm + block.w_mm) + pad,
                px(block.y_mm + block.h_mm) + pad,
            )
            boxes.append((max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3])))
    return boxes


def pdf_page(template: Template, data: PosterData, fonts: FontSet) -> PdfPage:
    """One place's page as layers: the shared background, then crops of what changes."""
    image = render(template, data, fonts)
    width, height = template.page.size_pt
    scale = width / image.width
    layers = [Layer(_background_png(template, fonts), 0, 0, width, height, shared=f"background:{template.name}")]
    for left, top, right, bottom in _changing_boxes(template):
        crop = png_bytes(image.crop((left, top, right, bottom)), template.page.dpi)
        w, h = (right - left) * scale, (bottom - top) * scale
        layers.append(Layer(crop, left * scale, height - bottom * scale, w, h))
    return PdfPage(width, height, tuple(layers))


def pdf(
    template: Template, pages: Iterable[PosterData], fonts: FontSet, title: str = "", workers: int = 1
) -> Iterator[bytes]:
    """A PDF, one place a page, yielded a page at a time (memory stays flat). With `workers` > 1
    the pages are drawn in that many processes (drawing is CPU in Pillow, which holds the GIL for
    most of it, so threads would not help), and written in order as they come back."""
    if workers <= 1:
        return pdf_stream((pdf_page(template, data, fonts) for data in pages), title)
    return pdf_stream(_drawn_in_processes(template, pages, fonts, workers), title)


def _drawn_in_processes(
    template: Template, pages: Iterable[PosterData], fonts: FontSet, workers: int
) -> Iterator[PdfPage]:
    # "spawn": a child starts clean (no copy of the parent's database connections or threads)
    # and imports only what drawing needs; each child renders the shared background once.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(pdf_page, itertools.repeat(template), pages, itertools.repeat(fonts), chunksize=4)


class RenderCache:
    """Rendered files on disk, one folder per place; a new token version drops the old files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, place_key: str, version_key: str, name: str, produce: Callable[[], bytes]) -> bytes:
        folder = self.folder / place_key
        path = folder / f"{version_key}-{hashlib.sha256(name.encode()).hexdigest()[:20]}"
        if path.is_file():
            return path.read_bytes()
        body: bytes = produce()
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if not old.name.startswith(f"{version_key}-"):
                old.unlink(missing_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(body)
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
        return body


@dataclass(frozen=True)
class Kit:
    """Everything needed to print a place: templates, fonts, and what the posters say."""

    templates: dict[str, Template]
    fonts: FontSet
    base_url: str
    union_name: str
    signer: QrSigner

    def template(self, name: str) -> Template:
        try:
            return self.templates[name]
        except KeyError:
            raise UnknownTemplate(f"no template {name!r} (have: {', '.join(self.templates)})") from None

    def data(self, session: Session, place: places.Place) -> PosterData:
        district = place if isinstance(place, District) else session.get(District, place.district_id)
        assert district is not None
        return PosterData(
            payload=places.qr_payload(self.base_url, self.signer, place),
            url=places.join_url(self.base_url, self.signer, place),
            place_name=place.name,
            district_name="" if district is place else district.name,
            union_name=self.union_name,
            expires=places.expires_on(self.signer, place),
        )

    def fingerprint(self, template: Template) -> str:
        """Changes whenever anything but the place would change the rendered file."""
        parts = [
            template.path.read_bytes(),
            self.base_url.encode(),
            self.union_name.encode(),
            repr(self.fonts).encode(),
        ]
        return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def open_kit(config: Mapping[str, Any], signer: QrSigner) -> Kit:
    """A kit from the app's settings (POSTER_TEMPLATES, POSTER_FONT, PUBLIC_BASE_URL, UNION_NAME)."""
    return Kit(
        templates=load_all(Path(config["POSTER_TEMPLATES"])),
        fonts=find_fonts(config["POSTER_FONT"] or ""),
        base_url=config["PUBLIC_BASE_URL"],
        union_name=config["UNION_NAME"] or "",
        signer=signer,
    )


def place_keys(place: places.Place) -> tuple[str, str]:
    """Cache keys: the place, and its token version (a rotation starts a new one)."""
    kind = "w" if isinstance(place, Workplace) else "d"
    return f"{kind}{place.id}", f"v{place.qr_version}-{place.qr_issued_at:%Y%m%d%H%M%S}"


def select_places(session: Session, codes: Iterable[str] = (), district: str | None = None) -> list[places.Place]:
    """The places to print: the codes given, then the district and its workplaces; each once."""
    chosen = [places.find_by_code(session, code) for code in codes]
    if district is not None:
        in_district = places.all_places(session, district)
        if not in_district:
            raise places.PlaceNotFound(district)
        chosen.extend(in_district)
    return list({place_keys(place)[0]: place for place in chosen}.values())
