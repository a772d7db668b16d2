"""Gallery page: enrol an identity from photos (showing the face crops used), rename, put on
or take off the watchlist, delete."""

from __future__ import annotations

from apiflask import abort   # carries its message to the error page (Flask's keeps only the name)
from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for

from web import gallery_service as service
from web.auth import require_role
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
        result = service.gallery.enroll(form.name.data.strip(), service.read_photos(request.files.getlist("photos")))
    except UploadRejected as exc:
        flash(exc.message, "error")
        return _page(form, status=exc.status)
    except service.GalleryError as exc:
        flash(str(exc), "error")
        return _page(form, status=400)
    flash(f"enrolled {result['name']} from {len(result['crops'])} photo(s)", "info")
    enrolled = {"name": result["name"], "crops": [service.crop_data_url(key) for key in result["crops"]]}
    return _page(enrolled=enrolled, status=201)


@gallery.get("/gallery/<name>/crop.jpg")
def crop(name: str):
    identity = service.find(name)
    if identity is None or not identity.get("crop"):
        abort(404, f"no face crop for {name!r}")
    return send_file(service.crop_path(identity["crop"]), mimetype="image/jpeg", max_age=60)


@gallery.post("/gallery/<name>/rename")
@require_role("admin")
def rename(name: str):
    form = RenameForm()
    if form.validate_on_submit():
        try:
            service.gallery.rename_identity(name, form.new_name.data.strip())
            flash(f"renamed {name} to {form.new_name.data.strip()}", "info")
        except service.GalleryError as exc:
            flash(str(exc), "error")
    else:
        flash(problems_line(form.errors, named=False), "error")
    return redirect(url_for("gallery.index"))


@gallery.post("/gallery/<name>/watchlist")
@require_role("admin")
def watchlist(name: str):
    form = ConfirmForm()
    if form.validate_on_submit():
        on = request.form.get("on") == "1"
        try:
            service.gallery.set_watchlist(name, on)
            flash(f"{name} is {'now' if on else 'no longer'} on the watchlist", "info")
        except service.GalleryError as exc:
            flash(str(exc), "error")
    else:       # an expired page, say: say so rather than reload it unchanged
        flash(problems_line(form.errors, named=False), "error")
    return redirect(url_for("gallery.index"))


@gallery.post("/gallery/<name>/delete")
@require_role("admin")
def delete(name: str):
    form = ConfirmForm()
    if form.validate_on_submit():
        if service.gallery.delete_identity(name):
            flash(f"deleted {name} and all its face data", "info")
        else:
            flash(f"no identity named {name}", "error")
    else:
        flash(problems_line(form.errors, named=False), "error")
    return redirect(url_for("gallery.index"))
