"""Live camera alerts: an alert raised as a camera's segment is processed, before its hour's
recording is a job.

Revision ID: 0006_live_alerts
Revises: 0005_recordings
Create Date: 2026-12-05

- ``alerts.job_id`` may be null: a live alert belongs to its camera (``alerts.camera``) and
  is delivered to the webhooks at once; the recording made of that hour later lists the same
  alerts under its job, without webhook deliveries (they rang live).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_live_alerts"
down_revision = "0005_recordings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot change a column's nullability in place: batch mode rebuilds the table there.
    with op.batch_alter_table("alerts") as alerts:
        alerts.alter_column("job_id", existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM alerts WHERE job_id IS NULL")
    with op.batch_alter_table("alerts") as alerts:
        alerts.alter_column("job_id", existing_type=sa.String(32), nullable=False)
