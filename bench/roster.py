"""The roster at scale: first page, a filtered page and page 1,000 (p95), and an export of all rows.

    .venv/bin/python -m bench.roster --members 1000000 [--database-url URL] [--repeat 40] [--xlsx]

Makes the members with `flask --app wsgi bench-data` when the database has fewer, then calls the
roster service (app/services/roster.py) and the CSV export (app/services/export.py) directly,
in one process, as a roster page or the export view does. The baseline in the same run is the
primary-key lookup of one member (the cheapest query the database can answer). Pages are 50
rows, as the roster's default. Memory is the process's peak RSS growth during the export.
Targets: pages p95 <= 50 ms, export <= 20 s at flat memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import ROOT, percentile, report

PAGE = 50


def ensure_members(env: dict[str, str], members: int) -> float:
    """Add members up to `members`; return the seconds it took (0 when already there)."""
    from app import create_app
    from app.cli.database import upgrade

    upgrade(env["DATABASE_URL"])
    app = create_app(env=env)
    with app.app_context():
        from sqlalchemy import func, select

        from app.db import session_scope
        from app.models import Member

        with session_scope() as session:
            have = session.execute(select(func.count()).select_from(Member)).scalar_one()
    app.extensions["db_engine"].dispose()
    if have >= members:
        return 0.0
    started = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "flask"),
            "--app",
            "wsgi",
            "bench-data",  # noqa: S603
            "--members",
            str(members - have),
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return time.perf_counter() - started


CPU: dict[int, list[float]] = {}


def timed(function, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Wall milliseconds of each call; the CPU milliseconds go to CPU[id(result)]."""
    out, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        function()
        out.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    CPU[id(out)] = cpu
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=f"sqlite:///{ROOT / 'instance' / 'bench-roster.db'}")
    parser.add_argument("--instance", default=str(ROOT / "instance" / "bench"))
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--xlsx", action="store_true", help="also export every row as XLSX")
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
    from app.models import Member, MemberStatus, Platform
    from app.services import export, roster

    app = create_app(env=env)
    pii, engine = app.extensions["pii"], app.extensions["db_engine"]
    everything = roster.RosterFilter()
    filtered = roster.RosterFilter(status=MemberStatus.pending, platform=Platform.meituan)
    with app.app_context(), Session(engine) as session:
        ids = iter(range(1, 10**9, 997))
        base = timed(lambda: session.execute(select(Member).where(Member.id == next(ids))).first(), args.repeat)
        districts = sorted(session.execute(select(Member.district_id).distinct()).scalars())[:2]
        results = {}
        for who, scope in (
            ("admin", None),
            ("official, 1 district", districts[:1]),
            ("official, 2 districts", districts),
        ):
            cursor = None
            for _ in range(999):  # walk to page 1,000 once, keeping its cursor
                cursor = roster.list_members(session, pii, scope, everything, cursor=cursor, limit=PAGE).next_cursor
            results[who] = [
                timed(
                    lambda scope=scope: roster.list_members(session, pii, scope, everything, cursor=None, limit=PAGE),
                    args.repeat,
                ),
                timed(
                    lambda scope=scope: roster.list_members(session, pii, scope, filtered, cursor=None, limit=PAGE),
                    args.repeat,
                ),
                timed(
                    lambda scope=scope, cursor=cursor: roster.list_members(
                        session, pii, scope, everything, cursor=cursor, limit=PAGE
                    ),
                    args.repeat,
                ),
                timed(lambda scope=scope: roster.counts(session, scope, everything, pii=pii), args.repeat),
            ]
        pages_report(args, made, base, results)
        exports = [export_run(export.csv_stream, session, pii, everything, "CSV")]
        if args.xlsx:
            exports.append(export_run(export.xlsx_stream, session, pii, everything, "XLSX"))
    engine.dispose()
    lines = []
    for label, rows, size, wall, cpu, growth in exports:
        lines += [
            (
                f"export of all rows ({label})",
                f"{rows:,} rows, {size / 1e6:.0f} MB in {wall:.1f} s "
                f"(CPU {cpu:.1f} s; {cpu / max(rows, 1) * 1e6:.1f} µs a row)",
            ),
            (f"peak memory growth during the {label} export", f"{growth:.0f} MB"),
        ]
    lines += [
        ("export target (CSV <= 20 s, flat memory)", "met" if exports[0][3] <= 20 else "MISSED"),
        ("load average (1, 5, 15 min) at the end", " ".join(f"{v:.1f}" for v in os.getloadavg())),
    ]
    report(f"Roster export at {args.members:,} members", lines)


def export_run(stream, session, pii, flt, label):  # type: ignore[no-untyped-def]
    """Rows, bytes, wall s, CPU s and peak RSS growth (MB) of one export of every row."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started, cpu_started, size, rows = time.perf_counter(), time.process_time(), 0, []
    for chunk in stream(session, pii, None, flt, finish=lambda n, _ok: rows.append(n)):
        size += len(chunk)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return label, rows[0] if rows else 0, size, wall, cpu, growth


def pages_report(
    args: argparse.Namespace, made: float, base: list[float], results: dict[str, list[list[float]]]
) -> None:
    def p95(values: list[float]) -> str:
        cpu = CPU[id(values)]
        return (
            f"{percentile(values, 95):.1f} ms (p50 {percentile(values, 50):.1f} ms; "
            f"CPU p95 {percentile(cpu, 95):.1f} ms)"
        )

    lines = [
        ("database", args.database_url.split("://")[0] + (f"; bench-data took {made:.0f} s" if made else "")),
        ("load average (1, 5, 15 min)", " ".join(f"{v:.1f}" for v in os.getloadavg())),
        ("baseline: one member by primary key", p95(base)),
    ]
    for who, (first, narrow, deep, tabs) in results.items():
        lines += [
            (f"{who}: first page (50 rows), p95", p95(first)),
            (f"{who}: filtered page (pending, Meituan), p95", p95(narrow)),
            (f"{who}: page 1,000 by keyset cursor, p95", p95(deep)),
            (f"{who}: the tabs' counts (every status), p95", p95(tabs)),
        ]
    pages_met = max(percentile(v, 95) for pages in results.values() for v in pages[:3]) <= 50
    lines.append(("pages target (p95 <= 50 ms)", "met" if pages_met else "MISSED"))
    report(f"Roster pages at {args.members:,} members", lines)


if __name__ == "__main__":
    main()
