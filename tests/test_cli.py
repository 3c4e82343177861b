"""The operator commands, run through Flask's CLI runner."""

from __future__ import annotations

import json

from sqlmodel import select

from app.models import District, Member, Role, User
from tests import factories
from tests.web.test_join import code_from, send_code, submit


def run(app, *args, input=None):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args), input=input, catch_exceptions=False)


def test_every_group_has_help(app):
    for group in ("db", "places", "users", "members"):
        result = run(app, group, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_db_upgrade_on_a_new_database(app, tmp_path, monkeypatch):
    app.config["DATABASE_URL"] = f"sqlite:///{tmp_path / 'fresh' / 'new.db'}"
    result = run(app, "db", "upgrade")
    assert result.exit_code == 0 and (tmp_path / "fresh" / "new.db").exists()


def test_places_import_list_and_rotate(app, tmp_path, db):
    csv_file = tmp_path / "places.csv"
    csv_file.write_text("\ufeffPD,浦东新区总工会,PD-ZJ01,张江美团骑手站,delivery_station\nPD,,X,Y\n", encoding="utf-8")
    result = run(app, "places", "import", str(csv_file))
    assert result.exit_code == 1, "a rejected row is reported with a non-zero exit"
    assert "created: 1, updated: 0, rejected: 1" in result.output and "line 2" in result.output
    listed = json.loads(run(app, "places", "list", "--json").output)
    assert [(p["code"], p["kind"]) for p in listed] == [("PD", "district"), ("PD-ZJ01", "workplace")]
    assert listed[1]["district"] == "PD" and listed[1]["name"] == "张江美团骑手站"
    assert listed[1]["join_url"].startswith("https://join.example.org/")
    new_url = run(app, "places", "rotate", "PD-ZJ01").output.strip()
    assert new_url.startswith("https://join.example.org/") and new_url != listed[1]["join_url"]
    assert run(app, "places", "rotate", "NOPE").exit_code != 0


def test_places_import_refuses_a_non_utf8_file(app, tmp_path):
    bad = tmp_path / "gbk.csv"
    bad.write_bytes("PD,浦东,,\n".encode("gbk"))
    result = app.test_cli_runner().invoke(args=["places", "import", str(bad)])
    assert result.exit_code != 0 and "UTF-8" in result.output


def test_users_create_with_password_from_stdin(app, db):
    factories.district(db)
    db.commit()
    result = run(
        app,
        "users",
        "create",
        "Official@Example.org",
        "--role",
        "official",
        "--district",
        "PD",
        "--password-stdin",
        input="a-long-enough-passphrase\n",
    )
    assert result.exit_code == 0, result.output
    assert "passphrase" not in result.output
    user = db.exec(select(User)).one()
    assert user.email == "official@example.org" and user.role is Role.official
    assert user.password_hash.startswith("$argon2id$")


def test_users_create_prints_a_generated_password_once(app):
    result = run(app, "users", "create", "admin@example.org", "--role", "admin")
    assert result.exit_code == 0 and "password (shown once):" in result.output


def test_users_create_refuses_bad_input(app):
    assert run(app, "users", "create", "not-an-email", "--role", "admin").exit_code != 0
    assert run(app, "users", "create", "o@example.org", "--role", "official").exit_code != 0


def test_members_list_json_is_decrypted_for_operators(app, client, db, sms):
    district = factories.district(db)
    station = factories.workplace(db, district)
    db.commit()
    path = factories.join_path(app, station)
    submit(client, path)
    send_code(client, code_from(sms))
    [row] = json.loads(run(app, "members", "list", "--json").output)
    member = db.exec(select(Member)).one()
    assert row == {
        "id": member.id,
        "name": "王小明",
        "phone": factories.phone(1),
        "platform": "meituan",
        "workplace": "PD-ZJ01",
        "district": "PD",
        "status": "pending",
        "created_at": row["created_at"],
        "member_number": None,
        "history": [],
    }
    assert json.loads(run(app, "members", "list", "--json", "--status", "approved").output) == []
    assert json.loads(run(app, "members", "list", "--json", "--district", "XX").output) == []


def test_seed_demo_loads_once_and_prints_urls(app, db):
    first = run(app, "seed-demo")
    assert first.exit_code == 0 and "password (shown once)" in first.output
    assert first.output.count("join URL") == 3 and "/login" in first.output
    second = run(app, "seed-demo")
    assert "password" not in second.output and second.output.count("join URL") == 3
    assert len(db.exec(select(District)).all()) == 1
