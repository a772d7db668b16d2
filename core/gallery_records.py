"""The gallery's rows in the records: enrol, list, rename, flag, delete; and the snapshot a
job is matched against, with its fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.alerts import forget_person
from core.errors import TrackEnrolled
from core.models import FaceEmbedding, Identity, Job, iso_utc


def delete_person(s: Session, identity: Identity) -> None:
    """The identity and its embeddings; their alerts stay, nobody's (``core.alerts.forget_person``)."""
    s.execute(delete(FaceEmbedding).where(FaceEmbedding.identity_id == identity.id))
    forget_person(s, identity.id)
    s.delete(identity)


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
            return _add_embeddings(s, name, vectors, sources, crop_keys)

    def add_track_embedding(self, job_id: str, track: int, name: str, vector: bytes, source: str,
                            crop_key: str | None) -> int:
        """Enrol one track of a job (its pooled embedding) under ``name``, unless that very
        embedding is enrolled already: ``TrackEnrolled`` names whom. Until the job's
        re-identification publishes, its results still call the track unknown, so they cannot
        tell; the gallery can."""
        with self.session() as s:
            # A write first: enrolments from one job go one at a time (SQLite's write lock,
            # PostgreSQL's lock on the job's row), each seeing the embeddings of those before.
            s.execute(update(Job).where(Job.id == job_id).values(updated_at=Job.updated_at))
            owner = s.scalar(select(Identity.name).join(FaceEmbedding).where(FaceEmbedding.vector == vector).limit(1))
            if owner is not None:
                raise TrackEnrolled(job_id, track, owner)
            return _add_embeddings(s, name, [vector], [source], [crop_key])

    def identities(self, name: str | None = None) -> list[dict]:
        """Every identity (or only the one named) with its embedding count and a face crop."""
        query = (select(Identity.id, Identity.name, Identity.created_at, Identity.watchlist,
                        func.count(FaceEmbedding.id), func.min(FaceEmbedding.crop_key))
                 .join(FaceEmbedding, isouter=True).group_by(Identity.id).order_by(Identity.name))
        if name is not None:
            query = query.where(Identity.name == name)
        with self.session() as s:
            rows = s.execute(query)
            return [{"id": i, "name": n, "created_at": iso_utc(c), "watchlist": w,
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
            delete_person(s, identity)
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
            return [{"id": i, "source": source, "crop": crop, "created_at": iso_utc(created)}
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


def _add_embeddings(s, name: str, vectors: list[bytes], sources: list[str], crop_keys: list[str | None]) -> int:
    identity = s.scalar(select(Identity).where(Identity.name == name))
    if identity is None:
        identity = Identity(name=name)
        s.add(identity)
    for vector, source, crop_key in zip(vectors, sources, crop_keys):
        identity.embeddings.append(FaceEmbedding(vector=vector, source=source, crop_key=crop_key))
    s.flush()
    return len(identity.embeddings)
