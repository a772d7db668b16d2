"""REST API under /api/v1 (GUIDE.md contract 5): jobs. Identities live in web/api_identities.py.

Authentication happens in web.auth (bearer token, or the session for safe methods);
``token_auth`` here adds the role check and declares the security scheme in the OpenAPI document.
"""

from __future__ import annotations

from apiflask import APIBlueprint, abort
from apiflask.fields import String
from apiflask.schemas import FileSchema
from flask import request, send_file, url_for

from core.models import ENDED_STATES
from core.storage import output_key, version_key
from services import jobs
from services.submit import JobBusy, analyzer_chain, delete_job
from web.auth import token_auth
from web.blobs import send_blob
from web.schemas import (ERROR_SCHEMA, NEXT_PAGE_HEADER, JobCreated, JobListQuery, JobOut, JobPage,
                         ResultsQuery, UploadIn)
from web.context import farm
from web.uploads import UploadRejected, accept_recording, the_one_upload

api = APIBlueprint("api", __name__, url_prefix="/api/v1", tag="jobs")


def error_responses(*codes: int) -> dict:
    return {code: {"description": _DESCRIPTIONS[code], "content": {"application/json": {"schema": ERROR_SCHEMA}},
                   **({"headers": RETRY_AFTER} if code == 503 else {})}
            for code in codes}


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}


_DESCRIPTIONS = {400: "Bad request", 403: "Role too weak", 404: "Not found",
                 409: "Job (or its video) not done, with nothing published before, or the job failed (the error "
                      "says why)",
                 413: "Upload too large", 415: "Not a video vidfarm can process",
                 500: "The blob store (S3 bucket) refuses the farm: deleted, or the credentials refused (the "
                      "error says which); nothing was kept, and trying again will not help until it is mended",
                 503: "The farm's task queue (Redis) or blob store (S3) cannot be reached, or no worker answered in "
                      "time (the farm is busy or down); nothing was kept: try again after Retry-After seconds"}


def found_or_404(found, message: str):
    """``found``, unless it is None: then a 404 saying ``message``."""
    if found is None:
        abort(404, message)
    return found


def job_view_or_404(job_id: str) -> dict:
    return found_or_404(jobs.job_view(farm().records, job_id), f"no job {job_id}")


@api.post("/jobs")
@api.auth_required(token_auth, roles=["operator"])
@api.input(UploadIn, location="form_and_files", arg_name="upload")
@api.output(JobCreated, status_code=201, headers={"Location": {"type": "string"}})
@api.doc(summary="Upload a recording", responses=error_responses(400, 403, 413, 415, 500, 503))
def create_job(upload):
    try:
        options = {"analyzers": analyzer_chain(farm().settings, upload["analyzers"])} if "analyzers" in upload else {}
        job_id, name = accept_recording(the_one_upload(request.files.getlist("file")), options)
    except UploadRejected as exc:
        abort(exc.status, exc.message, headers=exc.headers)
    # The job's view, as GET /jobs/{id} gives it (source_name, alerts...), and ``name``, which
    # this answer gave before it gave the view.
    return {**job_with_alerts(job_id), "name": name}, 201, {"Location": f"/api/v1/jobs/{job_id}"}


@api.get("/jobs")
@api.auth_required(token_auth, roles=["viewer"])
@api.input(JobListQuery, location="query", arg_name="query")
@api.output(JobPage, headers=NEXT_PAGE_HEADER)
@api.doc(summary="List jobs, newest first (paginated)")
def list_jobs(query):
    listing = jobs.job_page(farm(), query["page"], query.get("status"), query.get("per_page"))
    return listing, 200, next_page_link("api.list_jobs", query, listing["next_page"] is not None)


def next_page_link(endpoint: str, query: dict, more: bool, **values) -> dict:
    """The ``Link: <URL>; rel="next"`` header of a list answered a page at a time (a JSON
    array), when another page follows."""
    if not more:
        return {}
    following = url_for(endpoint, **values, **{**query, "page": query["page"] + 1})
    return {"Link": f'<{following}>; rel="next"'}


@api.get("/jobs/<job_id>")
@api.auth_required(token_auth, roles=["viewer"])
@api.output(JobOut)
@api.doc(summary="A job's status and progress")
def get_job(job_id: str):
    return job_with_alerts(job_id)


def job_with_alerts(job_id: str) -> dict:
    """A job's view as GET /jobs/{id} answers it (its alerts counted); 404 without the job."""
    return jobs.with_alert_counts(farm(), [job_view_or_404(job_id)])[0]


@api.delete("/jobs/<job_id>")
@api.auth_required(token_auth, roles=["operator"])
@api.output({}, status_code=204)
@api.doc(summary="Delete a finished job and all its files", responses=error_responses(403, 409))
def remove_job(job_id: str):
    try:
        if not delete_job(farm(), job_id):
            abort(404, f"no job {job_id}")
    except JobBusy as exc:
        abort(409, str(exc))
    return "", 204


@api.post("/jobs/<job_id>/reanalyse")
@api.auth_required(token_auth, roles=["operator"])
@api.output(JobOut, status_code=202)
@api.doc(summary="Analyse a done or failed job again",
         description="Its stored recording runs again through today's models and settings, with the "
                     "job's own options (its analyzers: they cannot be chosen anew here), to a new "
                     "results version; the earlier versions stay readable (`?version=N`), and the video "
                     "is drawn again. 409 (saying why) while the job runs, or when nothing stored can "
                     "be analysed again (it failed before it was split, or its recording is gone). 503 (with "
                     "Retry-After) when the task queue cannot be reached: nothing was queued and the job "
                     "was left as it was (done, or failed with its own reason; the error says so), to be "
                     "re-analysed later.",
         responses=error_responses(403, 404, 409, 503))
def reanalyse_job(job_id: str):
    try:
        if not jobs.reanalyse_checked(farm(), job_id):
            abort(404, f"no job {job_id}")
    except jobs.CannotReanalyse as exc:
        abort(409, str(exc))
    return job_with_alerts(job_id), 202


def reanalysing(view: dict) -> bool:
    """Whether a job view is of a job being analysed again: running, with results published
    before (its latest version is from before that run until the run publishes the next)."""
    return view["status"] not in ENDED_STATES and bool(view["results_version"])


def published_view(job_id: str, what: str) -> dict:
    """The view of a job whose latest results can be read: a done one, or one being analysed
    again (its results of before, until the run publishes the next version; a reviewer who
    re-analyses last week's recording keeps it meanwhile). 404 without the job; 409 before its
    first results, or once it failed. ``what``: the output asked for, as the refusal names it."""
    view = job_view_or_404(job_id)
    if view["status"] == "failed":
        # Not "failed, not done": it will not be done later, and the client should see why.
        earlier = view["results_version"]
        abort(409, f"job {job_id} failed ({view['error']}): it has no {what}" if not earlier else
              f"job {job_id} failed when run again ({view['error']}); its results of before stay, as "
              f"?version={earlier}")
    if view["status"] != "done" and not reanalysing(view):
        abort(409, f"job {job_id} is {view['status']}, not done")
    return view


# Marks an answer given while the job is analysed again: what it carries is from before that
# run (the latest published version, its video); the value is the job's status.
REANALYSING_HEADER = "X-Vidfarm-Reanalysing"
REANALYSING = {REANALYSING_HEADER: String(metadata={
    "description": "Only while the job is being analysed again: this is the latest published version, "
                   "from before that run (the value: the job's status, e.g. processing)"})}


def marked(response, view: dict):
    """``response``, marked as from before the run under way when the job is analysed again."""
    if reanalysing(view):
        response.headers[REANALYSING_HEADER] = view["status"]
    return response


@api.get("/jobs/<job_id>/results")
@api.auth_required(token_auth, roles=["viewer"])
@api.input(ResultsQuery, location="query", arg_name="query")
@api.doc(summary="results.json of a finished job (the latest version, or ?version=N)",
         description="While the job is analysed again, the latest version is that of before (its "
                     "`X-Vidfarm-Reanalysing` header says so) until the run publishes the next.",
         responses={200: {"description": "results.json (GUIDE.md contract 3; core/results.py)",
                          "headers": REANALYSING,
                          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Results"}}}},
                    **error_responses(404, 409)})
def get_results(job_id: str, query: dict):
    version = query.get("version")
    # ?download=1 (the job page's link): a browser saves the file instead of showing raw text.
    saved = {"as_attachment": True, "download_name": f"{job_id}-results{f'-{version}' if version else ''}.json"
             } if query["download"] else {}
    if version is None:
        view = published_view(job_id, "results")
        latest = version_key(job_id, view["results_version"])
        return marked(send_file(farm().store.local_path(latest), mimetype="application/json", **saved), view)
    job_view_or_404(job_id)
    key = version_key(job_id, version)
    if not farm().store.exists(key):
        abort(404, f"job {job_id} has no results version {version}")
    return send_file(farm().store.local_path(key), mimetype="application/json", **saved)


@api.get("/jobs/<job_id>/video")
@api.auth_required(token_auth, roles=["viewer"])
@api.output(FileSchema(type="string", format="binary"), content_type="video/mp4", headers=REANALYSING)
@api.doc(summary="The annotated video (answers Range requests with 206)",
         description="While the job is analysed again, the video drawn before (its `X-Vidfarm-Reanalysing` "
                     "header says so) until the run's results are published and it is drawn again.",
         responses={206: {"description": "The requested byte range", "headers": REANALYSING,
                          "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}},
                    416: "Range not satisfiable", **error_responses(409)})
def get_video(job_id: str):
    view = published_view(job_id, "annotated video")
    key = output_key(job_id, "annotated.mp4")
    if not farm().store.exists(key):
        if reanalysing(view):       # analysed again before its first video was drawn
            abort(409, f"job {job_id} is {view['status']}, not done")
        # Done means the results are published; the video is drawn from them after.
        abort(409, f"the annotated video of job {job_id} is being drawn (results version "
                   f"{view['results_version']}); try again shortly",
              headers={"Retry-After": "2"})
    # Range requests get 206 partial content, so players can seek (from S3 too: web/blobs.py).
    return marked(send_blob(key, "video/mp4"), view)
