"""An erased person's alerts are nobody's for good: a fever or no-mask alert of theirs no
longer takes the name a later results version gives its track, as an unknown face's does.

Revision ID: 0009_alerts_person_erased
Revises: 0008_alerts_renamed_tracks
Create Date: 2026-12-06

- ``alerts.person_erased`` (false for every existing row): set, with the identity unset, in the
  transaction that erases the person (``core.alerts.forget_person``). An alert of a person
  erased before this revision cannot be told from an unknown face's (both have no identity):
  it stays false, and a fever or no-mask alert of theirs may still take a name as before.
  Their watchlist alerts never did (a watchlist alert always had a person).
- Downgrade: the column goes; an erased person's fever and no-mask alerts read as unknown
  faces' again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_alerts_person_erased"
down_revision = "0008_alerts_renamed_tracks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A NOT NULL column needs a value for the rows there: false (nothing says otherwise).
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("person_erased", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("person_erased")
