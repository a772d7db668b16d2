"""The records' schema (SQLAlchemy ORM): jobs and their segments, the gallery (identities and
their face embeddings), drawn videos, erasures and the /metrics histograms' totals; and the
states a job and a segment go through. Other tables (users, alerts, appearances) declare
themselves on the same ``Base``."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import FunctionElement

ENDED_STATES = ("done", "failed")     # a job or segment in one of these changes no more
JOB_STATES = ("queued", "splitting", "processing", "stitching", *ENDED_STATES)
SEGMENT_STATES = ("queued", "processing", *ENDED_STATES)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def aware(moment: datetime) -> datetime:
    """A stored time in UTC, aware. Every time here is written in UTC; SQLite hands it back
    naive, PostgreSQL with its session time zone's offset (+05:30 on a server set to Kolkata)."""
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def iso_utc(moment: datetime | None) -> str | None:
    """A stored time as the API and the pages are given it: ISO 8601 in UTC, with its offset,
    whichever database it came from."""
    return aware(moment).isoformat() if moment else None


class unix_seconds(FunctionElement):
    """A stored time as unix seconds (a float, its microseconds kept), in SQL: SQLite has no
    EXTRACT (SQLAlchemy's ``extract("epoch")`` there drops the fraction), PostgreSQL's is numeric."""
    type = Float()
    inherit_cache = True


@compiles(unix_seconds)
def _unix_seconds(element, compiler, **kw) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"


@compiles(unix_seconds, "sqlite")
def _unix_seconds_sqlite(element, compiler, **kw) -> str:
    # SQLite keeps the UTC time as text, "YYYY-MM-DD HH:MM:SS.ffffff": its whole seconds, then
    # its fraction as written (julianday, and so strftime's %f, keep only milliseconds).
    moment = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {moment}) AS INTEGER) + CAST(substr({moment}, 20) AS REAL))"


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

    @property
    def run(self) -> float:
        """Which run of the job this is: when its latest re-analysis started (0: its first run).
        A run's chord errback carries it, so that the errback of a run that failed while some of
        its segments still waited (it comes once they ran) fails no re-analysis begun meanwhile."""
        return (self.timing or {}).get("run_started", 0.0)

    @hybrid_property
    def run_started_at(self) -> float:
        """When the job's latest run started (unix s): its latest re-analysis's start
        (``timing.run_started``), else its submission. What a run is timed from, by the stitch
        (``timing.wall_s``) and by /metrics' job histogram (in SQL: ``Job.run_started_at``)."""
        return (self.timing or {}).get("run_started", aware(self.created_at).timestamp())

    @run_started_at.inplace.expression
    @classmethod
    def _run_started_at_expression(cls):
        return func.coalesce(cls.timing["run_started"].as_float(), unix_seconds(cls.created_at))


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
    results: each new version is drawn again (only the segments whose labels changed). Made
    with the job's first results (version 0: none drawn yet); a job finished before videos
    followed results (migration 0003) has none, and keeps the video drawn when it was stitched."""
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


# The histograms kept (``Histogram.metric``), by their Prometheus names.
SEGMENT_SECONDS = "vidfarm_segment_seconds"
JOB_SECONDS = "vidfarm_job_seconds"


class Histogram(Base):
    """A /metrics histogram kept as running totals (``vidfarm_segment_seconds``,
    ``vidfarm_job_seconds``): each segment or job adds its time when it ends done
    (``core.records``), so the totals only grow. Counted from the rows at scrape time, deleting
    a job lowered them, and Prometheus reads any drop as a counter reset (``rate()`` spikes).
    Its finite buckets are ``histogram_buckets`` rows (made by the revision that made them);
    ``count`` is its ``+Inf`` bucket."""
    __tablename__ = "histograms"

    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    sum: Mapped[float] = mapped_column(Float, default=0.0)


class HistogramBucket(Base):
    """The observations of a histogram at or below ``le`` seconds, ever (cumulative, as
    Prometheus' ``_bucket``)."""
    __tablename__ = "histogram_buckets"

    metric: Mapped[str] = mapped_column(ForeignKey("histograms.metric", ondelete="CASCADE"), primary_key=True)
    le: Mapped[float] = mapped_column(Float, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
