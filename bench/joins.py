"""Full joins per second (scan page, form, code page, code; console SMS) with p99 latency.

    .venv/bin/python -m bench.joins --database sqlite|postgres [--clients 16] [--joins 1600]

The baseline, in the same run: the same client making the same four requests per "join"
against hello-world Flask under the same gunicorn settings (the most this client and
machine could show). PostgreSQL runs use Redis (127.0.0.1:6379/14) for the limits, as a
multi-server deployment does; SQLite uses the embedded in-process store. Targets: >= 200
joins/s, p99 <= 200 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from bench.harness import (
    Browser,
    Joiner,
    Outbox,
    Server,
    percentile,
    posters_for,
    postgres_database,
    prepare,
    report,
    run_clients,
    server_env,
)

REDIS_URL = "redis://127.0.0.1:6379/14"


def hello_joins(port: int, clients: int, joins: int) -> float:
    """Joins per second the client reaches when every page is hello-world (4 requests each)."""
    import threading

    def client() -> None:
        browser = Browser(port)
        for _ in range(joins // clients):
            for method in ("GET", "POST", "GET", "POST"):
                browser.request(method, "/", {"x": "1"} if method == "POST" else None)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return joins / (time.perf_counter() - started)


def measure(env: dict[str, str], work: Path, args: argparse.Namespace, outbox: Path) -> dict[str, float]:
    paths = prepare(env, posters_for(args.joins))
    with Server(env, work, workers=args.workers, threads=args.threads) as server:
        joiner = Joiner(server.port, Outbox(outbox), paths)
        run_clients(joiner, args.clients, 2)  # warm up: imports, connections, caches
        started = time.perf_counter()
        results = run_clients(joiner, args.clients, args.joins // args.clients, first=1000)
        elapsed = time.perf_counter() - started
        locked = server.log().count("database is locked")
    seconds = [r.seconds for _, r in results if r.ok]
    return {"rate": len(seconds) / elapsed, "p50": percentile(seconds, 50) * 1000,
            "p99": percentile(seconds, 99) * 1000, "failed": len(results) - len(seconds), "locked": locked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--joins", type=int, default=1600)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        if args.database == "postgres":
            url, extra = stack.enter_context(postgres_database()), {"REDIS_URL": REDIS_URL}
        else:
            url, extra = f"sqlite:///{work / 'joins.db'}", {}
        env = server_env(url, work, **extra)
        sizing = {"workers": args.workers, "threads": args.threads}
        with Server(env, work, app="bench.hello:app", ready_path="/", **sizing) as hello:
            hello_joins(hello.port, args.clients, args.clients * 4)
            baseline = hello_joins(hello.port, args.clients, args.joins)
        result = measure(env, work, args, work / "outbox.jsonl")
    met = result["rate"] >= 200 and result["p99"] <= 200
    report(f"Full joins per second on {args.database}", [
        ("setup", f"{args.workers} gthread workers × {args.threads} threads; {args.clients} client threads; "
                  f"{args.joins} joins of 4 requests"),
        ("baseline: same client, hello-world pages", f"{baseline:.0f} joins/s"),
        ("joins/s", f"{result['rate']:.1f}"),
        ("latency of a whole join", f"p50 {result['p50']:.0f} ms, p99 {result['p99']:.0f} ms"),
        ("failed joins / 'database is locked'", f"{result['failed']:.0f} / {result['locked']:.0f}"),
        ("target (>= 200/s, p99 <= 200 ms)", "met" if met else "MISSED"),
    ])


if __name__ == "__main__":
    main()
