"""A cheap load generator: simulated workers as asyncio coroutines over raw HTTP/1.1.

    .venv/bin/python -m bench.loadgen [--clients 12] [--joins 4000] [--client-processes 1]

run alone, measures the client's own ceiling and CPU cost against hello-world Flask (bench/hello.py).

Why not harness.Browser: http.client in Python threads takes turns on the GIL with one
another, and every wait for the GIL delays a request. Here each simulated worker is a
coroutine in one event loop, with its own cookie jar and a keep-alive connection
(asyncio.open_connection); requests are bytes built by hand, and a response is parsed only
as far as a browser must: status line, headers (Set-Cookie, Location, Content-Length or
chunked, Connection) and the body. Measured side by side against hello-world (load average 5-7):
0.2-0.3 ms of client CPU per four-request join with one connection per worker, against
0.4 ms for the threaded client; each join opening its own connection (the default, below)
adds ~0.17 ms.

The join flow is harness.Joiner's: scan page, form, code page, code, with the same
X-Forwarded-For /64 and phone per join number and posters taken in turn (twice as many:
posters()); the code comes from the console outbox, tailed from where the last read stopped. A join's latency runs
from its first request to the final 303, and each step is timed too. `--client-processes K`
splits the workers over K processes when one cannot keep up; the client's CPU time
(getrusage of the client over the measured window) is reported per join, so the cost of the
load is a figure, not a guess.

Concurrency (--clients, default 12 in bench.joins): the target is >= 200 joins/s with
p99 <= 200 ms. By Little's law, joins in flight = rate × mean latency: 12 at 200/s leaves a
mean of 60 ms, room for a p99 of 200 ms; 16 leaves 80 ms, 32 leaves 160 ms (p99 then cannot
be met whatever the server does). Fewer leave the server's cores idle between a worker's
requests. Measured with bench.joins --joins 1600 on SQLite (2026-11-29 06:45-06:50 UTC,
load average 6-8, server at ~70 joins/s):

| simulated workers | joins/s | p50 | p99 |
|---|---|---|---|
| 8 | 65, 71 | 74, 74 ms | 814, 679 ms |
| 12 | 77, 69 | 76, 90 ms | 1,140, 1,297 ms |
| 16 | 80, 78 | 89, 95 ms | 1,775, 1,531 ms |
| 32 | 72 | 204 ms | 2,676 ms |

The rate stops growing near 12-16 (the server is then busy all the time) while p99 keeps
growing with every worker added (joins only queue): 12 gets ~95% of the rate at 16 with
about 70% of its p99.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing
import queue
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote_plus

from bench.harness import (
    CODE_RE,
    JoinResult,
    client_address,
    hidden_fields,
    new_run_id,
    percentile,
    phone,
    posters_for,
)

NO_BODY_STATUSES = frozenset({204, 304})


class ConnectionDropped(ConnectionError):
    """The server closed the connection before sending any byte of a response."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]  # names in lower case, in the order received (Set-Cookie repeats)
    body: bytes

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key == name), "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def build_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """The request's bytes: request line, Host, the headers, Content-Length when there is a body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def parse_head(head: bytes) -> tuple[str, int, list[tuple[str, str]]]:
    """HTTP version, status and headers from the bytes up to the blank line."""
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    version, status = status_line.split(" ", 2)[:2]
    pairs = (line.partition(":") for line in lines)
    return version, int(status), [(name.strip().lower(), value.strip()) for name, _, value in pairs]


@functools.lru_cache(maxsize=256)
def quoted(text: str) -> str:
    """quote_plus, remembered: most form values (name, platform, field names) repeat in every join."""
    return quote_plus(text)


def form_body(form: dict[str, str]) -> bytes:
    """The form as application/x-www-form-urlencoded bytes (what urlencode gives, at a fraction of its cost)."""
    return "&".join(f"{quoted(name)}={quoted(value)}" for name, value in form.items()).encode("ascii")


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Connection:
    """One keep-alive HTTP/1.1 connection to host:port, opened on first use and after a close."""

    def __init__(self, host: str, port: int, timeout: float = 60) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0  # connections opened so far (the keep-alive test reads it)

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Response:
        reused = self.writer is not None
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    return await self._exchange(method, path, headers, body)
                except (ConnectionDropped, ConnectionResetError, BrokenPipeError):
                    self.close()
                    if not reused:
                        raise
                # The server closed an idle keep-alive connection before reading this request:
                # as browsers do, send it again once on a fresh connection.
                return await self._exchange(method, path, headers, body)
        except BaseException:
            self.close()  # a half-read response must not be taken for the next one's
            raise

    async def _exchange(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.opened += 1
        assert self.reader is not None
        self.writer.write(build_request(method, path, f"{self.host}:{self.port}", headers, body))
        await self.writer.drain()
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise ConnectionDropped("closed before the response") from None
            raise
        version, status, response_headers = parse_head(head)
        response = Response(status, response_headers, b"")
        response.body = await self._body(method, response)
        if self._closes(version, response):
            self.close()
        return response

    async def _body(self, method: str, response: Response) -> bytes:
        assert self.reader is not None
        if method == "HEAD" or response.status in NO_BODY_STATUSES or response.status < 200:
            return b""
        if "chunked" in response.header("transfer-encoding").lower():
            return await read_chunked(self.reader)
        length = response.header("content-length")
        if length:
            return await self.reader.readexactly(int(length))
        response.headers.append(("connection", "close"))  # delimited by the end of the connection
        return await self.reader.read()

    @staticmethod
    def _closes(version: str, response: Response) -> bool:
        tokens = {
            token.strip().lower()
            for key, value in response.headers
            if key == "connection"
            for token in value.split(",")
        }
        return "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def expires_now(attribute: str) -> bool:
    """Whether a Set-Cookie attribute (Max-Age=0, an Expires date in the past) deletes the cookie."""
    key, _, value = attribute.strip().partition("=")
    if key.lower() == "max-age":
        return value.strip().lstrip("-").isdigit() and int(value) <= 0
    if key.lower() == "expires":
        try:
            return parsedate_to_datetime(value).timestamp() <= time.time()
        except (TypeError, ValueError):
            return False
    return False


class Browser:
    """What a phone's browser keeps between pages: one connection and a cookie jar."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.connection = Connection(host, port)
        self.cookies: dict[str, str] = {}

    async def request(
        self, method: str, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        sent = dict(headers or {})
        body = form_body(form) if form is not None else None
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        response = await self.connection.request(method, path, sent, body)
        for key, value in response.headers:
            if key == "set-cookie":
                self._store(value)
        return response

    def _store(self, set_cookie: str) -> None:
        pair, *attributes = set_cookie.split(";")
        name, _, value = pair.strip().partition("=")
        if any(expires_now(attribute) for attribute in attributes):
            self.cookies.pop(name, None)  # how a server deletes a cookie
        else:
            self.cookies[name] = value

    def forget(self) -> None:
        self.cookies.clear()

    def close(self) -> None:
        self.connection.close()


class OutboxTail:
    """The console SMS outbox (JSON lines), read from where the last read stopped: codes per phone."""

    def __init__(self, path: Path, interval: float = 0.002) -> None:
        self.path, self.interval = path, interval
        self.handle = None
        self.partial = b""
        self.codes: dict[str, str] = {}
        self.waiters: dict[str, asyncio.Future[str]] = {}
        self.poller: asyncio.Task[None] | None = None

    async def code_for(self, e164: str, deadline: float = 20) -> str:
        self.read()
        if e164 in self.codes:
            return self.codes.pop(e164)
        waiter = self.waiters[e164] = asyncio.get_running_loop().create_future()
        if self.poller is None:
            self.poller = asyncio.create_task(self._poll())
        try:
            return await asyncio.wait_for(waiter, deadline)
        finally:
            self.waiters.pop(e164, None)

    async def _poll(self) -> None:
        try:
            while self.waiters:
                await asyncio.sleep(self.interval)
                self.read()
        finally:
            self.poller = None

    def read(self) -> None:
        if self.handle is None:
            if not self.path.exists():
                return
            self.handle = self.path.open("rb")
        data = self.partial + self.handle.read()
        end = data.rfind(b"\n") + 1
        self.partial = data[end:]
        for line in data[:end].splitlines():
            self._take(json.loads(line))

    def _take(self, message: dict[str, str]) -> None:
        match = CODE_RE.search(message["body"])
        if not match:
            return
        waiter = self.waiters.get(message["to"])
        if waiter is not None and not waiter.done():
            waiter.set_result(match.group(1))
        else:
            self.codes[message["to"]] = match.group(1)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


@dataclass
class Plan:
    """Who joins where: `clients` workers, each joining `joins_each` times in a row from number `first`."""

    port: int
    paths: list[str]
    outbox: Path | None  # None: the hello-world flow (no SMS)
    clients: int
    joins_each: int
    first: int = 0
    run: str = field(default_factory=new_run_id)
    # Each join is another phone, so by default it opens its own connection (kept alive for its
    # four requests): gunicorn then spreads joins over its workers as it accepts them. Workers
    # that kept one connection for all their joins stayed where the first accept put them
    # (8 connections all on 1 of 4 gunicorn workers, 16 on 3), and one worker's GIL is one core.
    connection_per_join: bool = True

    def numbers(self, index: int) -> range:
        start = self.first + index * self.joins_each
        return range(start, start + self.joins_each)


def posters(joins: int) -> int:
    """Posters for a run of `joins`: twice harness.posters_for, so no poster nears its hourly limit.

    At 80% of a poster's limit (CHALLENGE_NEAR_LIMIT_PERCENT) the form sends the worker to the
    human check instead of the code page; posters_for allows up to 40 of 50 starts a poster,
    which a shared Redis store counts exactly (on PostgreSQL runs 3 of 800 joins hit the check).
    """
    return posters_for(2 * joins)


def fail(started: float, step: str, response: Response) -> JoinResult:
    """An unexpected answer: its status and where it redirects, else the start of its page, on one line."""
    said = f"to {response.header('location')}" if response.header("location") else response.text[:200]
    return JoinResult(False, time.perf_counter() - started, step, " ".join(f"{response.status} {said}".split()))


STEPS = ("scan page", "form", "code page", "waiting for the SMS", "code")


@dataclass
class TimedJoin(JoinResult):
    steps: tuple[float, ...] = ()  # seconds of each of STEPS, in order


async def join(plan: Plan, outbox: OutboxTail, browser: Browser, n: int) -> JoinResult:
    """One worker from scan to verified code, as harness.Joiner.join does it; each step timed."""
    started, e164, path = time.perf_counter(), phone(n), plan.paths[n % len(plan.paths)]
    laps = [started]
    headers = {"X-Forwarded-For": client_address(plan.run, n)}
    browser.forget()
    response = await browser.request("GET", path, headers=headers)
    if response.status != 200:
        return fail(started, "scan", response)
    laps.append(time.perf_counter())
    form = {
        **hidden_fields(response.text),
        "name": "压测工友",
        "phone": e164[3:],
        "platform": "meituan",
        "consent": "y",
    }
    response = await browser.request("POST", path, form, headers)
    if response.status != 303 or not response.header("location").endswith("/join/code"):
        return fail(started, "form", response)
    laps.append(time.perf_counter())
    response = await browser.request("GET", "/join/code", headers=headers)
    if response.status != 200:
        return fail(started, "code page", response)
    fields = hidden_fields(response.text)
    laps.append(time.perf_counter())
    code = await outbox.code_for(e164)
    laps.append(time.perf_counter())
    response = await browser.request("POST", "/join/code", {**fields, "code": code}, headers)
    if response.status != 303 or not response.header("location").endswith("/join/done"):
        return fail(started, "code", response)
    laps.append(time.perf_counter())
    return TimedJoin(True, laps[-1] - started, steps=tuple(b - a for a, b in zip(laps, laps[1:], strict=False)))


async def hello_join(plan: Plan, browser: Browser, n: int) -> JoinResult:
    """The same four requests against hello-world: GET, POST a form (303), GET, POST a code (303)."""
    started, headers = time.perf_counter(), {"X-Forwarded-For": client_address(plan.run, n)}
    browser.forget()
    fields: dict[str, str] = {}
    for method, step in (("GET", "scan"), ("POST", "form"), ("GET", "code page"), ("POST", "code")):
        form = None
        if step == "form":
            form = {**fields, "name": "压测工友", "phone": phone(n)[3:], "platform": "meituan", "consent": "y"}
        elif step == "code":
            form = {**fields, "code": "123456"}
        response = await browser.request(method, "/", form, headers)
        fields = hidden_fields(response.text)
        if response.status != (200 if method == "GET" else 303):
            return fail(started, step, response)
    return JoinResult(True, time.perf_counter() - started)


async def worker(plan: Plan, outbox: OutboxTail | None, index: int) -> list[JoinResult]:
    browser, results = Browser(plan.port), []
    try:
        for n in plan.numbers(index):
            try:
                if outbox is None:
                    results.append(await hello_join(plan, browser, n))
                else:
                    results.append(await join(plan, outbox, browser, n))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
                browser.close()  # a fresh connection for the next join; this one has no answer
                results.append(JoinResult(False, 0.0, "transport", f"{type(exc).__name__} {exc}"[:200]))
            if plan.connection_per_join:
                browser.close()
    finally:
        browser.close()
    return results


async def run_workers(plan: Plan, indexes: range) -> list[JoinResult]:
    outbox = OutboxTail(plan.outbox) if plan.outbox is not None else None
    try:
        batches = await asyncio.gather(*(worker(plan, outbox, i) for i in indexes))
    finally:
        if outbox is not None:
            outbox.close()
    return [result for batch in batches for result in batch]


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# In the caller's process only the thread running the event loop is the client (a benchmark may
# run a provider stand-in in other threads of the same process); a spawned client is all client.
LOOP_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


@dataclass
class LoadResult:
    results: list[JoinResult]
    elapsed: float
    client_cpu: float  # seconds of CPU of every client process over the measured window

    @property
    def ok(self) -> list[float]:
        return [r.seconds for r in self.results if r.ok]

    @property
    def rate(self) -> float:
        return len(self.ok) / self.elapsed if self.elapsed else float("nan")

    def p(self, q: float) -> float:
        return percentile(self.ok, q) * 1000

    @property
    def failed(self) -> int:
        return len(self.results) - len(self.ok)

    def reasons(self, first: int = 3) -> str:
        counts = Counter(f"{r.step}: {r.detail[:80]}" for r in self.results if not r.ok)
        return "; ".join(f"{n}× {reason}" for reason, n in counts.most_common(first))

    @property
    def cpu_per_join_ms(self) -> float:
        return self.client_cpu / len(self.results) * 1000 if self.results else float("nan")

    def step_p99(self) -> str:
        """p99 of each step of the ScanJoin flow, in ms: where a slow join spent its time."""
        timed = [r.steps for r in self.results if isinstance(r, TimedJoin) and r.ok]
        if not timed:
            return "-"
        return ", ".join(f"{name} {percentile([t[i] for t in timed], 99) * 1000:.0f}" for i, name in enumerate(STEPS))

    def summary(self) -> str:
        """One line for a report: rate, latency, failures, the client's CPU."""
        failed = f"{self.failed} failed" + (f" ({self.reasons()})" if self.failed else "")
        return (
            f"{self.rate:.1f} joins/s, p50 {self.p(50):.0f} ms, p99 {self.p(99):.0f} ms, {failed}; "
            f"client CPU {self.cpu_per_join_ms:.2f} ms/join"
        )


def _child(
    plan: Plan,
    indexes: range,
    ready: multiprocessing.Queue,
    go: multiprocessing.Event,  # type: ignore[type-arg]
    done: multiprocessing.Queue,
) -> None:  # type: ignore[type-arg]
    ready.put(True)
    go.wait()
    cpu = cpu_seconds()
    results = asyncio.run(run_workers(plan, indexes))
    done.put((results, time.monotonic(), cpu_seconds() - cpu))


def run(plan: Plan, processes: int = 1, *, apart: bool = False) -> LoadResult:
    """Every worker of the plan, in this process or spread over `processes` spawned ones.

    `apart` spawns even a single client process: for a caller whose own threads (a provider
    stand-in) would otherwise share the GIL with the client's event loop.
    """
    if processes <= 1 and not apart:
        cpu, started = cpu_seconds(LOOP_THREAD), time.monotonic()
        results = asyncio.run(run_workers(plan, range(plan.clients)))
        return LoadResult(results, time.monotonic() - started, cpu_seconds(LOOP_THREAD) - cpu)
    context = multiprocessing.get_context("spawn")  # the parent may hold threads and database handles
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    children = [
        context.Process(target=_child, args=(plan, range(k, plan.clients, processes), ready, go, done))
        for k in range(max(processes, 1))
    ]
    for child in children:
        child.start()
    for _ in children:
        try:
            ready.get(timeout=60)
        except queue.Empty:
            for child in children:
                child.kill()
            raise RuntimeError("a client process did not start (spawn needs a __main__ guard)") from None
    started = time.monotonic()
    go.set()
    outcomes = [done.get() for _ in children]
    for child in children:
        child.join()
    results = [result for batch, _, _ in outcomes for result in batch]
    return LoadResult(results, max(end for _, end, _ in outcomes) - started, sum(cpu for _, _, cpu in outcomes))


def main() -> None:
    import tempfile

    from bench.harness import Server, report, server_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--joins", type=int, default=4000)
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = server_env("sqlite://", Path(tmp))
        with Server(
            env, Path(tmp), app="bench.hello:app", ready_path="/", workers=args.workers, threads=args.threads
        ) as hello:
            run(Plan(hello.port, ["/"], None, args.clients, 4))
            result = run(Plan(hello.port, ["/"], None, args.clients, args.joins // args.clients), args.client_processes)
    report(
        "Load generator against hello-world Flask",
        [
            (
                "setup",
                f"{args.workers} gthread workers × {args.threads} threads; {args.clients} simulated workers "
                f"in {args.client_processes} client process(es); {len(result.results)} joins of 4 requests",
            ),
            ("joins/s", f"{result.rate:.0f}"),
            ("latency of a whole join", f"p50 {result.p(50):.1f} ms, p99 {result.p(99):.1f} ms"),
            ("failed", f"{result.failed} {result.reasons()}".strip()),
            ("client CPU per join", f"{result.cpu_per_join_ms:.2f} ms"),
        ],
    )


if __name__ == "__main__":
    main()
