"""Real processes on 127.0.0.1 for the scale tests and the benchmarks.

A gunicorn server with this project's gunicorn.conf.py, a database made ready for it, and a
small HTTP client that joins the way a phone does: scan page, form, code page, code.

SMS codes come from the console backend's outbox file (SMS_BACKEND=console), read as it grows.
That is the development backend the app already has: no test-only route or switch exists
that could be left on in production, and ProductionConfig refuses the console backend.

Rate limits stay on (they are part of the cost of a join): each simulated worker comes from its
own IPv6 /64 (through PROXY_FIX_X_FOR=1, as behind a proxy), has a phone whose 7-digit prefix
is shared by few others, and joins through one of many posters. Keys are random per run, so the
limiter's counts in a shared Redis never carry over from one run to the next.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POSTER_STARTS_PER_HOUR = 50  # app/services/limits/policy.py POSTER_STARTS: one poster per 40 joins
HIDDEN_RE = re.compile(r'<input[^>]*type="hidden"[^>]*>')
ATTR_RE = re.compile(r'(name|value)="([^"]*)"')
CODE_RE = re.compile(r"\b(\d{6})\b")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_keys() -> dict[str, str]:
    """Fresh secrets for one run (so limiter keys and poster tokens are new every run)."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "QR_SECRET": secrets.token_urlsafe(48),
        "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PII_INDEX_KEY": secrets.token_urlsafe(48),
    }


def server_env(database_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a load-test server: development settings, console SMS, one proxy hop."""
    inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")}
    return {
        **inherited,
        **run_keys(),
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(workdir / "instance"),
        "SMS_BACKEND": "console",
        "SMS_OUTBOX": str(workdir / "outbox.jsonl"),
        "PROXY_FIX_X_FOR": "1",
        "SMS_DAILY_BUDGET": str(10**9),
        "LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        **extra,
    }


def prepare(env: dict[str, str], posters: int) -> list[str]:
    """Migrate the database, add one district with `posters` workplaces; return their join paths."""
    from app import create_app
    from app.cli.database import upgrade
    from app.models import District, Workplace, WorkplaceKind
    from app.services import places

    upgrade(env["DATABASE_URL"])
    app = create_app(env=env)
    engine = app.extensions["db_engine"]
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as session:
        district = District(code="BENCH", name="压测区总工会")
        session.add(district)
        session.flush()
        rows = [
            Workplace(
                code=f"BENCH-{i:05d}",
                name=f"压测站 {i}",
                district_id=district.id or 0,
                kind=WorkplaceKind.delivery_station,
            )
            for i in range(posters)
        ]
        session.add_all(rows)
        session.commit()
        base, signer = app.config["PUBLIC_BASE_URL"], app.extensions["qr_signer"]
        paths = ["/" + places.join_url(base, signer, row).rsplit("/", 1)[1] for row in rows]
    engine.dispose()
    return paths


def posters_for(joins: int) -> int:
    return joins // (POSTER_STARTS_PER_HOUR - 10) + 1


class Server:
    """`gunicorn -c gunicorn.conf.py APP` in its own process group, ready when /healthz answers, and
    the SMS consumer (`flask --app wsgi worker`, app/services/tasks.py) in another: codes are queued."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        *,
        workers: int = 4,
        threads: int = 2,
        app: str = "wsgi:app",
        ready_path: str = "/healthz",
    ) -> None:
        self.port = free_port()
        self.env = {
            **env,
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_THREADS": str(threads),
            "GUNICORN_ACCESS_LOG": "",
        }
        self.app, self.ready_path = app, ready_path
        self.log_path = workdir / f"gunicorn-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.consumer: subprocess.Popen[bytes] | None = None

    def start(self, deadline: float = 60) -> Server:
        log = self.log_path.open("ab")
        self.consumer = subprocess.Popen(  # noqa: S603 - our own venv's flask, fixed arguments
            [str(BIN / "flask"), "--app", "wsgi", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.process = subprocess.Popen(  # noqa: S603 - our own venv's gunicorn, fixed arguments
            [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), self.app],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log()[-2000:]}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn not ready in {deadline} s: {self.log()[-2000:]}")

    def _answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", self.ready_path)
            return conn.getresponse().status == 200
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        if self.consumer is not None and self.consumer.poll() is None:
            os.killpg(self.consumer.pid, signal.SIGTERM)
            try:
                self.consumer.wait(timeout=35)
            except subprocess.TimeoutExpired:
                os.killpg(self.consumer.pid, signal.SIGKILL)
                self.consumer.wait(timeout=10)
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=35)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class Outbox:
    """The console backend's outbox, read as it grows: the latest code per phone."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.codes = path, 0, {}
        self.lock = threading.Lock()

    def code_for(self, e164: str, deadline: float = 20) -> str:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with self.lock:
                self._read()
                if e164 in self.codes:
                    return self.codes.pop(e164)
            time.sleep(0.002)
        raise TimeoutError(f"no code for phone #{e164[-4:]} in {deadline} s")

    def _read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            message = json.loads(line)
            match = CODE_RE.search(message["body"])
            if match:
                self.codes[message["to"]] = match.group(1)


def hidden_fields(html: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for tag in HIDDEN_RE.findall(html):
        attrs = dict(ATTR_RE.findall(tag))
        if "name" in attrs:
            fields[attrs["name"]] = attrs.get("value", "")
    return fields


class Browser:
    """One keep-alive connection and a cookie jar: what a phone's browser keeps between pages."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        body = urlencode(form).encode() if form is not None else None
        sent = {**(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            self.conn.request(method, path, body=body, headers=sent)
            response = self.conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            self.conn.close()  # a fresh connection next time; this request has no answer
            raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie_name, _, rest = value.partition("=")
                self.cookies[cookie_name] = rest.split(";", 1)[0]
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def forget(self) -> None:
        self.cookies.clear()


def phone(n: int) -> str:
    """A mainland number in the +86 170 (virtual operator) block, as in tests/factories.phone.

    The digits are arranged so that consecutive n get different 7-digit prefixes: the
    per-prefix limit (20 an hour) then allows 200,000 numbers.
    """
    return f"+86170{n % 10000:04d}{n // 10000 % 10000:04d}"


def client_address(run: str, n: int) -> str:
    """A unique IPv6 /64 per simulated worker (ULA range, random per run)."""
    return f"fd{run[:2]}:{run[2:6]}:{run[6:10]}:{n % 65536:x}::1"


def new_run_id() -> str:
    return secrets.token_hex(5)


@dataclass
class JoinResult:
    ok: bool
    seconds: float
    step: str = ""
    detail: str = ""


@dataclass
class Joiner:
    """Joins through a server: each call is one worker from scan to verified code."""

    port: int
    outbox: Outbox
    paths: list[str]
    run: str = field(default_factory=new_run_id)

    def join(self, browser: Browser, n: int) -> JoinResult:
        started = time.perf_counter()
        e164 = phone(n)
        path = self.paths[n % len(self.paths)]
        headers = {"X-Forwarded-For": client_address(self.run, n)}
        browser.forget()
        try:
            status, _, page = browser.request("GET", path, headers=headers)
            if status != 200:
                return JoinResult(False, time.perf_counter() - started, "scan", str(status))
            form = {**hidden_fields(page), "name": "压测工友", "phone": e164[3:], "platform": "meituan", "consent": "y"}
            status, head, page = browser.request("POST", path, form, headers)
            if status != 303 or not head.get("location", "").endswith("/join/code"):
                return JoinResult(False, time.perf_counter() - started, "form", f"{status} {page[:200]}")
            status, _, page = browser.request("GET", "/join/code", headers=headers)
            fields = hidden_fields(page)
            code = self.outbox.code_for(e164)
            status, head, page = browser.request("POST", "/join/code", {**fields, "code": code}, headers)
        except (OSError, http.client.HTTPException, TimeoutError) as exc:
            return JoinResult(False, time.perf_counter() - started, "transport", type(exc).__name__)
        ok = status == 303 and head.get("location", "").endswith("/join/done")
        return JoinResult(ok, time.perf_counter() - started, "code", "" if ok else f"{status} {page[:200]}")


def run_clients(joiner: Joiner, clients: int, joins_each: int, first: int = 0) -> list[tuple[int, JoinResult]]:
    """`clients` threads, each joining `joins_each` times in a row; returns (n, result) pairs."""
    results: list[tuple[int, JoinResult]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        browser = Browser(joiner.port)
        for k in range(joins_each):
            n = first + index * joins_each + k
            result = joiner.join(browser, n)
            with lock:
                results.append((n, result))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextmanager
def postgres_database(admin_url: str = "postgresql://postgres@127.0.0.1:5432/test") -> Iterator[str]:
    """A new empty PostgreSQL database for one run, dropped after it; yields its SQLAlchemy URL."""
    import psycopg

    name = f"scanjoin_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    base = admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def wrk(
    url: str, *, seconds: int = 10, threads: int = 2, connections: int = 50, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """Requests per second and latency percentiles from wrk (installed at /usr/bin/wrk); `headers`
    are sent with every request."""
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run(  # noqa: S603 - fixed arguments, a local URL
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
    non_2xx = int(errors.group(1)) if errors else 0
    return {"rps": rate, "p50_ms": latency["50"], "p99_ms": latency["99"], "non_2xx": non_2xx}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def machine() -> str:
    """One line about the machine: CPU model, cores, memory, load at the start."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    load = os.getloadavg()[0]
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, {memory} GB RAM, load average {load:.1f} at start"


def report(title: str, rows: list[tuple[str, str]]) -> None:
    """Print a result block ready to paste into docs/benchmarks.md."""
    print(f"\n### {title}\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"- machine: {machine()}")
    module = Path(sys.argv[0]).resolve().relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
    print(f"- command: `.venv/bin/python -m {' '.join([module, *sys.argv[1:]])}`\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
