"""`flask counts …`: the members-per-district-and-status counters behind the roster's tabs."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from app.db import get_session
from app.services import district_counts

group = AppGroup("counts", help="The roster's tab counters (district_count).")


def _show(found: list[district_counts.Difference]) -> None:
    for d in found:
        click.echo(f"district {d.district_id} {d.status}: stored {d.stored}, members {d.counted}")


@group.command("check")
def check_command() -> None:
    """Compare the counters with the members (exit 1 when any differs)."""
    found = district_counts.check(get_session())
    _show(found)
    click.echo(f"counters that differ: {len(found)}")
    if found:
        raise SystemExit(1)


@group.command("rebuild")
def rebuild_command() -> None:
    """Count every district's members again (writers wait while it runs: seconds at 10M members)."""
    db = get_session()
    found = district_counts.rebuild(db)
    db.commit()
    _show(found)
    click.echo(f"counters rebuilt; {len(found)} were wrong")


def register(app: Flask) -> None:
    app.cli.add_command(group)
