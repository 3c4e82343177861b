"""REDIS_URL may name Redis Sentinel: the limits and the health check find the master through it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

import config
from app import create_app
from tests import factories
from tests.conftest import need
from tests.security.conftest import browser, code_from, send_code, submit
from tests.security.test_redis_cluster import _answers, _free_ports, _wait


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master and one Sentinel watching it, on loopback ports."""
    server = shutil.which("redis-server")
    need(server is not None, "redis-server on PATH")
    folder = tmp_path_factory.mktemp("sentinel")
    master, sentinel = _free_ports(2)
    conf = folder / "sentinel.conf"
    conf.write_text(f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor scanjoin 127.0.0.1 {master} 1\n")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(  # noqa: S603
            [str(server), "--port", str(master), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)], **quiet
        )
    ]
    try:
        _wait(lambda: _answers(master), "the master did not start")
        processes.append(subprocess.Popen([str(server), str(conf), "--sentinel"], **quiet))  # noqa: S603
        _wait(lambda: _answers(sentinel), "the sentinel did not start")
        yield f"redis+sentinel://127.0.0.1:{sentinel}/scanjoin"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def test_the_join_flow_passes_through_sentinel(env, sentinel_url, station):  # type: ignore[no-untyped-def]
    app = create_app(config.TestingConfig({**env, "REDIS_URL": sentinel_url}))
    client = browser(app, ip="203.0.113.90")
    assert client.get("/healthz").json == {"status": "ok", "database": "ok", "redis": "ok"}
    assert submit(client, factories.join_path(app, station), phone=factories.phone(55)).status_code == 303
    assert send_code(client, code_from(app.extensions["sms"])).status_code == 303
