"""District group-chat robots: WeCom (企业微信) and DingTalk (钉钉) custom robots.

A district may connect a robot of each kind (`flask --app wsgi robots set`). Its officials' group
then hears of each new application and, once a day (`flask --app wsgi robots digest`, from cron),
of the applications past their deadline. A message holds counts and the station's name only,
never a name, phone or member number.

Both robots take `{"msgtype": "text", "text": {"content": …}}` by POST to their webhook URL and
answer `{"errcode": 0, "errmsg": "ok"}`. WeCom's URL is
`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`; DingTalk's is
`https://oapi.dingtalk.com/robot/send?access_token=…` and, for a robot with 加签 (signing), gets
`&timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256 of "timestamp\\nsecret" under the secret>`.
Each robot takes at most 20 messages a minute (WeCom errcode 45009, DingTalk 130101): those are
retried. Messages are rows of the outbox (app/services/tasks.py), written with the application's
commit and sent by the consumer. URLs (they hold the robot's key) and secrets are stored encrypted; both pass the same
SSRF guard as webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta
from urllib.parse import quote_plus

from sqlalchemy import delete
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, func, select

from app.models import ChatRobot, Delivery, District, Member, MemberStatus, Workplace, utcnow
from app.services import audit, deadlines, events, tasks
from app.services.crypto import PiiCipher
from app.services.webhooks import Settings, transport
from app.services.webhooks.delivery import Owed

log = logging.getLogger(__name__)

KINDS = ("wecom", "dingtalk")
KIND = "robot"  # the outbox's kind
BUSY = {45009, 130101}  # too many messages this minute: try again
RETRIES, RETRY_DELAY = 5, 30


class RobotError(ValueError):
    """Bad input for a robot (the message says what to change)."""


def dingtalk_signed(url: str, secret: str, now_ms: int) -> str:
    """DingTalk's signed URL: `timestamp` and `sign` appended (their custom robot docs)."""
    digest = hmac.new(secret.encode(), f"{now_ms}\n{secret}".encode(), hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={now_ms}&sign={sign}"


def text_body(content: str) -> bytes:
    return json.dumps({"msgtype": "text", "text": {"content": content}}, ensure_ascii=False).encode()


def connect(
    session: Session,
    pii: PiiCipher,
    district_code: str,
    kind: str,
    url: str,
    secret: str | None,
    *,
    allow_private: bool,
) -> ChatRobot:
    """Connect (or replace) the district's robot of `kind`. Raises RobotError or transport.UrlRefused."""
    if kind not in KINDS:
        raise RobotError(f"kind must be one of {', '.join(KINDS)}")
    if secret and kind != "dingtalk":
        raise RobotError("only a DingTalk robot is signed with a secret")
    transport.check_url(url.strip(), allow_private=allow_private)
    district = session.exec(select(District).where(District.code == district_code.strip().upper())).first()
    if district is None:
        raise RobotError(f"no district with code {district_code.strip().upper()}")
    session.execute(delete(ChatRobot).where(col(ChatRobot.district_id) == district.id, col(ChatRobot.kind) == kind))
    robot = ChatRobot(
        district_id=district.id or 0,
        kind=kind,
        url_enc=pii.encrypt(url.strip()),
        secret_enc=pii.encrypt(secret) if secret else None,
    )
    session.add(robot)
    session.flush()
    audit.record(
        session, "robot.connect", target_type="chat_robot", target_id=robot.id, district=district.code, kind=kind
    )
    return robot


def listed(session: Session) -> list[tuple[ChatRobot, str]]:
    query = select(ChatRobot, District.code).join(District, col(District.id) == col(ChatRobot.district_id))
    return [(robot, code) for robot, code in session.exec(query.order_by(col(ChatRobot.id)))]


def remove(session: Session, robot_id: int) -> None:
    robot = session.get(ChatRobot, robot_id)
    if robot is None:
        raise RobotError(f"no robot with id {robot_id}")
    session.delete(robot)
    session.flush()
    audit.record(session, "robot.remove", target_type="chat_robot", target_id=robot_id)


def pending_count(session: OrmSession, district_id: int) -> int:
    query = select(func.count()).where(Member.district_id == district_id, Member.status == MemberStatus.pending)
    return int(session.execute(query).scalar_one())


def new_application_text(session: OrmSession, member: Member) -> str:
    district = session.get(District, member.district_id)
    station = session.get(Workplace, member.workplace_id) if member.workplace_id else None
    place = station.name if station else (district.name if district else "")
    pending = pending_count(session, member.district_id)
    return f"新入会申请 1 份（{place}）。本区待审核共 {pending} 份，请登录名册处理。"


def overdue_counts(session: Session, now: datetime, days: int) -> dict[int, int]:
    """Each district with a robot and applications past the deadline: how many."""
    cutoff = deadlines.overdue_cutoff(now, days)
    query = (
        select(Member.district_id, func.count())
        .where(Member.status == MemberStatus.pending, col(Member.created_at) < cutoff)
        .where(col(Member.district_id).in_(select(ChatRobot.district_id)))
        .group_by(col(Member.district_id))
    )
    return {district_id: int(count) for district_id, count in session.exec(query)}


def digest_text(count: int, days: int) -> str:
    return f"逾期提醒：本区有 {count} 份入会申请已超过 {days} 个工作日未审批，请尽快处理。"


class Robots:
    """The robots' writer, wake-up and sender of one app, on its outbox (app/services/tasks.py).

    An outbox row of kind `robot` is owned by `new:<member id>:<robot id>` (a new application:
    the text is made when sent, with the pending count then) or `digest:<robot id>:<count>:<days>`.
    """

    def __init__(self, outbox: tasks.Deliveries, pii: PiiCipher, settings: Settings) -> None:
        self.outbox, self.pii, self.settings = outbox, pii, settings
        self.owed = Owed()
        outbox.add_kind(KIND, self.send)

    def subscribe(self, bus: events.Bus) -> None:
        bus.subscribe_in_transaction(events.ApplicationSubmitted, self.write)
        bus.subscribe(events.ApplicationSubmitted, self.wake)

    def write(self, db: OrmSession, submitted: events.ApplicationSubmitted) -> None:
        """In the transaction: a message owed to each robot of the application's district."""
        if submitted.outcome not in ("created", "reapplied"):
            return
        query = select(ChatRobot.id).where(ChatRobot.district_id == submitted.district_id)
        due = utcnow() + timedelta(seconds=tasks.GRACE_SECONDS)
        for robot_id in db.execute(query).scalars():
            row = Delivery(kind=KIND, owner_id=f"new:{submitted.member_id}:{robot_id}", due_at=due)
            db.add(row)
            self.owed.add(submitted, row)

    def wake(self, submitted: events.ApplicationSubmitted) -> None:
        """After the commit: wake the consumer for the rows the commit wrote."""
        for row_id in self.owed.take(submitted):
            self.outbox.wake_one(row_id)

    @staticmethod
    def owe_digest(db: Session, now: datetime, days: int) -> list[Delivery]:
        """The overdue digest owed to every robot of a district with overdue applications; the
        caller commits, then wakes the consumer for each row (`outbox.wake_one(row.id)`)."""
        rows = [
            Delivery(kind=KIND, owner_id=f"digest:{robot.id}:{count}:{days}", due_at=now)
            for district_id, count in overdue_counts(db, now, days).items()
            for robot in db.exec(select(ChatRobot).where(ChatRobot.district_id == district_id))
        ]
        db.add_all(rows)
        db.flush()
        return rows

    def send(self, db: OrmSession, row: Delivery) -> str:
        """Post the row's message: "sent", "gone" or "failed"; a busy robot or server raises
        TryLater (RETRIES times, RETRY_DELAY apart)."""
        what, *parts = row.owner_id.split(":")
        robot = db.get(ChatRobot, int(parts[1] if what == "new" else parts[0]))
        if robot is None:
            return "gone"
        if what == "new":
            member = db.get(Member, int(parts[0]))
            if member is None:
                return "gone"  # withdrawn meanwhile
            text = new_application_text(db, member)
        else:
            text = digest_text(int(parts[1]), int(parts[2]))
        url = self.pii.decrypt(robot.url_enc)
        if robot.secret_enc:
            url = dingtalk_signed(url, self.pii.decrypt(robot.secret_enc), int(time.time() * 1000))
        kind, robot_id = robot.kind, robot.id
        db.commit()  # no transaction (on SQLite: no write lock) while the robot answers
        result = transport.post(
            url, text_body(text), {}, timeout=self.settings.timeout, allow_private=self.settings.allow_private
        )
        code = _errcode(result.body) if result.outcome is transport.Outcome.ok else None
        if result.outcome is transport.Outcome.temporary or code in BUSY:
            log.warning("%s robot %s busy or unreachable: %s", kind, robot_id, result.error or code)
            if row.attempts <= RETRIES:
                raise tasks.TryLater("busy", RETRY_DELAY)
            return "failed"
        if result.outcome is transport.Outcome.permanent or code != 0:
            log.error("%s robot %s refused the message: %s", kind, robot_id, result.error or code)
            return "failed"
        return "sent"


def _errcode(answer: bytes) -> int | None:
    try:
        value = json.loads(answer).get("errcode")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
