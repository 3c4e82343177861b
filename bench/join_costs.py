"""What one join costs the shared services, for docs/capacity.md: SQL statements (and
transactions) per join, Redis commands and memory per join, and bytes per member in the database.

    .venv/bin/python -m bench.join_costs [--joins 200] [--redis-url redis://127.0.0.1:6379/13]
        [--members-url postgresql+psycopg://postgres@127.0.0.1:5432/scanjoin_bench_search]

The joins run inside one process (Flask test client, console SMS, as bench/join_cpu.py) on SQLite
with the limits in Redis database 13 (emptied first and after) and the code's delivery run in the
same process (`TASK_QUEUE=immediate`), so its statements count too. Statements are counted at the
engine (`before_cursor_execute`); Redis memory is `used_memory` before and after, and the keys
left (`DBSIZE`), so the figure is what a campaign's hour of limit windows holds. Bytes per member
are read from an existing benchmark database (`--members-url`, e.g. the one bench/search.py
filled): table plus indexes over rows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.harness import Outbox, hidden_fields, phone, posters_for, prepare, report, server_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=200)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--members-url", default=None)
    args = parser.parse_args()
    import redis
    from sqlalchemy import event

    from app import create_app

    store = redis.Redis.from_url(args.redis_url)
    store.flushdb()
    lines: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = server_env(
            f"sqlite:///{work / 'costs.db'}", work, RATELIMIT_STORAGE_URI=args.redis_url, TASK_QUEUE="immediate"
        )
        paths = prepare(env, posters_for(args.joins + 10))
        app = create_app(env=env)
        outbox = Outbox(work / "outbox.jsonl")
        seen = {"statements": 0, "commits": 0}
        engine = app.extensions["db_engine"]
        event.listen(
            engine, "before_cursor_execute", lambda *a, **k: seen.__setitem__("statements", seen["statements"] + 1)
        )
        event.listen(engine, "commit", lambda *a: seen.__setitem__("commits", seen["commits"] + 1))

        def join(n: int) -> None:
            client, headers, path = app.test_client(), {"X-Forwarded-For": f"fd00:1:2:{n:x}::1"}, paths[n % len(paths)]
            fields = hidden_fields(client.get(path, headers=headers).text)
            form = {**fields, "name": "压测", "phone": phone(n)[3:], "platform": "meituan", "consent": "y"}
            assert client.post(path, data=form, headers=headers).status_code == 303
            fields = hidden_fields(client.get("/join/code", headers=headers).text)
            code = outbox.code_for(phone(n))
            assert client.post("/join/code", data={**fields, "code": code}, headers=headers).status_code == 303

        join(0)
        seen.update(statements=0, commits=0)
        commands_before = int(store.info("stats")["total_commands_processed"])
        memory_before = int(store.info("memory")["used_memory"])
        for n in range(1, args.joins + 1):
            join(n)
        app.extensions["funnel"].flush()
        commands = int(store.info("stats")["total_commands_processed"]) - commands_before
        memory = int(store.info("memory")["used_memory"]) - memory_before
        keys = int(store.dbsize())
        daily = [k for k in store.scan_iter(count=1000) if int(store.ttl(k)) > 3600]
        daily_bytes = sum(int(store.memory_usage(k) or 0) for k in daily)
        engine.dispose()
    store.flushdb()
    lines += [
        ("joins (scan page, form, code page, code)", f"{args.joins}"),
        ("SQL statements per join (SQLite, funnel flush included)", f"{seen['statements'] / args.joins:.1f}"),
        ("commits per join", f"{seen['commits'] / args.joins:.1f}"),
        (
            "Redis commands per join (every client of the server: read as an upper bound)",
            f"{commands / args.joins:.1f}",
        ),
        ("Redis keys left after the joins", f"{keys} ({keys / args.joins:.1f} a join)"),
        ("Redis keys that outlive an hour", f"{len(daily)} ({daily_bytes / args.joins:.0f} B a join)"),
        (
            "Redis memory growth",
            f"{memory / 1024:.0f} KiB ({memory / args.joins:.0f} B a join, {memory / max(keys, 1):.0f} B a key)",
        ),
    ]
    if args.members_url:
        lines += members_size(args.members_url)
    report("What one join costs the shared services", lines)


def members_size(url: str) -> list[tuple[str, str]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT count(*) FROM member")).scalar_one()
        if engine.dialect.name == "postgresql":
            heap = connection.execute(text("SELECT pg_table_size('member')")).scalar_one()
            indexes = connection.execute(text("SELECT pg_indexes_size('member')")).scalar_one()
        else:
            sizes = dict(connection.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")).all())
            heap, indexes = (
                sizes.get("member", 0),
                sum(v for k, v in sizes.items() if k.startswith(("ix_member", "sqlite_autoindex_member"))),
            )
    engine.dispose()
    return [
        ("members in the database measured", f"{rows:,} ({engine.dialect.name})"),
        ("bytes per member: table", f"{heap / rows:.0f} B"),
        ("bytes per member: indexes", f"{indexes / rows:.0f} B"),
    ]


if __name__ == "__main__":
    main()
