"""`flask posters …`: print kits from qr_templates/ (PNG for one place, PDF for many)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.db import get_session
from app.services import places, posters
from app.services.posters.fonts import PosterFontError
from app.services.posters.templates import Template, TemplateError, load_all

group = AppGroup("posters", help="Posters, cards and stickers with each place's QR code.")


def _kit() -> posters.Kit:
    try:
        return posters.open_kit(current_app.config, current_app.extensions["qr_signer"])
    except (TemplateError, PosterFontError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None


@group.command("templates")
def templates_command() -> None:
    """List the templates: name, then page size."""
    try:
        found = load_all(Path(current_app.config["POSTER_TEMPLATES"]))
    except (TemplateError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    for template in found.values():
        click.echo(f"{template.name} {template.size_label}")


@group.command("render")
@click.argument("codes", nargs=-1)
@click.option("--district", default=None, help="Every place of this district (the district first).")
@click.option("--template", "template_name", required=True, help="Template name (see `posters templates`).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="OUT.pdf (any number of places, one a page) or OUT.png (one place).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes drawing pages at once (each costs about 100 MB more; worth it with cores to spare).",
)
def render_command(
    codes: tuple[str, ...], district: str | None, template_name: str, output: Path, workers: int
) -> None:
    """Render posters for place CODEs and/or a --district into a PDF or a PNG."""
    kind = output.suffix.lower()
    if kind not in (".pdf", ".png"):
        raise click.UsageError("the output must end in .pdf or .png")
    kit = _kit()
    try:
        template = kit.template(template_name)
        chosen = posters.select_places(get_session(), codes, district)
    except posters.UnknownTemplate as exc:
        raise click.UsageError(str(exc)) from None
    except places.PlaceNotFound as exc:
        raise click.ClickException(f"no place with code {exc}") from None
    if not chosen:
        raise click.UsageError("name at least one place CODE or a --district")
    if kind == ".png" and len(chosen) != 1:
        raise click.UsageError(f"a PNG holds one place, not {len(chosen)}: write a .pdf")
    if len(chosen) <= SMALL_JOB:
        workers = 1
    _write(output, _render(kit, template, chosen, kind, workers))
    click.echo(f"{output}: {len(chosen)} page(s), template {template.name}", err=True)


SMALL_JOB = 8  # pages: fewer are drawn in this process (starting workers would cost more)


def _render(
    kit: posters.Kit, template: Template, chosen: list[places.Place], kind: str, workers: int
) -> Iterator[bytes]:
    db = get_session()
    if kind == ".png":
        image = posters.render(template, kit.data(db, chosen[0]), kit.fonts)
        yield posters.png_bytes(image, template.page.dpi)
        return
    pages = [kit.data(db, place) for place in chosen]  # read before any drawing starts
    with click.progressbar(length=len(pages), label="rendering", file=sys.stderr, show_pos=True) as bar:
        for index, chunk in enumerate(posters.pdf(template, pages, kit.fonts, workers=workers)):
            if index < len(pages):  # one piece a page, then the index
                bar.update(1)
            yield chunk


def _write(output: Path, chunks: Iterable[bytes]) -> None:
    """Write through a temporary file, so a failure never leaves half a PDF under the name."""
    partial = output.with_name(f".{output.name}.{os.getpid()}.part")
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
        partial.replace(output)
    except PosterFontError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        partial.unlink(missing_ok=True)


def register(app: Flask) -> None:
    app.cli.add_command(group)
