"""The dashboard at scale: every figure of one page, for an admin and for a one-district official.

    .venv/bin/python -m bench.dashboard --members 1000000 [--database-url URL] [--repeat 5]

Makes the members with `flask --app wsgi bench-data` (bench/roster.py's generator) when the
database has fewer, then times `dashboard.report` (all the page's queries) for 30 and 90 days.
"""

from __future__ import annotations

import argparse
import os

from bench.harness import ROOT, percentile, report
from bench.roster import ensure_members, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=f"sqlite:///{ROOT / 'instance' / 'bench-roster.db'}")
    parser.add_argument("--instance", default=str(ROOT / "instance" / "bench"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": args.database_url,
        "INSTANCE_PATH": args.instance,
        "LOG_LEVEL": "WARNING",
    }
    made = ensure_members(env, args.members)

    from sqlalchemy import select
    from sqlmodel import Session

    from app import create_app
    from app.models import District, utcnow
    from app.services import dashboard

    app = create_app(env=env)
    engine = app.extensions["db_engine"]
    lines = [("database", args.database_url.split("://")[0] + (f"; bench-data took {made:.0f} s" if made else ""))]
    with Session(engine) as session:
        first = session.execute(select(District.id).order_by(District.id)).scalars().first()
        for who, scope in (("admin, every district", None), ("official, 1 district", [first])):
            for days in dashboard.PERIODS:
                win = dashboard.window(utcnow(), days)
                runs = timed(
                    lambda scope=scope, win=win: dashboard.report(session, scope, win, members=True, working_days=15),
                    args.repeat,
                )
                lines.append(
                    (
                        f"{who}, {days} days: whole page's figures",
                        f"p50 {percentile(runs, 50):.0f} ms, max {max(runs):.0f} ms",
                    )
                )
    engine.dispose()
    lines.append(("load average (1, 5, 15 min) at the end", " ".join(f"{v:.1f}" for v in os.getloadavg())))
    report(f"Dashboard at {args.members:,} members", lines)


if __name__ == "__main__":
    main()
