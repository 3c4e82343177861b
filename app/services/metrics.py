"""Prometheus metrics: counts and timings that name no person.

Labels are closed sets chosen by the code (a funnel step, a provider's class name, an error
kind, a limit's scope, a route's endpoint name, a status code): never a phone, a name, a token
or a URL, so nothing a worker typed can reach a label. Under gunicorn each worker writes its
values to files in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it up) and `exposition()`
sums them; without it the process's own registry is read.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

FUNNEL = {
    "scans": Counter("scanjoin_scans_total", "Poster scans (the poster page opened)"),
    "forms": Counter("scanjoin_joins_started_total", "Join forms submitted (a join started)"),
    "verified": Counter("scanjoin_codes_verified_total", "Phones proven by a right code"),
    "joins": Counter("scanjoin_joins_completed_total", "Joins completed (an application made after the code)"),
}
CODES_SENT = Counter("scanjoin_codes_sent_total", "Codes handed to the SMS provider", ["provider"])
CODES_FAILED = Counter("scanjoin_codes_failed_total", "Codes the SMS provider did not take", ["provider", "kind"])
DECISIONS = Counter("scanjoin_decisions_total", "Applications decided", ["decision"])
LIMIT_REFUSALS = Counter("scanjoin_limit_refusals_total", "Actions refused by a rate limit", ["scope"])
TASK_FAILURES = Counter("scanjoin_task_failures_total", "Background tasks that failed", ["task"])
QUEUE_DEPTH = Gauge("scanjoin_sms_queue_depth", "Messages waiting to be sent", multiprocess_mode="max")
REDIS_UP = Gauge("scanjoin_redis_up", "1 when Redis answered this process's last check", multiprocess_mode="min")
REQUEST_SECONDS = Histogram(
    "scanjoin_request_seconds",
    "Time to answer a request, by endpoint",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def funnel_step(step: str) -> None:
    counter = FUNNEL.get(step)
    if counter is not None:
        counter.inc()


def code_sent(provider: str) -> None:
    CODES_SENT.labels(provider).inc()


def code_failed(provider: str, kind: str) -> None:
    CODES_FAILED.labels(provider, kind).inc()


def decided(approved: bool) -> None:
    DECISIONS.labels("approved" if approved else "rejected").inc()


def limit_refused(scope: str) -> None:
    LIMIT_REFUSALS.labels(scope).inc()


def task_failed(task: str) -> None:
    TASK_FAILURES.labels(task).inc()


def queue_depth(depth: int) -> None:
    QUEUE_DEPTH.set(depth)


def redis_up(up: bool) -> None:
    REDIS_UP.set(1 if up else 0)


# The methods a label may name; any other (a client may send any token) is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Each (endpoint, method, status) child of REQUEST_SECONDS, looked up once: `labels()` takes a
# lock and checks its arguments on every call, and this runs after every request. The keys are
# closed sets (the routes' endpoints, METHODS, the statuses the app answers with), so the map
# stays small; it stops growing at a bound all the same.
_REQUEST_CHILDREN: dict[tuple[str, str, int], Any] = {}
_REQUEST_CHILDREN_MAX = 4096


def request_done(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    # An unmatched URL (a 404) is one label value, never the path someone typed.
    key = (endpoint or "unmatched", method if method in METHODS else "other", status)
    child = _REQUEST_CHILDREN.get(key)
    if child is None:
        child = REQUEST_SECONDS.labels(key[0], key[1], str(status))
        if len(_REQUEST_CHILDREN) < _REQUEST_CHILDREN_MAX:
            _REQUEST_CHILDREN[key] = child
    child.observe(seconds)


def exposition() -> bytes:
    """Every metric in Prometheus' text format, summed over gunicorn's workers when there are several."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
    return generate_latest()
