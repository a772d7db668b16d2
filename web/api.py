"""REST API under /api/v1 (GUIDE.md contract 5), bearer-token auth."""

from __future__ import annotations

import hmac

from flask import Blueprint, abort, current_app, jsonify, request, send_file

from core.storage import BlobTooLarge
from tasks import runtime
from tasks.jobs import output_key
from tasks.submit import submit_stream

api = Blueprint("api", __name__, url_prefix="/api/v1")


@api.before_request
def require_token():
    expected = current_app.config["VIDFARM_SETTINGS"].api_token
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else ""
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        return jsonify(error="missing or invalid bearer token"), 401, {"WWW-Authenticate": "Bearer"}


def _error(status: int, message: str):
    return jsonify(error=message), status


@api.post("/jobs")
def create_job():
    upload = request.files.get("file")
    if upload is None:
        return _error(400, "send the recording as a multipart form field named 'file'")
    try:
        job_id = submit_stream(upload.stream, upload.filename or "upload")
    except BlobTooLarge as exc:
        return _error(413, f"upload {exc}")
    view = runtime.records().job_view(job_id)
    return jsonify(id=job_id, status=view["status"]), 201, {"Location": f"/api/v1/jobs/{job_id}"}


@api.get("/jobs/<job_id>")
def get_job(job_id: str):
    view = runtime.records().job_view(job_id)
    if view is None:
        return _error(404, f"no job {job_id}")
    return jsonify(view)


def _finished_output(job_id: str, name: str):
    view = runtime.records().job_view(job_id)
    if view is None:
        abort(_error(404, f"no job {job_id}"))
    if view["status"] != "done":
        abort(_error(409, f"job {job_id} is {view['status']}, not done"))
    return runtime.store().local_path(output_key(job_id, name))


@api.get("/jobs/<job_id>/results")
def get_results(job_id: str):
    return send_file(_finished_output(job_id, "results.json"), mimetype="application/json")


@api.get("/jobs/<job_id>/video")
def get_video(job_id: str):
    # conditional=True answers Range requests with 206 partial content, so players can seek.
    return send_file(_finished_output(job_id, "annotated.mp4"), mimetype="video/mp4", conditional=True)
