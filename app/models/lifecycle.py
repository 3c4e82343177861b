"""Membership after the application: transfers between districts, questions, the one appeal, send-backs."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.models.core import enum_column, utcnow


class TransferStatus(enum.StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class Transfer(SQLModel, table=True):
    """An approved member's move to another district (会员关系转接), asked by the worker or an official.

    Decided once by the receiving district. The member row keeps its id and join date; on approval
    its district, station and member number change, and this row keeps both numbers (the history).
    """

    __table_args__ = (Index("ix_transfer_to_status_created", "to_district_id", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True, ondelete="CASCADE")
    from_district_id: int = Field(foreign_key="district.id", index=True)
    to_district_id: int = Field(foreign_key="district.id")
    to_workplace_id: int | None = Field(default=None, foreign_key="workplace.id")
    status: TransferStatus = Field(
        default=TransferStatus.pending, sa_column=enum_column(TransferStatus, "transfer_status")
    )
    # The member's id while pending, NULL once decided: unique, so a member has at most one pending
    # transfer on both databases (NULLs never collide) without a partial index.
    open_member_id: int | None = Field(default=None, unique=True)
    started_by: str = Field(max_length=16)  # "worker" (a poster of the new district) or "official"
    requested_by_id: int | None = Field(default=None, foreign_key="user.id")
    reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
    decided_by_id: int | None = Field(default=None, foreign_key="user.id")
    reject_reason: str | None = Field(default=None, max_length=500)
    from_member_number: str | None = Field(default=None, max_length=40)
    to_member_number: str | None = Field(default=None, max_length=40)


class MemberQuestion(SQLModel, table=True):
    """An official's question to an applicant ("needs more information") and the answer.

    Both texts are personal: AES-GCM ciphertext, like names (app/services/crypto.py).
    """

    __tablename__ = "member_question"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True, ondelete="CASCADE")
    asked_by_id: int | None = Field(default=None, foreign_key="user.id")
    asked_at: datetime = Field(default_factory=utcnow)
    question_enc: str
    answer_enc: str | None = None
    answered_at: datetime | None = None


class Appeal(SQLModel, table=True):
    """A rejected applicant's one appeal: the application is pending again, on the escalation queue."""

    __tablename__ = "appeal"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", unique=True, ondelete="CASCADE")
    appealed_at: datetime = Field(default_factory=utcnow)
    text_enc: str
    rejected_at: datetime | None = None
    rejected_by_id: int | None = Field(default=None, foreign_key="user.id")
    closed_at: datetime | None = None


class EscalationReturn(SQLModel, table=True):
    """A federation admin sent an escalated application back to its district with a note.

    The deadline counts again from `returned_at`. The note may name the applicant: ciphertext.
    """

    __tablename__ = "escalation_return"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True, ondelete="CASCADE")
    returned_by_id: int | None = Field(default=None, foreign_key="user.id")
    returned_at: datetime = Field(default_factory=utcnow)
    note_enc: str
