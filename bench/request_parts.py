"""Where a cached scan page's time goes, part by part, inside one process.

    .venv/bin/python -m bench.request_parts [--requests 3000]

Every before/after/teardown hook of the app, the session's open and save, and the view are
wrapped with a clock, and the median of each part is printed after the first 500 requests
(warm-up). First visits (no cookie) of a cached page are answered before Flask's cycle
(app/web/worker/first_visit.py): their whole WSGI call is one line. The parts are those of the
same page through Flask's cycle, for requests that carry an unrelated cookie (so Flask opens an
empty session and does what a first visit cost before that layer). Baseline in the same run: the
whole WSGI call of hello-world Flask. Not in `make bench` (a diagnosis, not a target): it
explains bench.scan_page. The wrappers add ~1-2 µs to each part.
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import prepare, report, server_env

WARM_UP = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    from app import create_app
    from bench.hello import app as hello

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = server_env(f"sqlite:///{work / 'parts.db'}", work)
        path = prepare(env, 1)[0]
        app = create_app(env=env)
        spent: dict[str, list[int]] = collections.defaultdict(list)
        _instrument(app, spent)
        client = app.test_client(use_cookies=False)
        first: dict[str, list[int]] = collections.defaultdict(list)
        whole = app.wsgi_app
        app.wsgi_app = _clocked(whole, "first visit, answered before Flask: whole WSGI call", first)  # type: ignore[method-assign]
        for _ in range(args.requests):
            assert client.get(path).status_code == 200
        app.wsgi_app = whole  # type: ignore[method-assign]
        for _ in range(args.requests):
            assert client.get(path, headers={"Cookie": "other=1"}).status_code == 200
        app.extensions["funnel"].flush()
        app.extensions["db_engine"].dispose()
    base: dict[str, list[int]] = collections.defaultdict(list)
    hello.wsgi_app = _clocked(hello.wsgi_app, "whole WSGI call", base)  # type: ignore[method-assign]
    hello_client = hello.test_client(use_cookies=False)
    for _ in range(args.requests):
        hello_client.get("/")
    rows = [("baseline: hello-world, whole WSGI call", f"{_median(base['whole WSGI call']):.0f} µs")]
    rows += [(name, f"{_median(times):.0f} µs") for name, times in first.items()]
    rows.append(("through Flask's cycle (an unrelated cookie sent):", ""))
    for name, times in sorted(spent.items(), key=lambda item: -_median(item[1])):
        rows.append((name, f"{_median(times):.0f} µs"))
    report("A cached scan page (first visits), median of each part", rows)


def _instrument(app: Any, spent: dict[str, list[int]]) -> None:
    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        for key, functions in hooks.items():
            hooks[key] = [_clocked(f, _name(f), spent) for f in functions]
    interface = app.session_interface
    interface.open_session = _clocked(interface.open_session, "session: open", spent)
    interface.save_session = _clocked(interface.save_session, "session: save", spent)
    app.view_functions["join.scan"] = _clocked(app.view_functions["join.scan"], "view join.scan", spent)
    app.wsgi_app = _clocked(app.wsgi_app, "whole WSGI call", spent)  # (the call without the cookie shortcut)


def _name(function: Any) -> str:
    inner = getattr(function, "func", function)  # functools.partial
    return "hook: " + getattr(inner, "__qualname__", repr(inner))[:60]


def _clocked(function: Callable[..., Any], name: str, spent: dict[str, list[int]]) -> Callable[..., Any]:
    @functools.wraps(function)
    def clocked(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name].append(time.perf_counter_ns() - started)

    return clocked


def _median(times: list[int]) -> float:
    return statistics.median(times[WARM_UP:] or times) / 1000


if __name__ == "__main__":
    main()
