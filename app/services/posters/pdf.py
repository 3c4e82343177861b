"""A PDF of full-page images, written as a stream: each page is yielded as soon as it exists.

Pillow's PDF writer, reportlab, img2pdf and pikepdf all hold every page until the file is
complete; a district of 1,000 posters would then sit in memory. A PDF of image pages is
simple enough to write in order instead: the page tree, whose kids are known only at the end,
goes last, and the cross-reference table records where each object began. Image data is the
PNG encoder's zlib stream, which PDF reads as-is with the PNG predictor (as img2pdf does).
A page is layers: the template's fixed background is stored once and each page adds only the
small images of what differs (the QR code and the place's text), so pages are quick to encode.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {0: (1, "/DeviceGray"), 2: (3, "/DeviceRGB"), 3: (1, None)}
CATALOG, PAGES = 1, 2


class PdfImageError(ValueError):
    """The PNG cannot be embedded as-is (interlaced, alpha or 16-bit)."""


@dataclass(frozen=True)
class PngImage:
    width: int
    height: int
    bits: int
    colors: int
    color_space: str
    data: bytes


def parse_png(png: bytes) -> PngImage:
    """Split a PNG into what a PDF image object needs."""
    if not png.startswith(PNG_SIGNATURE):
        raise PdfImageError("not a PNG")
    pos, idat, palette, header = len(PNG_SIGNATURE), [], b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat.append(body)
    width, height, bits, color_type, _c, _f, interlace = struct.unpack(">IIBBBBB", header)
    if color_type not in COLOR_TYPES or interlace or bits > 8:
        raise PdfImageError(f"PNG colour type {color_type}, {bits} bits, interlace {interlace} is not supported")
    colors, space = COLOR_TYPES[color_type]
    if space is None:
        space = f"[/Indexed /DeviceRGB {len(palette) // 3 - 1} <{palette.hex()}>]"
    return PngImage(width, height, bits, colors, space, b"".join(idat))


@dataclass(frozen=True)
class Layer:
    """An image painted on a page at (x, y) from the bottom-left, w x h, all in points.

    A layer whose `shared` key repeats (a template's fixed background) is stored once and
    painted on every page that names it.
    """

    png: bytes
    x: float
    y: float
    w: float
    h: float
    shared: str = ""


@dataclass(frozen=True)
class Page:
    width: float
    height: float
    layers: tuple[Layer, ...]


def full_page(png: bytes, width: float, height: float) -> Page:
    """A page that is one image edge to edge."""
    return Page(width, height, (Layer(png, 0, 0, width, height),))


class _Writer:
    def __init__(self) -> None:
        self.position = 0
        self.offsets: dict[int, int] = {}
        self.chunk: list[bytes] = []
        self.shared: dict[str, int] = {}
        self.next = PAGES + 1

    def number(self) -> int:
        self.next += 1
        return self.next - 1

    def raw(self, data: bytes) -> None:
        self.chunk.append(data)
        self.position += len(data)

    def obj(self, number: int, body: str, stream: bytes | None = None) -> int:
        self.offsets[number] = self.position
        self.raw(f"{number} 0 obj\n{body}".encode())
        if stream is not None:
            self.raw(b"\nstream\n" + stream + b"\nendstream")
        self.raw(b"\nendobj\n")
        return number

    def image(self, layer: Layer) -> int:
        if layer.shared in self.shared:
            return self.shared[layer.shared]
        image = parse_png(layer.png)
        params = f"<< /Predictor 15 /Colors {image.colors} /BitsPerComponent {image.bits} /Columns {image.width} >>"
        number = self.obj(
            self.number(),
            (
                f"<< /Type /XObject /Subtype /Image /Width {image.width} /Height {image.height} "
                f"/ColorSpace {image.color_space} /BitsPerComponent {image.bits} /Filter /FlateDecode "
                f"/DecodeParms {params} /Length {len(image.data)} >>"
            ),
            image.data,
        )
        if layer.shared:
            self.shared[layer.shared] = number
        return number

    def page(self, page: Page) -> int:
        images = [self.image(layer) for layer in page.layers]
        paint = " ".join(
            f"q {lay.w:.3f} 0 0 {lay.h:.3f} {lay.x:.3f} {lay.y:.3f} cm /Im{i} Do Q" for i, lay in enumerate(page.layers)
        )
        content = self.obj(self.number(), f"<< /Length {len(paint)} >>", paint.encode())
        xobjects = " ".join(f"/Im{i} {number} 0 R" for i, number in enumerate(images))
        return self.obj(
            self.number(),
            (
                f"<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {page.width:.3f} {page.height:.3f}] "
                f"/Resources << /XObject << {xobjects} >> >> /Contents {content} 0 R >>"
            ),
        )

    def take(self) -> bytes:
        data, self.chunk = b"".join(self.chunk), []
        return data


def pdf_stream(pages: Iterable[Page], title: str = "") -> Iterator[bytes]:
    """Yield a PDF in pieces: one per page as it comes, then the page tree and the index."""
    out = _Writer()
    out.raw(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    kids: list[int] = []
    for page in pages:
        kids.append(out.page(page))
        yield out.take()
    if not kids:
        raise ValueError("a PDF needs at least one page")
    refs = " ".join(f"{kid} 0 R" for kid in kids)
    out.obj(PAGES, f"<< /Type /Pages /Kids [{refs}] /Count {len(kids)} >>")
    out.obj(CATALOG, f"<< /Type /Catalog /Pages {PAGES} 0 R >>")
    info = out.obj(out.number(), f"<< /Producer (ScanJoin) /Title <{_utf16(title).hex()}> >>")
    xref_at = out.position
    rows = [b"0000000000 65535 f \n", *(f"{out.offsets[n]:010d} 00000 n \n".encode() for n in range(1, info + 1))]
    out.raw(f"xref\n0 {info + 1}\n".encode() + b"".join(rows))
    out.raw(
        f"trailer\n<< /Size {info + 1} /Root {CATALOG} 0 R /Info {info} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    )
    yield out.take()


def _utf16(text: str) -> bytes:
    return b"\xfe\xff" + text.encode("utf-16-be")
