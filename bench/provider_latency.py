"""Joins per second when the SMS provider answers slowly, against the same with no delay.

    .venv/bin/python -m bench.provider_latency [--delay 0.3] [--clients 16] [--joins 800]

SMS_BACKEND=twilio-messaging, pointed (TWILIO_API_BASE_URL) at a local stand-in for Twilio's
Messages API (bench/twilio_mock.py) that answers after 0 s, then after --delay seconds.
Target: the delayed rate >= 0.5 of the undelayed one (a slow provider must not starve workers).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.harness import Joiner, Outbox, Server, percentile, posters_for, prepare, report, run_clients, server_env
from bench.twilio_mock import SlowTwilio


def measure(work: Path, delay: float, args: argparse.Namespace) -> dict[str, float]:
    outbox = work / f"twilio-{delay}.jsonl"
    with SlowTwilio(outbox, delay) as twilio:
        env = server_env(f"sqlite:///{work / f'provider-{delay}.db'}", work, SMS_BACKEND="twilio-messaging",
                         TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="bench-token" + "0" * 21,
                         TWILIO_FROM="+15005550006", TWILIO_API_BASE_URL=twilio.base_url)
        paths = prepare(env, posters_for(args.joins))
        with Server(env, work, workers=args.workers, threads=args.threads) as server:
            joiner = Joiner(server.port, Outbox(outbox), paths)
            run_clients(joiner, args.clients, 1)
            started = time.perf_counter()
            results = run_clients(joiner, args.clients, args.joins // args.clients, first=1000)
            elapsed = time.perf_counter() - started
    seconds = [r.seconds for _, r in results if r.ok]
    failed = len(results) - len(seconds)
    return {"rate": len(seconds) / elapsed, "p99": percentile(seconds, 99) * 1000, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--joins", type=int, default=800)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fast = measure(Path(tmp), 0.0, args)
        slow = measure(Path(tmp), args.delay, args)
    ratio = slow["rate"] / fast["rate"] if fast["rate"] else float("nan")
    report(f"Provider latency: Twilio stand-in answering after {args.delay * 1000:.0f} ms", [
        ("setup", f"{args.workers} gthread workers × {args.threads} threads; {args.clients} clients; "
                  f"{args.joins} joins each run; SQLite"),
        ("joins/s, provider answers at once (baseline)", f"{fast['rate']:.1f} (p99 {fast['p99']:.0f} ms)"),
        (f"joins/s, provider answers after {args.delay * 1000:.0f} ms",
         f"{slow['rate']:.1f} (p99 {slow['p99']:.0f} ms)"),
        ("failed joins", f"{fast['failed']:.0f} / {slow['failed']:.0f}"),
        ("ratio (target >= 0.5)", f"{ratio:.2f} {'met' if ratio >= 0.5 else 'MISSED'}"),
    ])


if __name__ == "__main__":
    main()
