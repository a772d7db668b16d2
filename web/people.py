"""The person page: their photos (added and removed one at a time) and every recording that
shows them, each a face crop that opens the job at that moment; and "enrol this face" from an
unknown track on a job page."""

from __future__ import annotations

from apiflask import abort   # carries its message to the error page (Flask's keeps only the name)
from flask import Blueprint, current_app, flash, redirect, render_template, send_file, url_for

from core.errors import GalleryError
import services.gallery
from services import people as persons
from web import people_views as service
from web.auth import require_role
from web.context import farm
from web.forms import ConfirmForm, PhotoForm, TrackEnrolForm, problems_line
from web.gallery_views import read_photos
from web.page_query import page_query, takes_query
from web.schemas import PageNumber
from web.uploads import UploadRejected

people = Blueprint("people", __name__)


def _identity_or_404(name: str) -> dict:
    identity = services.gallery.find_identity(farm(), name)
    if identity is None:
        abort(404, f"nobody named {name!r} is enrolled")
    return identity


@people.get("/people/<name>")
@takes_query(PageNumber)
def person(name: str):
    identity = _identity_or_404(name)
    page = page_query()["page"]
    per_page = current_app.config["VIDFARM_SETTINGS"].jobs_per_page
    appearances, more = service.appearances(name, page, per_page)
    return render_template("person.html", identity=identity, photos=service.photos(name), appearances=appearances,
                           page=page, next_page=page + 1 if more else None, photo_form=PhotoForm(formdata=None),
                           remove_form=ConfirmForm())


@people.get("/people/<name>/photos/<int:photo_id>.jpg")
def photo(name: str, photo_id: int):
    path = service.photo_path(name, photo_id)
    if path is None:
        abort(404, f"no photo {photo_id} of {name!r}")
    return send_file(path, mimetype="image/jpeg")


def _done(form, change, back: str):
    """A change asked for by a form: ``change()`` makes it and says what it did; a refused form
    (an expired page, say) or a refusal is said instead. Then back to ``back``."""
    if not form.validate_on_submit():
        flash(problems_line(form.errors, named=False), "error")
        return redirect(back)
    try:
        flash(change(), "info")
    except UploadRejected as exc:
        flash(exc.message, "error")
    except GalleryError as exc:
        flash(str(exc), "error")
    return redirect(back)


@people.post("/people/<name>/photos")
@require_role("admin")
def add_photo(name: str):
    _identity_or_404(name)
    form = PhotoForm()

    def add() -> str:
        result = services.gallery.enroll(farm(), name, read_photos([form.photo.data]))
        return f"added a photo of {name} ({result['embeddings']} now)"
    return _done(form, add, url_for("people.person", name=name))


@people.post("/people/<name>/photos/<int:photo_id>/delete")
@require_role("admin")
def remove_photo(name: str, photo_id: int):
    def remove() -> str:
        if not persons.remove_photo(farm(), name, photo_id):
            abort(404, f"no photo {photo_id} of {name!r}")
        return f"removed a photo of {name}"
    return _done(ConfirmForm(), remove, url_for("people.person", name=name))


@people.post("/jobs/<job_id>/tracks/<int:track>/enrol")
@require_role("admin")
def enrol_track(job_id: str, track: int):
    form = TrackEnrolForm()
    enrolled = {}

    def enrol() -> str:
        enrolled.update(persons.enrol_track(farm(), job_id, track, form.name.data))
        return f"enrolled track #{track} as {enrolled['name']}; this recording is being matched again"
    response = _done(form, enrol, url_for("ui.job", job_id=job_id))
    return redirect(url_for("people.person", name=enrolled["name"])) if enrolled else response
