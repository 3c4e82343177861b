"""Organizers: the places of their districts, poster previews and downloads, rotation, funnels.

Another district's place is a 404, never a 403: the page does not confirm that it exists.
Rendered files are cached on disk per place and token version (a rotation starts afresh).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf import FlaskForm

from app.db import get_session
from app.models import District, PlaceKind, Role, Workplace, utcnow
from app.services import numbers, places, posters, stats
from app.services.posters.fonts import PosterFontError
from app.services.posters.pdf import Page as PdfPage
from app.services.posters.pdf import full_page, pdf_stream
from app.services.posters.templates import Template, TemplateError
from app.web.access import role_required, scope, staff

bp = Blueprint("organizer", __name__, url_prefix="/organizer")


class RotateForm(FlaskForm):
    """CSRF only."""


@bp.errorhandler(PosterFontError)
@bp.errorhandler(TemplateError)
def print_kit_broken(exc: Exception) -> ResponseReturnValue:
    current_app.logger.error("print kit unavailable: %s", exc)
    return render_template("organizer/unavailable.html", reason=str(exc)), 503


def _kit() -> posters.Kit:
    return posters.open_kit(current_app.config, current_app.extensions["qr_signer"])


def _cache() -> posters.RenderCache:
    return posters.RenderCache(Path(current_app.config["POSTER_CACHE"]))


def _district_id(place: places.Place) -> int:
    return (place.id if isinstance(place, District) else place.district_id) or 0


def _place(code: str) -> places.Place:
    """The place with this code, if it lies in the user's districts; else 404."""
    try:
        place = places.find_by_code(get_session(), code)
    except places.PlaceNotFound:
        abort(404)
    allowed = scope()
    if allowed is not None and _district_id(place) not in allowed:
        abort(404)
    if place.retired_at is not None:  # retired by an admin: no poster of it is printed again
        abort(404)
    return place


def _template(kit: posters.Kit, name: str) -> Template:
    try:
        return kit.template(name)
    except posters.UnknownTemplate:
        abort(404)


def _print_png(kit: posters.Kit, template: Template, place: places.Place) -> bytes:
    """The print-resolution PNG of one place, from the cache when this token version has one."""
    place_key, version_key = posters.place_keys(place)
    data = kit.data(get_session(), place)
    return _cache().get(
        place_key,
        version_key,
        f"{template.name}.png.{kit.fingerprint(template)}",
        lambda: posters.png_bytes(posters.render(template, data, kit.fonts), template.page.dpi),
    )


def _pdf_pages(kit: posters.Kit, template: Template, chosen: list[places.Place]) -> Iterator[PdfPage]:
    """Pages from the cached print PNGs (a district PDF after previews costs no rendering)."""
    width, height = template.page.size_pt
    for place in chosen:
        yield full_page(_print_png(kit, template, place), width, height)


def _download(body: bytes | Iterator[bytes], mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _districts() -> list[District]:
    allowed, db = scope(), get_session()
    found = [d for d in places.all_places(db) if isinstance(d, District)]
    return [d for d in found if allowed is None or d.id in allowed]


def _funnels(chosen: list[places.Place]) -> dict[tuple[str, int], list[stats.Funnel]]:
    db, found = get_session(), {}
    for kind, model in ((PlaceKind.district, District), (PlaceKind.workplace, Workplace)):
        ids = [p.id or 0 for p in chosen if isinstance(p, model)]
        for place_id, rows in stats.funnels(db, kind, ids).items():
            found[kind.value, place_id] = rows
    return found


def funnel_of(funnels: dict[tuple[str, int], list[stats.Funnel]], place: places.Place) -> list[stats.Funnel]:
    return funnels.get((places.kind_of(place).value, place.id or 0), [])


@bp.get("/")
@role_required(Role.organizer, Role.official)
def index() -> str:
    db = get_session()
    groups = [(d, places.workplaces_of(db, d.id or 0)) for d in _districts()]
    every: list[places.Place] = []
    for district, workplaces in groups:
        every.append(district)
        every.extend(workplaces)
    return render_template(
        "organizer/index.html",
        groups=groups,
        funnels=_funnels(every),
        funnel_of=funnel_of,
        templates=_kit().templates.values(),
        signer=current_app.extensions["qr_signer"],
        expires_on=places.expires_on,
    )


@bp.get("/places/<code>")
@role_required(Role.organizer, Role.official)
def place(code: str) -> str:
    found = _place(code)
    kit = _kit()
    district = found if isinstance(found, District) else get_session().get(District, found.district_id)
    return render_template(
        "organizer/place.html",
        place=found,
        district=district,
        kind=places.kind_of(found).value,
        templates=kit.templates.values(),
        funnel=funnel_of(_funnels([found]), found),
        form=RotateForm(),
        join_url=places.join_url(kit.base_url, kit.signer, found),
        expires=places.expires_on(kit.signer, found),
    )


@bp.get("/places/<code>/<template_name>/preview.png")
@role_required(Role.organizer, Role.official)
def preview(code: str, template_name: str) -> Response:
    found, kit = _place(code), _kit()
    template = _template(kit, template_name)
    place_key, version_key = posters.place_keys(found)
    body = _cache().get(
        place_key,
        version_key,
        f"{template.name}.preview.{kit.fingerprint(template)}",
        lambda: posters.preview(_print_png(kit, template, found)),
    )
    response = Response(body, mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.get("/places/<code>/<template_name>/poster.<fmt>")
@role_required(Role.organizer, Role.official)
def download(code: str, template_name: str, fmt: str) -> Response:
    if fmt not in ("png", "pdf"):
        abort(404)
    found, kit = _place(code), _kit()
    template = _template(kit, template_name)
    filename = f"{found.code}-{template.name}.{fmt}"
    if fmt == "png":
        return _download(_print_png(kit, template, found), "image/png", filename)
    body = b"".join(pdf_stream(_pdf_pages(kit, template, [found]), title=found.name))
    return _download(body, "application/pdf", filename)


@bp.get("/districts/<code>/posters.pdf")
@role_required(Role.organizer, Role.official)
def district_pdf(code: str) -> Response:
    district = _place(code)
    if not isinstance(district, District):
        abort(404)
    kit = _kit()
    template = _template(kit, request.args.get("template", "a4"))
    chosen = places.all_places(get_session(), district.code)
    for place in chosen:  # fail before the first byte is sent, not halfway through the file
        posters.check_glyphs(template, kit.data(get_session(), place), kit.fonts)
    pages = pdf_stream(_pdf_pages(kit, template, chosen), title=district.name)
    return _download(stream_with_context(pages), "application/pdf", f"{district.code}-{template.name}.pdf")


def _current_funnel(place: places.Place) -> stats.Funnel:
    """The counts of the place's current code: what a rotation switches off."""
    rows = funnel_of(_funnels([place]), place)
    return next((r for r in rows if r.qr_version == place.qr_version), stats.Funnel(qr_version=place.qr_version))


@bp.get("/places/<code>/rotate")
@role_required(Role.organizer, Role.official)
def confirm_rotate(code: str) -> str:
    """The confirmation page (works without JavaScript): what stops working, then a POST."""
    found = _place(code)
    return render_template(
        "organizer/rotate.html",
        place=found,
        current=_current_funnel(found),
        form=RotateForm(),
        expires=places.expires_on(current_app.extensions["qr_signer"], found),
    )


@bp.post("/places/<code>/rotate")
@role_required(Role.organizer, Role.official)
def rotate(code: str) -> ResponseReturnValue:
    """Rotate only when the POST confirms the version it replaces (from the confirmation page)."""
    found = _place(code)
    if not RotateForm().validate():
        abort(400)
    confirmed = request.form.get("version", "")
    if confirmed != str(found.qr_version):
        if numbers.digits(confirmed):  # a second press, or another organizer rotated it meanwhile
            flash(_("This code was already replaced: nothing was changed."))
            return redirect(url_for("organizer.place", code=found.code), 303)
        return redirect(url_for("organizer.confirm_rotate", code=found.code), 303)
    db = get_session()
    places.rotate(db, found, now=utcnow(), actor_id=staff().id)
    db.commit()
    flash(_("New code issued: print the new posters. Old posters now show a 'replaced' page."))
    return redirect(url_for("organizer.place", code=found.code), 303)
