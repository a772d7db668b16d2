"""The watchdog (Celery beat): a job whose tasks were lost must end, not hang.

Tasks can vanish with the broker (a Redis restarted without persistence forgets its queues
and the chord counters). Then nothing more happens to the job's records; after
``VIDFARM_STALL_AFTER_S`` without any progress the job is failed with a reason. A video that
stopped following its results is drawn again, a lost erasure is queued again, and so is a lost
webhook delivery (a minute after its try was due: ``tasks.alerts.requeue_lost``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services import runtime
from tasks.alerts import requeue_lost
from tasks.app import app
from tasks.erasure import resume_lost
from tasks.render import fail_job, redraw_stale_videos


@app.task(name="vidfarm.watchdog", ignore_result=True)
def fail_stalled_jobs() -> list[str]:
    records, limit = runtime.records(), runtime.settings().stall_after_s
    stalled = records.stalled_jobs(datetime.now(timezone.utc) - timedelta(seconds=limit))
    for job_id in stalled:
        fail_job(job_id, f"no progress for {limit:.0f} s: its queued tasks were lost "
                 f"(e.g. Redis restarted without persistence); submit it again")
    redraw_stale_videos(datetime.now(timezone.utc) - timedelta(seconds=limit))
    resume_lost(limit)
    requeue_lost()
    return stalled
