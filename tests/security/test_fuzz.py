"""Fuzz every route with 10,000+ generated requests (hypothesis-seeded, bounded): never a 5xx.

Hypothesis draws each batch's seed and shape; the batch's requests come from that seeded
generator, which keeps the run to about a minute (drawing 10,000 requests choice by choice
through hypothesis costs more than sending them).
"""

from __future__ import annotations

import random
import string

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.routing import IntegerConverter

from app.web.worker.poster import QrTokenConverter
from tests.conftest import hidden_fields
from tests.security.conftest import submit

BATCH, EXAMPLES = 200, 51  # 10,200 requests
FIELDS = [
    "csrf_token",
    "form_key",
    "name",
    "phone",
    "platform",
    "workplace",
    "consent",
    "code",
    "email",
    "password",
    "reason",
    "status",
    "q",
    "next",
    "member_id",
    "ids",
    "token",
    "district",
]
NASTY = [
    "",
    "0",
    "-1",
    "1" * 7,
    "+8617000000001",
    "17000000002",
    "none",
    "meituan",
    "y",
    "123456",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "\x00",
    "%00",
    "../../etc/passwd",
    "=cmd|' /C calc'!A0",
    "9" * 400,
    "王" * 51,
    "\u202e",
    "null",
    "true",
    "[]",
    "{}",
    "\ud7ff",
    "a\r\nSet-Cookie: x=1",
]
HEADERS = {
    "Sec-Fetch-Site": ["same-origin", "same-site", "cross-site", "none", "x"],
    "Accept-Language": ["en", "zh-CN", "*", "xx;q=abc", "", "en;q=0.1, zh;q=0.9"],
    "Authorization": ["Bearer x", "Bearer " + "a" * 64, "Basic Zm9vOmJhcg==", ""],
    "X-Forwarded-For": ["1.2.3.4", "::1", "garbage", ""],
    "Content-Type": ["application/json", "text/plain", "multipart/form-data; boundary=x"],
}
METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}


def text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(NASTY)
    ranges = [(0x20, 0x7F), (0xA0, 0x3000), (0x4E00, 0x9FFF)]
    return "".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randrange(0, 40)))


def url_for_rule(app, rule, rng: random.Random, path: str) -> str:  # type: ignore[no-untyped-def]
    values: dict[str, object] = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        if isinstance(converter, QrTokenConverter):
            values[name] = rng.choice([path[1:], path[1:].lower(), "A" * 21, path[1:-1] + "Z"])
        elif isinstance(converter, IntegerConverter):
            values[name] = rng.randrange(0, 10**6)
        else:
            values[name] = "".join(rng.choice(string.ascii_letters + string.digits + "-_.~王") for _ in range(8))
    try:
        return app.url_map.bind("localhost").build(rule.endpoint, values)
    except Exception:  # noqa: BLE001 - an unbuildable value: the raw rule text is a request too
        return rule.rule


def one_request(client, app, rules, rng: random.Random, path: str, token: dict[str, str]):  # type: ignore[no-untyped-def]
    rule = rng.choice(rules)
    url = url_for_rule(app, rule, rng, path)
    method = rng.choice(sorted(rule.methods & METHODS))
    form = {rng.choice(FIELDS): text(rng) for _ in range(rng.randrange(0, 8))}
    if token and rng.random() < 0.6:
        form = {**form, **token} if rng.random() < 0.5 else {**token, **form}
    headers = {name: rng.choice(values) for name, values in HEADERS.items() if rng.random() < 0.3}
    body = {"json": form} if rng.random() < 0.1 else {"data": form}
    if "Content-Type" in headers and "json" not in body:
        body = {"data": "&".join(f"{k}={v}" for k, v in form.items())}
    response = client.open(url, method=method, headers=headers, **body)
    return rule.endpoint, method, url, form, response.status_code


def test_no_generated_request_gets_a_server_error(app, path, sms):
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]
    reached: set[str] = set()
    count = 0

    @given(st.randoms(use_true_random=True), st.booleans(), st.integers(0, 10**8 - 1))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def run(rng, start_a_join, phone):  # type: ignore[no-untyped-def]
        nonlocal count
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.1.{count // BATCH % 250}.{count // BATCH // 250 + 1}"
        token: dict[str, str] = {}
        if start_a_join:
            submit(client, path, phone=f"+86170{phone:08d}")
            token = hidden_fields(client.get("/join/code").text)
        for _ in range(BATCH):
            endpoint, method, url, form, status = one_request(client, app, rules, rng, path, token)
            count += 1
            reached.add(endpoint)
            assert status < 500, (method, url, form, status)

    run()
    assert count >= 10_000
    join_endpoints = {rule.endpoint for rule in rules if rule.endpoint.startswith("join.")}
    assert join_endpoints <= reached, "every form of the worker's path was fuzzed"
    assert len(reached) >= 0.9 * len({rule.endpoint for rule in rules})
