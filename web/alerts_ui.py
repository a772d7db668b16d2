"""The alerts page: every alert raised, across jobs, newest first, and where each was sent."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from core.results import ALERT_KINDS
from web.api_alerts import alert_page
from web.api_cameras import camera_registry
from web.page_query import page_query, takes_query
from web.schemas import AlertFilter, PageNumber

alerts_ui = Blueprint("alerts", __name__)


class AlertsPage(PageNumber, AlertFilter):
    pass


@alerts_ui.get("/alerts")
@takes_query(AlertsPage)
def index():
    taken = page_query()
    query = {"page": taken["page"], "per_page": current_app.config["VIDFARM_SETTINGS"].jobs_per_page,
             "job": taken.get("job"), "kind": taken.get("kind"),
             "folded": True}   # repeats are shown under the alert that rang, not as rows of their own
    rows, more = alert_page(query)
    return render_template("alerts.html", alerts=rows, job=query["job"], kind=query["kind"], kinds=ALERT_KINDS,
                           page=query["page"],
                           next_page=query["page"] + 1 if more else None, camera_names=_camera_names(rows))


def _camera_names(rows: list[dict]) -> dict[str, str] | None:
    """The names of the cameras that raised the live alerts listed (a camera deleted since is
    not among them). The names live in the farm's Redis, the alerts in the records: None
    (names unknown) for a web process not given the farm's Redis."""
    if not any(row["job"] is None for row in rows):
        return {}
    if not current_app.config["VIDFARM_SETTINGS"].redis_url:
        return None
    return {camera["id"]: camera["name"] for camera in camera_registry().cameras()}
