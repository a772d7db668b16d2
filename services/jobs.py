"""Following jobs: their public views (API contract 5; the web and the CLI show them), a page
of them with their alert counts, and re-analysis of a finished one (beat's or an operator's)."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from core.alerts import Alerts
from core.errors import BrokerUnavailable
from core.models import ENDED_STATES, Job, JobVideo, Segment, iso_utc
from core.records import Records
from core.segment_job import SegmentJob
from core.storage import job_key, segment_key
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


def reanalyse(farm: Farm, job_id: str, from_states: tuple[str, ...] = ("done",)) -> bool:
    """Re-run a finished job's segments with today's models and settings (no re-split).
    ``from_states``: what the job may be (beat re-runs done jobs only). False, and nothing
    changes, when it is in none of them. A run that cannot be queued (the broker is away)
    raises, and leaves the job as it was."""
    restarted = farm.records.restart_job(job_id, timing={"run_started": time.time()}, from_states=from_states)
    if restarted is None:
        return False
    job = restarted.job
    try:
        farm.queue.fan_out(job_id, [SegmentJob.of(job, segment) for segment in restarted.segments],
                           job.options.get("queue", "cpu"), run=job.run)
    except Exception as exc:
        # Not queued: nothing of it runs, and the results of before were fine. Failing the job
        # would show a done job failed; it goes back as it was (done, or failed with its own
        # reason), unless something changed it meanwhile (then that owns it).
        if not farm.records.undo_restart(restarted):
            raise
        if isinstance(exc, BrokerUnavailable):
            raise BrokerUnavailable(f"{exc}; job {job_id} was not re-analysed and was left as it was "
                                    f"({restarted.job_before['status']})") from None
        raise
    return True


class CannotReanalyse(Exception):
    """Why a job cannot be re-analysed now, in one line (the API's 409)."""


def reanalyse_checked(farm: Farm, job_id: str, from_states: tuple[str, ...] = ENDED_STATES) -> bool:
    """A re-analysis of one job, checked first (the API's, the job page's, beat's): a done job, or a
    failed one whose recording was split and is still stored (a segment queued by an earlier
    release, a worker that died, a stall: each fails the job, none harms what is stored), runs
    again with the job's own options and today's models, to a new results version; the
    earlier ones stay. False when there is no such job; ``CannotReanalyse`` saying why not,
    before anything changes. Beat's window re-analysis checks each done job the same way
    (``from_states``), so one job it cannot re-run is skipped, not failed."""
    job = farm.records.get_job(job_id)
    if job is None:
        return False
    _check_reanalysable(farm, job, from_states)
    if reanalyse(farm, job_id, from_states=from_states):
        return True
    # It changed since it was read: deleted, or restarted by someone else meanwhile.
    job = farm.records.get_job(job_id)
    if job is None:
        return False
    raise CannotReanalyse(f"job {job_id} is {job.status}: it is being analysed already")


def _check_reanalysable(farm: Farm, job: Job, from_states: tuple[str, ...]) -> None:
    if job.status not in from_states:
        raise CannotReanalyse(f"job {job.id} is {job.status}: it can be re-analysed once it is "
                              f"{' or '.join(from_states)}")
    segments = farm.records.segments(job.id)
    if not segments:
        # Failed before the split (its file is not a video vidfarm can read, say): there is
        # nothing cut to analyse, and splitting it again would fail the same way.
        raise CannotReanalyse(f"job {job.id} failed before its recording was split ({job.error}): "
                              f"there is nothing to analyse again; upload the recording again")
    # One listing, not a request per segment (a HEAD each on S3; beat checks every job of its window).
    stored = set(farm.store.list_keys(job_key(job.id, "segments")))
    if not {segment_key(job.id, s.index) for s in segments} <= stored:
        raise CannotReanalyse(f"the stored recording of job {job.id} is gone (in part or whole): "
                              f"it cannot be analysed again")
    if not {"time_base", "fps"} <= set(job.media or {}):
        # A job recorded by a release that kept no media summary: its segments cannot be sent.
        raise CannotReanalyse(f"job {job.id} was recorded by an older vidfarm without its media summary: "
                              f"upload the recording again to analyse it")


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
