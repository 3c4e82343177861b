"""Roster exports as jobs at scale: the request that starts one, and the consumer's CSV and XLSX files.

    .venv/bin/python -m bench.exports --members 1000000 [--database-url URL] [--no-xlsx]

Uses the members of bench.roster (made with `flask --app wsgi bench-data` when the database has
fewer). In one process, as the roster's Export button and `flask --app wsgi worker` do:

* baseline, same run: today's streamed CSV of every row (export.csv_stream), read to the end;
* the request's part: `export_jobs.start` and its commit (what /roster/exports/ POST does), p95;
* the consumer's part: `Exports.run` of a CSV job and of an XLSX job (claim, count, write the file
  under the instance folder with progress every 10,000 rows, settle), wall and CPU seconds, peak
  RSS growth, and how many progress steps the page could have shown.

Targets (issue 17): the request a few milliseconds whatever the size; CSV of 1M rows <= 15 s;
XLSX of 1M rows <= 60 s; memory flat.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from bench.harness import ROOT, percentile, report
from bench.roster import ensure_members

BENCH_USER = "bench-exports@example.org"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=f"sqlite:///{ROOT / 'instance' / 'bench-roster.db'}")
    parser.add_argument("--instance", default=str(ROOT / "instance" / "bench"))
    parser.add_argument("--no-xlsx", action="store_true", help="skip the XLSX job")
    parser.add_argument("--repeat", type=int, default=20, help="job starts timed for the request's p95")
    args = parser.parse_args()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": args.database_url,
        "INSTANCE_PATH": args.instance,
        "LOG_LEVEL": "WARNING",
        "TASK_QUEUE": f"sqlite:///{args.instance}/bench-tasks.db",  # wake-ups are left there, unread
    }
    made = ensure_members(env, args.members)

    from sqlalchemy import delete, select
    from sqlmodel import Session

    from app import create_app
    from app.db import writing
    from app.models import ExportJob, Role, User
    from app.services import export, export_jobs, roster

    app = create_app(env=env)
    pii, engine, exports = app.extensions["pii"], app.extensions["db_engine"], app.extensions["exports"]
    lines = [
        ("database", args.database_url.split("://")[0] + (f"; bench-data took {made:.0f} s" if made else "")),
        ("load average (1, 5, 15 min) at the start", " ".join(f"{v:.1f}" for v in os.getloadavg())),
    ]
    with app.app_context():
        with Session(engine) as session:
            user_id = session.execute(select(User.id).where(User.email == BENCH_USER)).scalar()
        if user_id is None:  # an account that cannot sign in (no password hash matches "-")
            with Session(writing(engine), expire_on_commit=False) as db:
                user = User(email=BENCH_USER, password_hash="-", role=Role.admin, active=False)
                db.add(user)
                db.commit()
                user_id = user.id
        with Session(engine) as session:
            rows, started, cpu = [], time.perf_counter(), time.process_time()
            size = sum(
                len(chunk)
                for chunk in export.csv_stream(
                    session, pii, None, roster.RosterFilter(), finish=lambda n, _ok: rows.append(n)
                )
            )
            wall = time.perf_counter() - started
            lines.append(
                (
                    "baseline: streamed CSV of every row (today's view)",
                    f"{rows[0]:,} rows, {size / 1e6:.0f} MB in {wall:.1f} s (CPU {time.process_time() - cpu:.1f} s)",
                )
            )

        def start(fmt: str) -> int:
            with Session(writing(engine), expire_on_commit=False) as db:
                job = export_jobs.start(
                    db, pii, user_id=user_id, scope=None, args={}, overdue_days=15, fmt=fmt, layout=export.CODES
                )
                db.commit()
                assert job.id is not None
                return job.id

        waits = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            start("csv")
            waits.append((time.perf_counter() - began) * 1000)
        with Session(writing(engine)) as db:
            db.execute(delete(ExportJob))
            db.commit()
        lines.append(
            (
                "the request's part: job written and committed, p95",
                f"{percentile(waits, 95):.1f} ms (p50 {percentile(waits, 50):.1f} ms), whatever the size",
            )
        )
        steps: list[int] = []
        real_progress = exports._progress

        def counting(job_id: int, attempt: int, done: int, rows_total: int | None = None) -> None:
            steps.append(done)
            real_progress(job_id, attempt, done, rows_total)

        exports._progress = counting
        met = {}
        for fmt in ("csv",) if args.no_xlsx else ("csv", "xlsx"):
            steps.clear()
            job_id = start(fmt)
            before, began, cpu = rss_mb(), time.perf_counter(), time.process_time()
            outcome = exports.run(job_id)
            wall, used = time.perf_counter() - began, time.process_time() - cpu
            with Session(engine) as db:
                job = db.get(ExportJob, job_id)
                assert job is not None and job.file_path
                size = (exports.settings.folder / job.file_path).stat().st_size
                done = job.rows_done
            met[fmt] = wall
            lines += [
                (
                    f"the consumer's part: {fmt.upper()} job of every row",
                    f"{outcome}: {done:,} rows, {size / 1e6:.0f} MB in {wall:.1f} s (CPU {used:.1f} s; "
                    f"{used / max(done, 1) * 1e6:.1f} µs a row); {len(steps)} progress steps",
                ),
                (f"peak memory growth during the {fmt.upper()} job", f"{rss_mb() - before:.0f} MB"),
            ]
        with Session(writing(engine)) as db:
            for job in db.execute(select(ExportJob)).scalars():
                if job.file_path:
                    (exports.settings.folder / job.file_path).unlink(missing_ok=True)
            db.execute(delete(ExportJob))
            db.commit()
    engine.dispose()
    target = "met" if met["csv"] <= 15 else "MISSED"
    if "xlsx" in met:
        target += "; XLSX <= 60 s " + ("met" if met["xlsx"] <= 60 else "MISSED")
    lines += [
        ("targets: CSV <= 15 s", target),
        ("load average (1, 5, 15 min) at the end", " ".join(f"{v:.1f}" for v in os.getloadavg())),
    ]
    report(f"Roster exports as jobs at {args.members:,} members", lines)


if __name__ == "__main__":
    main()
