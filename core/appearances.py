"""The appearances index: every track of every recording's latest results, for people search.

One row per (job, track), rewritten whenever a job's results are published (stitch,
re-identification, erasure), so it always follows the latest version. A row names its person
by identity id, never by name: a rename needs no rewrite, and deleting the person deletes
their rows with the face crops in them (ON DELETE CASCADE). The face crop of a track (a small
JPEG) is kept in the row itself, so it goes with the row and nothing else holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, LargeBinary, delete, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.models import Base, Identity, Job, iso_utc

if TYPE_CHECKING:     # only named in annotations: core.records opens the schema, which imports this
    from core.records import Records


class Appearance(Base):
    __tablename__ = "appearances"
    __table_args__ = (Index("ix_appearances_identity_recorded", "identity_id", "recorded_at"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    track: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), default=None)
    # When the recording was made (an upload: when it arrived), for "newest first".
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_frame: Mapped[int] = mapped_column(Integer)
    last_frame: Mapped[int] = mapped_column(Integer)
    first_t: Mapped[float] = mapped_column(Float)
    last_t: Mapped[float] = mapped_column(Float)
    results_version: Mapped[int] = mapped_column(Integer)        # the version this row follows
    thumbnail_frame: Mapped[int | None] = mapped_column(Integer, default=None)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)   # JPEG face crop


@dataclass
class TrackAppearance:
    """What the index keeps of one track (``identity`` by name, as results say it)."""
    track: int
    identity: str | None
    first_frame: int
    last_frame: int
    first_t: float
    last_t: float
    thumbnail_frame: int | None = None
    thumbnail: bytes | None = None


def identity_ids(s: Session, names: set[str]) -> dict[str, int]:
    """The ids of the enrolled people among ``names``."""
    return dict(s.execute(select(Identity.name, Identity.id).where(Identity.name.in_(names))).all()) if names else {}


def replace_rows(s: Session, job_id: str, version: int, tracks: list[TrackAppearance], shared_gallery: bool) -> bool:
    """Make the job's rows those of results ``version`` (in the transaction that publishes
    it), unless the job is at another version (a later one was published: its rows win);
    then nothing changes and False. Names map to the shared gallery's identities only when
    the job was matched against it (a job's own gallery may use a name an enrolled person has)."""
    job = s.execute(select(Job.results_version, Job.created_at, Job.recorded_at)
                    .where(Job.id == job_id).with_for_update()).first()
    if job is None or job.results_version != version:
        return False
    ids = identity_ids(s, {t.identity for t in tracks if t.identity} if shared_gallery else set())
    s.execute(delete(Appearance).where(Appearance.job_id == job_id))
    if tracks:
        s.execute(insert(Appearance), [
            {"job_id": job_id, "track": t.track, "identity_id": ids.get(t.identity),
             # a camera recording: when it was captured; an upload: when it came
             "recorded_at": job.recorded_at or job.created_at, "first_frame": t.first_frame, "last_frame": t.last_frame,
             "first_t": t.first_t, "last_t": t.last_t, "results_version": version,
             "thumbnail_frame": t.thumbnail_frame, "thumbnail": t.thumbnail} for t in tracks])
    return True


class Appearances:
    """The index in the records database (its table is in the records' migrations)."""

    def __init__(self, records: Records):
        self.records = records

    def thumbnails(self, job_id: str) -> dict[int, tuple[int | None, bytes | None]]:
        """Per track of the job: (frame, JPEG) of the face crop kept, to reuse when a new
        version keeps the track (a re-identification changes names, never boxes)."""
        with self.records.session() as s:
            rows = s.execute(select(Appearance.track, Appearance.thumbnail_frame, Appearance.thumbnail)
                             .where(Appearance.job_id == job_id))
            return {track: (frame, jpeg) for track, frame, jpeg in rows}

    def replace(self, job_id: str, version: int, tracks: list[TrackAppearance], shared_gallery: bool) -> bool:
        with self.records.session() as s:
            return replace_rows(s, job_id, version, tracks, shared_gallery)

    def of_identity(self, name: str, limit: int, offset: int = 0) -> list[dict] | None:
        """A page of the person's appearances, newest recording first (then latest in it);
        None when nobody has that name."""
        with self.records.session() as s:
            identity_id = s.scalar(select(Identity.id).where(Identity.name == name))
            if identity_id is None:
                return None
            rows = s.execute(
                select(Appearance.job_id, Appearance.track, Appearance.first_t, Appearance.last_t,
                       Appearance.recorded_at, Appearance.thumbnail.is_not(None), Job.source_name)
                .join(Job, Job.id == Appearance.job_id)
                .where(Appearance.identity_id == identity_id)
                .order_by(Appearance.recorded_at.desc(), Appearance.job_id, Appearance.first_t.desc())
                .limit(limit).offset(offset))
            return [{"job": job, "track": track, "first_t": first_t, "last_t": last_t,
                     "recorded_at": iso_utc(recorded), "has_thumbnail": bool(has),
                     "source_name": source} for job, track, first_t, last_t, recorded, has, source in rows]

    def of_job(self, job_id: str) -> dict[int, dict]:
        """Per track of the job: its row (without the JPEG)."""
        with self.records.session() as s:
            rows = s.execute(select(Appearance.track, Appearance.identity_id, Appearance.thumbnail.is_not(None))
                             .where(Appearance.job_id == job_id))
            return {track: {"identity_id": identity, "has_thumbnail": bool(has)} for track, identity, has in rows}

    def thumbnail(self, job_id: str, track: int) -> bytes | None:
        with self.records.session() as s:
            return s.scalar(select(Appearance.thumbnail).where(Appearance.job_id == job_id,
                                                               Appearance.track == track))
