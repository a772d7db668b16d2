"""A track named anew by a re-identification: its old person's alert is withdrawn and its new
person's is raised, at the same track and frame.

Revision ID: 0008_alerts_renamed_tracks
Revises: 0007_alert_repeats
Create Date: 2026-12-06

- The unique key of a job's alerts, (job, kind, track, frame), takes the results version that
  raised the alert: a re-identification that renames a watch-listed track from one person to
  another keeps the first alert (withdrawn: people were told) beside the new one. Every
  existing row keeps its values (the old key was stricter).
- Downgrade: the old key has room for one alert per track and frame: the first raised (the
  lowest results version) stays, the later ones (a renamed track's) are deleted with their
  deliveries.
"""

from alembic import op

revision = "0008_alerts_renamed_tracks"
down_revision = "0007_alert_repeats"
branch_labels = None
depends_on = None

OLD_KEY = ["job_id", "kind", "track", "frame"]


def upgrade() -> None:
    # SQLite cannot change a constraint in place: batch mode rebuilds the table there.
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_constraint("uq_alerts_job_kind_track_frame", type_="unique")
        alerts.create_unique_constraint("uq_alerts_job_kind_track_frame_version", [*OLD_KEY, "results_version"])


def downgrade() -> None:
    # Foreign keys are off while SQLite migrates (core.schema): the deliveries and repeats go by hand.
    later = ("SELECT a.id FROM alerts AS a WHERE a.job_id IS NOT NULL AND EXISTS (SELECT 1 FROM alerts AS earlier "
             "WHERE earlier.job_id = a.job_id AND earlier.kind = a.kind AND earlier.track = a.track "
             "AND earlier.frame = a.frame AND (earlier.results_version < a.results_version "
             "OR earlier.results_version = a.results_version AND earlier.id < a.id))")
    op.execute(f"DELETE FROM alert_deliveries WHERE alert_id IN ({later})")
    op.execute(f"UPDATE alerts SET repeat_of = NULL WHERE repeat_of IN ({later})")
    op.execute(f"DELETE FROM alerts WHERE id IN (SELECT id FROM ({later}) AS doomed)")
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_constraint("uq_alerts_job_kind_track_frame_version", type_="unique")
        alerts.create_unique_constraint("uq_alerts_job_kind_track_frame", OLD_KEY)
