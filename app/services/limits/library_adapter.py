"""The one place that reaches into the `limits` library's and Flask-Limiter's private names.

`limits`' in-process store has no public hook for its expiry sweeps, so `SweptMemoryStorage`
overrides the name-mangled `MemoryStorage.__schedule_expiry`; Flask-Limiter has no way to keep
its request hooks off a blueprint, so `skip_request_hooks` wraps the three it registers (its
`_check_request_limit`, `__inject_headers` and `__release_context`). Nothing else in the app may use
a private name of `limits` or Flask-Limiter: tests/services/test_limits.py
(test_the_library_still_has_the_private_hook_we_override) fails when an upgrade renames it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from limits.storage import MemoryStorage

# The private method of MemoryStorage, called by every write, that starts the expiry timer.
PRIVATE_EXPIRY_HOOK = "_MemoryStorage__schedule_expiry"
# The private methods of Flask-Limiter's Limiter that init_app registers on an app: before each
# request (check the limits), after it (add the rate-limit headers) and at its teardown.
PRIVATE_REQUEST_HOOK = "_check_request_limit"
PRIVATE_AFTER_HOOK = "_Limiter__inject_headers"
PRIVATE_TEARDOWN_HOOK = "_Limiter__release_context"


def skip_request_hooks(app: Any, limiter: object, is_free: Callable[[], bool]) -> None:
    """Replace the three hooks Flask-Limiter registered on `app` (a Flask app) by ones that do
    nothing when `is_free()`. A hook that is not there fails start-up (ValueError)."""
    check = getattr(limiter, PRIVATE_REQUEST_HOOK)
    inject = getattr(type(limiter), PRIVATE_AFTER_HOOK)
    release = getattr(limiter, PRIVATE_TEARDOWN_HOOK)

    def check_unless_free() -> object:
        return None if is_free() else check()

    def inject_unless_free(response: Any) -> Any:
        return response if is_free() else inject(limiter, response)

    def release_unless_free(exc: BaseException | None) -> None:
        if not is_free():
            release(exc)

    before, after = app.before_request_funcs.setdefault(None, []), app.after_request_funcs.setdefault(None, [])
    _replace(before, lambda hook: hook == check, check_unless_free)
    _replace(after, lambda hook: _partial_of(hook, inject, limiter), inject_unless_free)
    _replace(app.teardown_request_funcs.setdefault(None, []), lambda hook: hook == release, release_unless_free)


def _partial_of(hook: Any, func: Any, limiter: object) -> bool:
    return isinstance(hook, functools.partial) and hook.func is func and hook.args == (limiter,)


def _replace(hooks: list[Any], found: Callable[[Any], bool], replacement: Any) -> None:
    positions = [i for i, hook in enumerate(hooks) if found(hook)]
    if len(positions) != 1:
        raise ValueError(f"Flask-Limiter's hook for {replacement.__name__} found {len(positions)} times")
    hooks[positions[0]] = replacement


class SweptMemoryStorage(MemoryStorage):
    """The `limits` library's in-process store, with its expired entries swept once a second.

    The library's store starts a timer thread 10 ms after a write, which walks every key it
    holds: under load that is a new thread and a walk of all keys a hundred times a second,
    taking the interpreter lock from the requests. Counting stays exact without those sweeps
    (a moving window only counts entries younger than the window, whatever is still stored);
    they only free memory, which once a second does as well. Setting: `swept-memory://`.
    """

    STORAGE_SCHEME = ["swept-memory"]
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        self._next_sweep = 0.0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def _MemoryStorage__schedule_expiry(self) -> None:  # PRIVATE_EXPIRY_HOOK, called on writes
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            getattr(super(), PRIVATE_EXPIRY_HOOK)()
