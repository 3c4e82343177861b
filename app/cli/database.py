"""`flask db …`: the schema, through Alembic only."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app
from flask.cli import AppGroup

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str | None = None) -> AlembicConfig:
    """Alembic settings for this app's database (no alembic.ini needed)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or current_app.config["DATABASE_URL"]).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    # Alembic announces each of its plugins at INFO: noise for an operator.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    command.upgrade(alembic_config(url), revision)


group = AppGroup("db", help="Database schema (Alembic migrations).")


@group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade_command(revision: str) -> None:
    """Apply the migrations."""
    url = current_app.config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade(revision=revision)
    click.echo("database is at the latest revision")


@group.command("revision")
@click.option("-m", "--message", required=True, help="What the revision changes.")
def revision_command(message: str) -> None:
    """Write a new migration from the difference between models and database."""
    command.revision(alembic_config(), message=message, autogenerate=True)


@group.command("current")
def current_command() -> None:
    """Show the database's revision."""
    command.current(alembic_config())


def register(app: Flask) -> None:
    app.cli.add_command(group)
