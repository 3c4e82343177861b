"""Rendered join pages kept for a few seconds, per process, with per-visitor parts left blank.

A poster's page is the same for everyone who scans it but for two values: the CSRF token and
the form's idempotency key. The page is rendered once with placeholders for those and filled in
per request, so a poster scanned by a crowd costs a dictionary lookup instead of a database
read and a template render.

What may change the page (a place renamed, rotated, revoked, a station added to a district) is
caught two ways: any flush that touches a District or Workplace in this process empties the
cache at once (`places_changed`), and every entry expires after `ttl` seconds, the longest a
change made on another server can take to show here. The form's POST always reads the database,
so a revoked poster can never start a join, cached page or not.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

_generation = 0


def places_changed() -> None:
    """Forget every cached page (called when a place changes in this process)."""
    global _generation
    _generation += 1


@dataclass(frozen=True)
class Page:
    """A rendered body with placeholders, and what the view needs to serve it without the database."""

    body: str
    extra: Any
    expires: float
    generation: int


class PageCache:
    """A bounded least-recently-used map from a request's key to a `Page`, thread-safe."""

    def __init__(self, ttl: float, size: int = 2048) -> None:
        self.ttl, self.size = ttl, size
        self.pages: OrderedDict[Hashable, Page] = OrderedDict()
        self.lock = threading.Lock()
        # Random per process, so no text a user can submit could ever equal a placeholder.
        tag = secrets.token_hex(12)
        self.placeholders = {name: f"@@{name}-{tag}@@" for name in ("csrf_token", "form_key")}

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, key: Hashable) -> Page | None:
        with self.lock:
            page = self.pages.get(key)
            if page is None:
                return None
            if page.generation != _generation or page.expires <= time.monotonic():
                del self.pages[key]
                return None
            self.pages.move_to_end(key)
            return page

    def put(self, key: Hashable, body: str, extra: Any, generation: int) -> Page:
        """Keep `body`; `generation` is the one read before the data behind it was read."""
        page = Page(body, extra, time.monotonic() + self.ttl, generation)
        with self.lock:
            self.pages[key] = page
            self.pages.move_to_end(key)
            while len(self.pages) > self.size:
                self.pages.popitem(last=False)
        return page

    def fill(self, page: Page, **values: str) -> str:
        body = page.body
        for name, value in values.items():
            body = body.replace(self.placeholders[name], value)
        return body


def generation() -> int:
    return _generation


def watch_places() -> None:
    """Empty the caches whenever a session flushes a change to a district or workplace."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def _after_flush(session: Session, _context: object) -> None:
    from app.models import District, Workplace

    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, District | Workplace):
            places_changed()
            return
