"""Repeated alerts: an alert about a person already rung about shortly before is recorded as a
repeat of that one and not delivered.

Revision ID: 0007_alert_repeats
Revises: 0006_live_alerts
Create Date: 2026-12-06

- ``alerts.repeat_of`` (null for every existing alert: each of them rang): the alert it
  repeats (``ON DELETE SET NULL``); indexed, to fold a page's repeats under theirs.
- ``alerts.captured_at`` (null for every existing alert): a live alert's capture time, which
  its repeats count from. A live alert of before has none, so nothing later folds under it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_alert_repeats"
down_revision = "0006_live_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot add a foreign key to a table in place: batch mode rebuilds it there
    # (PostgreSQL: plain ALTER TABLE). Nullable columns: every existing row keeps its values.
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("repeat_of", sa.Integer(), nullable=True))
        alerts.add_column(sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True))
        alerts.create_foreign_key("fk_alerts_repeat_of_alerts", "alerts", ["repeat_of"], ["id"], ondelete="SET NULL")
        alerts.create_index("ix_alerts_repeat_of", ["repeat_of"])


def downgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_index("ix_alerts_repeat_of")
        alerts.drop_constraint("fk_alerts_repeat_of_alerts", type_="foreignkey")
        alerts.drop_column("captured_at")
        alerts.drop_column("repeat_of")
