"""Scan page (GET of a join URL) requests per second under gunicorn, against hello-world Flask.

    .venv/bin/python -m bench.scan_page [--database sqlite|postgres] [--seconds 4] [--rounds 5]
                                          [--workers 4] [--threads 2] [--returning]

Both apps are served by gunicorn.conf.py with the same workers and threads, side by side (the
idle one waits on its socket), and loaded in turn by wrk -t2 -c50 from the same machine:
hello-world, then the scan page, `--rounds` times, so a drift in the machine's speed (a shared
host's neighbours) lands on both. Each round gives a ratio; the figure is their median, with
the lowest and highest beside it. Every request is a first visit (wrk keeps no cookies), so
each answer carries a new session cookie and CSRF token. Target: median ratio >= 0.5.

`--database postgres` serves ScanJoin from a fresh PostgreSQL database with its limits in Redis (as
bench.joins does): the bad-token check of each scan is then a Redis round trip.

A first visit of a cached page is answered before Flask's request cycle
(app/web/worker/first_visit.py). With `--returning`, a third series sends the session cookie a
first visit got (a worker who opens the poster again): that page goes through Flask's cycle
(session opened and checked, CSRF token signed again), and its ratio is reported beside the
first visits'.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import statistics
import tempfile
from pathlib import Path

from bench.harness import Server, postgres_database, prepare, report, server_env, wrk
from bench.joins import REDIS_URL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=int, default=4, help="of each wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--returning", action="store_true", help="also load the page with a session cookie")
    args = parser.parse_args()
    bases: list[dict[str, float]] = []
    scans: list[dict[str, float]] = []
    returns: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        if args.database == "postgres":
            url, extra = stack.enter_context(postgres_database()), {"REDIS_URL": REDIS_URL}
        else:
            url, extra = f"sqlite:///{work / 'scan.db'}", {}
        # No worker recycling while measuring: hello-world, answering more requests, would reach
        # gunicorn's max_requests sooner and pay restarts the scan page does not (a steady state).
        env = server_env(url, work, GUNICORN_MAX_REQUESTS="0", **extra)
        path = prepare(env, 1)[0]
        sizing = {"workers": args.workers, "threads": args.threads}
        with (
            Server(env, work, app="bench.hello:app", ready_path="/", **sizing) as hello,
            Server(env, work, **sizing) as scanjoin,
        ):
            hello_url, scan_url = f"http://127.0.0.1:{hello.port}/", f"http://127.0.0.1:{scanjoin.port}{path}"
            for url in (hello_url, scan_url, hello_url, scan_url):  # warm up
                wrk(url, seconds=2)
            cookie = {"Cookie": session_cookie(scanjoin.port, path)} if args.returning else None
            for _ in range(args.rounds):
                bases.append(wrk(hello_url, seconds=args.seconds))
                scans.append(wrk(scan_url, seconds=args.seconds))
                if cookie:
                    returns.append(wrk(scan_url, seconds=args.seconds, headers=cookie))
    ratios = [scan["rps"] / base["rps"] for base, scan in zip(bases, scans, strict=True)]
    ratio = statistics.median(ratios)
    extra = []
    if returns:
        again = [one["rps"] / base["rps"] for base, one in zip(bases, returns, strict=True)]
        extra = [
            ("returning visits (session cookie sent) req/s, median of rounds", _line(_median(returns))),
            ("returning visits: ratio per round", ", ".join(f"{r:.2f}" for r in again)),
            ("returning visits: median ratio", f"{statistics.median(again):.2f}"),
        ]
    report(
        f"Scan page vs hello-world Flask ({args.database})",
        [
            ("gunicorn", f"{args.workers} gthread workers × {args.threads} threads, no recycling"),
            ("load", f"wrk -t2 -c50, {args.rounds} rounds of {args.seconds} s for each app, in turn"),
            ("hello-world req/s (baseline), median of rounds", _line(_median(bases))),
            ("scan page req/s, median of rounds", _line(_median(scans))),
            ("non-2xx answers", f"{sum(b['non_2xx'] for b in bases):.0f} / {sum(s['non_2xx'] for s in scans):.0f}"),
            ("ratio per round, in order", ", ".join(f"{r:.2f}" for r in ratios)),
            ("median ratio (target >= 0.5)", f"{ratio:.2f} {'met' if ratio >= 0.5 else 'MISSED'}"),
            *extra,
        ],
    )


def session_cookie(port: int, path: str) -> str:
    """The `name=value` of the session cookie a first visit gets."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    answer = connection.getresponse()
    answer.read()
    return answer.getheader("Set-Cookie", "").split(";", 1)[0]


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(one[key] for one in results) for key in results[0]}


def _line(result: dict[str, float]) -> str:
    return f"{result['rps']:.0f} (p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms)"


if __name__ == "__main__":
    main()
