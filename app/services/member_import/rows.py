"""Reading a register: the file decoded and parsed, every row checked and its outcome decided."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlmodel import Session, col

from app.models import District, Member, Platform, Workplace
from app.services.crypto import PiiCipher
from app.services.phones import PhoneInvalid, normalize

MAX_NAME = 50
LOOKUP_CHUNK = 500
PROGRESS_EVERY = 1000
NUMBER_RE = re.compile(r"^(?P<code>[A-Za-z0-9_-]{1,32})-(?P<seq>[0-9]{6})$")
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")

# Header names accepted for each column (English as documented, and what a Chinese sheet says).
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "姓名"),
    "phone": ("phone", "mobile", "手机", "手机号", "手机号码", "电话"),
    "district": ("district", "区", "地区", "工会"),
    "workplace": ("workplace", "station", "站点", "工作站点"),
    "platform": ("platform", "平台"),
    "join_date": ("join_date", "joined", "入会日期", "入会时间"),
    "member_number": ("member_number", "number", "会员编号", "会员号"),
}
REQUIRED = ("name", "phone", "district")
PLATFORM_ALIASES: dict[str, Platform] = {p.value: p for p in Platform} | {
    "美团": Platform.meituan,
    "饿了么": Platform.eleme,
    "ele.me": Platform.eleme,
    "滴滴": Platform.didi,
    "货拉拉": Platform.huolala,
    "闪送": Platform.shansong,
    "顺丰同城": Platform.sf_intra_city,
    "其他": Platform.other,
    "": Platform.other,
}

# Outcomes of a row.
IMPORTED, WOULD_IMPORT = "imported", "would_import"
DUPLICATE_EXISTING, DUPLICATE_IN_FILE, REJECTED = "duplicate_existing", "duplicate_in_file", "rejected"


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, header); `reason` is a code, `detail` safe to show."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class Row:
    """One data row of the file and what the import does with it."""

    number: int  # the spreadsheet row (the header is row 1)
    outcome: str = REJECTED
    reason: str = ""
    masked_phone: str = ""
    member_number: str = ""
    # Only for rows that will be written (never reported):
    name: str = ""
    phone: str = ""
    phone_index: str = ""
    district_id: int = 0
    workplace_id: int | None = None
    platform: Platform = Platform.other
    joined: date | None = None
    wanted_number: int | None = None  # the file's number, kept when the plan allows


@dataclass
class Plan:
    rows: list[Row]
    districts: dict[int, str]  # id -> code of the districts with rows to write
    counters: dict[int, int] = field(default_factory=dict)  # district id -> member_seq when planned
    kept: dict[int, set[int]] = field(default_factory=dict)  # district id -> file numbers to keep

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((IMPORTED, WOULD_IMPORT, DUPLICATE_EXISTING, DUPLICATE_IN_FILE, REJECTED), 0)
        for row in self.rows:
            counts[row.outcome] += 1
        return counts

    def pending(self) -> list[Row]:
        return [row for row in self.rows if row.outcome == WOULD_IMPORT]


def decode(data: bytes, encoding: str = "auto") -> str:
    """The file's text: UTF-8 (with or without Excel's BOM), else GBK (Chinese Excel's "CSV")."""
    if encoding != "auto":
        # GB18030 reads every GBK file, and the rarer characters of names GBK lacks.
        name = encoding.lower().replace("_", "-")
        codec = {"utf-8": "utf-8-sig", "utf8": "utf-8-sig", "gbk": "gb18030"}.get(name, encoding)
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ImportFileError("encoding", encoding) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is GBK's superset: what "CSV" from a Chinese Excel or WPS is written in.
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise ImportFileError("encoding", "neither UTF-8 nor GBK") from exc


def masked(e164: str) -> str:
    """`138****0000`: the national number's first three and last four digits."""
    national = e164[3:] if e164.startswith("+86") else e164.lstrip("+")
    return f"{national[:3]}****{national[-4:]}"


def plan(
    session: Session,
    text: str,
    *,
    pii: PiiCipher,
    allowed_regions: list[str],
    today: date,
    progress: Callable[[int], None] = lambda _rows: None,
) -> Plan:
    """Decide every row's outcome (nothing is written); `progress(n)` after each n rows read."""
    records = csv.reader(io.StringIO(text))
    try:
        columns = _columns(next(records, []))
        places = _Places(session)
        rows = []
        for n, record in _data(records):
            rows.append(_parse(n, record, columns, places, pii, allowed_regions, today))
            if len(rows) % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
    except csv.Error as exc:  # a cell over csv's 128 KiB limit: not a register
        raise ImportFileError("format", str(records.line_num)) from exc
    _mark_duplicates(session, rows)
    result = Plan(rows, {d_id: places.district_codes[d_id] for d_id in {r.district_id for r in result_rows(rows)}})
    _plan_numbers(session, result)
    return result


def result_rows(rows: list[Row]) -> list[Row]:
    return [row for row in rows if row.outcome == WOULD_IMPORT]


def _data(records: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    for number, record in enumerate(records, start=2):
        if record and any(cell.strip() for cell in record):
            yield number, record


def _columns(header: list[str]) -> dict[str, int]:
    names = [cell.strip().lower() for cell in header]
    found: dict[str, int] = {}
    for column, aliases in COLUMNS.items():
        for alias in aliases:
            if alias in names:
                found[column] = names.index(alias)
                break
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise ImportFileError("header", ", ".join(missing))
    return found


class _Places:
    """Districts by code or name, workplaces by code or name within their district (read once)."""

    def __init__(self, session: Session) -> None:
        districts = session.execute(select(col(District.id), col(District.code), col(District.name))).all()
        self.district_codes = {d_id: code for d_id, code, _ in districts}
        self.districts = {code.lower(): d_id for d_id, code, _ in districts} | {
            name: d_id for d_id, _, name in districts
        }
        workplaces = session.execute(
            select(col(Workplace.id), col(Workplace.code), col(Workplace.name), col(Workplace.district_id))
        ).all()
        self.workplaces = {code.lower(): (w_id, d_id) for w_id, code, _, d_id in workplaces}
        self.workplace_names = {(d_id, name): w_id for w_id, _, name, d_id in workplaces}

    def district(self, text: str) -> int | None:
        return self.districts.get(text.lower()) or self.districts.get(text)

    def workplace(self, text: str, district_id: int) -> int | None:
        """The workplace's id; raise ValueError when it is unknown or in another district."""
        by_code = self.workplaces.get(text.lower())
        if by_code is not None:
            if by_code[1] != district_id:
                raise ValueError("workplace_other_district")
            return by_code[0]
        by_name = self.workplace_names.get((district_id, text))
        if by_name is None:
            raise ValueError("unknown_workplace")
        return by_name


def _cell(record: list[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    return record[index].strip() if index is not None and index < len(record) else ""


def _has_control(text: str) -> bool:
    """Control and format characters (Cc, Cf, line breaks, bidi overrides); the wide and no-break
    spaces a spreadsheet may hold are fine. `isprintable` is one C loop (100,000 rows × 7 cells)."""
    return not text.replace("\u3000", " ").replace("\xa0", " ").isprintable()


def _parse(
    number: int,
    record: list[str],
    columns: dict[str, int],
    places: _Places,
    pii: PiiCipher,
    allowed_regions: list[str],
    today: date,
) -> Row:
    row = Row(number)
    try:
        _fill(row, record, columns, places, allowed_regions, today)
    except ValueError as exc:
        row.outcome, row.reason = REJECTED, str(exc)
        row.name = row.phone = ""  # nothing of a rejected row is kept
        return row
    row.phone_index = pii.index(row.phone)
    row.outcome = WOULD_IMPORT
    return row


def _fill(
    row: Row, record: list[str], columns: dict[str, int], places: _Places, regions: list[str], today: date
) -> None:
    cells = {name: _cell(record, columns, name) for name in COLUMNS}
    if any(_has_control(value) for value in cells.values()):
        raise ValueError("control_characters")
    row.name = unicodedata.normalize("NFC", cells["name"])
    if not row.name:
        raise ValueError("missing_name")
    if len(row.name) > MAX_NAME:
        raise ValueError("name_too_long")
    try:
        row.phone = normalize(cells["phone"], regions)
    except PhoneInvalid as exc:
        raise ValueError(f"phone_{exc.reason}") from exc
    row.masked_phone = masked(row.phone)
    _fill_place(row, cells, places)
    platform = PLATFORM_ALIASES.get(cells["platform"].lower())
    if platform is None:
        raise ValueError("unknown_platform")
    row.platform = platform
    row.joined = _join_date(cells["join_date"], today)
    row.wanted_number = _wanted_number(cells["member_number"], places.district_codes[row.district_id])


def _fill_place(row: Row, cells: dict[str, str], places: _Places) -> None:
    district_id = places.district(cells["district"]) if cells["district"] else None
    if district_id is None:
        raise ValueError("missing_district" if not cells["district"] else "unknown_district")
    row.district_id = district_id
    if cells["workplace"]:
        row.workplace_id = places.workplace(cells["workplace"], district_id)


def _join_date(text: str, today: date) -> date:
    if not text:
        return today
    for fmt in DATE_FORMATS:
        try:
            joined = datetime.strptime(text.split(" ")[0], fmt).date()  # noqa: DTZ007 - a calendar day
        except ValueError:
            continue
        if date(1900, 1, 1) <= joined <= today:
            return joined
        break
    raise ValueError("bad_date")


def _wanted_number(text: str, district_code: str) -> int | None:
    match = NUMBER_RE.match(text)
    if not match or match["code"] != district_code or int(match["seq"]) == 0:
        return None
    return int(match["seq"])


def _mark_duplicates(session: Session, rows: list[Row]) -> None:
    """Same phone as an existing member, or as an earlier row of the file: reported, not written."""
    seen: dict[str, int] = {}
    candidates = [row for row in rows if row.outcome == WOULD_IMPORT]
    for row in candidates:
        first = seen.setdefault(row.phone_index, row.number)
        if first != row.number:
            row.outcome, row.reason = DUPLICATE_IN_FILE, f"same_phone_as_row_{first}"
    indexes = list(seen)
    existing: set[str] = set()
    for start in range(0, len(indexes), LOOKUP_CHUNK):
        chunk = indexes[start : start + LOOKUP_CHUNK]
        existing.update(
            session.execute(select(col(Member.phone_index)).where(col(Member.phone_index).in_(chunk))).scalars()
        )
    for row in candidates:
        if row.outcome == WOULD_IMPORT and row.phone_index in existing:
            row.outcome, row.reason = DUPLICATE_EXISTING, "phone_already_member"


def _plan_numbers(session: Session, result: Plan) -> None:
    """Which file numbers to keep: above the district's counter now, and once in the file."""
    if not result.districts:
        return
    counters = session.execute(
        select(col(District.id), col(District.member_seq)).where(col(District.id).in_(result.districts))
    )
    result.counters = dict(counters.all())
    seen: set[tuple[int, int]] = set()
    for row in result.pending():
        wanted = row.wanted_number
        if wanted is None or wanted <= result.counters[row.district_id] or (row.district_id, wanted) in seen:
            row.wanted_number = None
            continue
        seen.add((row.district_id, wanted))
        result.kept.setdefault(row.district_id, set()).add(wanted)


def member_number(district_code: str, seq: int) -> str:
    return f"{district_code}-{seq:06d}"
