"""Following jobs: a page of them with their alert counts, and re-analysis of a finished one."""

from __future__ import annotations

import time

from core.alerts import Alerts
from services import runtime
from tasks import client


def job_page(page: int, per_page: int, status: str | None) -> dict:
    """One page of job views, newest first (the API's and the UI's jobs list)."""
    # One more than a page tells whether there is a next one.
    views = runtime.records().job_views(limit=per_page + 1, offset=(page - 1) * per_page, status=status)
    return {"jobs": with_alert_counts(views[:per_page]), "page": page,
            "next_page": page + 1 if len(views) > per_page else None}


def with_alert_counts(views: list[dict]) -> list[dict]:
    """The views with each job's alert count (one query for the whole page)."""
    counts = Alerts(runtime.records()).counts([view["id"] for view in views])
    return [{**view, "alerts": counts.get(view["id"], 0)} for view in views]


def reanalyse(job_id: str) -> bool:
    """Re-run a finished job's segments with today's models and settings (no re-split)."""
    records = runtime.records()
    job = records.get_job(job_id)
    if job is None or job.status != "done":
        return False
    for segment in records.segments(job_id):
        records.set_segment(job_id, segment.index, status="queued", error=None, finished_at=None)
    records.set_job(job_id, status="processing", error=None, finished_at=None, timing={"run_started": time.time()})
    client.fan_out(job_id, job.chunks_total, job.options.get("queue", "cpu"))
    return True
