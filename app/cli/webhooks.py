"""`flask webhooks …`: signed webhook endpoints and their delivery log."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.db import get_session
from app.services import webhooks
from app.services.webhooks import endpoints

group = AppGroup("webhooks", help="Endpoints that receive signed member events (Standard Webhooks).")


@group.command("add")
@click.argument("url")
@click.option("--events", "names", required=True, help=f"Comma-separated, among {', '.join(webhooks.EVENTS)}.")
@click.option("--district", default=None, help="Only this district's events (default: every district).")
def add_command(url: str, names: str, district: str | None) -> None:
    """Register an endpoint; its secret is printed once, alone on the last line."""
    db = get_session()
    try:
        chosen = endpoints.parse_events(names)
        endpoint, secret = endpoints.add(
            db,
            current_app.extensions["pii"],
            url,
            chosen,
            district_code=district,
            allow_private=current_app.config["WEBHOOK_ALLOW_PRIVATE"],
        )
    except (webhooks.WebhookError, webhooks.UrlRefused) as exc:
        raise click.ClickException(f"endpoint not added: {exc}") from None
    db.commit()
    click.echo(f"added endpoint {endpoint.id} for {', '.join(chosen)}")
    click.echo("secret (shown once; verify the webhook-signature header with it):")
    click.echo(secret)


@group.command("list")
def list_command() -> None:
    """Every endpoint: id, district (* for all), events, URL."""
    for endpoint, code in endpoints.listed(get_session()):
        click.echo(f"{endpoint.id:<5} {code or '*':<10} {','.join(endpoint.events):<40} {endpoint.url}")


@group.command("remove")
@click.argument("endpoint_id", type=int)
def remove_command(endpoint_id: int) -> None:
    """Delete an endpoint and its delivery log."""
    db = get_session()
    try:
        endpoints.remove(db, endpoint_id)
    except webhooks.EndpointNotFound:
        raise click.ClickException(f"no endpoint with id {endpoint_id}") from None
    db.commit()
    click.echo(f"removed endpoint {endpoint_id}")


@group.command("deliveries")
@click.option("--endpoint", "endpoint_id", type=int, default=None, help="Only this endpoint's.")
@click.option("--limit", type=int, default=50, show_default=True)
def deliveries_command(endpoint_id: int | None, limit: int) -> None:
    """The delivery log, newest first: id, endpoint, event, status, attempts, last error."""
    for row in endpoints.deliveries(get_session(), endpoint_id, limit):
        when = row.created_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{row.id:<30} {row.endpoint_id:<5} {row.event_type:<18} {row.status:<10} "
            f"{row.attempts:<3} {when} {row.last_error or ''}"
        )


@group.command("resend")
@click.argument("delivery_id")
def resend_command(delivery_id: str) -> None:
    """Send a delivery again (same webhook-id, a fresh timestamp and signature)."""
    db = get_session()
    hooks = current_app.extensions["webhooks"]
    try:
        owed = hooks.resend(db, delivery_id)
    except webhooks.DeliveryNotFound:
        raise click.ClickException(f"no delivery with id {delivery_id}") from None
    db.commit()
    hooks.outbox.wake_one(owed.id)
    click.echo(f"queued {delivery_id} again")


def register(app: Flask) -> None:
    app.cli.add_command(group)
