"""CPU time of one whole join inside one process (Flask test client, console SMS), by page.

    .venv/bin/python -m bench.join_cpu [--joins 200]

The code each join needs is delivered from the outbox between the requests, as `flask worker`
does, outside the figures (the requests only write the outbox row and wake the queue).
CPU time barely changes when other programs share the machine, so this figure explains the
joins/s of bench.joins on a busy machine: 2 cores / (CPU per join) is the ceiling. Baseline
in the same run: the same four requests against hello-world Flask in the same process.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.harness import Outbox, hidden_fields, phone, posters_for, prepare, report, server_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=200)
    args = parser.parse_args()
    from sqlmodel import select

    from app import create_app
    from app.models import Delivery
    from bench.hello import app as hello

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = server_env(f"sqlite:///{work / 'cpu.db'}", work)
        paths = prepare(env, posters_for(args.joins + 10))
        app = create_app(env=env)
        outbox = Outbox(work / "outbox.jsonl")
        deliveries = app.extensions["tasks"]

        def deliver_due() -> None:
            """Send what the outbox owes, as `flask worker` would (its wake-ups are not run here)."""
            with deliveries.new_session() as db:
                due = db.exec(select(Delivery.id)).all()
            for row_id in due:
                deliveries.deliver(row_id)

        steps = {"scan page": 0.0, "form": 0.0, "code page": 0.0, "code": 0.0}

        def join(n: int) -> None:
            client, headers, path = app.test_client(), {"X-Forwarded-For": f"fd00:1:2:{n:x}::1"}, paths[n % len(paths)]
            clock = time.process_time()
            fields = hidden_fields(client.get(path, headers=headers).text)
            clock = _add(steps, "scan page", clock)
            form = {**fields, "name": "压测", "phone": phone(n)[3:], "platform": "meituan", "consent": "y"}
            assert client.post(path, data=form, headers=headers).status_code == 303
            clock = _add(steps, "form", clock)
            fields = hidden_fields(client.get("/join/code", headers=headers).text)
            clock = _add(steps, "code page", clock)
            deliver_due()  # the consumer's part (`flask worker`), outside the requests' figures
            code = outbox.code_for(phone(n))
            clock = time.process_time()
            assert client.post("/join/code", data={**fields, "code": code}, headers=headers).status_code == 303
            _add(steps, "code", clock)

        for n in range(10):
            join(n)
        steps = dict.fromkeys(steps, 0.0)
        for n in range(10, 10 + args.joins):
            join(n)
        app.extensions["funnel"].flush()
        app.extensions["db_engine"].dispose()
    base_client = hello.test_client()
    started = time.process_time()
    for _ in range(args.joins):
        for method in ("get", "post", "get", "post"):
            getattr(base_client, method)("/")
    base = (time.process_time() - started) / args.joins * 1000
    total = sum(steps.values()) / args.joins * 1000
    report(
        "CPU per join, in one process",
        [
            ("baseline: 4 hello-world requests", f"{base:.2f} ms CPU"),
            *((name, f"{spent / args.joins * 1000:.1f} ms CPU") for name, spent in steps.items()),
            ("whole join", f"{total:.1f} ms CPU → at most {2000 / total:.0f} joins/s on 2 cores"),
        ],
    )


def _add(steps: dict[str, float], name: str, since: float) -> float:
    now = time.process_time()
    steps[name] += now - since
    return now


if __name__ == "__main__":
    main()
