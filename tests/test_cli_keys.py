"""`flask keys rotate`: after it, the old key can be removed and every member still reads."""

from __future__ import annotations

from cryptography.fernet import Fernet
from flask import Flask
from sqlmodel import Session, select

import config
from app import create_app
from app.models import Member, StatusCheck
from app.services.crypto import PiiCipher
from tests import factories
from tests.services.test_roster import make_member


def app_with(env: dict[str, str], keys: list[str]) -> Flask:
    return create_app(config.TestingConfig({**env, "PII_ENCRYPTION_KEY": ",".join(keys)}))


def names_and_phones(app: Flask) -> list[tuple[str, str]]:
    pii = app.extensions["pii"]
    with Session(app.extensions["db_engine"]) as db:
        members = db.exec(select(Member).order_by(Member.id)).all()  # type: ignore[arg-type]
        return [(pii.decrypt(m.name_enc), pii.decrypt(m.phone_enc)) for m in members]


def test_rotate_then_remove_the_old_key_leaves_every_member_readable(env):  # type: ignore[no-untyped-def]
    old, new = env["PII_ENCRYPTION_KEY"], Fernet.generate_key().decode()
    before = app_with(env, [old])
    with Session(before.extensions["db_engine"]) as db:
        district = factories.district(db)
        for n in range(7):
            make_member(db, before.extensions["pii"], district, n + 1, name=f"王{n}")
        legacy = make_member(db, before.extensions["pii"], district, 20, name="李旧")
        legacy.name_enc = Fernet(old).encrypt("李旧".encode()).decode()  # a token from before AES-GCM
        db.commit()
    expected = names_and_phones(before)

    during = app_with(env, [new, old])
    runner = during.test_cli_runner()
    assert runner.invoke(args=["keys", "check"]).exit_code == 1
    result = runner.invoke(args=["keys", "rotate", "--batch", "3"])
    assert result.exit_code == 0, result.output
    assert "values re-encrypted: 16" in result.output
    check = runner.invoke(args=["keys", "check"])
    assert check.exit_code == 0 and "values under an old key: 0" in check.output
    again = runner.invoke(args=["keys", "rotate"])  # a second run (a resumed one) changes nothing
    assert "values re-encrypted: 0" in again.output

    after = app_with(env, [new])
    assert names_and_phones(after) == expected


def test_every_enc_column_is_covered():
    from app.models import JoinAttempt, User
    from app.services import rekey

    covered = {(table.name, column.name) for table, _key, columns in rekey.encrypted_tables() for column in columns}
    wanted = [(Member, "name_enc"), (Member, "phone_enc"), (JoinAttempt, "phone_enc"), (StatusCheck, "phone_enc")]
    wanted += [(User, "totp_secret_enc"), (User, "totp_pending_enc")]
    assert {(model.__tablename__, name) for model, name in wanted} <= covered


def test_a_value_under_no_configured_key_stops_the_rotation(env):  # type: ignore[no-untyped-def]
    app = app_with(env, [env["PII_ENCRYPTION_KEY"]])
    stranger = PiiCipher([Fernet.generate_key().decode()], "index-key")
    with Session(app.extensions["db_engine"]) as db:
        make_member(db, stranger, factories.district(db), 1)
        db.commit()
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code != 0
