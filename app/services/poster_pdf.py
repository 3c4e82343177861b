"""A PDF of full-page images, written as a stream: each page is yielded as soon as it exists.

Pillow's PDF writer, reportlab, img2pdf and pikepdf all hold every page until the file is
complete; a district of 1,000 posters would then sit in memory. A PDF of image pages is
simple enough to write in order instead: the page tree, whose kids are known only at the end,
goes last, and the cross-reference table records where each object began. Image data is the
PNG encoder's zlib stream, which PDF reads as-is with the PNG predictor (as img2pdf does).
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
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, body = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
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


class _Writer:
    def __init__(self) -> None:
        self.position = 0
        self.offsets: dict[int, int] = {}
        self.chunk: list[bytes] = []

    def raw(self, data: bytes) -> None:
        self.chunk.append(data)
        self.position += len(data)

    def obj(self, number: int, body: bytes, stream: bytes | None = None) -> None:
        self.offsets[number] = self.position
        self.raw(f"{number} 0 obj\n".encode() + body)
        if stream is not None:
            self.raw(b"\nstream\n" + stream + b"\nendstream")
        self.raw(b"\nendobj\n")

    def take(self) -> bytes:
        data, self.chunk = b"".join(self.chunk), []
        return data


def _page(out: _Writer, number: int, image: PngImage, width: float, height: float) -> None:
    content = f"q {width:.3f} 0 0 {height:.3f} 0 0 cm /Im0 Do Q".encode()
    out.obj(number, (f"<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {width:.3f} {height:.3f}] "
                     f"/Resources << /XObject << /Im0 {number + 2} 0 R >> >> /Contents {number + 1} 0 R >>").encode())
    out.obj(number + 1, f"<< /Length {len(content)} >>".encode(), content)
    params = f"<< /Predictor 15 /Colors {image.colors} /BitsPerComponent {image.bits} /Columns {image.width} >>"
    out.obj(number + 2, (f"<< /Type /XObject /Subtype /Image /Width {image.width} /Height {image.height} "
                         f"/ColorSpace {image.color_space} /BitsPerComponent {image.bits} /Filter /FlateDecode "
                         f"/DecodeParms {params} /Length {len(image.data)} >>").encode(), image.data)


def pdf_stream(pages: Iterable[tuple[bytes, float, float]], title: str = "") -> Iterator[bytes]:
    """Yield a PDF in pieces: one per (PNG, width pt, height pt) page, then the page tree and index."""
    out = _Writer()
    out.raw(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    kids: list[int] = []
    for png, width, height in pages:
        number = 3 + 3 * len(kids)
        _page(out, number, parse_png(png), width, height)
        kids.append(number)
        yield out.take()
    if not kids:
        raise ValueError("a PDF needs at least one page")
    refs = " ".join(f"{kid} 0 R" for kid in kids)
    out.obj(PAGES, f"<< /Type /Pages /Kids [{refs}] /Count {len(kids)} >>".encode())
    out.obj(CATALOG, f"<< /Type /Catalog /Pages {PAGES} 0 R >>".encode())
    info = 3 + 3 * len(kids)
    out.obj(info, b"<< /Producer (ScanJoin) /Title <" + _utf16(title).hex().encode() + b"> >>")
    xref_at = out.position
    size = info + 1
    rows = [b"0000000000 65535 f \n", *(f"{out.offsets[n]:010d} 00000 n \n".encode() for n in range(1, size))]
    out.raw(f"xref\n0 {size}\n".encode() + b"".join(rows))
    out.raw(f"trailer\n<< /Size {size} /Root {CATALOG} 0 R /Info {info} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode())
    yield out.take()


def _utf16(text: str) -> bytes:
    return b"\xfe\xff" + text.encode("utf-16-be")
