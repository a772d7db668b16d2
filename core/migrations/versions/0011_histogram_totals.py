"""/metrics' histograms kept as running totals, so that deleting a job no longer lowers them.

Revision ID: 0011_histogram_totals
Revises: 0010_deliveries_next_attempt
Create Date: 2026-12-07

- ``histograms`` (metric, count, sum) and ``histogram_buckets`` (metric, le, count): each
  segment or job that ends done adds to them (``core.records``); nothing takes away. Counted
  from the rows at each scrape, ``vidfarm_segment_seconds`` and ``vidfarm_job_seconds`` went
  down when a job was deleted, which Prometheus reads as a counter reset (``rate()`` spikes).
- The buckets are this revision's rows (the bounds /metrics had); other bounds would be a
  revision of their own.
- The totals start from what the records hold now, counted as /metrics counted them (every
  segment with its time; every done job from its latest run's start), so the series go on
  from where they were, without a reset at the upgrade.
- Downgrade: the two tables go (/metrics of the release before counts the rows again).
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0011_histogram_totals"
down_revision = "0010_deliveries_next_attempt"
branch_labels = None
depends_on = None

BUCKETS = {"vidfarm_segment_seconds": (1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
           "vidfarm_job_seconds": (5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)}

_segments = sa.table("segments", sa.column("seconds", sa.Float()))
_jobs = sa.table("jobs", sa.column("status", sa.String()), sa.column("timing", sa.JSON()),
                 sa.column("created_at", sa.DateTime(timezone=True)),
                 sa.column("finished_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    histograms = op.create_table(
        "histograms",
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False))
    buckets = op.create_table(
        "histogram_buckets",
        sa.Column("metric", sa.String(64), sa.ForeignKey("histograms.metric", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("le", sa.Float(), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False))
    for metric, (count, total, at_or_below) in (("vidfarm_segment_seconds", _segment_totals()),
                                                ("vidfarm_job_seconds", _job_totals())):
        op.bulk_insert(histograms, [{"metric": metric, "count": count, "sum": total}])
        op.bulk_insert(buckets, [{"metric": metric, "le": float(le), "count": n}
                                 for le, n in zip(BUCKETS[metric], at_or_below)])


def _segment_totals() -> tuple[int, float, list[int]]:
    """Every segment with its time (a camera recording's segments have none), counted by the
    database in one pass: a farm may keep millions."""
    seconds = _segments.c.seconds
    row = op.get_bind().execute(sa.select(
        sa.func.count(seconds), sa.func.coalesce(sa.func.sum(seconds), 0.0),
        *[sa.func.coalesce(sa.func.sum(sa.case((seconds <= le, 1), else_=0)), 0)
          for le in BUCKETS["vidfarm_segment_seconds"]])).one()
    return int(row[0]), float(row[1]), [int(n) for n in row[2:]]


def _job_totals() -> tuple[int, float, list[int]]:
    """The done jobs, each timed in Python (its start is in the ``timing`` JSON), read a batch
    at a time: a farm keeps far fewer jobs than segments."""
    bounds = BUCKETS["vidfarm_job_seconds"]
    count, total, at_or_below = 0, 0.0, [0] * len(bounds)
    for value in _job_seconds():
        count, total = count + 1, total + value
        at_or_below = [n + (value <= le) for n, le in zip(at_or_below, bounds)]
    return count, total, at_or_below


def _job_seconds():
    """Each done job from its latest run's start (``timing.run_started``, else its creation)."""
    rows = op.get_bind().execute(
        sa.select(_jobs.c.timing, _jobs.c.created_at, _jobs.c.finished_at)
        .where(_jobs.c.status == "done", _jobs.c.finished_at.is_not(None)).execution_options(stream_results=True))
    for timing, created, finished in rows:
        started = (timing or {}).get("run_started")
        yield max(0.0, _unix(finished) - (_unix(created) if started is None else started))


def _unix(moment: datetime) -> float:
    # Stored in UTC; SQLite hands it back naive.
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def downgrade() -> None:
    op.drop_table("histogram_buckets")
    op.drop_table("histograms")
