"""REST API for people search: where a person appears across recordings, their photos one at a
time, a track's face crop, and enrolling a track's face. Reading needs any role; changing the
gallery needs admin."""

from __future__ import annotations

from apiflask import APIBlueprint, abort
from flask import Response, url_for

from core.appearances import Appearances
from core.errors import GalleryError, TrackEnrolled
import services.gallery
import services.people
from web import people_views as service
from web.api import error_responses, job_view_or_404, next_page_link
from web.auth import token_auth
from web.context import farm
from web.schemas import NEXT_PAGE_HEADER, AppearanceOut, EnrolOut, NoQuery, PageQuery, PhotoOut, TrackEnrolIn

people_api = APIBlueprint("people_api", __name__, url_prefix="/api/v1", tag="people")


@people_api.get("/identities/<name>/appearances")
@people_api.auth_required(token_auth, roles=["viewer"])
@people_api.input(PageQuery, location="query", arg_name="query")
@people_api.output(AppearanceOut(many=True), headers=NEXT_PAGE_HEADER)
@people_api.doc(summary="Every appearance of a person across all recordings, newest first (paginated)",
                responses=error_responses(404))
def appearances(name: str, query: dict):
    found = service.appearances(name, query["page"], query["per_page"])
    if found is None:
        abort(404, f"no identity named {name!r}")
    views, more = found
    return views, 200, next_page_link("people_api.appearances", query, more, name=name)


@people_api.get("/identities/<name>/photos")
@people_api.auth_required(token_auth, roles=["viewer"])
@people_api.input(NoQuery, location="query", arg_name="_query")
@people_api.output(PhotoOut(many=True))
@people_api.doc(summary="A person's enrolled photos (one embedding each)", responses=error_responses(400, 404))
def photos(name: str, _query):
    if services.gallery.find_identity(farm(), name) is None:
        abort(404, f"no identity named {name!r}")
    return service.photos(name)


@people_api.delete("/identities/<name>/photos/<int:photo_id>")
@people_api.auth_required(token_auth, roles=["admin"])
@people_api.output({}, status_code=204)
@people_api.doc(summary="Remove one photo of a person (not their last one)", responses=error_responses(400, 403, 404))
def remove_photo(name: str, photo_id: int):
    try:
        if not services.people.remove_photo(farm(), name, photo_id):
            abort(404, f"{name!r} has no photo {photo_id}")
    except GalleryError as exc:
        abort(400, str(exc))
    return "", 204


@people_api.get("/jobs/<job_id>/tracks/<int:track>/thumbnail")
@people_api.auth_required(token_auth, roles=["viewer"])
@people_api.doc(summary="The face crop of one track of a job (JPEG)",
                responses={200: {"description": "JPEG", "content": {"image/jpeg": {"schema": {
                    "type": "string", "format": "binary"}}}}, **error_responses(404)})
def track_thumbnail(job_id: str, track: int):
    jpeg = Appearances(farm().records).thumbnail(job_id, track)
    if jpeg is None:
        abort(404, f"no face crop for track {track} of job {job_id}")
    return Response(jpeg, mimetype="image/jpeg")


@people_api.post("/jobs/<job_id>/tracks/<int:track>/enrol")
@people_api.auth_required(token_auth, roles=["admin"])
@people_api.input(TrackEnrolIn, location="json", arg_name="body")
@people_api.output(EnrolOut, status_code=201)
@people_api.doc(summary="Enrol the face of an unknown track: a new person, or one more photo of someone",
                description="Uses the track's pooled embedding and its face crop; the job is then re-identified.",
                responses={**error_responses(400, 403, 404), 409: {
                    **error_responses(409)[409], "description": "The track is enrolled already (its job's "
                    "re-identification may still be running); `identity`: the person it went to"}})
def enrol_track(job_id: str, track: int, body: dict):
    job_view_or_404(job_id)
    try:
        result = services.people.enrol_track(farm(), job_id, track, body["name"])
    except TrackEnrolled as exc:
        abort(409, str(exc), extra_data={"identity": exc.name})
    except GalleryError as exc:
        abort(400, str(exc))
    return {"name": result["name"], "embeddings": result["embeddings"], "crops": 1 if result["crop"] else 0,
            "crop_url": url_for("gallery.crop", name=result["name"])}
