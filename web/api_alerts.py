"""REST API for alerts across jobs, newest first, with their webhook deliveries (any role)."""

from __future__ import annotations

from apiflask import APIBlueprint

from core.alerts import Alerts
from web.api import error_responses, found_or_404, next_page_link
from web.auth import token_auth
from web.context import farm
from web.schemas import NEXT_PAGE_HEADER, AlertOut, AlertQuery

alerts_api = APIBlueprint("alerts_api", __name__, url_prefix="/api/v1", tag="alerts")


def alert_page(query: dict) -> tuple[list[dict], bool]:
    """A page of alerts (newest first; of one job with ``job``; with ``folded``, only those
    that rang, their repeats under each) and whether another follows. A job that does not
    exist (a mistyped or stale link, a deleted job) is a 404, as its own page is, not an
    empty list that reads as "no alerts"."""
    if query.get("job"):
        found_or_404(farm().records.get_job(query["job"]), f"no job {query['job']}")
    per_page = query["per_page"]
    rows = Alerts(farm().records).page(per_page + 1, (query["page"] - 1) * per_page, query.get("job"),
                                       folded=bool(query.get("folded")), kind=query.get("kind"))
    return rows[:per_page], len(rows) > per_page


@alerts_api.get("/alerts")
@alerts_api.auth_required(token_auth, roles=["viewer"])
@alerts_api.input(AlertQuery, location="query", arg_name="query")
@alerts_api.output(AlertOut(many=True), headers=NEXT_PAGE_HEADER)
@alerts_api.doc(summary="Alerts across jobs, newest first, with their webhook deliveries (paginated)",
                responses=error_responses(404))
def list_alerts(query: dict):
    rows, more = alert_page(query)
    return rows, 200, next_page_link("alerts_api.list_alerts", query, more)
