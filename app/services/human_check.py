"""The human check before an SMS is paid for (docs/security.md B5): type the digits in a picture.

Made on our own server with Pillow, so it works in mainland China, without JavaScript and on
any phone that shows a PNG (no Google, no third-party origin). A ticket binds one picture to
one join attempt: it holds a random nonce, the expiry and an HMAC of (nonce, attempt, answer),
never the answer. Each nonce may be answered once (the caller spends it in the limiter's
store, shared by every worker), right or wrong: a wrong answer gets a fresh picture.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from app.services import crypto
from app.services.posters.fonts import PosterFontError, find_fonts

DIGITS = 4  # 10^4 answers, one try per picture: a blind guess passes once in 10,000
WIDTH, HEIGHT, GLYPH_PX = 176, 64, 40
PURPOSE = b"human-check-v1"


class ChallengeError(Exception):
    """Base for every reason an answer is not accepted."""


class ChallengeExpired(ChallengeError):
    """No picture, another attempt's picture, or one older than its time to live."""


class ChallengeUsed(ChallengeError):
    """This picture was already answered (a replay)."""


class ChallengeWrong(ChallengeError):
    """The digits do not match."""


@dataclass(frozen=True)
class Ticket:
    """What the caller keeps (e.g. in the session): no answer in it, only its keyed hash."""

    nonce: str
    mac: str
    expires_at: float  # seconds since the epoch

    def as_dict(self) -> dict[str, object]:
        return {"n": self.nonce, "m": self.mac, "e": self.expires_at}

    @classmethod
    def from_dict(cls, data: object) -> Ticket | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["n"]), str(data["m"]), float(data["e"]))
        except (KeyError, TypeError, ValueError):
            return None


def new_answer() -> str:
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def answer_mac(key: str, nonce: str, bound_to: str, answer: str) -> str:
    derived = hmac.new(key.encode(), PURPOSE, hashlib.sha256).digest()
    return hmac.new(derived, f"{nonce}\x00{bound_to}\x00{answer}".encode(), hashlib.sha256).hexdigest()


def issue(key: str, bound_to: str, *, now: float, ttl: int, font_setting: str = "") -> tuple[Ticket, bytes]:
    """A new ticket for `bound_to` (a join attempt id) and its picture as PNG bytes."""
    answer, nonce = new_answer(), secrets.token_urlsafe(16)
    ticket = Ticket(nonce, answer_mac(key, nonce, bound_to, answer), now + ttl)
    return ticket, render(answer, font_setting)


def verify(
    ticket: Ticket | None, answer: str, *, key: str, bound_to: str, now: float, spend: Callable[[str], bool]
) -> None:
    """Accept the answer once, or raise a ChallengeError. `spend(nonce)` is True only the first time."""
    if ticket is None or now >= ticket.expires_at:
        raise ChallengeExpired()
    if not spend(ticket.nonce):
        raise ChallengeUsed()
    given = "".join(ch for ch in answer if not ch.isspace())
    if not crypto.equal(ticket.mac, answer_mac(key, ticket.nonce, bound_to, given)):
        raise ChallengeWrong()


def render(answer: str, font_setting: str = "") -> bytes:
    """The digits, each turned and shifted, over noise lines and dots; a wave bends the whole."""
    rng = secrets.SystemRandom()
    image = Image.new("L", (WIDTH, HEIGHT), 255)
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        draw.line(
            [(rng.randrange(WIDTH), rng.randrange(HEIGHT)) for _ in range(2)], fill=rng.randrange(90, 170), width=2
        )
    step = WIDTH // (len(answer) + 1)
    for n, digit in enumerate(answer):
        glyph = _glyph(digit, _font(font_setting), rng.uniform(-28, 28))
        image.paste(
            0, (step * n + step // 2 + rng.randrange(-4, 5), rng.randrange(0, HEIGHT - glyph.height + 1)), glyph
        )
    for _ in range(120):
        draw.point((rng.randrange(WIDTH), rng.randrange(HEIGHT)), fill=rng.randrange(0, 200))
    out = io.BytesIO()
    _wave(image, rng.uniform(2.0, 3.5), rng.uniform(18, 30)).save(out, "PNG", optimize=True)
    return out.getvalue()


def _font(font_setting: str) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return find_fonts(font_setting).bold.at(GLYPH_PX)
    except (PosterFontError, OSError):
        return ImageFont.load_default(GLYPH_PX)  # digits only: Pillow's own font will do


def _glyph(digit: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, angle: float) -> Image.Image:
    mask = Image.new("L", (GLYPH_PX, GLYPH_PX + 8), 0)
    ImageDraw.Draw(mask).text((GLYPH_PX // 2, (GLYPH_PX + 8) // 2), digit, font=font, fill=255, anchor="mm")
    return mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def _wave(image: Image.Image, amplitude: float, period: float) -> Image.Image:
    """Shift each column up or down along a sine: straight-line OCR no longer lines up."""
    bent = Image.new("L", image.size, 255)
    phase = secrets.SystemRandom().uniform(0, 2 * math.pi)
    for x in range(image.width):
        dy = round(amplitude * math.sin(phase + x / period * 2 * math.pi))
        bent.paste(image.crop((x, 0, x + 1, image.height)), (x, dy))
    return bent
