"""The records' schema and its upgrades (Alembic revisions in ``core/migrations/versions``).

Every schema change is a revision there, in the same commit as the model change. A process
that opens the database upgrades it first (``Records.create_schema``), unless
``db_auto_upgrade`` is off (Kubernetes: a Helm hook Job runs ``vidfarm db upgrade`` before the
pods start, and the pods only check). Many processes may open an old or new database at
once (gunicorn's workers, Celery workers): the upgrade runs in one transaction that first
takes the database's lock (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``, the
write lock), so one process migrates while the others wait, then find it done. On SQLite the
DDL is transactional too: a failed upgrade leaves the database as it was.

There is no downgrade: take a backup before upgrading (README, "Upgrading").
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text

from core.errors import SchemaOutOfDate

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any fixed number: PostgreSQL advisory locks are named by a bigint.
_PG_LOCK = 0x76696466_61726d


def schema_metadata() -> MetaData:
    """Every table vidfarm keeps: the records' and the accounts' models share one metadata."""
    import core.accounts  # noqa: F401  (registers users and api_tokens)
    import core.alerts  # noqa: F401  (alerts, alert_deliveries)
    import core.appearances  # noqa: F401  (appearances)
    from core.models import Base

    return Base.metadata


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head() -> str:
    """The revision this code needs."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def history() -> list[tuple[str, str | None, str]]:
    """(revision, the one it follows, its first doc line), oldest first."""
    script = ScriptDirectory.from_config(_config())
    return [(rev.revision, rev.down_revision, (rev.doc or "").splitlines()[0] if rev.doc else "")
            for rev in reversed(list(script.walk_revisions()))]


def newer_than_known(revision: str | None) -> str | None:
    """Why this code cannot open a database at ``revision`` that none of its revisions is (a
    newer vidfarm upgraded it, and an older one runs now), or None. Alembic itself only says
    "Can't locate revision", in a traceback."""
    if revision is None or revision in {rev for rev, _follows, _doc in history()}:
        return None
    return (f"the database is at revision {revision}, newer than this vidfarm knows (it needs {head()}): "
            f"run the vidfarm that upgraded it, or put back the backup taken before that upgrade "
            f"(README, \"Upgrading\")")


def current_revision(connection: Connection) -> str | None:
    """The database's revision; None for an empty database or one made before migrations."""
    return MigrationContext.configure(connection).get_current_revision()


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return current_revision(connection)


def ensure_current(url: str, engine: Engine, upgrade_allowed: bool = True) -> str | None:
    """Bring the database to ``head()`` (or, not allowed to, refuse unless it is there).
    Returns the revision it was at when an upgrade ran, else ``head()``; the common case
    (already current) is one small query."""
    if current(engine) == head():
        return head()
    if problem := newer_than_known(current(engine)):
        raise SchemaOutOfDate(problem)
    if not upgrade_allowed:
        raise SchemaOutOfDate(f"the database is at revision {current(engine) or 'none'}, this vidfarm needs "
                              f"{head()}: run `vidfarm db upgrade` first")
    return upgrade(url)


def upgrade(url: str, target: str = "head") -> str | None:
    """Upgrade the database at ``url`` to ``target`` (tests name an older revision), holding
    its lock; returns the revision it was at before (None: empty, or made before migrations)."""
    engine = _migration_engine(url)
    try:
        for attempt in range(60):
            try:
                with engine.begin() as connection:
                    if connection.dialect.name == "postgresql":
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
                    before = current_revision(connection)
                    if problem := newer_than_known(before):
                        raise SchemaOutOfDate(problem)
                    if before != head():
                        command.upgrade(_config(connection), target)
                    return before
            except Exception as exc:    # SQLite: another process held the write lock past the timeout
                if "database is locked" not in str(exc) or attempt == 59:
                    raise
                time.sleep(1)
    finally:
        engine.dispose()


def _migration_engine(url: str) -> Engine:
    """An engine of its own for migrations. SQLite: foreign keys stay off (rebuilding a table
    must not cascade deletes into the tables that refer to it), and every transaction starts
    with BEGIN IMMEDIATE, which both takes the write lock and makes the DDL transactional
    (pysqlite by itself would run CREATE and ALTER outside any transaction)."""
    if not url.startswith("sqlite"):
        return create_engine(url)
    engine = create_engine(url, connect_args={"timeout": 60, "isolation_level": None})

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    return engine
