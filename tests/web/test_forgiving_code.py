"""Post/redirect/get on the code steps (issue 11, item 3): a wrong code answers with a 303 to the
code page, which shows the words once; a reload shows the page again and re-posts nothing."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.models import JoinAttempt, StatusCheck
from tests import factories
from tests.conftest import hidden_fields
from tests.web.test_join import code_from, send_code, submit

WRONG = {"zh": "验证码不正确，还可以再试 4 次。", "en": "That code is not right. You have 4 tries left."}
EMPTY = {"zh": "请输入短信中的验证码。", "en": "Please enter the code from the SMS."}


def speaking(client, lang: str):  # type: ignore[no-untyped-def]
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en" if lang == "en" else "zh-CN"
    return client


def tries(db, model) -> list[int]:  # type: ignore[no-untyped-def]
    db.commit()  # end the test's read snapshot: see what the requests wrote
    db.expire_all()
    return [row.code_tries for row in db.exec(select(model))]


def post_code(client, page_path: str, code: str):  # type: ignore[no-untyped-def]
    page = client.get(page_path)
    assert page.status_code == 200
    return client.post(page_path, data={**hidden_fields(page.text), "code": code})


def wrong_of(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def check_prg(client, db, model, page_path: str, code: str, lang: str) -> None:  # type: ignore[no-untyped-def]
    response = post_code(client, page_path, code)
    assert response.status_code == 303 and response.headers["Location"].endswith(page_path), "no page of its own"
    assert tries(db, model) == [1]
    followed = client.get(response.headers["Location"])
    assert followed.status_code == 200
    assert followed.text.count(WRONG[lang]) == 1
    for _ in range(2):  # reloads: the page again, nothing re-posted, the words not again
        reloaded = client.get(page_path)
        assert reloaded.status_code == 200 and 'name="code"' in reloaded.text
        assert WRONG[lang] not in reloaded.text
        assert tries(db, model) == [1], "a reload does not move the tries counter"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_wrong_join_code_redirects_and_a_reload_posts_nothing(client, path, sms, db, lang):
    speaking(client, lang)
    submit(client, path)
    check_prg(client, db, JoinAttempt, "/join/code", wrong_of(code_from(sms)), lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_wrong_status_code_redirects_and_a_reload_posts_nothing(client, sms, db, station, lang):
    speaking(client, lang)
    page = client.get("/status/")
    assert client.post("/status/", data={**hidden_fields(page.text), "phone": factories.phone(1)}).status_code == 303
    check_prg(client, db, StatusCheck, "/status/code", wrong_of(code_from(sms)), lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_an_empty_code_redirects_with_its_message_once(client, path, sms, db, lang):
    speaking(client, lang)
    submit(client, path)
    response = post_code(client, "/join/code", "")
    assert response.status_code == 303 and response.headers["Location"].endswith("/join/code")
    assert client.get("/join/code").text.count(EMPTY[lang]) == 1
    assert EMPTY[lang] not in client.get("/join/code").text
    assert tries(db, JoinAttempt) == [0], "an empty form is not a try"


def test_a_refusal_keeps_retry_after_on_the_303(client, path, sms, db, monkeypatch):
    submit(client, path)
    wrong = wrong_of(code_from(sms))
    for _ in range(3):
        post_code(client, "/join/code", wrong)
    early = post_code(client, "/join/code", wrong)
    assert early.status_code == 303 and early.headers["Location"].endswith("/join/code")
    assert int(early.headers["Retry-After"]) > 0


# Forms that don't guess (issue 11, item 4): no platform and no station chosen for the worker.

PLEASE = {"zh": "请选择", "en": "Please choose"}
NO_PLATFORM = {"zh": "请选择你所在的平台。", "en": "Please choose the platform you work for."}
NO_STATION = {"zh": "请选择你的站点。", "en": "Please choose your station."}


def first_option(html: str, name: str) -> str:
    select_html = html.split(f'name="{name}"', 1)[1].split("</select>", 1)[0]
    return select_html.split("<option", 2)[1]


def district_path(app, db, station) -> str:  # type: ignore[no-untyped-def]
    from app.models import District

    return factories.join_path(app, db.get(District, station.district_id))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_join_form_chooses_no_platform_and_no_station(app, client, db, station, lang):
    speaking(client, lang)
    html = client.get(district_path(app, db, station)).text
    for name in ("platform", "workplace"):
        first = first_option(html, name)
        assert f'value="">{PLEASE[lang]}</option>' in first, name
        select_html = html.split(f'name="{name}"', 1)[1].split("</select>", 1)[0]
        assert "selected" not in select_html, f"nothing chosen for the worker: {name}"
        assert f'<select id="{name}" name="{name}" required>' in html, name


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_platform_left_unchosen_is_refused_with_a_clear_message(client, path, sms, db, lang):
    speaking(client, lang)
    response = submit(client, path, platform="")
    assert response.status_code == 422 and NO_PLATFORM[lang] in response.text
    assert sms.sent == [] and db.exec(select(JoinAttempt)).all() == []
    missing = submit(client, path, platform=None)  # not sent at all
    assert missing.status_code == 422 and NO_PLATFORM[lang] in missing.text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_station_left_unchosen_is_refused_with_a_clear_message(app, client, station, sms, db, lang):
    speaking(client, lang)
    response = submit(client, district_path(app, db, station), workplace="")
    assert response.status_code == 422 and NO_STATION[lang] in response.text
    assert sms.sent == [] and db.exec(select(JoinAttempt)).all() == []


# "Send a new code" answers with post/redirect/get (issue 11, item 3): a reload never resends.

TOO_SOON = {"zh": r"请 \d+ 秒后再试", "en": r"Please wait \d+ seconds before asking for a new code."}


def resend(client, page_path: str):  # type: ignore[no-untyped-def]
    page = client.get(page_path)
    form = page.text.split('class="resend"', 1)[1]
    return client.post(page_path.replace("/code", "/resend"), data=hidden_fields(form))


def start_status(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/status/")
    assert client.post("/status/", data={**hidden_fields(page.text), "phone": factories.phone(1)}).status_code == 303


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("page_path", ["/join/code", "/status/code"])
def test_a_refused_resend_redirects_and_says_when_once(app, client, path, sms, station, page_path, lang):
    import re

    speaking(client, lang)
    submit(client, path) if page_path == "/join/code" else start_status(client)
    response = resend(client, page_path)
    assert response.status_code == 303 and response.headers["Location"].endswith(page_path)
    assert int(response.headers["Retry-After"]) > 0 and len(sms.sent) == 1
    shown = client.get(page_path).text
    assert len(re.findall(TOO_SOON[lang], shown)) == 1, shown
    reloaded = client.get(page_path).text
    assert not re.search(TOO_SOON[lang], reloaded) and len(sms.sent) == 1, "a reload posts nothing"


@pytest.mark.parametrize("page_path", ["/join/code", "/status/code"])
def test_a_resend_redirects_and_a_reload_sends_no_other_code(app, client, path, sms, station, page_path):
    app.config["RESEND_COOLDOWN_SECONDS"] = 0
    submit(client, path) if page_path == "/join/code" else start_status(client)
    response = resend(client, page_path)
    assert response.status_code == 303 and response.headers["Location"].endswith(page_path)
    assert len(sms.sent) == 2
    for _ in range(2):
        assert client.get(page_path).status_code == 200
    assert len(sms.sent) == 2, "a reload of the code page sends nothing"


# "Wrong number? change it" (issue 11, item 3): the form again, the draft kept server-side.


def tag_of(html: str, name: str) -> str:
    before, after = html.split(f'name="{name}"', 1)
    return before.rsplit("<", 1)[1] + after.split(">", 1)[0]


def test_change_number_shows_the_form_with_the_draft_and_a_new_number_gets_a_new_code(client, path, sms, db):
    submit(client, path, phone=factories.phone(1)[3:])
    page = client.get("/join/code")
    assert 'href="/join/change"' in page.text
    form = client.get("/join/change")
    assert form.status_code == 200 and "?" not in form.request.full_path.rstrip("?")
    html = form.text
    assert 'value="王小明"' in tag_of(html, "name"), "the name is kept"
    assert '<option selected value="meituan">' in html, "the platform is kept"
    assert "checked" in tag_of(html, "consent"), "the consent is kept"
    assert 'value=""' in tag_of(html, "phone") or "value=" not in tag_of(html, "phone"), "the phone is typed again"
    assert factories.phone(1)[3:] not in html
    data = {**hidden_fields(html), "name": "王小明", "platform": "meituan", "consent": "y", "cross_border": "y"}
    new_number = factories.phone(2)
    sent = client.post(path, data={**data, "phone": new_number[3:]})
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/join/code")
    assert [t.to for t in sms.sent] == [factories.phone(1), new_number], "a new code to the new number"
    assert len(db.exec(select(JoinAttempt)).all()) == 2
    assert send_code(client, code_from(sms)).status_code == 303, "the new code works"


def test_change_number_without_a_draft_is_a_404_and_after_joining_goes_to_done(client, path, sms):
    assert client.get("/join/change").status_code == 404
    submit(client, path)
    assert send_code(client, code_from(sms)).status_code == 303
    after = client.get("/join/change")
    assert after.status_code == 303 and after.headers["Location"].endswith("/join/done")


def test_the_status_code_page_links_back_to_the_number(client, sms, station):
    start_status(client)
    assert 'href="/status/"' in client.get("/status/code").text


# An error summary on the join form (issue 11, item 4): the GOV.UK pattern.


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_several_errors_are_listed_first_each_linking_to_its_field(app, client, station, db, lang):
    speaking(client, lang)
    response = submit(client, district_path(app, db, station), name="", platform="", workplace="", consent=None)
    assert response.status_code == 422
    html = response.text
    summary = html.split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    assert html.index('class="error-summary"') < html.index("<h1>"), "first on the page"
    assert 'role="alert"' in summary and html.count('role="alert"') == 1
    for field in ("name", "platform", "workplace", "consent"):
        assert f'href="#{field}"' in summary, field
        tag = tag_of(html, field)
        assert f'aria-describedby="{field}-error"' in tag and 'aria-invalid="true"' in tag, field
        assert f'id="{field}-error"' in html, field
    assert NO_PLATFORM[lang] in summary and NO_STATION[lang] in summary
    assert 'href="#phone"' not in summary, "a right field is not listed"
    assert "aria-describedby" not in tag_of(html, "phone")


def test_a_form_without_errors_has_no_summary(client, path):
    assert "error-summary" not in client.get(path).text


# The language switch keeps the worker on the same step (issue 11, item 3), through safe_path.


def switch_link(html: str) -> str:
    import html as html_lib

    return html_lib.unescape(html.split('<nav class="lang">', 1)[1].split('href="', 1)[1].split('"', 1)[0])


def switch(client, html: str):  # type: ignore[no-untyped-def]
    response = client.get(switch_link(html))
    assert response.status_code == 302
    return response.headers["Location"]


def test_switching_language_on_the_code_page_keeps_the_code(client, path, sms, db):
    submit(client, path)
    where = switch(client, client.get("/join/code").text)
    assert where.endswith("/join/code")
    page = client.get(where)
    assert "Enter the code we sent" in page.text and 'name="code"' in page.text
    assert len(sms.sent) == 1 and send_code(client, code_from(sms)).status_code == 303, "the code still works"


def test_switching_language_on_the_change_page_keeps_the_draft(client, path, sms):
    submit(client, path)
    where = switch(client, client.get("/join/change").text)
    assert where.endswith("/join/change")
    page = client.get(where).text
    assert "Your name" in page and 'value="王小明"' in tag_of(page, "name")


@pytest.mark.parametrize(
    ("start", "bad"),
    [("join", {"name": ""}), ("status", {"phone": "12"})],
)
def test_switching_language_on_a_page_answering_a_post_comes_back_to_its_step(client, path, sms, station, start, bad):
    if start == "join":
        response, step = submit(client, path, **bad), path
    else:
        page = client.get("/status/")
        response, step = client.post("/status/", data={**hidden_fields(page.text), **bad}), "/status/"
    assert response.status_code == 422
    assert switch(client, response.text).endswith(step), "not the home page"
    assert client.get(step).status_code == 200


def test_a_language_switch_never_leaves_the_site(client):
    response = client.get("/lang/en?next=//evil.example/join/code")
    assert response.status_code == 302 and response.headers["Location"] in ("/", "http://localhost/")
