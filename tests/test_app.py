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


def test_other_callables_are_asked_every_time_and_per_request_ones_are_not_kept() -> None:
    import gc

    app = ScanJoinFlask(__name__)

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> str:
            return "ok"

    thing = Unhashable()
    assert app.ensure_sync(thing) is thing and len(app._sync_functions) == 0

    class View:
        def dispatch(self) -> str:
            return "ok"

    bound = View().dispatch  # a class-based view's bound method: one per request
    assert app.ensure_sync(bound) == bound and len(app._sync_functions) == 1
    del bound
    gc.collect()
    assert len(app._sync_functions) == 0, "nothing made for one request outlives it"
