"""The poster page served from the per-process cache: per-visitor parts, freshness, no database."""

from __future__ import annotations

from sqlalchemy import event

from app.models import utcnow
from app.services import page_cache, places
from tests import factories
from tests.conftest import hidden_fields
from tests.web.test_join import code_from, send_code, submit


def selects_during(app, action):  # type: ignore[no-untyped-def]
    """The SELECT statements `action` makes the app run."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", note)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen


def test_a_cached_page_reads_nothing_from_the_database(app, path):
    first = app.test_client().get(path)
    assert first.status_code == 200
    again = []
    assert selects_during(app, lambda: again.append(app.test_client().get(path))) == []
    assert again[0].status_code == 200 and again[0].text.count("张江美团骑手站") == first.text.count("张江美团骑手站")


def test_every_visitor_gets_their_own_csrf_token_and_form_key(app, path):
    pages = [app.test_client().get(path).text for _ in range(3)]
    fields = [hidden_fields(page) for page in pages]
    assert len({f["csrf_token"] for f in fields}) == 3
    assert len({f["form_key"] for f in fields}) == 3
    assert all("@@" not in page for page in pages), "a placeholder was left in the page"
    # Apart from those two values the pages are the same page.
    blanked = {
        page.replace(f["csrf_token"], "").replace(f["form_key"], "") for page, f in zip(pages, fields, strict=True)
    }
    assert len(blanked) == 1


def test_a_visitor_from_the_cached_page_can_join(app, path, sms, db):
    app.test_client().get(path)  # fills the cache
    client = app.test_client()
    app.config["WTF_CSRF_ENABLED"] = True  # the token filled in must be the visitor's own
    try:
        response = submit(client, path)
        assert response.status_code == 303
        assert send_code(client, code_from(sms)).status_code == 303
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_a_rename_in_this_process_shows_at_once(app, path, station, db):
    assert "张江美团骑手站" in app.test_client().get(path).text
    station.name = "张江饿了么站"
    db.add(station)
    db.commit()
    assert "张江饿了么站" in app.test_client().get(path).text


def test_a_rotated_poster_is_gone_at_once(app, path, station, db):
    assert app.test_client().get(path).status_code == 200
    places.rotate(db, station, now=utcnow())
    db.commit()
    assert app.test_client().get(path).status_code == 410


def test_a_change_elsewhere_shows_within_the_cache_lifetime(app, path, station, monkeypatch):
    assert "张江美团骑手站" in app.test_client().get(path).text
    # Another server renames the station: this process's sessions never see the flush.
    with app.extensions["db_engine"].begin() as conn:
        conn.exec_driver_sql(f"UPDATE workplace SET name = 'renamed elsewhere' WHERE id = {int(station.id)}")
    assert "张江美团骑手站" in app.test_client().get(path).text, "served from the cache"
    later = page_cache.time.monotonic() + app.config["SCAN_PAGE_CACHE_SECONDS"] + 1
    monkeypatch.setattr(page_cache.time, "monotonic", lambda: later)
    assert "renamed elsewhere" in app.test_client().get(path).text


def test_each_scan_is_counted_cached_or_not(app, path, db):
    for _ in range(3):
        app.test_client().get(path)
    from sqlmodel import select

    from app.models import PlaceStat

    [row] = db.exec(select(PlaceStat)).all()
    assert row.scans == 3


def test_no_cache_when_turned_off(env, station):  # type: ignore[no-untyped-def]
    from app import create_app
    from config import TestingConfig

    app = create_app(TestingConfig({**env, "SCAN_PAGE_CACHE_SECONDS": "0"}))
    path = factories.join_path(app, station)
    app.test_client().get(path)
    assert selects_during(app, lambda: app.test_client().get(path)) != []
    app.extensions["db_engine"].dispose()


def test_the_cache_is_bounded():
    cache = page_cache.PageCache(ttl=60, size=3)
    for n in range(5):
        cache.put(n, f"page {n}", None, page_cache.generation())
    assert [cache.get(n) is not None for n in range(5)] == [False, False, True, True, True]
