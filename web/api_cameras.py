"""REST API for live cameras (contract 5): register, list, read, edit, delete, and follow a
camera's events as Server-Sent Events. Registering, editing and deleting need an operator;
reading, a viewer.

The registry and each camera's live state are in the farm's Redis (``core.cameras``); the
ingester (``vidfarm ingest``) watches what is registered and writes the state and events.
"""

from __future__ import annotations

import json
import re
import time

from apiflask import APIBlueprint, Schema, abort
from apiflask.fields import Boolean, Float, Integer, String
from apiflask.validators import Length, OneOf, Range, Regexp
from flask import Response, current_app, request, send_file, stream_with_context

from core.camera_offers import CameraOffers, OfferError
from core.cameras import (MAX_URL, NAME_PATTERN, NAME_RULE, URL_PATTERN, URL_RULE, WATCHED_S, CameraError,
                          CameraRegistry, DuplicateCamera, redacted, view_piece_key)
from web.api import error_responses
from web.auth import token_auth
from web.context import farm
from web.schemas import ERROR_SCHEMA, NoQuery, QuerySchema

cameras = APIBlueprint("cameras", __name__, url_prefix="/api/v1", tag="cameras")

KEEP_ALIVE_S = 15.0
ANSWER_WAIT_S = 15.0     # the ingester polls for offers every second; ICE gathering on its side is quick
EVENT_ID = re.compile(r"^\d+-\d+$")
WATCH_ID = re.compile(r"^[0-9a-f]{32}$")
NO_CAMERA = {404: {"description": "No such camera", "content": {"application/json": {"schema": ERROR_SCHEMA}}}}
REGISTERED = {409: {"description": "The stream is registered already: `error` says so, `camera` is that camera "
                                  "(`{id, name}`; edit its address instead, e.g. for a new password)",
                   "content": {"application/json": {"schema": {
                       "type": "object", "required": ["error", "camera"],
                       "properties": {"error": {"type": "string"}, "camera": {
                           "type": "object", "required": ["id", "name"],
                           "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}}}}}}}
# An offer's body is held to the small request limit (VIDFARM_MAX_FORM_BYTES, 64 KiB), which an
# sdp within its length can pass (the fuzz test's long ones did): a 413 these routes document.
TOO_LARGE = {413: {"description": "The request is larger than the limit on request bodies (VIDFARM_MAX_FORM_BYTES)",
                   "content": {"application/json": {"schema": ERROR_SCHEMA}}}}
NO_ANSWER = {504: {"description": "No ingester answered (none holds the camera, or `vidfarm ingest` is not running)",
                   "content": {"application/json": {"schema": ERROR_SCHEMA}}}}


class CameraIn(Schema):
    name = String(required=True, validate=Regexp(NAME_PATTERN, error=NAME_RULE),
                  metadata={"description": "A label for people."})
    url = String(required=True, validate=[Length(1, MAX_URL), Regexp(URL_PATTERN, error=URL_RULE)],
                 metadata={"description": "The stream: rtsp://, rtsps://, http:// or https://; "
                                          "webrtc://browser for a browser camera. The scheme in any case "
                                          "(RTSP://), kept in lower case; a host name past ASCII "
                                          "(kamera.bürö.example) kept in its ASCII form (IDNA: "
                                          "kamera.xn--br-gkaw.example)."})


class CameraEdit(Schema):
    name = String(validate=Regexp(NAME_PATTERN, error=NAME_RULE), metadata={"description": "A new label (left out: kept)."})
    url = String(validate=[Length(1, MAX_URL), Regexp(URL_PATTERN, error=URL_RULE)],
                 metadata={"description": "A new stream address (left out: kept), as for registering. The "
                                          "address as shown (its password masked: ***) keeps the password."})


class CameraOut(Schema):
    id = String(required=True)
    name = String(required=True)
    url = String(required=True, metadata={"description": "The stream address, its password masked."})
    created_at = Float(required=True, metadata={"description": "Unix seconds."})
    status = String(required=True, metadata={"description": "connecting, live, reconnecting (reason), "
                                                            "failed (reason), stopped, waiting for a live worker (no worker "
                                                            "serves the live queue yet), or waiting for an ingester (none "
                                                            "holds it: none runs, or the one that did stopped or died). "
                                                            "Just after its address was edited: reconnecting (its "
                                                            "address changed)."})
    behind_s = Float(required=True, allow_none=True,
                     metadata={"description": "Seconds its analysis trails capture, while that is more than three "
                                              "segments (the workers cannot keep up); null while it keeps up."})
    fps = Float(required=True, allow_none=True, metadata={"description": "Frames per second received, as the "
                                                                       "frames' timestamps say."})
    last_segment_at = Float(required=True, allow_none=True,
                            metadata={"description": "Unix seconds when its last segment's results came."})
    latency_p50_s = Float(required=True, allow_none=True,
                          metadata={"description": "Capture -> result latency, median of the last 100 segments."})
    latency_p95_s = Float(required=True, allow_none=True, metadata={"description": "... and 95th percentile."})


class ViewPiece(Schema):
    watch = String(required=True, metadata={"description": "The ingester's watch of the camera (new after a restart)."})
    segment = Integer(required=True, metadata={"description": "The segment's number within the watch."})
    url = String(required=True, metadata={"description": "The piece: a fragmented MP4 with its own init segment."})
    captured_at = Float(required=True, metadata={"description": "Unix seconds its first frame was captured."})
    ready_at = Float(required=True, metadata={"description": "Unix seconds it was drawn."})
    duration_s = Float(required=True)
    frames = Integer(required=True)
    first_frame = Integer(required=True)
    width = Integer(required=True)
    height = Integer(required=True)
    codec = String(required=True, metadata={"description": "For MediaSource: video/mp4; codecs=\"...\"."})


class OfferIn(Schema):
    type = String(required=True, validate=OneOf(["offer"]))
    sdp = String(required=True, validate=Length(1, 64 * 1024),
                 metadata={"description": "The browser's session description, ICE candidates included "
                                          "(wait for gathering to complete: the server takes no trickle)."})


class AnswerOut(Schema):
    type = String(required=True)
    sdp = String(required=True)


class EventsQuery(QuerySchema):
    wait = Float(load_default=300.0, validate=Range(0.1, 3600),
                 metadata={"description": "Seconds the stream stays open (an EventSource reconnects by itself, "
                                          "with Last-Event-ID, and misses nothing still kept)."})
    after = String(load_default=None, validate=Regexp(EVENT_ID, error="not an event id (like 1765000000000-0)"),
                   metadata={"description": "Start after this event id (a page that listed the events up to it); "
                                            "a Last-Event-ID header wins over it. Neither: only new events."})
    view = Boolean(load_default=False,
                   metadata={"description": "Keep the camera's live view drawn while this stream is open "
                                            "(pieces are drawn only while someone watches)."})


def camera_registry() -> CameraRegistry:
    redis_url = current_app.config["VIDFARM_SETTINGS"].redis_url
    if not redis_url:
        abort(503, "cameras need the farm's Redis (REDIS_URL is not set)")
    registry = current_app.extensions.get("vidfarm_cameras")
    if registry is None:
        registry = current_app.extensions["vidfarm_cameras"] = CameraRegistry.from_url(redis_url)
    return registry


def camera_status(registry: CameraRegistry, camera: dict) -> dict:
    return {**camera, "url": redacted(camera["url"]), **registry.state(camera["id"])}


def camera_or_404(registry: CameraRegistry, camera_id: str) -> dict:
    camera = registry.get(camera_id)
    if camera is None:
        abort(404, f"no camera {camera_id}")
    return camera


def checked(change):
    """A change of the registry (registering, editing), its refusals as the API answers them:
    409 naming the camera that has the stream already, 400 with the reason."""
    try:
        return change()
    except DuplicateCamera as exc:
        abort(409, str(exc), extra_data={"camera": {"id": exc.camera["id"], "name": exc.camera["name"]}})
    except CameraError as exc:
        abort(400, str(exc))


@cameras.post("/cameras")
@cameras.auth_required(token_auth, roles=["operator"])
@cameras.input(CameraIn, location="json", arg_name="body")
@cameras.output(CameraOut, status_code=201, headers={"Location": {"type": "string"}})
@cameras.doc(summary="Register a camera; the ingester starts watching it",
             description="One camera per stream: an address already registered is refused (409), and so is the "
                         "same address written otherwise (scheme or host in another case, the default port "
                         "given or left out, other credentials). Browser cameras (webrtc://) are never refused.",
             responses={**error_responses(400, 403, 503), **REGISTERED})
def create_camera(body):
    registry = camera_registry()
    camera = checked(lambda: registry.add(body["name"], body["url"]))
    return camera_status(registry, camera), 201, {"Location": f"/api/v1/cameras/{camera['id']}"}


@cameras.get("/cameras")
@cameras.auth_required(token_auth, roles=["viewer"])
@cameras.input(NoQuery, location="query", arg_name="_query")
@cameras.output(CameraOut(many=True))
@cameras.doc(summary="Every camera with its status, frame rate and latency", responses=error_responses(400))
def list_cameras(_query):
    registry = camera_registry()
    return [camera_status(registry, camera) for camera in registry.cameras()]


@cameras.get("/cameras/<camera_id>")
@cameras.auth_required(token_auth, roles=["viewer"])
@cameras.output(CameraOut)
@cameras.doc(summary="One camera", responses=NO_CAMERA)
def get_camera(camera_id: str):
    registry = camera_registry()
    return camera_status(registry, camera_or_404(registry, camera_id))


@cameras.patch("/cameras/<camera_id>")
@cameras.auth_required(token_auth, roles=["operator"])
@cameras.input(CameraEdit, location="json", arg_name="body")
@cameras.output(CameraOut)
@cameras.doc(summary="Change a camera's name or stream address, keeping its id (its alerts and recordings)",
             description="Checked as when registering: a bad name or address is refused (400), and so is an "
                         "address whose stream another camera has (409). The ingester that holds the camera "
                         "stops reading the old address and watches the new one within a poll; a new address "
                         "answers with the status reconnecting (its address changed) meanwhile.",
             responses={**error_responses(400, 403, 503), **NO_CAMERA, **REGISTERED})
def edit_camera(camera_id: str, body):
    registry = camera_registry()
    camera = checked(lambda: registry.update(camera_id, body.get("name"), body.get("url")))
    if camera is None:
        abort(404, f"no camera {camera_id}")
    return camera_status(registry, camera)


@cameras.delete("/cameras/<camera_id>")
@cameras.auth_required(token_auth, roles=["operator"])
@cameras.output({}, status_code=204)
@cameras.doc(summary="Delete a camera: the ingester stops watching it", responses={**error_responses(403), **NO_CAMERA})
def delete_camera(camera_id: str):
    if not camera_registry().delete(camera_id):
        abort(404, f"no camera {camera_id}")
    return "", 204


@cameras.get("/cameras/<camera_id>/events")
@cameras.auth_required(token_auth, roles=["viewer"])
@cameras.input(EventsQuery, location="query", arg_name="query")
@cameras.doc(summary="The camera's events as Server-Sent Events: segment (one per processed segment: faces, "
                     "tracks, identities, capture time, latency), alert, status ({status, behind_s}, when "
                     "either changes); the stream ends with a deleted event if the camera is deleted",
             description="An alert event: the alert with captured_at (when its own frame was captured), "
                         "ready_at, latency_s (the time between), its id (as in "
                         "GET /alerts) and repeat_of: the id of the alert that rang about that person shortly "
                         "before (this one is a repeat and was not sent), null if it rang (or could not be "
                         "recorded: id null too).",
             responses={200: {"description": "An event stream",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                        **error_responses(400, 403), **NO_CAMERA})
def camera_events(camera_id: str, query):
    registry = camera_registry()
    camera_or_404(registry, camera_id)
    after = request.headers.get("Last-Event-ID") or query["after"] or registry.last_event_id(camera_id)
    if not EVENT_ID.fullmatch(after):     # whole: Python's "$" also matches before a final newline
        abort(400, f"not an event id (like 1765000000000-0): {after!r}")
    return Response(stream_with_context(_stream(registry, camera_id, after, query["wait"], query["view"])),
                    mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _stream(registry: CameraRegistry, camera_id: str, after: str, wait_s: float, view: bool):
    deadline = time.monotonic() + wait_s
    quiet_since, marked = time.monotonic(), None
    yield "retry: 2000\n\n"
    while time.monotonic() < deadline:
        if view and (marked is None or time.monotonic() - marked >= WATCHED_S / 3):
            registry.mark_watched(camera_id)
            marked = time.monotonic()
        block_ms = max(1, min(1000, round(1000 * (deadline - time.monotonic()))))
        events = registry.events(camera_id, after, block_ms=block_ms)
        for event_id, kind, data in events:
            if kind == "view":
                data = piece_view(camera_id, data)
            yield f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"
            after, quiet_since = event_id, time.monotonic()
        if events:
            continue
        if registry.get(camera_id) is None:
            yield "event: deleted\ndata: {}\n\n"
            return
        if time.monotonic() - quiet_since >= KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()


def piece_view(camera_id: str, piece: dict) -> dict:
    """A live-view piece as the API and the ``view`` events give it: with its URL."""
    return {**piece, "url": f"/api/v1/cameras/{camera_id}/view/{piece['watch']}/{piece['segment']}.mp4"}


@cameras.get("/cameras/<camera_id>/view")
@cameras.auth_required(token_auth, roles=["viewer"])
@cameras.output(ViewPiece(many=True))
@cameras.doc(summary="The newest pieces of the camera's live view (annotated video a few seconds behind live), "
                     "oldest first; the events stream announces each new one as a view event",
             responses=NO_CAMERA)
def camera_view(camera_id: str):
    registry = camera_registry()
    camera_or_404(registry, camera_id)
    return [piece_view(camera_id, piece) for piece in registry.view(camera_id)]


@cameras.get("/cameras/<camera_id>/view/<watch>/<int:segment>.mp4")
@cameras.auth_required(token_auth, roles=["viewer"])
@cameras.doc(summary="One piece of the live view (fragmented MP4); gone a few pieces later",
             responses={200: {"description": "video/mp4", "content": {"video/mp4": {"schema": {"type": "string"}}}},
                        **NO_CAMERA})
def camera_view_piece(camera_id: str, watch: str, segment: int):
    registry = camera_registry()
    camera_or_404(registry, camera_id)
    listed = {(p["watch"], p["segment"]) for p in registry.view(camera_id)}
    if not WATCH_ID.match(watch) or (watch, segment) not in listed:
        abort(404, f"no piece {watch}/{segment} of camera {camera_id} (pieces are kept for a few seconds)")
    try:
        path = farm().store.local_path(view_piece_key(watch, segment))
    except FileNotFoundError:   # listed a moment ago; a newer piece pushed it out since
        abort(404, f"piece {watch}/{segment} of camera {camera_id} is gone")
    return send_file(path, mimetype="video/mp4")


def exchange_offer(camera_id: str, offer: dict, kind: str = "offers") -> tuple[dict, int]:
    """Hand a WebRTC offer to the camera's ingester; its answer, or why not, and a status.
    kind: "offers" (a browser camera publishing) or "viewers" (a page playing the live view)."""
    registry = camera_registry()
    camera = camera_or_404(registry, camera_id)
    if kind == "offers" and not camera["url"].startswith("webrtc://"):
        return {"error": f"camera {camera_id} is not a browser camera (its stream is pulled from its URL)"}, 409
    try:
        answer = CameraOffers(registry.redis, kind).exchange(camera_id, offer, ANSWER_WAIT_S)
    except OfferError as exc:
        return {"error": str(exc)}, 400
    if answer is None:
        return {"error": f"no ingester answered within {ANSWER_WAIT_S:g} s (is `vidfarm ingest` running?)"}, 504
    if "error" in answer:
        return {"error": answer["error"]}, 400
    return answer, 200


def answered(camera_id: str, offer: dict, kind: str) -> dict:
    """The API's side of ``exchange_offer``: the answer, or the error with its status."""
    answer, status = exchange_offer(camera_id, offer, kind)
    if status != 200:
        abort(status, answer["error"])
    return answer


@cameras.post("/cameras/<camera_id>/offer")
@cameras.auth_required(token_auth, roles=["operator"])
@cameras.input(OfferIn, location="json", arg_name="body")
@cameras.output(AnswerOut)
@cameras.doc(summary="Publish to a browser camera (webrtc://): a WebRTC offer in, the ingester's answer out; "
                     "the video then flows to the ingester directly",
             responses={**error_responses(400, 403, 503), **NO_CAMERA, **TOO_LARGE,
                        409: {"description": "Not a browser camera",
                              "content": {"application/json": {"schema": ERROR_SCHEMA}}}, **NO_ANSWER})
def camera_offer(camera_id: str, body):
    return answered(camera_id, body, "offers")


@cameras.post("/cameras/<camera_id>/view/offer")
@cameras.auth_required(token_auth, roles=["viewer"])
@cameras.input(OfferIn, location="json", arg_name="body")
@cameras.output(AnswerOut)
@cameras.doc(summary="Play the camera's live view over WebRTC",
             description="A WebRTC offer in (a receive-only video transceiver, ICE candidates gathered: the "
                         "server takes no trickle; a data channel, if offered, gets each picture's "
                         "{captured_at, sent_at}), the answer of the ingester that holds the camera out; the "
                         "ingester then sends the annotated video directly, a few seconds behind live. The "
                         "other player of the same pieces: GET /cameras/{id}/view (MSE).",
             responses={**error_responses(400, 503), **NO_CAMERA, **TOO_LARGE, **NO_ANSWER})
def camera_view_offer(camera_id: str, body):
    return answered(camera_id, body, "viewers")
