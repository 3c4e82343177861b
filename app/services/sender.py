"""Side effects after the commit, off the request's thread: the SMS a join step sends.

A request that sends a code answers as soon as its transaction is committed; the text goes out
from a small pool of threads in the same process. A slow or failing provider then ties up those
threads, not the threads that serve requests, so gunicorn can run few request threads per
worker (fewer hand-offs of the interpreter lock: bench.joins, docs/benchmarks.md). What a send
needs to report (why it failed) it writes to the database itself.

`threads` 0 runs each job at once in the caller's thread (the tests, and one-off commands). The
pool is made on first use in each process, so every forked gunicorn worker has its own, and a
stopping process finishes the jobs it holds (Python joins the pool's threads at exit).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

log = logging.getLogger(__name__)


class Sender:
    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._pending: set[Future[None]] = set()

    def submit(self, job: Callable[..., None], *args: Any) -> None:
        """Run `job(*args)` after the caller returns (or now, with no threads); never raises."""
        if self.threads <= 0:
            self._run(job, *args)
            return
        future = self._executor().submit(self._run, job, *args)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def drain(self, timeout: float = 30) -> None:
        """Wait for the jobs submitted so far (tests; a stopping process does it by itself)."""
        with self._lock:
            pending = set(self._pending)
        wait(pending, timeout=timeout)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="sender")
                self._pid = os.getpid()
                self._pending = set()
            return self._pool

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    @staticmethod
    def _run(job: Callable[..., None], *args: Any) -> None:
        try:
            job(*args)
        except Exception as exc:  # a job records its own failures; this is the last resort
            log.error("background job %s failed: %s", getattr(job, "__name__", "?"), type(exc).__name__)
