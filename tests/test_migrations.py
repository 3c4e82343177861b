"""One schema path: a single Alembic head, upgrade on an empty database, no drift from the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.cli.database import alembic_config, upgrade
from app.db import make_engine


def test_there_is_one_head():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_upgrade_on_an_empty_database_creates_every_table(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    tables = set(inspect(make_engine(url)).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables


def test_models_and_migrations_do_not_drift(migrated_template: Path):
    engine = make_engine(f"sqlite:///{migrated_template}")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"models differ from migrations: run `flask --app wsgi db revision -m ...`: {diff}"
