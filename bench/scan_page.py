"""Scan page (GET of a join URL) requests per second under gunicorn, against hello-world Flask.

    .venv/bin/python -m bench.scan_page [--seconds 10] [--workers 4] [--threads 2]

Both apps are served by gunicorn.conf.py with the same workers and threads, one after the
other, and loaded by wrk -t2 -c50 from the same machine. Target: ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.harness import Server, prepare, report, server_env, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = server_env(f"sqlite:///{work / 'scan.db'}", work)
        path = prepare(env, 1)[0]
        sizing = {"workers": args.workers, "threads": args.threads}
        with Server(env, work, app="bench.hello:app", ready_path="/", **sizing) as hello:
            wrk(f"http://127.0.0.1:{hello.port}/", seconds=2)  # warm up
            base = wrk(f"http://127.0.0.1:{hello.port}/", seconds=args.seconds)
        with Server(env, work, **sizing) as scanjoin:
            wrk(f"http://127.0.0.1:{scanjoin.port}{path}", seconds=2)
            scan = wrk(f"http://127.0.0.1:{scanjoin.port}{path}", seconds=args.seconds)
    ratio = scan["rps"] / base["rps"]
    report(
        "Scan page vs hello-world Flask",
        [
            ("gunicorn", f"{args.workers} gthread workers × {args.threads} threads; wrk -t2 -c50 -d{args.seconds}s"),
            ("hello-world req/s (baseline)", _line(base)),
            ("scan page req/s", _line(scan)),
            ("non-2xx answers", f"{base['non_2xx']} / {scan['non_2xx']}"),
            ("ratio (target >= 0.5)", f"{ratio:.2f} {'met' if ratio >= 0.5 else 'MISSED'}"),
        ],
    )


def _line(result: dict[str, float]) -> str:
    return f"{result['rps']:.0f} (p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms)"


if __name__ == "__main__":
    main()
