"""Every redirect whose target comes from the request stays on this site (issue 12, item 1).

One helper (app.security.safe_path) judges every such target after the steps a browser and
Werkzeug take (tabs and newlines dropped, controls trimmed, backslash read as slash); the
property test throws generated targets at it and at each door that takes one.
"""

from __future__ import annotations

from urllib.parse import quote, urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.models import Role
from app.security import safe_path, same_origin_referrer
from tests import conftest, factories
from tests.conftest import hidden_fields

BASE = "http://localhost/"
HOSTILE = [
    "/\t/evil.example",
    "/%09/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "\x00//evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "/%5Cevil.example",
    "/%5C/evil.example",
    "https://evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "java\tscript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\u202e/evil.example",
    "/\u3000/evil.example",
    "/\u2028/evil.example",
    "\uff0f\uff0fevil.example",
    "evil.example",
    "",
]


def lands_on_this_site(location: str) -> bool:
    """Where a browser would go from this Location header (after its own clean-up)."""
    seen = location.replace("\t", "").replace("\n", "").replace("\r", "").strip("".join(map(chr, range(33))))
    target = urlsplit(urljoin(BASE, seen.replace("\\", "/")))
    return target.scheme == "http" and target.netloc == "localhost"


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_targets_fall_back(target):
    assert safe_path(target, "/home") == "/home"


@pytest.mark.parametrize("target", ["/", "/roster/?status=pending", "/roster/?q=%E6%9D%8E", "/login/code"])
def test_plain_paths_are_kept(target):
    assert safe_path(target, "/home") == target


@given(st.text(alphabet=st.sampled_from(list("/\\\t\n\r %2Fx.:@?#\x00\u202e\uff0fjavscript")), max_size=24))
@settings(max_examples=600)
def test_no_target_leaves_the_site(target):
    assert lands_on_this_site(safe_path(target, "/home"))
    assert lands_on_this_site(safe_path(quote(target, safe="/:@?#%"), "/home"))


@given(st.text(max_size=16))
@settings(max_examples=300)
def test_referrer_from_elsewhere_falls_back(tail):
    assert same_origin_referrer("http://evil.example/" + tail, BASE, "/roster/") == "/roster/"
    assert lands_on_this_site(same_origin_referrer(BASE + tail, BASE, "/roster/"))


@pytest.fixture
def official(app, db):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    user = conftest.make_staff(db, "official@example.org", Role.official, [district.code])
    conftest.enrol(app, db, user)
    return user


@pytest.mark.parametrize("target", HOSTILE[:14] + ["https://evil.example/", "javascript:alert(1)"])
def test_sign_in_never_sends_elsewhere(client, db, official, target):
    response = conftest.sign_in(client, db, "official@example.org", next_="?next=" + quote(target, safe=""))
    assert response.status_code == 302
    assert response.headers["Location"] == "/home"


@given(target=st.sampled_from(HOSTILE) | st.text(max_size=12))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_language_switch_never_sends_elsewhere(client, target):
    response = client.get("/lang/en?next=" + quote(target, safe=""))
    assert response.status_code == 302
    assert lands_on_this_site(response.headers["Location"])


def test_language_switch_keeps_a_path(client):
    response = client.get("/lang/en?next=" + quote("/roster/?status=pending", safe=""))
    assert response.headers["Location"] == "/roster/?status=pending"


def test_roster_goes_back_only_to_its_own_pages(client, db, official):
    conftest.sign_in(client, db, "official@example.org")
    form = hidden_fields(client.get("/roster/").text)
    for referrer in ("https://evil.example/roster/", "http://localhost//evil.example", "http://localhost/\t/x"):
        response = client.post("/roster/1/reject", data={**form, "reason": ""}, headers={"Referer": referrer})
        assert response.status_code == 303
        assert response.headers["Location"] == "/roster/", referrer
