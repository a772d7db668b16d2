"""The records database (SQLAlchemy: SQLite by default, PostgreSQL via DATABASE_URL) and the
job state machine: each stage of a job or segment claims its row in one transaction, so a
redelivered task changes nothing (schema: ``core.models``; the gallery: ``core.gallery_records``).

A job's progress is derived from its segments' states, so concurrent segment tasks never
race on a shared counter: each one only writes its own row.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Callable, Iterator, NamedTuple

from sqlalchemy import create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.gallery_records import GalleryRecords
from core.models import (ENDED_STATES, JOB_SECONDS, SEGMENT_SECONDS, Histogram, HistogramBucket, Job, JobVideo,
                         Segment, _now, unix_seconds)

# What a restart (a re-analysis) changes, kept so that one which could not be queued is undone.
_RESTARTED_JOB_FIELDS = ("status", "error", "finished_at", "timing", "updated_at")
_RESTARTED_SEGMENT_FIELDS = ("status", "error", "finished_at")


class Restarted(NamedTuple):
    """A restarted job (``Records.restart_job``): the job and its segments as restarted, and the
    fields the restart changed as they were before (the job's; each segment's, with its key)."""
    job: Job
    segments: list[Segment]
    job_before: dict
    segments_before: list[dict]


class Records(GalleryRecords):
    """Opens the database and hands out short sessions."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self, upgrade: bool = True) -> None:
        """Bring the database to the schema this code needs (``core/schema.py``): a new one is
        made by the migrations, an older one upgraded, safely when many processes open it at
        once. ``upgrade=False``: only check, and raise ``SchemaOutOfDate`` if it is behind."""
        from core.schema import ensure_current   # it imports this module's models

        ensure_current(self.url, self.engine, upgrade)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # --- jobs --------------------------------------------------------------------------
    def add_job(self, source_name: str, source_key: str, options: dict | None = None,
                job_id: str | None = None) -> Job:
        with self.session() as s:
            job = Job(id=job_id or uuid.uuid4().hex, source_name=source_name,
                      source_key=source_key, options=options or {})
            s.add(job)
        return job

    def recordings_of(self, camera_id: str, limit: int = 24) -> list[Job]:
        """A camera's newest recordings, newest first."""
        with self.session() as s:
            return list(s.scalars(select(Job).where(Job.camera_id == camera_id)
                                  .order_by(Job.recorded_at.desc()).limit(limit)))

    def recordings_before(self, cutoff: datetime) -> list[str]:
        """Camera recordings whose first frame was captured before ``cutoff``."""
        with self.session() as s:
            return list(s.scalars(select(Job.id).where(Job.camera_id.is_not(None), Job.recorded_at < cutoff)))

    def get_job(self, job_id: str) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

    def set_job(self, job_id: str, timing: dict | None = None, **fields) -> None:
        """Update a job's fields; ``timing`` (stage -> seconds) is merged into the job's
        timing in the same transaction (a stage's end is one write, not two)."""
        with self.session() as s:
            _update_job(s, job_id, timing, fields)

    def start_stage(self, job_id: str, status: str, from_states: tuple[str, ...]) -> Job | None:
        """A stage task's first step, in one transaction: move the job from one of
        ``from_states`` to ``status`` and read it. None when it is in none of them (gone, ended,
        or past this stage: a redelivered task), and then nothing changes. The conditional
        UPDATE comes first, so a concurrent ``fail_job`` either wins before it or after it."""
        with self.session() as s:
            moved = s.execute(update(Job).where(Job.id == job_id, Job.status.in_(from_states),
                                                Job.status.not_in(ENDED_STATES))   # those change no more
                              .values(status=status, updated_at=_now()))
            return s.get(Job, job_id) if moved.rowcount else None

    def start_stitch(self, job_id: str) -> tuple[Job, list[Segment]] | None:
        """The stitch's first step, in one transaction: the job and its segments, and the job
        turned ``stitching`` if every segment is done (else left as it is, for the stitch to
        look again later). None when the job is gone or has ended."""
        with self.session() as s:
            unfinished = select(Segment.index).where(Segment.job_id == job_id, Segment.status != "done").exists()
            s.execute(update(Job).where(Job.id == job_id, Job.status.not_in(ENDED_STATES), ~unfinished)
                      .values(status="stitching", updated_at=_now()))
            job = s.get(Job, job_id)
            if job is None or job.status in ENDED_STATES:
                return None
            return job, list(s.scalars(select(Segment).where(Segment.job_id == job_id).order_by(Segment.index)))

    def restart_job(self, job_id: str, timing: dict, from_states: tuple[str, ...] = ("done",)
                    ) -> Restarted | None:
        """Run an ended job again (a re-analysis), in one transaction: the job turns
        ``processing`` and its segments ``queued`` together, so nobody sees it done with
        segments to do, and of two restarts at once only one wins. ``timing`` is merged into
        the job's. ``from_states``: the states it may be in (beat re-runs done jobs only; an
        operator may re-run a failed one too). The job and its segments, and what the restart
        changed as it was before (``undo_restart`` puts it back); None when it is in none of
        them, and nothing changes."""
        with self.session() as s:
            # The row's lock first, so what is read as "before" is what the restart changes,
            # with no other commit in between.
            if not _lock_job(s, job_id, Job.status.in_(from_states)):
                return None
            job = s.get(Job, job_id)
            before = {name: getattr(job, name) for name in _RESTARTED_JOB_FIELDS}
            segments_before = [{"job_id": job_id, "index": segment.index,
                                **{name: getattr(segment, name) for name in _RESTARTED_SEGMENT_FIELDS}}
                               for segment in s.scalars(select(Segment).where(Segment.job_id == job_id))]
            s.execute(update(Job).where(Job.id == job_id)
                      .values(status="processing", error=None, finished_at=None))
            _update_job(s, job_id, timing, {})
            s.execute(update(Segment).where(Segment.job_id == job_id)
                      .values(status="queued", error=None, finished_at=None))
            s.expire_all()      # the ORM objects read above: read them again, as restarted
            return Restarted(s.get(Job, job_id),
                             list(s.scalars(select(Segment).where(Segment.job_id == job_id).order_by(Segment.index))),
                             before, segments_before)

    def undo_restart(self, restarted: Restarted) -> bool:
        """Put a restarted job and its segments back exactly as they were before the restart (a
        re-analysis that could not be queued: the results it had stay its latest), in one
        transaction, only if nothing changed it since: still ``processing`` in that run, and
        none of its segments taken by a worker (a task queued before the broker went away).
        False, and nothing changes, otherwise: whoever changed it owns it now."""
        job_id, run = restarted.job.id, restarted.job.run
        with self.session() as s:
            if not _lock_job(s, job_id, Job.status == "processing"):
                return False
            taken = s.scalar(select(select(Segment.index).where(Segment.job_id == job_id,
                                                                Segment.status != "queued").exists()))
            if s.get(Job, job_id).run != run or taken:
                return False
            s.execute(update(Job).where(Job.id == job_id).values(**restarted.job_before))
            if restarted.segments_before:
                s.execute(update(Segment), restarted.segments_before)     # by primary key, each its own
            return True

    def fail_job(self, job_id: str, reason: str, run: float | None = None) -> bool:
        """Mark a job failed with a one-line reason, unless it already ended. ``run``: only that
        run of it (``Job.run``), compared under the row's lock, so a re-analysis begun just
        before is left alone (a chord errback of the run before). False, and nothing changes,
        when the job is in another run."""
        line = " ".join(str(reason).split())[:500] or "failed"
        with self.session() as s:
            if run is not None and _lock_job(s, job_id) and s.get(Job, job_id).run != run:
                return False
            s.execute(update(Job).where(Job.id == job_id, Job.status.not_in(ENDED_STATES))
                      .values(status="failed", error=line, finished_at=_now()))
        return True

    def publish_version(self, job_id: str, gallery_fingerprint: str, write: Callable[[int], None],
                        timing: dict | None = None, also: Callable[[Session, int], object] | None = None,
                        **fields) -> int | None:
        """Publish the next results version of a job: claim its number, ``write(number)`` the
        files, then commit. The claim holds the job's row lock until the files are written, so
        nobody sees version N before its files exist and two publishers never share or reorder
        a number; if ``write`` raises, the number is not used. ``timing`` and ``fields``
        change the job in the same commit, as ``set_job`` would: the stitch ends the job so,
        and only if it has not ended meanwhile (an ended job changes no more). None, and
        nothing written, when there is no such job or that condition fails. ``also(session,
        number)`` writes what must change with the version in the same commit (the
        appearances index and the alerts: ``tasks.published``)."""
        changes_job = bool(timing or fields)
        claim = update(Job).where(Job.id == job_id).values(
            results_version=Job.results_version + 1, gallery_fingerprint=gallery_fingerprint)
        if changes_job:
            claim = claim.where(Job.status.not_in(ENDED_STATES))
        with self.session() as s:
            if not s.execute(claim).rowcount:
                return None
            version = s.scalar(select(Job.results_version).where(Job.id == job_id))
            if version == 1 and s.get(JobVideo, job_id) is None:
                # The job's video will be drawn from its results: a row (none drawn yet) says so
                # from now on, so its first video, moved in place inside ``publish_video``'s
                # transaction, is never taken for one drawn before videos followed results
                # (those jobs have no row).
                s.add(JobVideo(job_id=job_id, version=0, segments=[]))
            write(version)
            if also is not None:
                also(s, version)
            if changes_job:
                _update_job(s, job_id, timing, fields)
            return version

    def publish_video(self, job_id: str, version: int, segments: list[str], seconds: float,
                      write: Callable[[], None], if_latest: Callable[[], None] | None = None) -> bool:
        """Make a video drawn from results ``version`` the job's video: ``write()`` puts its
        file in place and the record says so, in one transaction that holds the job's row
        (the write lock on SQLite), so a video drawn from older results never replaces a
        newer one. False, and nothing written, when the job is gone or its video is as new.
        ``if_latest()``: called after ``write`` when ``version`` is the job's latest results
        (no newer version can be published meanwhile), before anyone sees the video."""
        with self.session() as s:
            if not _lock_job(s, job_id):
                return False
            video = s.get(JobVideo, job_id)
            if video is not None and video.version >= version:
                return False
            write()
            if if_latest is not None and version >= s.scalar(select(Job.results_version).where(Job.id == job_id)):
                if_latest()
            if video is None:
                video = JobVideo(job_id=job_id)
                s.add(video)
            video.version, video.segments, video.seconds = version, segments, seconds
            video.rendered_at, video.error = _now(), None
            return True

    def video(self, job_id: str) -> JobVideo | None:
        with self.session() as s:
            return s.get(JobVideo, job_id)

    def set_video_error(self, job_id: str, error: str) -> None:
        line = " ".join(str(error).split())[:500] or "failed"
        with self.session() as s:
            if s.get(Job, job_id) is None:
                return
            video = s.get(JobVideo, job_id) or JobVideo(job_id=job_id, version=0, segments=[])
            video.error = line
            s.add(video)

    def jobs_with_stale_video(self, cutoff: datetime) -> list[tuple[str, int]]:
        """(job, results version) of done jobs whose video has not followed their latest
        results since before ``cutoff``: its drawing tasks were lost."""
        with self.session() as s:
            return list(s.execute(
                select(Job.id, Job.results_version).outerjoin(JobVideo, JobVideo.job_id == Job.id)
                .where(Job.status == "done", Job.updated_at < cutoff, Job.results_version > 0,
                       func.coalesce(JobVideo.version, 0) < Job.results_version)).all())

    def jobs_matched_against_another_gallery(self, fingerprint: str) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Job.id).where(
                Job.status == "done", Job.gallery_fingerprint.is_not(None),
                Job.gallery_fingerprint.not_in((fingerprint, "job")))))

    def stalled_jobs(self, cutoff: datetime) -> list[str]:
        """Unfinished jobs with no change to the job or any of its segments since cutoff."""
        with self.session() as s:
            active = (select(Segment.job_id).where((Segment.started_at >= cutoff) | (Segment.finished_at >= cutoff)))
            return list(s.scalars(select(Job.id).where(Job.status.not_in(ENDED_STATES),
                                                       Job.updated_at < cutoff, Job.id.not_in(active))))

    def done_jobs_created_between(self, since: datetime, until: datetime) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Job.id).where(Job.status == "done", Job.created_at >= since,
                                                       Job.created_at < until)))

    # --- segments ----------------------------------------------------------------------
    def record_split(self, job_id: str, segments: list[dict], timing: dict | None = None, **fields) -> bool:
        """Record a job's segments and move the job on (``fields``, ``timing`` as in
        ``set_job``), in one transaction. Idempotent: a re-run ingest replaces the earlier rows.
        False, and nothing written, when the job has ended meanwhile (failed while it was split:
        its `vidfarm process` stopped, say): an ended job changes no more, and its status must not
        go back to "processing" under its error."""
        with self.session() as s:
            # A write first: it takes the row's lock (the database's, on SQLite), so a fail_job
            # either came before it and is seen here, or waits for this commit.
            if not s.execute(update(Job).where(Job.id == job_id, Job.status.not_in(ENDED_STATES))
                             .values(updated_at=_now())).rowcount:
                return False
            s.execute(delete(Segment).where(Segment.job_id == job_id))
            _add_segments(s, job_id, segments, timing, fields)
        return True

    def add_split_job(self, job_id: str, source_name: str, source_key: str, segments: list[dict],
                      timing: dict | None = None, **fields) -> None:
        """Add a job already split (a camera recording) with its segments, in one transaction
        (``segments``, ``timing`` and ``fields`` as in ``record_split``): nobody sees the job
        without them, and whoever finds the job finds it whole."""
        with self.session() as s:
            s.add(Job(id=job_id, source_name=source_name, source_key=source_key, options={}))
            s.flush()
            _add_segments(s, job_id, segments, timing, fields)

    def get_segment(self, job_id: str, index: int) -> Segment | None:
        with self.session() as s:
            return s.get(Segment, (job_id, index))

    def set_segment(self, job_id: str, index: int, **fields) -> None:
        """Update a segment's fields; one that ends done with its ``seconds`` adds them to
        /metrics' segment histogram in the same transaction, once (a second worker finishing
        it after the first, its worker given up for dead, rewrites the row, not the totals)."""
        if fields.get("status") in ENDED_STATES:
            fields.setdefault("finished_at", _now())
        write = update(Segment).where(Segment.job_id == job_id, Segment.index == index).values(**fields)
        with self.session() as s:
            if fields.get("status") == "done" and fields.get("seconds") is not None:
                if s.execute(write.where(Segment.status != "done")).rowcount:
                    _observe(s, SEGMENT_SECONDS, fields["seconds"])
                    return
            s.execute(write)

    def start_segment(self, job_id: str, index: int, worker: str) -> tuple[Job, Segment] | None:
        """Mark a segment taken by ``worker`` and return its job and it, in one transaction
        (a segment task's first step, between every two segments); None when the job has
        already ended or the segment is done (by an earlier delivery, or by another worker after
        this delivery's worker was given up for dead), and then nothing changes."""
        live = select(Job.id).where(Job.id == job_id, Job.status.not_in(ENDED_STATES)).exists()
        with self.session() as s:
            taken = s.execute(update(Segment).where(Segment.job_id == job_id, Segment.index == index,
                                                    Segment.status != "done", live)
                              .values(status="processing", worker=worker, attempts=Segment.attempts + 1,
                                      started_at=_now(), finished_at=None))
            return (s.get(Job, job_id), s.get(Segment, (job_id, index))) if taken.rowcount else None

    def requeue_segment(self, job_id: str, index: int) -> Job | None:
        """Give an unfinished segment of a running job back to the queue (its worker died):
        its job, or None when it is done or the job has ended, and then nothing changes."""
        live = select(Job.id).where(Job.id == job_id, Job.status.not_in(ENDED_STATES)).exists()
        with self.session() as s:
            moved = s.execute(update(Segment).where(Segment.job_id == job_id, Segment.index == index,
                                                    Segment.status != "done", live)
                              .values(status="queued"))
            return s.get(Job, job_id) if moved.rowcount else None

    def segments(self, job_id: str) -> list[Segment]:
        with self.session() as s:
            return list(s.scalars(select(Segment).where(Segment.job_id == job_id)
                                  .order_by(Segment.index)))

def _add_segments(s: Session, job_id: str, segments: list[dict], timing: dict | None, fields: dict) -> None:
    if segments:
        s.execute(insert(Segment), [{**segment, "job_id": job_id} for segment in segments])
    _update_job(s, job_id, timing, {**fields, "chunks_total": len(segments)})


def _lock_job(s: Session, job_id: str, *where) -> bool:
    """Take the job's row lock (the database's write lock, on SQLite) before anything is read,
    by a write that changes nothing; whether the job is there (and matches ``where``)."""
    return bool(s.execute(update(Job).where(Job.id == job_id, *where).values(updated_at=Job.updated_at)).rowcount)


def _update_job(s: Session, job_id: str, timing: dict | None, fields: dict) -> None:
    """A job that turns done adds its run's time to /metrics' job histogram, in the same
    transaction, once (a job already done and written again is not counted again)."""
    if fields.get("status") in ENDED_STATES:
        fields.setdefault("finished_at", _now())
    if timing:     # read under the row lock, so two stages' timings never overwrite each other
        current = s.scalar(select(Job.timing).where(Job.id == job_id).with_for_update())
        fields["timing"] = {**(current or {}), **timing}
    write = update(Job).where(Job.id == job_id).values(**fields)
    if fields.get("status") == "done" and s.execute(write.where(Job.status != "done")).rowcount:
        # From its latest run's start (``Job.run_started_at``) to its end, worked out by the
        # database to the microsecond; never below 0: the two are read from different clocks.
        elapsed = s.scalar(select(unix_seconds(Job.finished_at) - Job.run_started_at).where(Job.id == job_id))
        _observe(s, JOB_SECONDS, max(0.0, elapsed))
        return
    s.execute(write)


def _observe(s: Session, metric: str, seconds: float) -> None:
    """Add one observation to a histogram's totals (``core.models.Histogram``): two UPDATEs that
    add in the database, so concurrent workers never lose one another's."""
    s.execute(update(Histogram).where(Histogram.metric == metric)
              .values(count=Histogram.count + 1, sum=Histogram.sum + seconds))
    s.execute(update(HistogramBucket).where(HistogramBucket.metric == metric, HistogramBucket.le >= seconds)
              .values(count=HistogramBucket.count + 1))


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        _private_file(engine.url.database)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets the web app read while workers write; foreign keys make deletes cascade.
            # In WAL, synchronous=NORMAL syncs at checkpoints instead of at every commit: a
            # crashed process loses nothing and the file cannot corrupt; a power cut can lose
            # the last commits (PostgreSQL is the database for a farm that must not). Outside
            # WAL (a filesystem without shared memory) NORMAL could corrupt: FULL there.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL" if _use_wal(cursor) else "PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Deleted rows (an erased person's name and embeddings) are overwritten with
            # zeros, not merely unlinked; erasure then checkpoints the WAL (core.erasures).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()
        return engine
    return create_engine(url, pool_pre_ping=True)


def _private_file(path: str | None) -> None:
    """The SQLite file (names, password hashes, face embeddings) readable by its owner only;
    SQLite gives its -wal and -shm files the same mode. Also tightens a file made before."""
    if not path or path == ":memory:" or path.startswith("file:") or not os.path.isdir(os.path.dirname(
            os.path.abspath(path))):
        return   # nothing on disk, or a folder that is not there (SQLite says so on connect)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _use_wal(cursor, attempts: int = 100) -> bool:
    """Switch a SQLite database to WAL, once: the mode is kept in the file. The switch needs
    an exclusive lock, and when many processes open a new database at once SQLite tells the
    losers 'database is locked' straight away, without waiting on the busy timeout: they
    retry until one of them has switched it. Whether the database is in WAL now."""
    import random
    import sqlite3
    import time

    for attempt in range(attempts):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return True
            return cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal"
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.01, 0.05))


# Database URLs whose schema is known to be current in this process: the embedded farm's fork
# server marks its database once its schema child has brought it up to date, so that neither
# it nor its forked workers import Alembic (a quarter of a second) only to check it again.
_KNOWN_CURRENT: set[str] = set()


def known_current(url: str) -> None:
    """Skip the schema check when this process (and its forks) open ``url``."""
    _KNOWN_CURRENT.add(url)


@lru_cache(maxsize=4)
def open_records(url: str, upgrade: bool = True) -> Records:
    """One Records per database URL per process; the schema is brought up to date (or, with
    ``upgrade=False``, checked) on first use, unless it is ``known_current``."""
    records = Records(url)
    if url not in _KNOWN_CURRENT:
        records.create_schema(upgrade)
    return records
