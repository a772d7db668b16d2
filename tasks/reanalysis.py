"""Scheduled re-analysis (Celery beat): re-identify stored recordings after the gallery
changed, and re-run recordings of a time window with the current models and settings.

Both publish a new results version; the earlier versions stay readable (until an erasure
removes those that name the erased person), and the video is drawn again from it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from core.errors import BrokerUnavailable
from core.models import aware
from services import runtime
from services.jobs import CannotReanalyse, reanalyse_checked
from tasks.app import app
from tasks.common import result_options
from tasks.gallery import job_matching
from tasks.jobs import republish
from workers.results import reidentify

log = logging.getLogger(__name__)


@app.task(name="vidfarm.reidentify", ignore_result=True)
def reidentify_job(job_id: str) -> dict:
    """Match a finished job's tracks against the current gallery (all of it, or the people
    ticked for it) from their kept embeddings. A job with a gallery of its own is left alone."""
    job = runtime.records().get_job(job_id)
    if job is None or job.status != "done" or job.options.get("gallery") is not None:
        return {"skipped": True}
    matching = job_matching(job.options)

    def rematch(latest: dict | None) -> dict | None:
        # Read under the version's claim: a sweep queued by a gallery change and beat's own pass
        # may both have queued this job; the second finds it matched already (no version, no redraw).
        if latest is None or runtime.records().get_job(job_id).gallery_fingerprint == matching.fingerprint:
            return None
        return reidentify(latest, matching.gallery, result_options(matching.watchlist))

    return {"job": job_id, "version": republish(job_id, rematch, matching.fingerprint)}


@app.task(name="vidfarm.reidentify_stale")
def reidentify_stale() -> dict:
    """Beat: queue a re-identification of every finished job matched against an older gallery."""
    records = runtime.records()
    stale = records.jobs_matched_against_another_gallery(records.gallery_fingerprint())
    for job_id in stale:
        reidentify_job.delay(job_id)
    return {"queued": len(stale)}


@app.task(name="vidfarm.reanalyse_window")
def reanalyse_window(since: str, until: str) -> dict:
    """Re-analyse the recordings submitted between two ISO times. With the broker away the
    window stops there, saying so (``stopped``): the job it was at, and those after it, stay
    done with their results, for the next window to take."""
    window = [aware(datetime.fromisoformat(t)) for t in (since, until)]
    farm, started, skipped = runtime.farm(), [], {}
    for job_id in farm.records.done_jobs_created_between(*window):
        try:
            if reanalyse_checked(farm, job_id, from_states=("done",)):
                started.append(job_id)
        except CannotReanalyse as exc:
            # One job that cannot run again (its stored recording gone, say) is left as it is:
            # it stopped the whole window before, and was failed on the way.
            log.warning("scheduled re-analysis skips a job: %s", exc)
            skipped[job_id] = str(exc)
        except BrokerUnavailable as exc:
            # Every job after this one would find the broker away too.
            log.warning("scheduled re-analysis stops: %s", exc)
            return {"reanalysing": started, "skipped": skipped, "stopped": str(exc)}
    return {"reanalysing": started, "skipped": skipped}


@app.task(name="vidfarm.reanalyse_recent")
def reanalyse_recent(hours: float) -> dict:
    """Beat: re-analyse what arrived in the last ``hours`` hours."""
    until = datetime.now(timezone.utc)
    return reanalyse_window((until - timedelta(hours=hours)).isoformat(), until.isoformat())
