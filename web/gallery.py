"""Gallery page: enrol an identity from photos (showing the face crops used), rename, put on
or take off the watchlist, delete."""

from __future__ import annotations

from apiflask import abort   # carries its message to the error page (Flask's keeps only the name)
from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for

from core.errors import GalleryError
import services.gallery
from services.gallery import NoWorkerAnswered
from web import gallery_views as service
from web.auth import require_role
from web.context import farm
from web.forms import ConfirmForm, EnrolForm, RenameForm, problems_line
from web.uploads import UploadRejected

gallery = Blueprint("gallery", __name__)


def _page(form=None, enrolled=None, status=200):
    return render_template("gallery.html", form=form or EnrolForm(formdata=None), identities=service.identities(),
                           enrolled=enrolled, rename_form=RenameForm(), delete_form=ConfirmForm()), status


@gallery.get("/gallery")
def index():
    return _page()


@gallery.post("/gallery")
@require_role("admin")
def enrol():
    form = EnrolForm()
    if not form.validate_on_submit():
        flash(problems_line(form.errors, named=False), "error")
        return _page(form, status=400)
    try:
        result = services.gallery.enroll(farm(), form.name.data.strip(), service.read_photos(request.files.getlist("photos")))
    except UploadRejected as exc:
        flash(exc.message, "error")
        return _page(form, status=exc.status)
    except GalleryError as exc:
        flash(str(exc), "error")
        return _page(form, status=503 if isinstance(exc, NoWorkerAnswered) else 400)
    flash(f"enrolled {result['name']} from {len(result['crops'])} photo(s)", "info")
    enrolled = {"name": result["name"], "crops": [service.crop_data_url(key) for key in result["crops"]]}
    return _page(enrolled=enrolled, status=201)


@gallery.get("/gallery/<name>/crop.jpg")
def crop(name: str):
    identity = services.gallery.find_identity(farm(), name)
    if identity is None or not identity.get("crop"):
        abort(404, f"no face crop for {name!r}")
    return send_file(service.crop_path(identity["crop"]), mimetype="image/jpeg", max_age=60)


def _button(form, change):
    """A gallery change from a button on the page: ``change()`` does it and says what it did;
    a refused form (an expired page, say) or a GalleryError is said instead. Back to the page."""
    if not form.validate_on_submit():
        flash(problems_line(form.errors, named=False), "error")
    else:
        try:
            flash(change(), "info")
        except GalleryError as exc:
            flash(str(exc), "error")
    return redirect(url_for("gallery.index"))


@gallery.post("/gallery/<name>/rename")
@require_role("admin")
def rename(name: str):
    form = RenameForm()
    return _button(form, lambda: f"renamed {name} to {services.gallery.rename_identity(farm(), name, form.new_name.data)}")


@gallery.post("/gallery/<name>/watchlist")
@require_role("admin")
def watchlist(name: str):
    on = request.form.get("on") == "1"

    def change() -> str:
        services.gallery.set_watchlist(farm(), name, on)
        return f"{name} is {'now' if on else 'no longer'} on the watchlist"
    return _button(ConfirmForm(), change)


@gallery.post("/gallery/<name>/delete")
@require_role("admin")
def delete(name: str):
    def change() -> str:
        report = services.gallery.delete_identity(farm(), name)
        if report is None:
            raise GalleryError(f"no identity named {name}")
        return (f"deleted {name} and all its face data; erasing them from every recording "
                f"(report: {url_for('identities.erasure', erasure_id=report['id'])})")
    return _button(ConfirmForm(), change)
