"""Webhook deliveries lost with their task are sent after all: each delivery says when its next
try is due, the watchdog queues again those long overdue, and a task claims its delivery before
it POSTs (``core.alerts``: ``Alerts.claim``, ``Alerts.overdue``).

Revision ID: 0010_deliveries_next_attempt
Revises: 0009_alerts_person_erased
Create Date: 2026-12-07

- ``alert_deliveries.next_attempt_at``: every existing row gets its ``created_at``. A delivery
  still pending (its task lost before this revision, or still queued) is then overdue, and the
  watchdog queues it again a minute after the upgrade: it is POSTed late, not never. Its
  original task, if still queued, finds it claimed or delivered and sends nothing.
- ``ix_alert_deliveries_status_next_attempt_at``: the sweep's query, every minute.
- Downgrade: the index and the column go; a lost delivery stays pending again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_deliveries_next_attempt"
down_revision = "0009_alerts_person_erased"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: SQLite adds it in place, and the code reads a null as due from created_at.
    with op.batch_alter_table("alert_deliveries") as deliveries:
        deliveries.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        deliveries.create_index("ix_alert_deliveries_status_next_attempt_at", ["status", "next_attempt_at"])
    op.execute("UPDATE alert_deliveries SET next_attempt_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("alert_deliveries") as deliveries:
        deliveries.drop_index("ix_alert_deliveries_status_next_attempt_at")
        deliveries.drop_column("next_attempt_at")
