"""Videos drawn from results versions, and erasures of people.

Revision ID: 0003_videos_and_erasures
Revises: 0002_user_sessions
Create Date: 2026-12-04

Two new tables, nothing changed in the others. ``job_videos``: which results version a job's
annotated video shows (the video is drawn from the results, and again for each new version).
A job finished before this revision has no row: its video, drawn when it was stitched, is kept
until its next results version. ``erasures``: a person's erasure, its progress and its report.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_videos_and_erasures"
down_revision = "0002_user_sessions"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_videos",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float()),
        sa.Column("rendered_at", Moment),
        sa.Column("error", sa.Text()))
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64)),
        sa.Column("vectors", sa.LargeBinary()),
        sa.Column("gallery_fingerprint", sa.String(64), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.Column("finished_at", Moment))
