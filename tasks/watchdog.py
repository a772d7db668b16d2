"""The watchdog (Celery beat): a job whose tasks were lost must end, not hang.

Tasks can vanish with the broker (a Redis restarted without persistence forgets its queues
and the chord counters). Then nothing more happens to the job's records and none of its
tasks is left in the broker; after ``VIDFARM_STALL_AFTER_S`` without any progress the job is
failed with a reason. A job whose records stand still but whose tasks are still in the broker
is waiting, not lost: its segments queued behind other jobs' work (a hundred recordings at
once on a farm capped at a few workers wait longer than the limit), taken by a worker, or held
by one for a retry's countdown; it is left alone. A video that stopped following its results
is drawn again, a lost erasure is queued again, and so is a lost webhook delivery (a minute
after its try was due: ``tasks.alerts.requeue_lost``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import redis

from autoscaler.observe import Message, broker_messages
from core.segment_job import message_owner
from services import runtime
from tasks import leases
from tasks.alerts import requeue_lost
from tasks.app import app
from tasks.erasure import resume_lost
from tasks.render import fail_job, redraw_stale_videos

log = logging.getLogger(__name__)


@app.task(name="vidfarm.watchdog", ignore_result=True)
def fail_stalled_jobs() -> list[str]:
    records, limit = runtime.records(), runtime.settings().stall_after_s
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=limit)
    stalled = _with_no_task_in_the_broker(records.stalled_jobs(cutoff))
    for job_id in stalled:
        fail_job(job_id, f"no progress for {limit:.0f} s: its queued tasks were lost "
                 f"(e.g. Redis restarted without persistence); submit it again")
    redraw_stale_videos(cutoff)
    resume_lost(limit)
    requeue_lost()
    return stalled


def _with_no_task_in_the_broker(idle_jobs: list[str]) -> list[str]:
    """Those of ``idle_jobs`` (no progress since the cutoff) none of whose tasks is in the
    broker. None when the broker cannot be read: failing jobs because the watchdog cannot see
    is worse than failing them a round later."""
    if not idle_jobs:
        return []           # the usual round: no need to read the queues
    try:
        queued = queued_job_ids(leases.client(), [queue.name for queue in app.conf.task_queues])
    except redis.RedisError as exc:
        log.warning("the watchdog cannot read the broker (%s): no job is failed as stalled this round", exc)
        return []
    return [job_id for job_id in idle_jobs if job_id not in queued]


def queued_job_ids(client: redis.Redis, queues: list[str]) -> set[str]:
    """The jobs with a task in the broker (``broker_messages``: waiting in one of ``queues`` or in
    a worker's hands). A message missed between a worker's BRPOP and its entry in the unacked
    hash could fail a job only if that were its one task after a whole limit idle."""
    return {job_id for job_id in map(_job_of, broker_messages(client, queues)) if job_id is not None}


def _job_of(message: Message) -> str | None:
    """The job a queued task works for: a segment's owner, the job id an ingest or a stitch
    is sent. Not a stitch looking again for unfinished segments (sent with ``wait_s``): it
    would keep its job alive for ever, though the segments it waits for are lost (the
    segments, while in the broker, keep the job alive themselves)."""
    if message.task == "vidfarm.segment":
        return message_owner(message.args)
    if message.task == "vidfarm.ingest" or (message.task == "vidfarm.stitch" and "wait_s" not in message.kwargs):
        job_id = message.args[0] if message.args else None
        return job_id if isinstance(job_id, str) else None
    return None
