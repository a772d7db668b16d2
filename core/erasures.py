"""Erasure records: a person's deletion as it happens, and what it removed.

``start`` deletes the person from the gallery at once (no job matches them from then on) and
keeps, in the erasure's own row, only what finding their traces needs (name, embeddings);
``finish`` clears that, makes the database forget the deleted bytes (``forget_deleted``),
and only then marks the erasure done.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, text, update

from core.gallery_records import delete_person
from core.models import Erasure, FaceEmbedding, Identity, Job
from core.records import Records


@dataclass(frozen=True)
class Started:
    erasure_id: str
    crop_keys: list[str]
    embeddings: int


@dataclass(frozen=True)
class JobRef:
    id: str
    status: str
    options: dict
    results_version: int
    gallery_fingerprint: str | None


class Erasures:
    def __init__(self, records: Records):
        self.records = records

    def start(self, name: str) -> Started | None:
        """Delete the identity named ``name`` with its embeddings and record an erasure, in
        one transaction. None when there is no such identity."""
        # Read first: an enrolment in between only makes more jobs look worth searching.
        fingerprint = self.records.gallery_fingerprint()
        with self.records.session() as s:
            identity = s.scalar(select(Identity).where(Identity.name == name))
            if identity is None:
                return None
            rows = s.execute(select(FaceEmbedding.vector, FaceEmbedding.crop_key)
                             .where(FaceEmbedding.identity_id == identity.id).order_by(FaceEmbedding.id)).all()
            erasure = Erasure(identity_id=identity.id, name=identity.name, status="queued",
                              vectors=b"".join(vector for vector, _ in rows), gallery_fingerprint=fingerprint,
                              report={"identity_id": identity.id, "embeddings_removed": len(rows)})
            s.add(erasure)
            delete_person(s, identity)
            s.flush()
            return Started(erasure.id, [key for _, key in rows if key], len(rows))

    def get(self, erasure_id: str) -> Erasure | None:
        with self.records.session() as s:
            return s.get(Erasure, erasure_id)

    def set(self, erasure_id: str, **fields) -> None:
        with self.records.session() as s:
            s.execute(update(Erasure).where(Erasure.id == erasure_id).values(**fields))

    def finish(self, erasure_id: str, report: dict, wait_s: float = 60.0) -> dict:
        """The erasure is done: forget whom it looked for, make the database forget the
        deleted bytes, keep what it removed and how the database forgot (``database``).
        Marked done last: whoever reads "done" reads the whole report. Whom it looked for
        goes with the report first: an erasure found so (its task died in here, or the
        database refused) is only finished when it runs again (``tasks.erasure``)."""
        report = {key: value for key, value in report.items() if key != "waiting_for_database"}
        self.set(erasure_id, name=None, vectors=None, report=report)
        try:
            database = self.forget_deleted(wait_s)
        except DeadRowsHeld as held:       # the report says why it is not done yet
            self.set(erasure_id, report={**report, "waiting_for_database": str(held)})
            raise
        report = {**report, "database": database}
        self.set(erasure_id, status="done", report=report, finished_at=datetime.now(timezone.utc))
        return report

    def unfinished(self, before: datetime) -> list[str]:
        """Erasures that have not ended and not moved since ``before`` (their task was lost:
        a running one notes its progress at least every half minute)."""
        with self.records.session() as s:
            return list(s.scalars(select(Erasure.id).where(Erasure.status != "done", Erasure.updated_at < before)))

    def jobs_before(self, moment: datetime) -> list[JobRef]:
        """Every job submitted before ``moment``: what an erasure looks through."""
        with self.records.session() as s:
            rows = s.execute(select(Job.id, Job.status, Job.options, Job.results_version, Job.gallery_fingerprint)
                             .where(Job.created_at <= moment).order_by(Job.created_at)).all()
        return [JobRef(*row) for row in rows]

    def forget_deleted(self, wait_s: float = 60.0) -> str:
        """Make the database drop the bytes of deleted rows; says what was done. SQLite runs
        with ``secure_delete`` (deleted content is zeroed in the file), but changed pages
        sit in the write-ahead log until a checkpoint: copy them into the file and truncate
        the log. PostgreSQL keeps dead tuples in their pages until the space is reused (a
        plain VACUUM only marks it free): VACUUM FULL writes the tables anew without them."""
        engine = self.records.engine
        if engine.dialect.name == "sqlite":
            return _checkpoint_sqlite(engine)
        # Every table a person's rows were deleted from or changed in: appearances held a face
        # crop of each of their tracks (gone with them, ON DELETE CASCADE).
        tables = ("identities", "face_embeddings", "appearances", "erasures", "jobs")
        return _vacuum_full_postgresql(engine, tables, wait_s)


class DeadRowsHeld(RuntimeError):
    """PostgreSQL kept deleted rows an open transaction may still read: the erasure is not
    over until it can drop them."""


_KEPT = re.compile(r"(\d+) dead row versions cannot be removed yet")


def _vacuum_full_postgresql(engine, tables: tuple[str, ...], wait_s: float) -> str:
    """VACUUM FULL writes a table anew without its dead rows, but keeps any that a transaction
    still open may read (its snapshot was taken before the delete): a long report query, or
    any transaction left open, anywhere in the database, would keep the person's bytes in the
    new file. VERBOSE says how many it kept: vacuum those tables again, once a second, until
    none is kept; after ``wait_s``, raise ``DeadRowsHeld`` naming who holds them."""
    deadline = time.monotonic() + wait_s
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        driver = connection.connection.driver_connection     # psycopg: VERBOSE comes as notices
        details: list[str] = []

        def note(diagnostic) -> None:    # read now: the diagnostic is freed after the call
            details.append(diagnostic.message_detail or "")
        driver.add_notice_handler(note)
        try:
            pending = list(tables)
            while True:
                kept = {}
                for table in pending:
                    details.clear()
                    connection.execute(text(f"VACUUM (FULL, VERBOSE) {table}"))
                    count = sum(int(n) for detail in details for n in _KEPT.findall(detail))
                    if count:
                        kept[table] = count
                if not kept:
                    return f"{engine.dialect.name}: VACUUM FULL {', '.join(tables)}"
                if time.monotonic() >= deadline:
                    raise DeadRowsHeld(_held_message(connection, kept, wait_s))
                pending = list(kept)
                time.sleep(1.0)
        finally:
            driver.remove_notice_handler(note)


def _held_message(connection, kept: dict[str, int], wait_s: float) -> str:
    holders = connection.execute(text(
        "SELECT pid, state, xact_start FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start")).all()
    rows = ", ".join(f"{table}: {n}" for table, n in kept.items())
    who = "; ".join(f"pid {pid} ({state}, since {start:%Y-%m-%d %H:%M:%S})" for pid, state, start in holders)
    return (f"PostgreSQL still keeps deleted rows ({rows}) after {wait_s:.0f} s for transactions "
            f"open since before the erasure: {who or 'none seen now'}")


def _checkpoint_sqlite(engine, attempts: int = 50) -> str:
    """TRUNCATE waits for readers (the busy timeout) and reports busy when one still holds an
    old snapshot; try again until the log is empty."""
    import time

    with engine.connect() as connection:
        for _ in range(attempts):
            busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if not busy:
                return "sqlite: secure_delete on; write-ahead log checkpointed and truncated"
            time.sleep(0.1)
    return "sqlite: secure_delete on; write-ahead log still in use by a reader (checkpointed partly)"
