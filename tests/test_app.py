"""The app class: Flask with `ensure_sync` answered once per function."""

from __future__ import annotations

import pytest
from flask import Flask

from app import ScanJoinFlask


def test_the_app_is_a_scanjoin_flask(app: Flask) -> None:
    assert isinstance(app, ScanJoinFlask)


def test_a_plain_function_is_asked_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    app = ScanJoinFlask(__name__)
    asked: list[object] = []
    original = Flask.ensure_sync

    def counting(self: Flask, func):  # type: ignore[no-untyped-def]
        asked.append(func)
        return original(self, func)

    def view() -> str:
        return "ok"

    monkeypatch.setattr(Flask, "ensure_sync", counting)
    assert app.ensure_sync(view) is view and app.ensure_sync(view) is view
    assert asked == [view]


def test_a_coroutine_function_is_still_refused_or_wrapped_as_flask_does() -> None:
    app = ScanJoinFlask(__name__)

    async def view() -> str:
        return "ok"

    try:
        import asgiref  # noqa: F401
    except ImportError:
        for _ in range(2):  # not remembered as a plain function after the first refusal
            with pytest.raises(RuntimeError, match="async"):
                app.ensure_sync(view)
    else:
        wrapped = app.ensure_sync(view)
        assert wrapped is not view and wrapped() == "ok"


def test_unhashable_callables_and_a_full_cache_are_asked_every_time() -> None:
    app = ScanJoinFlask(__name__)

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> str:
            return "ok"

    thing = Unhashable()
    assert app.ensure_sync(thing) is thing
    app.SYNC_CACHE_SIZE = 1
    first, second = (lambda: 1), (lambda: 2)
    assert app.ensure_sync(first) is first and app.ensure_sync(second) is second
    assert len(app._sync_functions) == 1
