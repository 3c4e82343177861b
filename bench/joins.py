"""Full joins per second (scan page, form, code page, code; console SMS) with p99 latency.

    .venv/bin/python -m bench.joins --database sqlite|postgres [--clients 12] [--joins 1600]
        [--workers 4] [--threads 2] [--client-processes 1]

The load comes from bench/loadgen.py: `--clients` simulated workers as asyncio coroutines,
each join on its own keep-alive connection with its own cookie jar (one connection per
worker for the whole run left gunicorn's workers unevenly loaded: see loadgen.Plan), 12 by
default (chosen by measurement: loadgen's docstring). The baseline, in the same run: the
same client making the same four requests per "join" against hello-world Flask
(bench/hello.py) under the same gunicorn settings, the most this client and machine could
show. The client's own CPU per join is printed, so its share of the 2 cores is a figure.
PostgreSQL runs use Redis (127.0.0.1:6379/14) for the limits,
as a multi-server deployment does; SQLite uses the embedded in-process store. Targets: >= 200
joins/s, p99 <= 200 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

from bench import loadgen
from bench.harness import Server, postgres_database, prepare, report, server_env

REDIS_URL = "redis://127.0.0.1:6379/14"


def baseline(env: dict[str, str], work: Path, args: argparse.Namespace) -> loadgen.LoadResult:
    """The same client and four requests per join against hello-world Flask."""
    with Server(env, work, app="bench.hello:app", ready_path="/", workers=args.workers, threads=args.threads) as hello:
        loadgen.run(loadgen.Plan(hello.port, ["/"], None, args.clients, 4))  # warm up
        return loadgen.run(
            loadgen.Plan(hello.port, ["/"], None, args.clients, args.joins // args.clients), args.client_processes
        )


def measure(env: dict[str, str], work: Path, args: argparse.Namespace) -> tuple[loadgen.LoadResult, int]:
    """Joins through ScanJoin; also the count of "database is locked" in the server's log."""
    paths = prepare(env, loadgen.posters(args.joins))
    outbox = work / "outbox.jsonl"
    with Server(env, work, workers=args.workers, threads=args.threads) as server:
        loadgen.run(loadgen.Plan(server.port, paths, outbox, args.clients, 2))  # warm up: imports, caches
        plan = loadgen.Plan(server.port, paths, outbox, args.clients, args.joins // args.clients, first=1000)
        result = loadgen.run(plan, args.client_processes)
        locked = server.log().count("database is locked")
    return result, locked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--clients", type=int, default=12, help="simulated workers joining at once")
    parser.add_argument("--joins", type=int, default=1600)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--client-processes", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        if args.database == "postgres":
            url, extra = stack.enter_context(postgres_database()), {"REDIS_URL": REDIS_URL}
        else:
            url, extra = f"sqlite:///{work / 'joins.db'}", {}
        env = server_env(url, work, **extra)
        base = baseline(env, work, args)
        base_load = os.getloadavg()[0]
        result, locked = measure(env, work, args)
    met = result.rate >= 200 and result.p(99) <= 200
    report(
        f"Full joins per second on {args.database}",
        [
            (
                "setup",
                f"{args.workers} gthread workers × {args.threads} threads; {args.clients} simulated workers "
                f"(asyncio) in {args.client_processes} client process(es); {args.joins} joins of 4 requests",
            ),
            ("baseline: same client, hello-world pages", f"{base.summary()} (load average {base_load:.1f})"),
            ("joins/s", f"{result.rate:.1f} (load average {os.getloadavg()[0]:.1f} at the end)"),
            ("latency of a whole join", f"p50 {result.p(50):.0f} ms, p99 {result.p(99):.0f} ms"),
            ("p99 of each step, ms", result.step_p99()),
            (
                "failed joins / 'database is locked'",
                f"{result.failed} / {locked}" + (f" (first reasons: {result.reasons()})" if result.failed else ""),
            ),
            ("client CPU per join (load generator)", f"{result.cpu_per_join_ms:.2f} ms"),
            ("target (>= 200/s, p99 <= 200 ms)", "met" if met else "MISSED"),
        ],
    )


if __name__ == "__main__":
    main()
