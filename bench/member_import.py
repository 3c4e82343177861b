"""Member import at scale: `flask members import` of a 100,000-row register, against its own baseline.

    .venv/bin/python -m bench.member_import --database sqlite|postgres [--rows 100000]

Writes a CSV of made-up members (random Chinese names; phones in the +86 170 virtual-operator
block that tests.factories and `bench-data` use, never a person's number; 2 % of rows repeat an
earlier phone and 1 % have a malformed one; half carry a member number), into 5 districts of 4
stations, then times in the same run:

- baseline: read, decode and parse the file and normalise every phone (phonenumbers), the
  least any import must do;
- the dry run (`members import --dry-run`, a separate process: start-up included);
- the import itself (`members import`, a separate process), then the same file again (every row
  a duplicate of a member).

Target: the import of 100,000 rows under 60 s.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

from bench.harness import ROOT, postgres_database, report, run_keys

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红文斌宇浩鹏飞俊波辉亮"
PLATFORMS = ["美团", "饿了么", "meituan", "eleme", "滴滴", "闪送", ""]
DISTRICTS = [f"B{d}" for d in range(5)]


def places_csv() -> str:
    return "".join(f"{d},测试区{d},{d}-S{s},测试站{d}{s},delivery_station\n" for d in DISTRICTS for s in range(4))


def register_csv(rows: int, seed: int = 7) -> str:
    rng = random.Random(seed)  # noqa: S311 - made-up test data, not a secret
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "phone", "district", "workplace", "platform", "join_date", "member_number"])
    numbers = dict.fromkeys(DISTRICTS, 0)
    for n in range(rows):
        district = DISTRICTS[n % len(DISTRICTS)]
        roll = rng.random()
        phone = f"170{rng.randrange(n) if roll < 0.02 and n else n:08d}"
        if 0.02 <= roll < 0.03:
            phone = phone[:6]
        number = ""
        if n % 2 == 0:
            numbers[district] += 1
            number = f"{district}-{numbers[district]:06d}"
        writer.writerow(
            [
                rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2))),
                phone,
                district,
                f"{district}-S{rng.randrange(4)}" if rng.random() < 0.8 else "",
                rng.choice(PLATFORMS),
                (date(2015, 1, 1) + timedelta(days=rng.randrange(3600))).isoformat(),
                number,
            ]
        )
    return out.getvalue()


def baseline(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds to read, decode, parse and normalise the phones of the file (no database)."""
    from app.services.member_import import decode
    from app.services.phones import PhoneInvalid, normalize

    started, cpu = time.perf_counter(), time.process_time()
    text = decode(path.read_bytes())
    for record in csv.DictReader(io.StringIO(text)):
        try:
            normalize(record["phone"], ["CN"])
        except PhoneInvalid:
            pass
    return time.perf_counter() - started, time.process_time() - cpu


def _children_cpu() -> float:
    """CPU seconds (user + system) of finished child processes: what the machine's load inflates least."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def flask(env: dict[str, str], *args: str) -> tuple[float, float, str]:
    """Run a command: its wall and CPU seconds, and its last line of output."""
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(  # noqa: S603 - this venv's flask, fixed arguments
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr[-2000:])
    return time.perf_counter() - started, _children_cpu() - cpu, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-import-")))
        url = f"sqlite:///{work / 'bench.db'}"
        if args.database == "postgres":
            url = stack.enter_context(postgres_database())
        env = {**os.environ, **run_keys(), "DATABASE_URL": url, "INSTANCE_PATH": str(work / "instance")}
        env["LOG_LEVEL"] = "WARNING"
        (work / "places.csv").write_text(places_csv(), encoding="utf-8")
        flask(env, "db", "upgrade")
        _, start_cpu, _ = flask(env, "members", "--help")  # the cost of starting the app
        flask(env, "places", "import", str(work / "places.csv"))
        path = work / "members.csv"
        path.write_text(register_csv(args.rows), encoding="utf-8")
        base, base_cpu = baseline(path)
        imports = {}
        for name, extra in (("dry run", ["--dry-run"]), ("import", []), ("same file again", [])):
            imports[name] = flask(env, "members", "import", str(path), *extra, "--report", str(work / "report.csv"))
    wall, cpu, _ = imports["import"]
    rows = [
        ("baseline: read, parse, normalise phones (in process)", f"{base:.1f} s wall, {base_cpu:.1f} s CPU"),
        ("app start-up (`flask members --help`)", f"{start_cpu:.1f} s CPU"),
    ]
    for name, (w, c, out) in imports.items():
        rows.append((f"{name} (a process)", f"{w:.1f} s wall, {c:.1f} s CPU: {out}"))
    rows.append(("import against the baseline", f"{wall / base:.1f}× wall, {cpu / base_cpu:.1f}× CPU"))
    rows.append(("import rate", f"{args.rows / wall:,.0f} rows/s wall, {args.rows / cpu:,.0f} rows/s of CPU"))
    report(f"Member import, {args.rows:,} rows, {args.database}", rows)


if __name__ == "__main__":
    main()
