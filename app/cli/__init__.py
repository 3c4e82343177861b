"""`flask --app wsgi …` commands: one module per group."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from app.cli import database, demo, members, places, users

    for module in (database, places, users, members, demo):
        module.register(app)
