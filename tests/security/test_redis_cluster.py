"""REDIS_URL may name a Redis Cluster: the join flow works on a real 3-node cluster.

The limit scripts touch several windows at once (phone, address, prefix, poster, global); a
cluster runs a script only over keys of one slot, which the hash tag in the windows' names
gives (app/services/limits/store.py). Without it every code send was a CROSSSLOT error.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import config
from app import create_app
from tests import factories
from tests.conftest import need
from tests.security.conftest import browser, code_from, send_code, submit

NODES = 3


def _free_ports(count: int) -> list[int]:
    """Ports below 55536 whose cluster bus port (10,000 higher) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = 20_000 + secrets.randbelow(30_000)
        if port not in ports and _bindable(port) and _bindable(port + 10_000):
            ports.append(port)
    return ports


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three `redis-server --cluster-enabled yes` on loopback ports, joined into one cluster."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    need(bool(server and cli), "redis-server and redis-cli on PATH")
    folder = tmp_path_factory.mktemp("cluster")
    ports = _free_ports(NODES)
    processes = []
    try:
        for port in ports:
            node = folder / str(port)
            node.mkdir()
            processes.append(_start_node(str(server), node, port))
        for port in ports:
            _wait(lambda port=port: _answers(port), f"node {port} did not start")
        create = [str(cli), "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports)]
        subprocess.run([*create, "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True)  # noqa: S603
        _wait(lambda: _cluster_ok(str(cli), ports), "the cluster did not become ok")
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _start_node(server: str, folder: Path, port: int) -> subprocess.Popen:  # type: ignore[type-arg]
    options = ["--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--save", ""]
    options += ["--appendonly", "no", "--dir", str(folder), "--cluster-config-file", "nodes.conf"]
    return subprocess.Popen([server, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def _cluster_ok(cli: str, ports: list[int]) -> bool:
    for port in ports:
        info = subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True)  # noqa: S603
        if "cluster_state:ok" not in info.stdout:
            return False
    return True


def _wait(condition, message: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(message)


def test_the_join_flow_passes_on_a_three_node_cluster(env, cluster_url, station):  # type: ignore[no-untyped-def]
    app = create_app(config.TestingConfig({**env, "REDIS_URL": cluster_url}))
    client = browser(app, ip="203.0.113.77")
    assert client.get("/healthz").json["redis"] == "ok"
    path = factories.join_path(app, station)
    assert submit(client, path, phone=factories.phone(31)).status_code == 303
    sms = app.extensions["sms"]
    assert len(sms.sent) == 1
    assert send_code(client, code_from(sms)).status_code == 303


def test_limits_hold_on_the_cluster(env, cluster_url, station):  # type: ignore[no-untyped-def]
    app = create_app(config.TestingConfig({**env, "REDIS_URL": cluster_url, "CHALLENGE_NEAR_LIMIT_PERCENT": "100"}))
    path = factories.join_path(app, station)
    ip = "203.0.113.78"
    outcomes = [
        submit(browser(app, ip=ip), path, phone=factories.phone(40 + n * 10_000)).status_code for n in range(11)
    ]
    assert outcomes == [303] * 10 + [429]  # ten an hour per address (docs/security.md B4)
