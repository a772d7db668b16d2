"""Following jobs: their public views (API contract 5; the web and the CLI show them), a page
of them with their alert counts, and re-analysis of a finished one."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from core.alerts import Alerts
from core.models import Job, JobVideo, Segment, iso_utc
from core.records import Records
from core.segment_job import SegmentJob
from services.farm import Farm


def job_page(farm: Farm, page: int, status: str | None, per_page: int | None = None) -> dict:
    """One page of job views, newest first (the API's and the UI's jobs list), ``per_page`` of
    them (by default the jobs_per_page setting)."""
    per_page = per_page or farm.settings.jobs_per_page
    # One more than a page tells whether there is a next one.
    views = job_views(farm.records, limit=per_page + 1, offset=(page - 1) * per_page, status=status)
    return {"jobs": with_alert_counts(farm, views[:per_page]), "page": page,
            "next_page": page + 1 if len(views) > per_page else None}


def with_alert_counts(farm: Farm, views: list[dict]) -> list[dict]:
    """The views with each job's alert count (one query for the whole page)."""
    counts = Alerts(farm.records).counts([view["id"] for view in views])
    return [{**view, "alerts": counts.get(view["id"], 0)} for view in views]


def reanalyse(farm: Farm, job_id: str) -> bool:
    """Re-run a finished job's segments with today's models and settings (no re-split)."""
    restarted = farm.records.restart_job(job_id, timing={"run_started": time.time()})
    if restarted is None:
        return False
    job, segments = restarted
    farm.queue.fan_out(job_id, [SegmentJob.of(job, segment) for segment in segments], job.options.get("queue", "cpu"))
    return True


def job_views(records: Records, limit: int = 50, offset: int = 0, status: str | None = None) -> list[dict]:
    """A page of job views, newest first."""
    query = _jobs_with_chunks_done().order_by(Job.created_at.desc()).limit(limit).offset(offset)
    if status:
        query = query.where(Job.status == status)
    with records.session() as s:
        return [_job_view(*row) for row in s.execute(query)]


def job_view(records: Records, job_id: str) -> dict | None:
    """The public view of a job (API contract 5)."""
    with records.session() as s:
        row = s.execute(_jobs_with_chunks_done().where(Job.id == job_id)).first()
    return None if row is None else _job_view(*row)


def _jobs_with_chunks_done():
    """Jobs with their count of finished segments (a correlated subquery) and their video's
    version and error in one SELECT, so a page of N jobs is one query, not several per job."""
    done = (select(func.count()).select_from(Segment).where(Segment.job_id == Job.id, Segment.status == "done")
            .correlate(Job).scalar_subquery())
    return select(Job, done, JobVideo.version, JobVideo.error).outerjoin(JobVideo, JobVideo.job_id == Job.id)


def _job_view(job: Job, done: int, video_version: int | None = None, video_error: str | None = None) -> dict:
    total = job.chunks_total
    if job.status == "done":
        progress = 1.0
    elif total:
        # Segments are the long part; split and stitch take the first and last few per cent.
        progress = round(0.05 + 0.9 * done / total, 4)
    else:
        progress = 0.0
    return {"id": job.id, "status": job.status, "progress": progress, "chunks_done": done,
            "chunks_total": total, "error": job.error, "source_name": job.source_name,
            # A job done with damage (a damaged recording, salvaged) says so here.
            "warning": (job.media or {}).get("warning"),
            "created_at": iso_utc(job.created_at),
            "finished_at": iso_utc(job.finished_at),
            "results_version": job.results_version, "video_version": video_version or 0,
            "video_error": video_error}
