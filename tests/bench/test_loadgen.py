"""bench/loadgen.py's HTTP client against a raw asyncio server on 127.0.0.1 that answers scripted bytes."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bench import loadgen


@dataclass
class Seen:
    connection: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[Seen], tuple[bytes, bool]]  # the response's bytes; whether to close afterwards


@dataclass
class RawServer:
    """An HTTP/1.1 server in its own thread and loop, recording every request with its connection."""

    answer: Answer
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        async def serve() -> None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        assert started.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
                method, path, _ = line.split(" ")
                headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(number, method, path, headers, body)
                self.seen.append(seen)
                data, close = self.answer(seen)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()


SEE_OTHER = b"HTTP/1.1 303 SEE OTHER\r\nContent-Length: 0\r\n\r\n"


def ok(body: bytes = b"hello", *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        server = RawServer(answer)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def fetch(port: int, *requests: tuple[str, str]) -> tuple[list[loadgen.Response], loadgen.Browser]:
    """The requests in order through one Browser; the responses and the browser."""
    browser = loadgen.Browser(port)

    async def go() -> list[loadgen.Response]:
        try:
            return [
                await browser.request(method, path, {"a": "1"} if method == "POST" else None)
                for method, path in requests
            ]
        finally:
            browser.close()

    return asyncio.run(go()), browser


def test_content_length_and_chunked_bodies_on_one_kept_alive_connection(serve):
    chunked = (
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6;name=ext\r\n你好\r\n3\r\n, w\r\n4\r\norld\r\n0\r\nX-Trailer: 1\r\n\r\n"
    ).encode()
    answers = {"/length": ok(b"<p>length</p>"), "/chunked": chunked, "/empty": b"HTTP/1.1 204 No Content\r\n\r\n"}
    server = serve(lambda seen: (answers[seen.path], False))

    responses, browser = fetch(
        server.port, ("GET", "/length"), ("GET", "/chunked"), ("GET", "/empty"), ("POST", "/length")
    )

    assert [r.body for r in responses] == [b"<p>length</p>", "你好, world".encode(), b"", b"<p>length</p>"]
    assert responses[1].text == "你好, world"
    assert [r.status for r in responses] == [200, 200, 204, 200]
    assert server.connections == 1 and browser.connection.opened == 1
    assert [s.connection for s in server.seen] == [1, 1, 1, 1]
    assert server.seen[3].body == b"a=1"
    assert server.seen[3].headers["content-type"] == "application/x-www-form-urlencoded"
    assert server.seen[0].headers["host"] == f"127.0.0.1:{server.port}"


def test_set_cookie_is_kept_sent_back_and_deleted(serve):
    answers = {
        "/set": ok(b"", "Set-Cookie: session=abc.def=; Path=/; HttpOnly; SameSite=Lax", "Set-Cookie: lang=zh"),
        "/delete": ok(b"", "Set-Cookie: session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"),
        "/see": ok(),
    }
    server = serve(lambda seen: (answers[seen.path], False))

    _, browser = fetch(
        server.port, ("GET", "/see"), ("GET", "/set"), ("GET", "/see"), ("GET", "/delete"), ("GET", "/see")
    )

    sent = [s.headers.get("cookie") for s in server.seen]
    assert sent == [None, None, "session=abc.def=; lang=zh", "session=abc.def=; lang=zh", "lang=zh"]
    assert browser.cookies == {"lang": "zh"}


def test_headers_status_and_location_are_parsed():
    version, status, headers = loadgen.parse_head(
        b"HTTP/1.1 303 SEE OTHER\r\nLocation: /join/code\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n"
    )
    response = loadgen.Response(status, headers, b"")

    assert (version, status) == ("HTTP/1.1", 303)
    assert response.header("location") == "/join/code"
    assert [v for k, v in headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert loadgen.build_request("POST", "/x", "h:1", {"Cookie": "a=1"}, b"k=v") == (
        b"POST /x HTTP/1.1\r\nHost: h:1\r\nCookie: a=1\r\nContent-Length: 3\r\n\r\nk=v"
    )


def test_form_body_is_what_urlencode_gives():
    form = {"csrf_token": "IjQ5Y2Zk.Zx-_/+=", "name": "压测 工友&=", "phone": "17000010000", "consent": "y"}

    assert loadgen.form_body(form) == urlencode(form).encode()
    assert loadgen.form_body({}) == b""


def test_connection_close_and_a_body_to_the_end_open_a_new_connection(serve):
    answers = {
        "/close": (ok(b"bye", "Connection: close"), False),  # said, not done: the client must not reuse it
        "/eof": (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", True),
        "/stay": (ok(), False),
    }
    server = serve(lambda seen: answers[seen.path])

    responses, browser = fetch(
        server.port, ("GET", "/stay"), ("GET", "/close"), ("GET", "/stay"), ("GET", "/eof"), ("GET", "/stay")
    )

    assert [r.body for r in responses] == [b"hello", b"bye", b"hello", b"until the end", b"hello"]
    assert [s.connection for s in server.seen] == [1, 1, 2, 2, 3]
    assert browser.connection.opened == 3


def test_a_kept_alive_connection_the_server_dropped_is_retried_once_on_a_fresh_one(serve):
    # The server closes after each answer without saying so, as gunicorn does when keep-alive times out.
    server = serve(lambda seen: (ok(seen.path.encode()), True))

    responses, browser = fetch(server.port, ("GET", "/one"), ("POST", "/two"))

    assert [r.body for r in responses] == [b"/one", b"/two"]
    assert [(s.connection, s.path) for s in server.seen] == [(1, "/one"), (2, "/two")]
    assert browser.connection.opened == 2


def test_a_response_that_never_ends_times_out_and_drops_the_connection(serve):
    server = serve(lambda seen: (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", False))
    browser = loadgen.Browser(server.port)
    browser.connection.timeout = 0.2

    with pytest.raises(TimeoutError):
        asyncio.run(browser.request("GET", "/"))
    assert browser.connection.writer is None


def test_a_fresh_connection_closed_without_an_answer_fails(serve):
    server = serve(lambda seen: (b"", True))

    with pytest.raises(loadgen.ConnectionDropped):
        fetch(server.port, ("GET", "/"))
    assert server.connections == 1  # no second try on a connection that was never used before


def test_outbox_is_tailed_across_partial_lines_and_wakes_a_waiting_worker(tmp_path: Path):
    outbox_path = tmp_path / "outbox.jsonl"
    line = json.dumps({"to": "+8617000010000", "body": "验证码 123456，10 分钟内有效"}, ensure_ascii=False) + "\n"
    other = json.dumps({"to": "+8617000020000", "body": "code 654321"}) + "\n"

    async def go() -> tuple[str, str, int]:
        outbox = loadgen.OutboxTail(outbox_path)
        waiting = asyncio.create_task(outbox.code_for("+8617000010000", deadline=5))
        await asyncio.sleep(0.01)  # the file does not exist yet
        with outbox_path.open("ab") as handle:
            handle.write(other.encode() + line.encode()[:20])
        await asyncio.sleep(0.01)
        assert not waiting.done()  # half a line is not a message
        with outbox_path.open("ab") as handle:
            handle.write(line.encode()[20:])
        first = await waiting
        second = await outbox.code_for("+8617000020000", deadline=1)
        offset = outbox.handle.tell()
        outbox.close()
        return first, second, offset

    first, second, offset = asyncio.run(go())

    assert (first, second) == ("123456", "654321")
    assert offset == len(other.encode() + line.encode())


def test_run_counts_joins_failures_and_client_cpu(serve):
    # Every fifth form post answers 200 (a form error) instead of 303.
    posts = iter(range(10**6))

    def answer(seen: Seen) -> tuple[bytes, bool]:
        if seen.method == "POST" and "code" not in seen.body.decode() and next(posts) % 5 == 4:
            return ok(b"form\nagain"), False
        return (
            ok() if seen.method == "GET" else b"HTTP/1.1 303 SEE OTHER\r\nLocation: /\r\nContent-Length: 0\r\n\r\n"
        ), False

    server = serve(answer)
    result = loadgen.run(loadgen.Plan(server.port, ["/"], None, clients=4, joins_each=5))

    assert len(result.results) == 20 and result.failed == 4
    assert "4× form: 200 form again" in result.reasons()
    assert result.rate > 0 and result.client_cpu > 0
    # One connection per join (a phone), kept alive for its requests: 4, or 2 when the form failed.
    assert sorted(Counter(s.connection for s in server.seen).values()) == [2] * 4 + [4] * 16
    addresses = {s.headers["x-forwarded-for"] for s in server.seen}
    assert len(addresses) == 20  # one /64 per join, as harness.Joiner does


def test_a_failure_says_where_a_redirect_went_or_how_the_page_starts_on_one_line():
    redirect = loadgen.Response(303, [("location", "/join/expired")], b"<!doctype html>\n<title>Redirecting")
    page = loadgen.Response(429, [], b"<h1>Too\n many</h1>" + b"x" * 500)

    assert loadgen.fail(0.0, "form", redirect).detail == "303 to /join/expired"
    assert loadgen.fail(0.0, "scan", page).detail == "429 <h1>Too many</h1>" + "x" * 182


def test_workers_can_keep_one_connection_for_all_their_joins(serve):
    server = serve(lambda seen: (ok() if seen.method == "GET" else SEE_OTHER, False))

    result = loadgen.run(loadgen.Plan(server.port, ["/"], None, clients=3, joins_each=5, connection_per_join=False))

    assert result.failed == 0
    assert sorted(Counter(s.connection for s in server.seen).values()) == [20, 20, 20]


@pytest.mark.slow
def test_client_processes_split_the_workers_and_add_up_their_cpu(serve):
    server = serve(lambda seen: (ok() if seen.method == "GET" else SEE_OTHER, False))

    result = loadgen.run(loadgen.Plan(server.port, ["/"], None, clients=6, joins_each=10), processes=2)

    assert len(result.results) == 60 and result.failed == 0
    assert len(server.seen) == 240 and server.connections == 60
    assert result.client_cpu > 0 and result.elapsed > 0
