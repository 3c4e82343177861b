"""An organizing day at a station (issue 11): a morning meeting of riders behind one address
through one poster, then SMS pumping from one address; prints joins, pictures, refusals and SMS.

    .venv/bin/python -m bench.organizing_day [--riders 60] [--in-flight 8] [--pumped 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import deque
from pathlib import Path

from bench.harness import Outbox, hidden_fields, phone, prepare, server_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--riders", type=int, default=60)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--pumped", type=int, default=20)
    args = parser.parse_args()
    from app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = server_env(f"sqlite:///{work / 'day.db'}", work)
        path = prepare(env, 1)[0]
        app = create_app(env=env)
        outbox = Outbox(work / "outbox.jsonl")
        tally = {"joined": 0, "picture": 0, "refused": 0}

        def start(n: int, address: str):  # type: ignore[no-untyped-def]
            client, headers = app.test_client(), {"X-Forwarded-For": address}
            fields = hidden_fields(client.get(path, headers=headers).text)
            form = {**fields, "name": "骑手", "phone": phone(n)[3:], "platform": "meituan", "consent": "y"}
            answer = client.post(path, data=form, headers=headers)
            if answer.status_code == 429:
                tally["refused"] += 1
            elif answer.headers.get("Location", "").endswith("/join/check"):
                tally["picture"] += 1
            return client, headers, answer

        def enter(client, headers, n: int) -> None:  # type: ignore[no-untyped-def]
            fields = hidden_fields(client.get("/join/code", headers=headers).text)
            answer = client.post("/join/code", data={**fields, "code": outbox.code_for(phone(n))}, headers=headers)
            tally["joined"] += answer.status_code == 303

        waiting: deque = deque()
        for n in range(args.riders):
            client, headers, answer = start(n, "198.51.100.50")
            if answer.status_code == 303 and answer.headers["Location"].endswith("/join/code"):
                waiting.append((client, headers, n))
            if len(waiting) == args.in_flight:
                enter(*waiting.popleft())
        while waiting:
            enter(*waiting.popleft())
        print(f"drive: {args.riders} riders, one address, one poster, up to {args.in_flight} in flight:")
        print(f"  joined {tally['joined']}, picture check {tally['picture']}, refused {tally['refused']}")
        before = len(outbox.path.read_text().splitlines()) if outbox.path.exists() else 0
        tally = dict.fromkeys(tally, 0)
        for n in range(1000, 1000 + args.pumped):
            start(n, "198.51.100.66")
        time.sleep(2)  # the sender threads write the last texts
        sent = len(outbox.path.read_text().splitlines()) - before
        print(f"pumping: {args.pumped} sends from one address, no code entered:")
        print(f"  SMS sent {sent}, picture check {tally['picture']}, refused {tally['refused']}")
        app.extensions["db_engine"].dispose()


if __name__ == "__main__":
    main()
