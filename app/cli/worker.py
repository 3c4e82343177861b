"""`flask --app wsgi worker`: the consumer of the task queue: SMS (app/services/tasks.py) and roster
exports (app/services/export_jobs.py)."""

from __future__ import annotations

import click
from flask import Flask, current_app


@click.command("worker")
@click.option("--workers", type=int, default=None, help="Threads sending at once (default TASK_WORKERS).")
def worker_command(workers: int | None) -> None:
    """Send the queued codes and notices and prepare exports until stopped (SIGTERM or Ctrl-C finishes
    the tasks in hand)."""
    deliveries = current_app.extensions["tasks"]
    if deliveries.huey.immediate:
        raise click.ClickException("TASK_QUEUE=immediate runs tasks in the app: there is nothing to consume")
    count = workers or current_app.config["TASK_WORKERS"]
    # What a killed consumer or server left in the outbox is woken now, then every minute.
    woken = deliveries.sweep()
    click.echo(f"outbox: {woken} deliveries due within a minute woken")
    jobs = current_app.extensions["exports"].sweep()
    click.echo(f"exports: {jobs} jobs due within a minute woken")
    # periodic: the outbox sweep and the officials' daily reminder (app/services/lifecycle, sent once a
    # day per district even when several consumers run).
    consumer = deliveries.huey.create_consumer(workers=count, worker_type="thread", periodic=True)
    consumer.run()


def register(app: Flask) -> None:
    app.cli.add_command(worker_command)
