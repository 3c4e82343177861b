"""Two app servers behind the nginx site shipped in deploy/ (issue 16, item 4; docs/deploy.md).

Real processes: nginx (the Debian package) with deploy/nginx/scanjoin.conf rendered for loopback
ports and a self-signed certificate, two gunicorn servers and the task consumer, on a fresh
migrated PostgreSQL database and the real Redis. Each simulated phone connects from its own
loopback address (127.0.0.0/8 is all loopback on Linux), so nginx sees distinct clients.

- `nginx -t` accepts the shipped site (fast; CI runs it with the rest of the suite);
- joins through nginx are served by both servers (their own access logs say so);
- a per-address limit holds across both: the request after the limit is refused whichever
  server gets it, and a forged X-Forwarded-For neither escapes the limit nor borrows another's;
- SIGKILL of one server in the middle of load loses no verified join: every join that got its
  "done" answer is a member afterwards, and the other server goes on taking joins.

No timing is asserted: every wait is generous and ends on an event, for a loaded 2-core machine.
"""

from __future__ import annotations

import configparser
import datetime
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

from tests.conftest import TEST_DATABASE, hidden_fields, need
from tests.security.conftest import spread_phone
from tests.security.test_multiprocess import _free_port, _join_paths, _redis_up

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SITE = ROOT / "deploy" / "nginx" / "scanjoin.conf"
PLACEHOLDER = re.compile(r"@[A-Z0-9_]+@")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
WAIT = 60  # seconds: the longest any single step may wait for something to happen
# An access line of gunicorn's (gunicorn.conf.py), in JSON or text: "POST /path" status=303
ACCESS = re.compile(r'"(GET|POST) (/[^"\\ ]*)\\?" status=(\d{3})')


def render_site(values: dict[str, str]) -> str:
    """deploy/nginx/scanjoin.conf with every @NAME@ replaced (all of them must be given)."""
    text = SITE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    left = sorted(set(PLACEHOLDER.findall(body)))
    assert not left, f"placeholders without a value: {left}"
    return text


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Nginx:
    """nginx with its own prefix folder, run as `nobody` when the tests run as root."""

    prefix: Path
    conf: Path
    cert: Path
    access_log: Path
    https_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def command(self, *extra: str) -> list[str]:
        assert NGINX is not None
        return [NGINX, "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.prefix / "error.log"), *extra]

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _as_unprivileged() -> dict[str, Any]:
    """Popen arguments that drop root to `nobody` (nothing when the tests are not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return {}
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@contextmanager
def _nginx_folder(upstreams: tuple[str, str]) -> Iterator[Nginx]:
    """A prefix folder with the rendered site, a main nginx.conf around it and a certificate."""
    prefix = Path(tempfile.mkdtemp(prefix="scanjoin-nginx-"))
    try:
        cert, key = _certificate(prefix)
        https_port, http_port = _free_port(), _free_port()
        site = prefix / "scanjoin.conf"
        site.write_text(
            render_site(
                {
                    "SERVER_NAME": "localhost 127.0.0.1",
                    "HTTP_LISTEN": f"127.0.0.1:{http_port}",
                    "HTTPS_LISTEN": f"127.0.0.1:{https_port}",
                    "CERTIFICATE": str(cert),
                    "CERTIFICATE_KEY": str(key),
                    "APP_SERVER_1": upstreams[0],
                    "APP_SERVER_2": upstreams[1],
                    "APP_ROOT": str(prefix),  # a copy of app/static: `nobody` may not read the checkout
                    "ACCESS_LOG": str(prefix / "access.log"),
                }
            )
        )
        shutil.copytree(ROOT / "app" / "static", prefix / "app" / "static")
        mime = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
        conf = prefix / "nginx.conf"
        # What Debian's /etc/nginx/nginx.conf would hold, with every path inside the prefix.
        conf.write_text(
            f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    {mime}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""
        )
        unprivileged = _as_unprivileged()
        if unprivileged:
            for path in (prefix, *prefix.rglob("*")):
                os.chown(path, unprivileged["user"], unprivileged["group"])
        yield Nginx(prefix, conf, cert, prefix / "access.log", https_port)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def _nginx_test(nginx: Nginx) -> subprocess.CompletedProcess[str]:
    unprivileged = _as_unprivileged()
    return subprocess.run(  # noqa: S603 - nginx with our own files
        nginx.command("-t"),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        user=unprivileged.get("user"),
        group=unprivileged.get("group"),
        extra_groups=unprivileged.get("extra_groups"),
    )


def test_nginx_accepts_the_shipped_site() -> None:
    need(NGINX is not None, "nginx (apt-get install nginx)")
    with _nginx_folder(("127.0.0.1:18001", "127.0.0.1:18002")) as nginx:
        result = _nginx_test(nginx)
        assert result.returncode == 0, result.stderr
        assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_every_placeholder_of_the_site_is_named_in_its_header() -> None:
    text = SITE.read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert set(PLACEHOLDER.findall(body)) <= set(PLACEHOLDER.findall(header))


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "systemd" / name, encoding="utf-8")
    return unit


def test_the_units_start_what_the_tests_start() -> None:
    web, worker = _unit("scanjoin-web.service"), _unit("scanjoin-worker.service")
    assert web["Service"]["ExecStart"].endswith("/.venv/bin/gunicorn wsgi:app")
    assert worker["Service"]["ExecStart"].endswith("/.venv/bin/flask --app wsgi worker")
    for unit in (web, worker):
        assert unit["Service"]["EnvironmentFile"] == unit["Service"]["WorkingDirectory"] + "/.env"
        assert unit["Service"]["ReadWritePaths"] == unit["Service"]["WorkingDirectory"] + "/instance"
        assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.slow
def test_gunicorn_tells_systemd_it_is_ready(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    """scanjoin-web.service is Type=notify: gunicorn must send READY=1 to $NOTIFY_SOCKET."""
    need((BIN / "gunicorn").exists(), "gunicorn in the venv")
    assert _unit("scanjoin-web.service")["Service"]["Type"] == "notify"
    database = tmp_path / "app.db"
    shutil.copy(migrated_template, database)
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(WAIT)
        env = {
            **os.environ,
            "APP_ENV": "testing",
            "INSTANCE_PATH": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{database}",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "QR_SECRET": secrets.token_urlsafe(48),
            "PII_INDEX_KEY": secrets.token_urlsafe(48),
            "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "BIND": f"127.0.0.1:{_free_port()}",
            "WEB_CONCURRENCY": "1",
            "NOTIFY_SOCKET": address,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        }
        server = _start([str(BIN / "gunicorn"), "wsgi:app"], env, tmp_path / "server.log")
        try:
            assert b"READY=1" in listener.recv(4096)
        finally:
            _kill(server, signal.SIGTERM)


# --- the running stack -------------------------------------------------------------------------


def _start(command: list[str], env: dict[str, str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    # A session of its own, so one killpg reaches a gunicorn master and every worker it forked.
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own programs
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )


def _kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _wait_for(
    url: str, process: subprocess.Popen[bytes], log: Path, get: Callable[..., requests.Response] = requests.get
) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {log.read_text(errors='replace')[-3000:]}")
        with suppress(requests.RequestException):
            if get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"nothing answered 200 at {url} in {WAIT} s: {log.read_text(errors='replace')[-3000:]}")


@dataclass
class Stack:
    nginx: Nginx
    servers: list[subprocess.Popen[bytes]]
    server_logs: list[Path]
    outbox: Path
    env: dict[str, str]
    paths: tuple[str, str]
    net: str  # 127.N.0.0/16: this run's client addresses
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self, host: int) -> requests.Session:
        """A browser connecting from its own loopback address (127.N.x.y)."""
        session = requests.Session()
        session.mount("https://", _FromAddress(f"{self.net}.{host // 250}.{host % 250 + 1}"))
        session.verify = str(self.nginx.cert)
        session.trust_env = False  # REQUESTS_CA_BUNDLE would win over `verify`, a proxy over loopback
        return session

    def served(self, server: int, method: str, path: str, status: str | None = None) -> int:
        """How many such requests app server `server` (0 or 1) wrote in its own access log."""
        text = self.server_logs[server].read_text(errors="replace")
        return sum(
            1
            for m in ACCESS.finditer(text)
            if m.group(1) == method and m.group(2) == path and (status is None or m.group(3) == status)
        )

    def settled(self, method: str, path: str, status: str, total: int) -> list[int]:
        """Per server, such requests once the two logs hold `total` of them: a line is written
        just after its response is sent, so the client can be a moment ahead of the log."""
        deadline = time.monotonic() + WAIT
        while True:
            counts = [self.served(n, method, path, status) for n in (0, 1)]
            if sum(counts) >= total or time.monotonic() > deadline:
                return counts
            time.sleep(0.1)


class _FromAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


@contextmanager
def _stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    need(NGINX is not None, "nginx (apt-get install nginx)")
    need((BIN / "gunicorn").exists(), "gunicorn in the venv")
    need(_redis_up(), "Redis at 127.0.0.1:6379")
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": database_url,
        # The same secrets on both servers (docs/deploy.md), fresh for this run: every Redis key
        # is an HMAC under PII_INDEX_KEY, so no count of another run is met.
        "SECRET_KEY": secrets.token_urlsafe(48),
        "QR_SECRET": secrets.token_urlsafe(48),
        "PII_INDEX_KEY": secrets.token_urlsafe(48),
        "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SMS_BACKEND": "console",
        "SMS_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "TASK_QUEUE": "redis://127.0.0.1:6379/0",
        "TASK_QUEUE_NAME": f"scanjoin-test-{secrets.token_hex(4)}",
        "PROXY_FIX_X_FOR": "1",
        "TRUSTED_HOSTS": "127.0.0.1,localhost",
        "SESSION_COOKIE_SECURE": "true",
        "SMS_DAILY_BUDGET": str(10**6 + secrets.randbelow(10**6)),  # a global key of its own
        "CHALLENGE_NEAR_LIMIT_PERCENT": "100",  # the limits themselves are under test
        "CONVERSION_MIN_SENDS": str(10**9),
        "GUNICORN_THREADS": "2",
        "LOG_LEVEL": "INFO",  # gunicorn's access lines say which server answered
        "LOG_FORMAT": "text",
    }
    ports = [_free_port(), _free_port()]
    upstreams = (f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}")
    paths = _join_paths(tmp_path, env)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with _nginx_folder(upstreams) as nginx:
            result = _nginx_test(nginx)
            assert result.returncode == 0, result.stderr
            logs = [tmp_path / "server-1.log", tmp_path / "server-2.log"]
            servers = [
                _start(
                    [str(BIN / "gunicorn"), "-w", "2", "-b", upstream, "--timeout", "60", "wsgi:app"],
                    {
                        **env,
                        "GUNICORN_ACCESS_LOG": str(log.with_suffix(".access")),
                        # in tmp_path: a SIGKILLed master leaves its metrics folder behind
                        "PROMETHEUS_MULTIPROC_DIR": str(log.with_suffix(".metrics")),
                    },
                    log,
                )
                for upstream, log in zip(upstreams, logs, strict=True)
            ]
            processes += servers
            consumer_log = tmp_path / "consumer.log"
            processes.append(
                _start([str(BIN / "flask"), "--app", "wsgi", "worker", "--workers", "2"], env, consumer_log)
            )
            nginx_log = tmp_path / "nginx.out"
            nginx.process = _start(nginx.command("-g", "daemon off;"), env, nginx_log, **_as_unprivileged())
            processes.append(nginx.process)
            for upstream, server, log in zip(upstreams, servers, logs, strict=True):
                _wait_for(f"http://{upstream}/healthz", server, log)
            with requests.Session() as check:
                check.trust_env, check.verify = False, str(nginx.cert)
                _wait_for(nginx.base + "/healthz", nginx.process, nginx_log, get=check.get)
            yield Stack(
                nginx=nginx,
                servers=servers,
                server_logs=[log.with_suffix(".access") for log in logs],
                outbox=Path(env["SMS_OUTBOX"]),
                env=env,
                paths=paths,
                net=f"127.{secrets.randbelow(200) + 20}",
                processes=processes,
            )
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                _kill(process, signal.SIGTERM)
        from app.services.tasks import make_huey

        make_huey(env["TASK_QUEUE"], env["TASK_QUEUE_NAME"]).storage.flush_all()  # this run's queue goes


@pytest.fixture
def postgres_database(request: pytest.FixtureRequest) -> str:
    """A fresh migrated PostgreSQL database: two app hosts need one (docs/deploy.md). These tests
    start five processes, so they run once per `make test`, in its PostgreSQL pass."""
    if TEST_DATABASE != "postgres":
        pytest.skip("runs in the PostgreSQL pass (TEST_DATABASE=postgres): two app hosts need PostgreSQL")
    return request.getfixturevalue("postgres_url")


# --- one join, as a phone does it ----------------------------------------------------------------


def _code_for(outbox: Path, phone: str, within: float = WAIT) -> str | None:
    """The latest code the consumer handed to the (console) provider for `phone`."""
    deadline = time.monotonic() + within
    while True:
        code = None
        if outbox.exists():
            for line in outbox.read_text(encoding="utf-8").splitlines():
                try:
                    text = json.loads(line)
                except ValueError:
                    continue  # a line being written
                if text.get("to") == phone and (match := re.search(r"\b(\d{6})\b", text.get("body", ""))):
                    code = match.group(1)
        if code is not None or time.monotonic() > deadline:
            return code
        time.sleep(0.25)


def _send_form(
    stack: Stack,
    browser: requests.Session,
    path: str,
    phone: str,
    visits: int = 1,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """Open the join page `visits` times (a reload: round robin then sends the POST elsewhere) and send it."""
    headers = headers or {}
    for _ in range(visits):
        page = browser.get(stack.nginx.base + path, headers=headers, timeout=WAIT)
        assert page.status_code == 200, page.status_code
    form = {**hidden_fields(page.text), "name": "王小明", "phone": phone[3:], "platform": "meituan", "consent": "y"}
    # A browser sends the page as Referer (Referrer-Policy same-origin): CSRF checks it over HTTPS.
    headers = {**headers, "Referer": stack.nginx.base + path}
    return browser.post(stack.nginx.base + path, data=form, headers=headers, allow_redirects=False, timeout=WAIT)


def _join(stack: Stack, browser: requests.Session, path: str, phone: str, visits: int = 1) -> str:
    """Scan, fill the form, enter the code: "done" when the app answered the code with its done page."""
    base = stack.nginx.base
    try:
        sent = _send_form(stack, browser, path, phone, visits)
        if sent.status_code != 303 or not sent.headers["Location"].endswith("/join/code"):
            return f"form {sent.status_code}"
        code = _code_for(stack.outbox, phone)
        if code is None:
            return "no code"
        page = browser.get(base + "/join/code", timeout=WAIT)
        if page.status_code != 200:
            return f"code page {page.status_code}"
        answer = browser.post(
            base + "/join/code",
            data={**hidden_fields(page.text), "code": code},
            headers={"Referer": base + "/join/code"},
            allow_redirects=False,
            timeout=WAIT,
        )
    except (requests.RequestException, AssertionError) as exc:
        return f"error {type(exc).__name__}"
    if answer.status_code == 303 and answer.headers["Location"].endswith("/join/done"):
        return "done"
    return f"code {answer.status_code}"


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.redis
def test_joins_spread_over_two_servers_and_limits_hold_across_them(tmp_path, postgres_database):  # type: ignore[no-untyped-def]
    with _stack(tmp_path, postgres_database) as stack:
        path, other = stack.paths
        # Static files come from nginx itself, not from an app server.
        css = stack.client(0).get(stack.nginx.base + "/static/app.css", timeout=WAIT)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        assert css.content == (ROOT / "app" / "static" / "app.css").read_bytes()
        assert stack.served(0, "GET", "/static/app.css") + stack.served(1, "GET", "/static/app.css") == 0

        # Joins through nginx: six phones from six addresses, some reloading the page; both
        # servers take some (round robin: four requests a join would all end on one server).
        results = [_join(stack, stack.client(n + 1), other, spread_phone(n + 1), visits=1 + n % 2) for n in range(6)]
        assert results == ["done"] * 6
        per_server = stack.settled("POST", "/join/code", "303", total=6)
        assert sum(per_server) == 6 and min(per_server) > 0, per_server

        # One address may have 10 codes outstanding (app/services/limits/policy.py OUTSTANDING).
        # From one address, ten forms are accepted and every later one refused, on either server;
        # a forged X-Forwarded-For does not make it another client (nginx sets the header itself).
        crowded = stack.client(100)
        for n in range(10):
            sent = _send_form(stack, crowded, path, spread_phone(100 + n), visits=1 + n % 3 // 2)
            assert sent.status_code == 303 and sent.headers["Location"].endswith("/join/code"), n
            crowded.cookies.clear()  # a new phone, a new visit
        refused_by = [0, 0]
        for n in range(8):  # until each server has refused at least once
            forged = {"X-Forwarded-For": f"198.18.{secrets.randbelow(256)}.{n + 1}"} if n % 2 else {}
            refused = _send_form(stack, crowded, path, spread_phone(200 + n), 1 + n % 3 // 2, forged)
            assert refused.status_code == 429, (n, forged, refused.status_code)
            crowded.cookies.clear()
            refused_by = stack.settled("POST", path, "429", total=n + 1)
            if min(refused_by) > 0:
                break
        assert min(refused_by) > 0, f"each server refused the address once it was used up: {refused_by}"
        accepted = stack.settled("POST", path, "303", total=10)
        assert sum(accepted) == 10 and min(accepted) > 0, accepted

        # Claiming the used-up address in X-Forwarded-For from another one borrows nothing from it.
        crowded_address = f"{stack.net}.0.101"
        elsewhere = _send_form(
            stack, stack.client(150), path, spread_phone(300), headers={"X-Forwarded-For": crowded_address}
        )
        assert elsewhere.status_code == 303 and elsewhere.headers["Location"].endswith("/join/code")

        # nginx's own log (no client address, no query string) names both app servers.
        upstreams = set(re.findall(r"upstream=(127\.0\.0\.1:\d+)", stack.nginx.access_log.read_text()))
        assert len(upstreams) == 2, upstreams
        assert stack.net not in stack.nginx.access_log.read_text()


CLIENTS = 6
JOINS_EACH = 5
KILL_AFTER = 6  # joins done before one server is killed


@pytest.mark.slow
@pytest.mark.redis
def test_sigkill_of_one_server_under_load_loses_no_verified_join(tmp_path, postgres_database):  # type: ignore[no-untyped-def]
    with _stack(tmp_path, postgres_database) as stack:
        path, other = stack.paths
        results: dict[str, str] = {}
        lock, enough = threading.Lock(), threading.Event()

        def phone_user(n: int) -> None:
            for k in range(JOINS_EACH):
                phone = spread_phone(1 + n * JOINS_EACH + k)
                outcome = _join(stack, stack.client(n * JOINS_EACH + k), (path, other)[n % 2], phone, 1 + k % 2)
                with lock:
                    results[phone] = outcome
                    if sum(r == "done" for r in results.values()) >= KILL_AFTER:
                        enough.set()

        threads = [threading.Thread(target=phone_user, args=(n,), daemon=True) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        assert enough.wait(timeout=WAIT * 3), f"joins before the kill: {results}"
        victim = stack.servers[1]
        served_before_kill = len(ACCESS.findall(stack.server_logs[1].read_text(errors="replace")))
        _kill(victim)  # SIGKILL to the master and its workers, in the middle of the load
        for thread in threads:
            thread.join(timeout=WAIT * 6)
        assert not any(thread.is_alive() for thread in threads), "every phone user finished"

        done = sorted(phone for phone, outcome in results.items() if outcome == "done")
        assert len(results) == CLIENTS * JOINS_EACH
        assert served_before_kill > 0, "both servers were taking requests before the kill"
        # Only what was in flight at the kill may fail (a POST that reached the dead server is not
        # sent again: nginx retries idempotent requests only); the rest went to the live server.
        assert len(done) >= len(results) - CLIENTS, results
        assert len(done) > KILL_AFTER, "joins went on after the kill"

        # Every join that got its done answer is a member.
        from sqlmodel import Session, select

        from app import create_app
        from app.models import Member
        from config import TestingConfig

        app = create_app(TestingConfig({k: v for k, v in stack.env.items() if k != "REDIS_URL"}))
        pii = app.extensions["pii"]
        with Session(app.extensions["db_engine"]) as db:
            members = {m.phone_index for m in db.exec(select(Member))}
        app.extensions["db_engine"].dispose()
        missing = [phone for phone in done if pii.index(phone) not in members]
        assert missing == [], f"verified joins lost: {len(missing)}"
        assert len(members) <= len(results)
        lines = stack.nginx.access_log.read_text().splitlines()
        outcomes = sorted(set(results.values()))
        print(
            f"joins {len(results)}, done {len(done)}, members {len(members)}, outcomes {outcomes};",
            f"nginx: {len(lines)} requests, {sum(', ' in line for line in lines)} retried on the other server,",
            f"{sum(' 502 ' in line for line in lines)} answered 502",
        )
