"""gunicorn's CPU per request: hello-world, a poster's first visit, a returning visit.

    .venv/bin/python -m bench.server_cpu [--runs 2] [--seconds 6] [--workers 4] [--threads 2]

The two servers of bench.scan_page (same gunicorn.conf.py, workers and threads), loaded in turn by
wrk -t2 -c50; around each run the user + system CPU of every process in the server's process
group is read from /proc, and divided by the requests answered. The returning visit sends the
session cookie a first visit got. Not in `make bench` (a diagnosis: it explains the ratio that
bench.scan_page measures), SQLite only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.harness import Server, prepare, report, server_env, wrk
from bench.scan_page import session_cookie

TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu(group: int) -> float:
    """Seconds of CPU (user + system) used so far by the live processes of process group `group`."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    spent: dict[str, list[str]] = {"hello-world": [], "first visit": [], "returning visit": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = server_env(f"sqlite:///{work / 'cpu.db'}", work, GUNICORN_MAX_REQUESTS="0")
        path = prepare(env, 1)[0]
        sizing = {"workers": args.workers, "threads": args.threads}
        with (
            Server(env, work, app="bench.hello:app", ready_path="/", **sizing) as hello,
            Server(env, work, **sizing) as scanjoin,
        ):
            scan_url = f"http://127.0.0.1:{scanjoin.port}{path}"
            loads = {
                "hello-world": (hello, f"http://127.0.0.1:{hello.port}/", None),
                "first visit": (scanjoin, scan_url, None),
                "returning visit": (scanjoin, scan_url, {"Cookie": session_cookie(scanjoin.port, path)}),
            }
            for _server, url, headers in loads.values():  # warm up
                wrk(url, seconds=2, headers=headers)
            for _ in range(args.runs):
                for name, (server, url, headers) in loads.items():
                    group = server.process.pid  # type: ignore[union-attr]  # started above
                    before = group_cpu(group)
                    result = wrk(url, seconds=args.seconds, headers=headers)
                    used = group_cpu(group) - before
                    spent[name].append(
                        f"{1e6 * used / (result['rps'] * args.seconds):.0f} µs ({result['rps']:.0f} req/s)"
                    )
    report(
        "gunicorn's CPU per request",
        [
            ("gunicorn", f"{args.workers} gthread workers × {args.threads} threads, no recycling"),
            ("load", f"wrk -t2 -c50, {args.runs} runs of {args.seconds} s each, in turn"),
            *((f"{name}: CPU per request, each run", ", ".join(values)) for name, values in spent.items()),
        ],
    )


if __name__ == "__main__":
    main()
