"""Job and segment records (SQLAlchemy): SQLite by default, PostgreSQL via DATABASE_URL.

A job's progress is derived from its segments' states, so concurrent segment tasks never
race on a shared counter: each one only writes its own row.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Callable, Iterator

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text,
                        create_engine, delete, event, func, insert, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

ENDED_STATES = ("done", "failed")     # a job or segment in one of these changes no more
JOB_STATES = ("queued", "splitting", "processing", "stitching", *ENDED_STATES)
SEGMENT_STATES = ("queued", "processing", *ENDED_STATES)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time here is written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    source_name: Mapped[str] = mapped_column(String(255))
    source_key: Mapped[str] = mapped_column(String(512))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    media: Mapped[dict | None] = mapped_column(JSON, default=None)   # probe result
    timing: Mapped[dict] = mapped_column(JSON, default=dict)         # stage -> seconds
    # Each stitch or re-identification publishes a new results version; earlier ones stay.
    results_version: Mapped[int] = mapped_column(Integer, default=0)
    # The gallery the latest results were matched against ("job" = the job's own gallery).
    gallery_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # A camera recording: the camera it came from and when its first frame was captured.
    camera_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    segments: Mapped[list["Segment"]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="Segment.index")


class Segment(Base):
    __tablename__ = "segments"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    start_frame: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)
    # Presentation timestamps of the segment's frames in the source's time base, plus the
    # end of the last frame: the annotated output reuses them, so timing is exact even for
    # variable frame rate sources.
    pts: Mapped[list] = mapped_column(JSON)
    end_pts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    worker: Mapped[str | None] = mapped_column(String(255), default=None)
    seconds: Mapped[float | None] = mapped_column(Float, default=None)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    job: Mapped[Job] = relationship(back_populates="segments")


class Identity(Base):
    """A known person in the gallery. Deleting one deletes all its embeddings."""
    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    watchlist: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    embeddings: Mapped[list["FaceEmbedding"]] = relationship(
        back_populates="identity", cascade="all, delete-orphan", passive_deletes=True)


class FaceEmbedding(Base):
    __tablename__ = "face_embeddings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)           # float32, L2-normalised
    source: Mapped[str] = mapped_column(String(255))             # the photo's name, for people
    crop_key: Mapped[str | None] = mapped_column(String(512), default=None)  # blob key of the face crop
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    identity: Mapped[Identity] = relationship(back_populates="embeddings")


class JobVideo(Base):
    """A job's annotated video: which results version it was drawn from. It follows the
    results: each new version is drawn again (only the segments whose labels changed)."""
    __tablename__ = "job_videos"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)     # the results version it shows
    segments: Mapped[list] = mapped_column(JSON, default=list)   # the drawn segments' keys
    seconds: Mapped[float | None] = mapped_column(Float, default=None)   # queued -> published
    rendered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)        # the last drawing failure


class Erasure(Base):
    """Erasing a person (``tasks.erasure``): its progress and its report. Whom to look for
    (name, embeddings) is kept only while it runs, and cleared when it ends."""
    __tablename__ = "erasures"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    status: Mapped[str] = mapped_column(String(16), default="queued")   # queued, running, done
    identity_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(64), default=None)
    vectors: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)  # float32, concatenated
    # The gallery just before the deletion: a job matched against another one may still
    # carry a name the person had before a rename.
    gallery_fingerprint: Mapped[str] = mapped_column(String(64))
    report: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


@dataclass(frozen=True)
class GallerySnapshot:
    """The enrolled gallery as one read saw it."""
    rows: list[tuple[str, bytes]]   # (identity name, float32 embedding), by name then enrolment
    identity_ids: list[int]         # the identity of each row
    watchlist: frozenset[str]
    fingerprint: str                # what gallery_fingerprint() said at that moment


def _gallery_rows(*more_columns):
    """(name, watchlist, embedding id, *more_columns) of every identity, with or without
    embeddings, in the order the fingerprint is taken."""
    return (select(Identity.name, Identity.watchlist, FaceEmbedding.id, *more_columns)
            .join(FaceEmbedding, isouter=True).order_by(Identity.name, FaceEmbedding.id))


def _fingerprint(rows) -> str:
    """Of (name, watchlist, embedding id) rows in name, id order; the formula stays fixed, as
    fingerprints stored with earlier results are compared against it."""
    return hashlib.sha1(repr([tuple(row) for row in rows]).encode()).hexdigest()


class GalleryRecords:
    """Identities and their embeddings (mixed into Records)."""

    def add_embeddings(self, name: str, vectors: list[bytes], sources: list[str],
                       crop_keys: list[str | None]) -> int:
        """Create the identity if new and add its embeddings; returns its embedding count."""
        with self.session() as s:
            identity = s.scalar(select(Identity).where(Identity.name == name))
            if identity is None:
                identity = Identity(name=name)
                s.add(identity)
            for vector, source, crop_key in zip(vectors, sources, crop_keys):
                identity.embeddings.append(FaceEmbedding(vector=vector, source=source, crop_key=crop_key))
            s.flush()
            return len(identity.embeddings)

    def identities(self, name: str | None = None) -> list[dict]:
        """Every identity (or only the one named) with its embedding count and a face crop."""
        query = (select(Identity.id, Identity.name, Identity.created_at, Identity.watchlist,
                        func.count(FaceEmbedding.id), func.min(FaceEmbedding.crop_key))
                 .join(FaceEmbedding, isouter=True).group_by(Identity.id).order_by(Identity.name))
        if name is not None:
            query = query.where(Identity.name == name)
        with self.session() as s:
            rows = s.execute(query)
            return [{"id": i, "name": n, "created_at": c.isoformat() if c else None, "watchlist": w,
                     "embeddings": count, "crop": crop} for i, n, c, w, count, crop in rows]

    def gallery_vectors(self) -> list[tuple[str, bytes]]:
        """(name, embedding) rows by name, then enrolment."""
        return self.gallery_snapshot().rows

    def identity_crop_keys(self, name: str) -> list[str]:
        with self.session() as s:
            return [k for k in s.scalars(select(FaceEmbedding.crop_key).join(Identity)
                                         .where(Identity.name == name)) if k]

    def change_identity(self, current: str, /, **values) -> bool:
        """Rename (``name=``) and/or flag (``watchlist=``) the identity named ``current``, in one write."""
        with self.session() as s:
            return s.execute(update(Identity).where(Identity.name == current).values(**values)).rowcount > 0

    def delete_identity(self, name: str) -> bool:
        with self.session() as s:
            identity = s.scalar(select(Identity).where(Identity.name == name))
            if identity is None:
                return False
            s.execute(delete(FaceEmbedding).where(FaceEmbedding.identity_id == identity.id))
            s.delete(identity)
            return True

    def gallery_fingerprint(self) -> str:
        """Changes whenever an identity or embedding is added, renamed, flagged or removed."""
        with self.session() as s:
            return _fingerprint(s.execute(_gallery_rows()))

    def gallery_snapshot(self) -> GallerySnapshot:
        """The gallery, its watchlist and its fingerprint from one SELECT: separate reads could
        straddle a concurrent enrolment and record a fingerprint of a gallery nobody matched."""
        with self.session() as s:
            rows = s.execute(_gallery_rows(FaceEmbedding.vector, Identity.id)).all()
        embedded = [row for row in rows if row[3] is not None]
        return GallerySnapshot(rows=[(name, vector) for name, _, _, vector, _ in embedded],
                               identity_ids=[identity for *_, identity in embedded],
                               watchlist=frozenset(name for name, watched, *_ in rows if watched),
                               fingerprint=_fingerprint(row[:3] for row in rows))

    def watchlist_names(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(Identity.name).where(Identity.watchlist.is_(True))))

    def identity_photos(self, name: str) -> list[dict]:
        """The person's enrolled photos (one embedding each), oldest first."""
        with self.session() as s:
            rows = s.execute(select(FaceEmbedding.id, FaceEmbedding.source, FaceEmbedding.crop_key,
                                    FaceEmbedding.created_at).join(Identity)
                             .where(Identity.name == name).order_by(FaceEmbedding.id))
            return [{"id": i, "source": source, "crop": crop, "created_at": created.isoformat() if created else None}
                    for i, source, crop, created in rows]

    def delete_photo(self, name: str, photo_id: int) -> str | None:
        """Remove one of the person's photos (its embedding) unless it is their last one;
        returns its crop key ('' when it had none). None when there is no such photo;
        ValueError for the last one (deleting the person is what removes that)."""
        with self.session() as s:
            owned = (select(FaceEmbedding.id).join(Identity)
                     .where(Identity.name == name).with_for_update())
            ids = list(s.scalars(owned))
            if photo_id not in ids:
                return None
            if len(ids) == 1:
                raise ValueError(f"that is the last photo of {name}: delete the person instead")
            embedding = s.get(FaceEmbedding, photo_id)
            crop = embedding.crop_key or ""
            s.delete(embedding)
            return crop



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

    def fail_job(self, job_id: str, reason: str) -> None:
        """Mark a job failed with a one-line reason, unless it already ended."""
        line = " ".join(str(reason).split())[:500] or "failed"
        with self.session() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.status.not_in(ENDED_STATES))
                      .values(status="failed", error=line, finished_at=_now()))

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
            write(version)
            if also is not None:
                also(s, version)
            if changes_job:
                _update_job(s, job_id, timing, fields)
            return version

    def publish_video(self, job_id: str, version: int, segments: list[str], seconds: float,
                      write: Callable[[], None]) -> bool:
        """Make a video drawn from results ``version`` the job's video: ``write()`` puts its
        file in place and the record says so, in one transaction that holds the job's row
        (the write lock on SQLite), so a video drawn from older results never replaces a
        newer one. False, and nothing written, when the job is gone or its video is as new."""
        with self.session() as s:
            # A write that changes nothing takes the lock before anything is read.
            if not s.execute(update(Job).where(Job.id == job_id).values(updated_at=Job.updated_at)).rowcount:
                return False
            video = s.get(JobVideo, job_id)
            if video is not None and video.version >= version:
                return False
            write()
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

    def metrics_snapshot(self, window_s: float = 60.0, history: int = 10000) -> dict:
        """What /metrics reports, read in one short session: counts by state, recent segment
        and job durations, and the frames finished within the last ``window_s`` seconds."""
        since = _now() - timedelta(seconds=window_s)
        with self.session() as s:
            jobs = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            segments = dict(s.execute(select(Segment.status, func.count()).group_by(Segment.status)).all())
            segment_seconds = list(s.scalars(select(Segment.seconds).where(Segment.seconds.is_not(None))
                                             .order_by(Segment.finished_at.desc()).limit(history)))
            finished = s.execute(select(Job.created_at, Job.finished_at).where(Job.status == "done")
                                 .order_by(Job.finished_at.desc()).limit(history)).all()
            recent_frames = s.scalar(select(func.coalesce(func.sum(Segment.frames), 0)).where(
                Segment.status == "done", Segment.finished_at >= since)) or 0
        job_seconds = [(aware(end) - aware(start)).total_seconds() for start, end in finished if start and end]
        return {"jobs": jobs, "segments": segments, "segment_seconds": segment_seconds,
                "job_seconds": job_seconds, "frames_per_second": recent_frames / window_s}

    def job_views(self, limit: int = 50, offset: int = 0, status: str | None = None) -> list[dict]:
        """A page of job views, newest first."""
        query = _jobs_with_chunks_done().order_by(Job.created_at.desc()).limit(limit).offset(offset)
        if status:
            query = query.where(Job.status == status)
        with self.session() as s:
            return [_job_view(*row) for row in s.execute(query)]

    # --- segments ----------------------------------------------------------------------
    def record_split(self, job_id: str, segments: list[dict], timing: dict | None = None, **fields) -> None:
        """Record a job's segments and move the job on (``fields``, ``timing`` as in
        ``set_job``), in one transaction. Idempotent: a re-run ingest replaces the earlier rows."""
        with self.session() as s:
            s.execute(delete(Segment).where(Segment.job_id == job_id))
            if segments:
                s.execute(insert(Segment), [{**segment, "job_id": job_id} for segment in segments])
            _update_job(s, job_id, timing, {**fields, "chunks_total": len(segments)})

    def get_segment(self, job_id: str, index: int) -> Segment | None:
        with self.session() as s:
            return s.get(Segment, (job_id, index))

    def set_segment(self, job_id: str, index: int, **fields) -> None:
        if fields.get("status") in ENDED_STATES:
            fields.setdefault("finished_at", _now())
        with self.session() as s:
            s.execute(update(Segment).where(Segment.job_id == job_id, Segment.index == index)
                      .values(**fields))

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

    def job_view(self, job_id: str) -> dict | None:
        """The public view of a job (API contract 5)."""
        with self.session() as s:
            row = s.execute(_jobs_with_chunks_done().where(Job.id == job_id)).first()
        return None if row is None else _job_view(*row)


def _update_job(s: Session, job_id: str, timing: dict | None, fields: dict) -> None:
    if fields.get("status") in ENDED_STATES:
        fields.setdefault("finished_at", _now())
    if timing:     # read under the row lock, so two stages' timings never overwrite each other
        current = s.scalar(select(Job.timing).where(Job.id == job_id).with_for_update())
        fields["timing"] = {**(current or {}), **timing}
    s.execute(update(Job).where(Job.id == job_id).values(**fields))


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
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "results_version": job.results_version, "video_version": video_version or 0,
            "video_error": video_error}


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


@lru_cache(maxsize=4)
def open_records(url: str, upgrade: bool = True) -> Records:
    """One Records per database URL per process; the schema is brought up to date (or, with
    ``upgrade=False``, checked) on first use."""
    records = Records(url)
    records.create_schema(upgrade)
    return records
