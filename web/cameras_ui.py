"""The camera pages: every camera with its status, frame rate and latency (operators add and
delete cameras there), and one camera's live view with its alerts beside it (operators edit
its name and stream address there).

The pages render what the registry says now; their scripts keep them current from the JSON
API (the list polls ``GET /api/v1/cameras``; the camera page follows the camera's Server-Sent
Events and appends each drawn piece of video as it is announced).
"""

from __future__ import annotations

import time
from datetime import datetime

from apiflask import abort
from apiflask.fields import String
from apiflask.validators import OneOf
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from core.cameras import BROWSER_URL, MAX_URL, CameraError, DuplicateCamera, redacted
from core.models import aware
from web.api_cameras import camera_or_404, camera_registry, camera_status, exchange_offer
from web.auth import require_role
from web.context import farm, json_errors
from web.forms import EXPIRED, ConfirmForm, problems_line
from web.page_query import page_query, takes_query
from web.schemas import QuerySchema

cameras_ui = Blueprint("cameras_ui", __name__)

ALERTS_SHOWN = 50
# The live view's players: MSE of the drawn pieces (the default), or WebRTC from the ingester.
PLAYERS = ("mse", "webrtc")
RECORDINGS_SHOWN = 24


class CameraForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    url = StringField("Stream address", validators=[DataRequired(), Length(max=MAX_URL)],
                      description="rtsp://user:password@host/path (also rtsps://, http://, https://)")


class BrowserCameraForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])


def _list_page(form: CameraForm | None = None, browser_form: BrowserCameraForm | None = None, status: int = 200):
    registry = camera_registry()
    return render_template("cameras.html", cameras=[camera_status(registry, c) for c in registry.cameras()],
                           form=form or CameraForm(formdata=None), browser_form=browser_form or BrowserCameraForm(
                               formdata=None), delete_form=ConfirmForm(formdata=None)), status


@cameras_ui.app_template_filter("timestamp")
def timestamp(unix_s: float) -> str:
    """Unix seconds as the pages show times (UTC, as the scripts do)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_s))


@cameras_ui.app_template_filter("moment")
def moment(iso: str | None) -> str:
    """A time as the records give it (ISO 8601) as the pages show times. Parsed, not cut: its
    offset is the database session's (PostgreSQL's in another time zone: +05:30, say), and
    a cut string would show that zone's clock labelled UTC."""
    return timestamp(aware(datetime.fromisoformat(iso)).timestamp()) if iso else ""


@cameras_ui.get("/cameras")
def index():
    return _list_page()


@cameras_ui.post("/cameras")
@require_role("operator")
def add():
    form = CameraForm()
    answer = _register(form, lambda: form.url.data, "cameras_ui.camera", "the ingester starts watching it")
    return _list_page(form=form, status=answer) if isinstance(answer, int) else answer


@cameras_ui.post("/cameras/browser")
@require_role("operator")
def add_browser():
    """A camera this browser publishes: registered, then its publish page."""
    form = BrowserCameraForm()
    answer = _register(form, lambda: BROWSER_URL, "cameras_ui.publish", "publish it from this page")
    return _list_page(browser_form=form, status=answer) if isinstance(answer, int) else answer


def _register(form: FlaskForm, url, then: str, next_step: str):
    """Register the camera a form names: a redirect to page ``then``, or the status to answer
    (the reason flashed)."""
    camera = _form_change(form, lambda: camera_registry().add(form.name.data, url()))
    if isinstance(camera, int):
        return camera
    flash(f"camera {camera['name']} added: {next_step}", "info")
    return redirect(url_for(then, camera_id=camera["id"]))


def _form_change(form: FlaskForm, change) -> dict | None | int:
    """The registry change a valid form asks for (registering, editing) and what it returns; or
    the status to answer, the reason flashed: 409 for a stream registered already, with the
    API's message, else 400."""
    if not form.validate_on_submit():
        flash(problems_line(form.errors), "error")
        return 400
    try:
        return change()
    except DuplicateCamera as exc:
        flash(str(exc), "error")
        return 409
    except CameraError as exc:
        flash(str(exc), "error")
        return 400


@cameras_ui.get("/cameras/<camera_id>/publish")
@require_role("operator")
def publish(camera_id: str):
    registry = camera_registry()
    camera = camera_status(registry, camera_or_404(registry, camera_id))
    if not camera["url"].startswith("webrtc://"):
        abort(409, f"camera {camera['name']} is not a browser camera: its stream is pulled from its URL")
    return render_template("publish.html", camera=camera)


@cameras_ui.post("/cameras/<camera_id>/publish")
@json_errors
@require_role("operator")
def send_offer(camera_id: str):
    """The publish page's offer (JSON, CSRF token in X-CSRFToken) -> the ingester's answer."""
    answer, status = exchange_offer(camera_id, request.get_json(silent=True) or {})
    return jsonify(answer), status


@cameras_ui.post("/cameras/<camera_id>/view-offer")
@json_errors
def send_view_offer(camera_id: str):
    """The camera page's WebRTC player: its offer (JSON, CSRF token in X-CSRFToken) -> the
    answer of the ingester that holds the camera, which then sends the live view."""
    answer, status = exchange_offer(camera_id, request.get_json(silent=True) or {}, "viewers")
    return jsonify(answer), status


class CameraPage(QuerySchema):
    player = String(validate=OneOf(PLAYERS), metadata={"description": "The live view's player (mse: the default)."})


@cameras_ui.get("/cameras/<camera_id>")
@takes_query(CameraPage)
def camera(camera_id: str):
    return _camera_page(camera_id, player=page_query().get("player", PLAYERS[0]))


@cameras_ui.post("/cameras/<camera_id>/edit")
@require_role("operator")
def edit(camera_id: str):
    """The camera page's edit form: a new name or stream address, the camera (its id, alerts and
    recordings) kept; refused as registering is (409 for a stream another camera has)."""
    registry = camera_registry()
    camera_or_404(registry, camera_id)
    form = CameraForm()
    camera = _form_change(form, lambda: registry.update(camera_id, form.name.data, form.url.data))
    if isinstance(camera, int):
        return _camera_page(camera_id, form, camera)
    if camera is None:          # deleted meanwhile
        abort(404, f"no camera {camera_id}")
    flash(f"camera {camera['name']} saved: its ingester watches {redacted(camera['url'])}", "info")
    return redirect(url_for("cameras_ui.camera", camera_id=camera_id))


def _camera_page(camera_id: str, edit_form: CameraForm | None = None, status: int = 200, player: str = PLAYERS[0]):
    registry = camera_registry()
    view = camera_status(registry, camera_or_404(registry, camera_id))
    # The page's script follows the events from the newest one read with these alerts: it
    # shows those raised between this render and its connecting, and repeats none of these.
    alerts, events_after = registry.recent_and_cursor(camera_id, "alert", ALERTS_SHOWN)
    # The edit form shows the address as the API does, its password masked: sent back as it is,
    # the password stored stays (CameraRegistry.update).
    edit_form = edit_form or CameraForm(formdata=None, data={"name": view["name"], "url": view["url"]})
    return render_template("camera.html", camera=view, player=player, alerts=folded(alerts),
                           events_after=events_after,
                           recordings=farm().records.recordings_of(camera_id, RECORDINGS_SHOWN),
                           delete_form=ConfirmForm(formdata=None), edit_form=edit_form), status


def folded(alerts: list[dict]) -> list[dict]:
    """A camera's newest alert events (newest first) as the Alerts page shows alerts: each that
    rang with its repeats (not sent) under ``repeated``, oldest first, as live.js folds those
    that come later; a repeat of one no longer among them stands alone, marked by its
    ``repeat_of``. (An event of before the events said what they repeat: one that rang.)"""
    alerts = [{"id": None, "repeat_of": None, **alert} for alert in alerts]
    rang = {alert["id"] for alert in alerts if alert["id"] is not None and alert["repeat_of"] is None}
    repeated: dict[int, list[dict]] = {}
    for alert in reversed(alerts):
        if alert["repeat_of"] in rang:
            repeated.setdefault(alert["repeat_of"], []).append(alert)
    return [{**alert, "repeated": repeated.get(alert["id"], [])} for alert in alerts if alert["repeat_of"] not in rang]


@cameras_ui.post("/cameras/<camera_id>/delete")
@require_role("operator")
def delete(camera_id: str):
    if not ConfirmForm().validate_on_submit():
        abort(400, EXPIRED)
    registry = camera_registry()
    camera = camera_or_404(registry, camera_id)
    registry.delete(camera_id)
    flash(f"camera {camera['name']} deleted: its ingester stops watching it", "info")
    return redirect(url_for("cameras_ui.index"))
