"""The one place that reaches into the `limits` library's private names.

`limits`' in-process store has no public hook for its expiry sweeps, so `SweptMemoryStorage`
overrides the name-mangled `MemoryStorage.__schedule_expiry`. Nothing else in the app may use
a private name of `limits` or Flask-Limiter: tests/services/test_limits.py
(test_the_library_still_has_the_private_hook_we_override) fails when an upgrade renames it.
"""

from __future__ import annotations

import time

from limits.storage import MemoryStorage

# The private method of MemoryStorage, called by every write, that starts the expiry timer.
PRIVATE_EXPIRY_HOOK = "_MemoryStorage__schedule_expiry"


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
