"""What a queued task costs, from the job records: the ``WorkSource`` of ``autoscaler.observe``.

A segment task (``vidfarm.segment``, one ``core.segment_job.SegmentJob`` message) carries its
segment's frames (one time stamp each); a finished one has its compute seconds in the records
(``Segment.seconds``, the time the worker spent on it). A job's segments go to the queue its
options name (``cpu`` unless set). Other tasks have no frame count: the policy counts them as
the mean finished task.

Read-only: the autoscaler never writes records, and never creates a database (a pod without
``DATABASE_URL`` simply has no work source, see ``open_work_source``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.models import Job, Segment
from core.records import Records
from core.segment_job import message_frames
from core.settings import Settings

log = logging.getLogger(__name__)

SEGMENT_TASK = "vidfarm.segment"
SQLITE = "sqlite:///"
FINISHED_READ = 500          # at most this many finished segments per poll (the cost keeps 50)


class RecordsWork:
    def __init__(self, records: Records):
        self.records = records

    def frames(self, tasks: list[tuple[str, list]]) -> list[int | None]:
        return [message_frames(args) if name == SEGMENT_TASK else None for name, args in tasks]

    def finished(self, queue: str, since: float) -> list[tuple[int, float]]:
        after = datetime.fromtimestamp(since, timezone.utc)
        try:
            with self.records.session() as s:
                rows = s.execute(select(Segment.frames, Segment.seconds, Job.options)
                                 .join(Job, Job.id == Segment.job_id)
                                 .where(Segment.status == "done", Segment.seconds.is_not(None),
                                        Segment.finished_at > after)
                                 .order_by(Segment.finished_at).limit(FINISHED_READ)).all()
        except SQLAlchemyError as error:
            log.warning("cannot read finished segments (%s)", str(error).splitlines()[0])
            return []
        return [(frames, seconds) for frames, seconds, options in rows
                if (options or {}).get("queue", "cpu") == queue and frames]

    def close(self) -> None:
        self.records.engine.dispose()


def open_work_source(settings: Settings) -> RecordsWork | None:
    """The records of the farm the autoscaler watches: its DATABASE_URL, or on one machine the
    SQLite file of the data dir when it exists. None when there are none to read."""
    url = settings.sqlalchemy_url
    if url.startswith(SQLITE) and not Path(url.removeprefix(SQLITE)).is_file():
        log.warning("no job records to read (no DATABASE_URL, no %s): sizing by task counts",
                    url.removeprefix(SQLITE))
        return None
    return RecordsWork(Records(url))
