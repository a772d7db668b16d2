"""People search, alerts that reach people, password resets.

Revision ID: 0004_review
Revises: 0003_videos_and_erasures
Create Date: 2026-11-20

- ``appearances``: one row per (job, track) of each job's latest results, with the track's
  face crop; filled when results are published. Jobs finished before this revision are not
  indexed until their results are published again (a re-identification or a re-analysis).
- ``alerts`` and ``alert_deliveries``: alerts as raised, and their webhook deliveries. Alerts
  of earlier jobs are not copied in (nobody would be told of them now).
- ``users.must_change_password`` (false for every existing user): set by an admin's reset.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_review"
down_revision = "0003_videos_and_erasures"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "appearances",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("track", sa.Integer(), primary_key=True),
        sa.Column("identity_id", sa.Integer(), sa.ForeignKey("identities.id", ondelete="CASCADE")),
        sa.Column("recorded_at", Moment, nullable=False),
        sa.Column("first_frame", sa.Integer(), nullable=False),
        sa.Column("last_frame", sa.Integer(), nullable=False),
        sa.Column("first_t", sa.Float(), nullable=False),
        sa.Column("last_t", sa.Float(), nullable=False),
        sa.Column("results_version", sa.Integer(), nullable=False),
        sa.Column("thumbnail_frame", sa.Integer()),
        sa.Column("thumbnail", sa.LargeBinary()))
    op.create_index("ix_appearances_identity_recorded", "appearances", ["identity_id", "recorded_at"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("camera", sa.String(64)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("track", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("identity_id", sa.Integer(), sa.ForeignKey("identities.id", ondelete="SET NULL")),
        sa.Column("detail", sa.Text()),
        sa.Column("results_version", sa.Integer(), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        sa.Column("raised_at", Moment, nullable=False),
        sa.UniqueConstraint("job_id", "kind", "track", "frame", name="uq_alerts_job_kind_track_frame"))
    op.create_index("ix_alerts_job_id", "alerts", ["job_id"])
    op.create_index("ix_alerts_raised_at", "alerts", ["raised_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("delivered_at", Moment))
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])
    # A plain ADD COLUMN (SQLite allows it with a default): a batch copy of the table would
    # drop the AUTOINCREMENT that 0002 gave it.
    op.add_column("users", sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
