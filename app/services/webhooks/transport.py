"""One HTTP POST to an outside address, guarded against SSRF, with time limits.

An address is checked twice: when an admin registers it (`check_url`) and again at every send,
after resolving its name (`post`), because a name can be pointed at a private address later. The
POST then goes to the very address that was checked (the name is kept for the Host header and,
over HTTPS, for SNI and the certificate check), so a second lookup cannot swap it (DNS rebinding).
Redirects are not followed: a 3xx is a failure like any other answer that is not 2xx.

`timeout` bounds the whole call, not each read: a receiver that answers a byte at a time would
otherwise hold a consumer thread (and outlive the outbox's lease) while every read beats the read
timeout. A watchdog shuts the connection's socket when the time is up.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3


class Outcome(enum.StrEnum):
    ok = "ok"
    temporary = "temporary"  # worth another try later: 5xx, 408, 429, timeouts, connection errors
    permanent = "permanent"  # another try would fail the same way: 4xx, a refused address


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    status: int | None = None
    error: str | None = None  # short and without personal data: an HTTP status or an error's class
    body: bytes = b""


class UrlRefused(ValueError):
    """A URL that may not be posted to (its message says why, in plain words)."""


RETRY_STATUSES = {408, 425, 429}
MAX_BODY = 4096  # of an answer, enough for a robot's {"errcode": …}


def check_url(url: str, *, allow_private: bool, resolve: bool = True) -> list[str]:
    """The addresses `url` may be posted to; raises UrlRefused for a bad URL or a private address."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1", "http://[zz]/": brackets that hold no address
        raise UrlRefused("the URL is not well formed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("the URL must start with http:// or https:// and name a host")
    if parts.username or parts.password:
        raise UrlRefused("the URL must not hold a user name or password")
    try:
        parts.port  # noqa: B018  (a bad port raises)
    except ValueError:
        raise UrlRefused("the URL's port is not a number between 0 and 65535") from None
    if not resolve:
        return []
    addresses = _resolve(parts.hostname)
    if not allow_private:
        for address in addresses:
            if not ipaddress.ip_address(address).is_global:
                raise UrlRefused(
                    f"{parts.hostname} is a loopback, private, link-local or reserved address ({address}); "
                    "set WEBHOOK_ALLOW_PRIVATE=1 only for tests and internal systems"
                )
    return addresses


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UrlRefused(f"{host} does not resolve to an address") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool) -> Result:
    """POST `body` to `url` (checked now, then pinned to the checked address)."""
    try:
        addresses = check_url(url, allow_private=allow_private)
    except UrlRefused as exc:
        kind = Outcome.temporary if "does not resolve" in str(exc) else Outcome.permanent
        return Result(kind, error=str(exc)[:200])
    parts = urlsplit(url)
    host = parts.hostname or ""
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    pool = _pool(parts.scheme, addresses[0], host, parts.port, timeout)
    watchdog = _Watchdog(timeout)
    pool.ConnectionCls = _watched(pool.ConnectionCls, watchdog)
    watchdog.start()
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host and not netloc.startswith("["):
        netloc = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
    try:
        response = pool.urlopen(
            "POST",
            target,
            body=body,
            headers={**headers, "Host": netloc, "Content-Type": "application/json"},
            redirect=False,
            retries=False,
            preload_content=False,
        )
        answer = response.read(MAX_BODY)
        response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Result(Outcome.temporary, error="deadline" if watchdog.fired else type(exc).__name__)
    finally:
        watchdog.cancel()
        pool.close()
    if watchdog.fired:  # the answer was cut off: whatever came is not to be trusted
        return Result(Outcome.temporary, error="deadline")
    outcome = _judge(response.status)
    error = None if outcome is Outcome.ok else f"HTTP {response.status}"
    return Result(outcome, status=response.status, error=error, body=answer)


class _Watchdog:
    """Shuts the sockets it watches once `seconds` have passed since `start`."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched(base: Any, watchdog: _Watchdog) -> Any:
    """`base` (urllib3's connection class) whose socket the watchdog may shut."""

    class Watched(base):
        def connect(self) -> None:
            super().connect()
            watchdog.watch(self.sock)

    return Watched


def _judge(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.ok
    if status >= 500 or status in RETRY_STATUSES:
        return Outcome.temporary
    return Outcome.permanent


def _pool(scheme: str, address: str, host: str, port: int | None, timeout: float) -> urllib3.HTTPConnectionPool:
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            port or 443,
            timeout=limits,
            maxsize=1,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(address, port or 80, timeout=limits, maxsize=1)
