"""What the service owes others: the SMS outbox, webhook endpoints and their deliveries, group robots."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.models.core import utcnow


class Delivery(SQLModel, table=True):
    """A side effect the database owes someone (the transactional outbox): written in the same
    transaction as the change that asks for it, deleted once done (app/services/tasks.py).

    `due_at` is when a sweep may hand it to a consumer: a little after the commit for a new row
    (the commit's own wake-up normally comes first), the end of the lease while a consumer holds
    it, the next try after a temporary failure."""

    __tablename__ = "delivery"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # "join_code", "notice"
    owner_id: str = Field(max_length=64)  # the join attempt's or the member's id
    code_enc: str | None = None  # a join code, encrypted like names; None when the provider makes it
    attempts: int = Field(default=0)
    due_at: datetime = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)

    __table_args__ = (Index("ix_delivery_kind_owner", "kind", "owner_id"),)


class WebhookEndpoint(SQLModel, table=True):
    """A receiver of signed event POSTs (Standard Webhooks). Its secret is stored encrypted."""

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # None: every district's events; else only this district's.
    district_id: int | None = Field(default=None, foreign_key="district.id", index=True, ondelete="CASCADE")
    secret_enc: str
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint: the body sent (ids, codes, times: no name or phone) and how it went.
    `id` is the `webhook-id` header, the same on every retry, so a receiver can drop repeats."""

    __tablename__ = "webhook_delivery"

    id: str = Field(primary_key=True, max_length=40)
    endpoint_id: int = Field(foreign_key="webhook_endpoint.id", index=True, ondelete="CASCADE")
    member_id: int = Field(index=True)  # whom it tells of; no foreign key: a withdrawn member's row goes, its log stays
    event_type: str = Field(max_length=40)
    payload: str
    status: str = Field(default="pending", max_length=16)  # pending, delivered, failed
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


class ChatRobot(SQLModel, table=True):
    """A district's WeCom (企业微信) or DingTalk group robot; its URL (which holds the robot's key)
    and DingTalk's signing secret are stored encrypted."""

    __tablename__ = "chat_robot"

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=16)  # wecom, dingtalk
    url_enc: str
    secret_enc: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ExportJob(SQLModel, table=True):
    """A roster export prepared by the consumer (app/services/export_jobs.py): written in the
    request's transaction, run by `flask worker`, its file kept under the instance folder until
    EXPORT_RETENTION_HOURS after it is done.

    `filters_enc` is the filter's query arguments, encrypted like names (a search may be a name);
    `filter_shape` is what an audit row may hold (RosterFilter.describe()). `scope` is the district
    ids of the user when the job was asked for (None: an admin, every district). `layout` holds the
    header and words in the user's language, so the consumer needs no request. `due_at` is when a
    sweep may hand the job to a consumer: a little after the commit while queued, the end of the
    lease while running (renewed with each step of progress)."""

    __tablename__ = "export_job"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    scope: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    filters_enc: str
    filter_shape: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    layout: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    format: str = Field(max_length=8)  # "csv", "xlsx"
    status: str = Field(default="queued", max_length=16)  # queued, running, done, failed, expired
    rows_done: int = Field(default=0)
    rows_total: int | None = None
    file_path: str | None = Field(default=None, max_length=255)  # relative to the exports folder
    error: str | None = Field(default=None, max_length=64)  # a kind, never a message
    attempts: int = Field(default=0)
    due_at: datetime = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
