"""The alerts page: every alert raised, across jobs, newest first, and where each was sent."""

from __future__ import annotations

from apiflask import abort   # carries its message to the error page (Flask's keeps only the name)
from flask import Blueprint, current_app, render_template, request

from web.api_alerts import alert_page
from web.api_cameras import camera_registry

alerts_ui = Blueprint("alerts", __name__)
PAGE_TAKES = ("job", "page")   # the query parameters the page takes


@alerts_ui.get("/alerts")
def index():
    _refuse_unknown_filters()
    page = request.args.get("page", "1")
    job = request.args.get("job") or None
    query = {"page": int(page) if page.isdigit() and int(page) >= 1 else 1,
             "per_page": current_app.config["VIDFARM_SETTINGS"].jobs_per_page, "job": job,
             "folded": True}   # repeats are shown under the alert that rang, not as rows of their own
    rows, more = alert_page(query)
    return render_template("alerts.html", alerts=rows, job=job, page=query["page"],
                           next_page=query["page"] + 1 if more else None, camera_names=_camera_names(rows))


def _refuse_unknown_filters() -> None:
    """A filter the page does not take (``?camera=``, a mistyped ``?jb=``) answered every
    alert as if filtered: a 400 naming it, as the API answers (web/schemas.py QuerySchema)."""
    unknown = sorted(set(request.args) - set(PAGE_TAKES))
    if unknown:
        abort(400, ", ".join(f"{name}: not a query parameter of this page (it takes {', '.join(PAGE_TAKES)})"
                             for name in unknown))


def _camera_names(rows: list[dict]) -> dict[str, str] | None:
    """The names of the cameras that raised the live alerts listed (a camera deleted since is
    not among them). The names live in the farm's Redis, the alerts in the records: None
    (names unknown) for a web process not given the farm's Redis."""
    if not any(row["job"] is None for row in rows):
        return {}
    if not current_app.config["VIDFARM_SETTINGS"].redis_url:
        return None
    return {camera["id"]: camera["name"] for camera in camera_registry().cameras()}
