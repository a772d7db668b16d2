"""Erasure records: a person's deletion as it happens, and what it removed.

``start`` deletes the person from the gallery at once (no job matches them from then on) and
keeps, in the erasure's own row, only what finding their traces needs (name, embeddings);
``finish`` clears that, makes the database forget the deleted bytes (``forget_deleted``),
and only then marks the erasure done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

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

    def finish(self, erasure_id: str, report: dict, wait_s: float = 10.0) -> dict:
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

    def forget_deleted(self, wait_s: float = 10.0) -> str:
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
    """PostgreSQL cannot drop the deleted rows yet (a transaction open since before the
    erasure may still read them, or holds a table's lock): the erasure is not over."""


LOCK_WAIT_MS = 2000      # VACUUM FULL needs its table alone: queued longer, every query of the farm queues behind it


def _vacuum_full_postgresql(engine, tables: tuple[str, ...], wait_s: float) -> str:
    """VACUUM FULL writes a table anew without its dead rows, but copies any that a transaction
    open since before the deletion may still read (a long report query, a session left idle in
    transaction, anywhere in the database): the person's bytes would stay, in the new file. So
    wait until every transaction that began before now (after the erasure's last change) has
    ended, then rewrite each table, waiting at most ``LOCK_WAIT_MS`` for its lock (a table still
    locked is tried again). After ``wait_s``, raise ``DeadRowsHeld`` naming who holds them."""
    deadline = time.monotonic() + wait_s
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        since = connection.execute(text("SELECT clock_timestamp()")).scalar()
        connection.execute(text(f"SET lock_timeout = {LOCK_WAIT_MS}"))
        pending = list(tables)
        while True:
            older = _transactions_before(connection, since)
            if not older:
                pending = [table for table in pending if not _rewritten(connection, table)]
                if not pending:
                    return f"{engine.dialect.name}: VACUUM FULL {', '.join(tables)}"
            if time.monotonic() >= deadline:
                who = "; ".join(f"pid {pid} ({state}, since {start:%Y-%m-%d %H:%M:%S})" for pid, state, start in older)
                raise DeadRowsHeld(f"PostgreSQL cannot drop the erased rows yet after {wait_s:g} s (left: "
                                   f"{', '.join(pending)}): " + (f"transactions open since before the erasure: {who}"
                                                                if older else "their tables stay locked"))
            time.sleep(1.0)


def _transactions_before(connection, since) -> list[tuple]:
    """This database's sessions whose transaction began before ``since`` and may still read
    rows deleted since (a snapshot held, or a transaction id: either holds the rows back)."""
    return connection.execute(text(
        "SELECT pid, state, xact_start FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND xact_start < :since "
        "AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL) ORDER BY xact_start"), {"since": since}).all()


def _rewritten(connection, table: str) -> bool:
    try:
        connection.execute(text(f"VACUUM FULL {table}"))
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == "55P03":      # lock_not_available: LOCK_WAIT_MS passed
            return False
        raise
    return True


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
