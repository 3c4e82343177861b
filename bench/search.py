"""Roster search and tab counts at scale: the keyed name index and the counters against the old
paths (decrypting every name in scope; counting member rows), in the same run.

    .venv/bin/python -m bench.search --members 1000000 [--database-url URL] [--repeat 40] [--old-repeat 3]

Makes the members with `flask --app wsgi bench-data` when the database has fewer (bench/roster.py's
`ensure_members`; a PostgreSQL database named in the URL is created when missing), then calls the
roster service directly, in one process, as the roster page does. Names are "测试<n>", each
unique, so a name search finds one member and the old path reads the whole scope. Targets:
search and counts p95 <= 50 ms at 1M members.
"""

from __future__ import annotations

import argparse
import os

from bench.harness import ROOT, percentile, report
from bench.roster import CPU, ensure_members, timed

PAGE = 50


def create_database(url: str) -> None:
    """Create the PostgreSQL database of `url` when it does not exist (SQLite makes its own file)."""
    if not url.startswith("postgresql"):
        return
    import psycopg

    base, name = url.split("://", 1)[1].rsplit("/", 1)
    with psycopg.connect(f"postgresql://{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]


def old_search(session, pii, scope, q: str) -> list[int]:  # type: ignore[no-untyped-def]
    """The path before migration 0013: every row in scope read in list order, its name decrypted."""
    from app.services.roster.lists import VIEW_COLUMNS, joined, order, scope_clause

    needle, hits = q.casefold(), []
    stmt = joined(*VIEW_COLUMNS).where(*scope_clause(scope)).order_by(*order("applied"))
    for row in session.execute(stmt.execution_options(yield_per=500)):
        if needle in pii.decrypt(row[1]).casefold():
            hits.append(row[0])
            if len(hits) > PAGE:
                break
    return hits


def old_counts(session, scope) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The tabs before migration 0013: the member rows in scope counted by status."""
    from sqlalchemy import func, select
    from sqlmodel import col

    from app.models import Member
    from app.services.roster.lists import scope_clause

    stmt = select(col(Member.status), func.count()).where(*scope_clause(scope)).group_by(col(Member.status))
    return {status.value: n for status, n in session.execute(stmt)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=f"sqlite:///{ROOT / 'instance' / 'bench-roster.db'}")
    parser.add_argument("--instance", default=str(ROOT / "instance" / "bench"))
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--old-repeat", type=int, default=3, help="runs of the old paths (seconds each at 1M)")
    args = parser.parse_args()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": args.database_url,
        "INSTANCE_PATH": args.instance,
        "LOG_LEVEL": "WARNING",
    }
    create_database(args.database_url)
    made = ensure_members(env, args.members)

    from sqlalchemy import func, select
    from sqlmodel import Session, col

    from app import create_app
    from app.models import Member
    from app.services import roster

    app = create_app(env=env)
    pii, engine = app.extensions["pii"], app.extensions["db_engine"]
    lines: list[tuple[str, str]] = []
    with app.app_context(), Session(engine) as session:
        total, top = session.execute(select(func.count(), func.max(Member.id)).select_from(Member)).one()
        districts = sorted(session.execute(select(col(Member.district_id)).distinct()).scalars())[:2]
        ids = iter(range(1, 10**9, 997))
        base = timed(lambda: session.execute(select(Member).where(Member.id == next(ids))).first(), args.repeat)
        names = iter(f"测试{n}" for n in range(top // 2, 10**9, 7919))
        everything = roster.RosterFilter()
        lines += [
            ("database", args.database_url.split("://")[0] + (f"; bench-data took {made:.0f} s" if made else "")),
            ("members", f"{total:,}"),
            ("load average (1, 5, 15 min)", " ".join(f"{v:.1f}" for v in os.getloadavg())),
            ("baseline: one member by primary key", p95(base)),
        ]
        worst = 0.0
        for who, scope in (
            ("admin", None),
            ("official, 1 district", districts[:1]),
            ("official, 2 districts", districts),
        ):
            search = timed(
                lambda scope=scope: roster.list_members(
                    session, pii, scope, roster.RosterFilter(q=next(names)), cursor=None, limit=PAGE
                ),
                args.repeat,
            )
            by_phone = timed(
                lambda scope=scope: roster.list_members(
                    session, pii, scope, roster.RosterFilter(q=f"+86170{next(ids) % top:08d}"), cursor=None, limit=PAGE
                ),
                args.repeat,
            )
            by_last4 = timed(
                lambda scope=scope: roster.list_members(
                    session, pii, scope, roster.RosterFilter(q=f"{next(ids) % 10_000:04d}"), cursor=None, limit=PAGE
                ),
                args.repeat,
            )
            tabs = timed(lambda scope=scope: roster.counts(session, scope, everything, pii=pii), args.repeat)
            old_tabs = timed(lambda scope=scope: old_counts(session, scope), args.old_repeat)
            old = timed(lambda scope=scope: old_search(session, pii, scope, next(names)), args.old_repeat)
            assert roster.counts(session, scope, everything) == {
                **dict.fromkeys(("pending", "approved", "rejected"), 0),
                **old_counts(session, scope),
            }
            worst = max(worst, percentile(search, 95), percentile(tabs, 95))
            lines += [
                (f"{who}: name search (index), p95", p95(search)),
                (f"{who}: name search, old path (decrypt the scope), p95", p95(old)),
                (f"{who}: phone search (phone_index), p95", p95(by_phone)),
                (f"{who}: last four digits (phone_last4_index), p95", p95(by_last4)),
                (f"{who}: tab counts (counters), p95", p95(tabs)),
                (f"{who}: tab counts, old path (count the rows), p95", p95(old_tabs)),
            ]
        lines.append(("target (search and counts p95 <= 50 ms)", "met" if worst <= 50 else "MISSED"))
    engine.dispose()
    report(f"Roster search and counts at {total:,} members", lines)


def p95(values: list[float]) -> str:
    cpu = CPU[id(values)]
    return (
        f"{percentile(values, 95):.1f} ms (p50 {percentile(values, 50):.1f} ms; CPU p95 {percentile(cpu, 95):.1f} ms)"
    )


if __name__ == "__main__":
    main()
