"""gunicorn settings: `gunicorn wsgi:app` reads this file from the project folder.

Threaded workers (gthread) with few threads: processes use the cores, and a second thread
keeps a worker busy while a request waits on the database or Redis. The SMS provider is not
waited on by request threads (codes and notices are queued tasks sent by `flask worker`:
app/services/tasks.py), so more request threads would only add hand-offs of the
interpreter lock: on 2 cores, 8 threads a worker cost a third more CPU per join than 1
(docs/benchmarks.md). Every number can be overridden from the environment.
"""

from __future__ import annotations

import os

_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gthread"
# WEB_CONCURRENCY is the conventional name (Heroku, Render, uvicorn use it too).
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, 2 * _cpus))))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))

# A request may wait for Twilio (TWILIO_TIMEOUT 10 s, retries inside a 15 s budget): 30 s is the
# hard stop after which the arbiter kills a stuck worker; graceful restarts get as long.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# Behind a reverse proxy that keeps connections to the app open.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then (a slow leak never grows unbounded); jitter avoids all at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
# Heartbeat files in memory, not on a possibly slow disk (containers).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn's own heartbeat files

# Logs to stdout/stderr, for the process manager to collect.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# No client address (a visit to a join page says who wants to join), no query string (the
# roster's search box takes names and phone numbers), no referer, no user agent, no body.
# %(U)s is the path only; join URLs carry a place token, which names a poster, not a person.
# Named fields: "200 5120 12ms" side by side reads as one digit run, which the redaction masks.
# The request id is the response's (app/web/ops.py), so the line joins the app's own lines.
access_log_format = '"%(m)s %(U)s" status=%(s)s bytes=%(B)s ms=%(M)s request_id=%({x-request-id}o)s'


def _redacted_logger():  # type: ignore[no-untyped-def]
    """gunicorn's logger with app/logs.py's filters and format on its error and access logs, set
    again on every (re)configuration: a traceback from a streamed response never holds a name or phone."""
    from gunicorn.glogging import Logger

    from app.logs import formatter, protect

    class RedactedLogger(Logger):
        def setup(self, cfg):  # type: ignore[no-untyped-def]
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                protect(log, urls=True)
                for handler in log.handlers:  # JSON lines as the app writes them (LOG_FORMAT)
                    handler.setFormatter(formatter(os.environ.get("LOG_FORMAT", "json").lower()))

    return RedactedLogger


logger_class = _redacted_logger()

# Metrics (app/services/metrics.py): each worker writes its counters to files in this folder and
# /metrics sums them. It is set when the master starts, before any worker imports
# prometheus_client, and emptied then (old files would add a previous run's counts).
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
    worker_tmp_dir or "/tmp",  # noqa: S108 - a private folder (0700) of this master's own
    f"scanjoin-metrics-{os.getpid()}",
)
# METRICS_BIND (e.g. 127.0.0.1:9100): the master also serves the metrics on this address, for a
# Prometheus on a private network, without METRICS_TOKEN; keep it off the public interface.
_metrics_bind = os.environ.get("METRICS_BIND", "")


def on_starting(server):  # type: ignore[no-untyped-def]
    import shutil

    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir  # the workers inherit it


def when_ready(server):  # type: ignore[no-untyped-def]
    if not _metrics_bind:
        return
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_metrics_dir)
    host, _, port = _metrics_bind.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Compile the worker's page templates before this worker takes its first request."""
    from flask import Flask

    if isinstance(worker.wsgi, Flask):  # the app of `gunicorn wsgi:app` (not a benchmark's baseline)
        from app.web import warm_templates

        warm_templates(worker.wsgi)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server):  # type: ignore[no-untyped-def]
    import shutil

    shutil.rmtree(_metrics_dir, ignore_errors=True)
