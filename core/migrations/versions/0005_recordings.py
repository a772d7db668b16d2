"""Camera recordings: jobs made from a camera's analysed stream, one per hour.

Revision ID: 0005_recordings
Revises: 0004_review
Create Date: 2026-12-05

- ``jobs.camera_id`` (null for uploads, so for every existing job): the camera a recording
  came from; indexed, for the retention sweep and the camera's recordings.
- ``jobs.recorded_at`` (null for uploads): when the recording's first frame was captured;
  retention counts from it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_recordings"
down_revision = "0004_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: a plain ALTER TABLE on SQLite and PostgreSQL alike, no table rebuilt.
    op.add_column("jobs", sa.Column("camera_id", sa.String(32), nullable=True))
    op.add_column("jobs", sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_jobs_camera_id", "jobs", ["camera_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_camera_id", "jobs")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("recorded_at")
        jobs.drop_column("camera_id")
