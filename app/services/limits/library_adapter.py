"""The one place that reaches into the `limits` library's and Flask-Limiter's private names.

`limits`' in-process store has no public hook for its expiry sweeps, so `SweptMemoryStorage`
overrides the name-mangled `MemoryStorage.__schedule_expiry`; Flask-Limiter has no way to keep
its before_request hook off a blueprint, so `skip_request_hook` wraps the hook it registered,
`Limiter._check_request_limit`. Nothing else in the app may use
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
# The private method of Flask-Limiter's Limiter that init_app registers as a before_request hook.
PRIVATE_REQUEST_HOOK = "_check_request_limit"


def skip_request_hook(hooks: list[Any], limiter: object, is_free: Callable[[], bool]) -> None:
    """Replace Flask-Limiter's request hook in `hooks` (an app's before_request functions) by one
    that returns at once when `is_free()`. A hook that is not there fails start-up (ValueError)."""
    check = getattr(limiter, PRIVATE_REQUEST_HOOK)
    position = hooks.index(check)

    @functools.wraps(check)
    def check_unless_free() -> object:
        return None if is_free() else check()

    hooks[position] = check_unless_free


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
