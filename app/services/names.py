"""The keyed index of a member's full name: the roster finds a name without decrypting a row.

`member.name_index` is an HMAC-SHA256 under `PII_INDEX_KEY` (purpose "name", apart from the
phone's) of the name normalised so that what an official types matches what the worker typed:
NFKC (full-width letters and digits become plain ones), every space and name separator dropped
(姓名 written "王 小明" or a minority name written with "·", "・" or "."), case folded (Latin
names). Only the whole name is indexed: no surname and no character pairs, because those fall
to frequency analysis by whoever holds the database (docs/security.md, "What the name index
reveals"). A name search is therefore exact on the whole name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session, col

from app.models import Member
from app.services.crypto import PiiCipher

PURPOSE = "name"
# Whitespace and the separators of transcribed names: middle dot, katakana middle dot, bullet,
# hyphenation point, full stop (full-width forms become these under NFKC).
_SEPARATORS = re.compile(r"[\s\u00b7\u30fb\u2022\u2027\u2e31.]+")


def normalize(name: str) -> str:
    """The form of a name that is indexed and searched: NFKC, no spaces or separators, casefolded."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", name)).casefold()


def index(pii: PiiCipher, name: str) -> str | None:
    """The name's keyed index; None for a name that normalises to nothing (it matches no one)."""
    text = normalize(name)
    return pii.index(text, purpose=PURPOSE) if text else None


def missing(session: Session) -> int:
    """Members whose name is not indexed yet (from before migration 0013)."""
    return int(session.execute(select(func.count()).where(col(Member.name_index).is_(None))).scalar_one())


def reindex(session: Session, pii: PiiCipher, *, size: int, everything: bool = False) -> Iterator[int]:
    """Index the names of members without one (`everything`: of every member), `size` a batch.

    Yields the rows of each batch after flushing it: the caller commits there, so a run that stops
    goes on from where it was when started again. A name changed meanwhile (a rejected applicant
    applying again) is left to the writer that changed it: the update matches the ciphertext read."""
    write = (
        update(Member)
        .where(col(Member.id) == bindparam("b_id"), col(Member.name_enc) == bindparam("b_enc"))
        .values(name_index=bindparam("b_index"))
        .execution_options(synchronize_session=False)
    )
    after = 0
    while True:
        stmt = select(col(Member.id), col(Member.name_enc)).where(col(Member.id) > after)
        if not everything:
            stmt = stmt.where(col(Member.name_index).is_(None))
        rows = session.execute(stmt.order_by(col(Member.id)).limit(size)).all()
        if not rows:
            return
        values = [{"b_id": i, "b_enc": enc, "b_index": index(pii, pii.decrypt(enc))} for i, enc in rows]
        session.connection().execute(write, values)
        after = rows[-1][0]
        yield len(rows)
