"""The web UI: jobs list, upload, job page. Pages poll the JSON API (session auth, GET only)."""

from __future__ import annotations

import json

from apiflask import abort   # carries its message to the error page (Flask's keeps only the name)
from apiflask.fields import Float
from flask import (Blueprint, current_app, flash, jsonify, redirect, render_template, request,
                   url_for)

from core.errors import BrokerUnavailable
from core.models import ENDED_STATES, JOB_STATES
from core.segment_job import SourceMedia
from core.storage import output_key, stored_versions, version_key
from services.jobs import CannotReanalyse, job_page, reanalyse_checked
from services.gallery import list_identities
from services.submit import JobBusy, delete_job
from web.api import job_view_or_404, reanalysing
from web.auth import require_role, request_user
from web.context import asks_json, farm
from web.forms import EXPIRED, ConfirmForm, TrackEnrolForm, UploadForm, problems_line
from web.page_query import page_query, takes_query
from web.people_views import track_faces
from web.schemas import JobsPage, QuerySchema
from web.timeline import MARKERS, identities_seen, timeline_rows
from web.uploads import UploadRejected, accept_recording, human_bytes, the_one_upload

ui = Blueprint("ui", __name__)


@ui.app_context_processor
def _page_globals() -> dict:
    # formdata=None: the logout button never reads this request's body (which may be refused, 413)
    return {"user": request_user(), "logout_form": ConfirmForm(formdata=None)}


@ui.get("/")
def home():
    return redirect(url_for("ui.jobs"))


@ui.get("/jobs")
@takes_query(JobsPage)
def jobs():
    query = page_query()
    status = query.get("status")
    return render_template("jobs.html", listing=job_page(farm(), query["page"], status), status=status,
                           states=JOB_STATES)


@ui.route("/upload", methods=["GET", "POST"])
@require_role("operator")
def upload():
    form = UploadForm()
    limit = current_app.config["VIDFARM_SETTINGS"].max_upload_bytes
    wants_json = asks_json()
    if request.method == "POST":
        try:
            if not form.validate_on_submit():
                raise UploadRejected(400, problems_line(form.errors, named=False) or "invalid form")
            # Several files dropped on the page all go in its file input (upload.js): refused, as the
            # API refuses them, rather than the first made a job and the others dropped unsaid.
            job_id, name = accept_recording(the_one_upload(request.files.getlist(form.file.name)), form.options())
        except UploadRejected as exc:
            if wants_json:
                return jsonify(error=exc.message), exc.status, exc.headers
            flash(exc.message, "error")
            return (render_template("upload.html", form=form, limit=limit, limit_text=human_bytes(limit)),
                    exc.status, exc.headers)
        target = url_for("ui.job", job_id=job_id)
        if wants_json:
            return jsonify(id=job_id, name=name, url=target), 201
        return redirect(target)
    return render_template("upload.html", form=form, limit=limit, limit_text=human_bytes(limit))


class OpenAt(QuerySchema):
    t = Float(metadata={"description": "Seconds from the first picture: the video opens there (timeline.js)."})


@ui.get("/jobs/<job_id>")
@takes_query(OpenAt)
def job(job_id: str):
    view = job_view_or_404(job_id)
    record = farm().records.get_job(job_id)
    store = farm().store
    results, versions, video_ready = None, [], False
    # Analysed again: the results of before (and their video) are shown until the run publishes
    # the next version (the page reloads when it ends), marked as such.
    is_reanalysing = reanalysing(view)
    if view["status"] == "done" or is_reanalysing:
        results = json.loads(store.local_path(version_key(job_id, view["results_version"])).read_text())
        # Versions an erasure removed are gone from the list.
        versions = list(stored_versions(store, job_id))
        # A video file counts once the records say which results it shows: the first one is
        # moved in place inside publish_video's transaction, before that commits (the page
        # says it is being drawn, and polls). A file with no record at all (no job_videos
        # row) was drawn when the job was stitched, before videos followed the results.
        video_ready = store.exists(output_key(job_id, "annotated.mp4")) and (
            view["video_version"] > 0 or farm().records.video(job_id) is None)
    video_current = video_ready and view["video_version"] >= view["results_version"]
    # Being drawn, unless drawing failed (the page says why) or the video predates drawing
    # from results (nothing draws it again until the next results version).
    video_drawing = bool(results) and not video_current and not view["video_error"] and (
        view["video_version"] > 0 or not video_ready)
    return render_template("job.html", job=view, results=results, ended=view["status"] in ENDED_STATES,
                           reanalysing=is_reanalysing,
                           versions=versions, video_ready=video_ready, video_current=video_current,
                           video_drawing=video_drawing,
                           rows=timeline_rows(results) if results else [],
                           identities=identities_seen(results) if results else [],
                           faces=track_faces(job_id) if results else {}, marker_glyphs=MARKERS,
                           known_names=[i["name"] for i in list_identities(farm())] if results else [],
                           enrol_form=TrackEnrolForm(formdata=None), delete_form=ConfirmForm(),
                           video_start_s=video_start_s(record), fever_skipped=record.options.get("thermal_skipped"))


def video_start_s(job) -> float:
    """Where the recording's first picture lies on the video element's clock. The annotated
    video keeps the source's timestamps, and a browser plays a file whose video starts late
    (0.85 s of audio first, say) from 0 all the same, while results count ``t`` from the first
    picture: the page adds this to every seek and takes it off the playhead. A start below 0
    is played from 0 (and a job from before 0.2 recorded no timing: 0)."""
    if "time_base" not in (job.media or {}):
        return 0.0
    source = SourceMedia.of(job)
    return max(0.0, round(float(source.start_pts * source.time_base), 6))


@ui.post("/jobs/<job_id>/reanalyse")
@require_role("operator")
def reanalyse(job_id: str):
    if not ConfirmForm().validate_on_submit():
        abort(400, EXPIRED)
    try:
        if not reanalyse_checked(farm(), job_id):
            abort(404, f"no job {job_id}")
    except (CannotReanalyse, BrokerUnavailable) as exc:
        # Said on the job page, which shows the job as it was (nothing was queued).
        flash(str(exc), "error")
    else:
        flash("Analysing the recording again: its new results come as the next version; the earlier ones stay", "info")
    return redirect(url_for("ui.job", job_id=job_id))


@ui.post("/jobs/<job_id>/delete")
@require_role("operator")
def delete(job_id: str):
    if not ConfirmForm().validate_on_submit():
        abort(400, EXPIRED)
    record = farm().records.get_job(job_id)
    try:
        if record is None or not delete_job(farm(), job_id):
            abort(404, f"no job {job_id}")
    except JobBusy as exc:
        flash(str(exc), "error")
        return redirect(url_for("ui.job", job_id=job_id))
    # The recording's name, as the jobs list shows it: the id alone said nothing of which one went.
    flash(f"{record.source_name} (job {job_id}) and all its files were deleted", "info")
    return redirect(url_for("ui.jobs"))
