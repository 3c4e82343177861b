"""Counters the database keeps itself (triggers of migration 0013), read instead of counting rows."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from app.models.core import MemberStatus, enum_column


class DistrictCount(SQLModel, table=True):
    """Members of one district in one status: the roster's tabs without counting rows.

    Written only by the database's triggers on `member` (migration 0013), in the transaction of
    the change; `flask --app wsgi counts rebuild` counts again from the members."""

    __tablename__ = "district_count"

    district_id: int = Field(foreign_key="district.id", primary_key=True, ondelete="CASCADE")
    status: MemberStatus = Field(sa_column=Column(enum_column(MemberStatus, "member_status").type, primary_key=True))
    n: int = Field(default=0, sa_type=BigInteger)
