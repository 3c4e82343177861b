"""Joins per second when the SMS provider answers slowly, against the same with no delay.

    .venv/bin/python -m bench.provider_latency [--delay 0.3] [--clients 64] [--joins 800]
        [--workers 4] [--threads 2] [--client-processes 1]

SMS_BACKEND=twilio-messaging, pointed (TWILIO_API_BASE_URL) at a local stand-in for Twilio's
Messages API (bench/twilio_mock.py) that answers after 0 s, then after --delay seconds. The load
comes from bench/loadgen.py (asyncio simulated workers, in a process of their own so that the
stand-in's threads in this process do not share a GIL with them); the client's ceiling is
measured in the same run against hello-world Flask with the same four requests per join.

64 simulated workers by default (bench.joins uses fewer): a worker waits for its code, which
comes at least `delay` after its form, so W workers can never exceed W / delay joins/s
(16 / 0.3 s = 53/s), and with too few the delayed run would measure the client, not the
server. 64 allow ~200/s at 300 ms, the joins target. The server sends codes from its sender
threads after the response, so its own ceiling is sender threads / delay (4 workers × 16
SMS_SENDER_THREADS / 0.3 s ≈ 213/s), and request threads never wait on the provider.
Target: the delayed rate >= 0.5 of the undelayed one (a slow provider must not starve workers).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench import loadgen
from bench.harness import Server, prepare, report, server_env
from bench.twilio_mock import SlowTwilio


def measure(work: Path, delay: float, args: argparse.Namespace) -> tuple[loadgen.LoadResult, int]:
    """Joins with the provider answering after `delay`; also the count of "database is locked"."""
    outbox = work / f"twilio-{delay}.jsonl"
    with SlowTwilio(outbox, delay) as twilio:
        env = server_env(
            f"sqlite:///{work / f'provider-{delay}.db'}",
            work,
            SMS_BACKEND="twilio-messaging",
            TWILIO_ACCOUNT_SID="AC" + "0" * 32,
            TWILIO_AUTH_TOKEN="bench-token" + "0" * 21,
            TWILIO_FROM="+15005550006",
            TWILIO_API_BASE_URL=twilio.base_url,
        )
        paths = prepare(env, loadgen.posters(args.joins))
        with Server(env, work, workers=args.workers, threads=args.threads) as server:
            # Warm up with 2 joins per simulated worker, at most 16 at once: the service's SMS
            # conversion (codes verified / sent this hour) must look like a steady day's before
            # the burst, or 64 first sends in flight at once, none verified yet, read as low
            # conversion and send workers to the human check (24 of 800 joins did).
            warm = min(args.clients, 16)
            loadgen.run(loadgen.Plan(server.port, paths, outbox, warm, -(-2 * args.clients // warm)))
            plan = loadgen.Plan(server.port, paths, outbox, args.clients, args.joins // args.clients, first=1000)
            result = loadgen.run(plan, args.client_processes, apart=True)  # not beside the stand-in's threads
            locked = server.log().count("database is locked")
    return result, locked


def baseline(work: Path, args: argparse.Namespace) -> loadgen.LoadResult:
    """The same client and four requests per join against hello-world Flask."""
    env = server_env(f"sqlite:///{work / 'hello.db'}", work)
    with Server(env, work, app="bench.hello:app", ready_path="/", workers=args.workers, threads=args.threads) as hello:
        loadgen.run(loadgen.Plan(hello.port, ["/"], None, args.clients, 4))
        return loadgen.run(
            loadgen.Plan(hello.port, ["/"], None, args.clients, args.joins // args.clients),
            args.client_processes,
            apart=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--clients", type=int, default=64, help="simulated workers joining at once")
    parser.add_argument("--joins", type=int, default=800)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--client-processes", type=int, default=1)
    args = parser.parse_args()
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline(Path(tmp), args)
        loads.append(os.getloadavg()[0])
        fast, fast_locked = measure(Path(tmp), 0.0, args)
        loads.append(os.getloadavg()[0])
        slow, slow_locked = measure(Path(tmp), args.delay, args)
        loads.append(os.getloadavg()[0])
    ratio = slow.rate / fast.rate if fast.rate else float("nan")
    ms = f"{args.delay * 1000:.0f} ms"
    report(
        f"Provider latency: Twilio stand-in answering after {ms}",
        [
            (
                "setup",
                f"{args.workers} gthread workers × {args.threads} threads; {args.clients} simulated workers "
                f"(asyncio) in {args.client_processes} client process(es); {args.joins} joins each run; SQLite",
            ),
            ("client ceiling: same client, hello-world pages", f"{base.summary()} (load average {loads[0]:.1f})"),
            ("provider answers at once (baseline)", f"{fast.summary()} (load average {loads[1]:.1f})"),
            (f"provider answers after {ms}", f"{slow.summary()} (load average {loads[2]:.1f})"),
            ("p99 of each step, ms (at once)", fast.step_p99()),
            (f"p99 of each step, ms (after {ms})", slow.step_p99()),
            ("'database is locked' (at once / delayed)", f"{fast_locked} / {slow_locked}"),
            ("ratio (target >= 0.5)", f"{ratio:.2f} {'met' if ratio >= 0.5 else 'MISSED'}"),
        ],
    )


if __name__ == "__main__":
    main()
