"""The schema as vidfarm 0.1 made it with ``create_all`` (before migrations existed).

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-01

A database made before migrations has these tables but no ``alembic_version``: upgrading it
runs this revision, which, like the ``create_all`` it replaces, creates only the tables that
are missing, so such a database continues from here with its rows untouched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def _create_missing(name: str, *columns, indexes: tuple[str, ...] = ()) -> None:
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *columns)
    for column in indexes:
        op.create_index(f"ix_{name}_{column}", name, [column])


def upgrade() -> None:
    _create_missing(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source_name", sa.String(255), nullable=False),
        sa.Column("source_key", sa.String(512), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("chunks_total", sa.Integer(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("media", sa.JSON()),
        sa.Column("timing", sa.JSON(), nullable=False),
        sa.Column("results_version", sa.Integer(), nullable=False),
        sa.Column("gallery_fingerprint", sa.String(64)),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.Column("finished_at", Moment),
        indexes=("status",))
    _create_missing(
        "segments",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("index", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_frame", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("pts", sa.JSON(), nullable=False),
        sa.Column("end_pts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("worker", sa.String(255)),
        sa.Column("seconds", sa.Float()),
        sa.Column("started_at", Moment),
        sa.Column("finished_at", Moment),
        sa.Column("attempts", sa.Integer(), nullable=False))
    _create_missing(
        "identities",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("watchlist", sa.Boolean(), nullable=False),
        sa.Column("created_at", Moment, nullable=False))
    _create_missing(
        "face_embeddings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("identity_id", sa.Integer(), sa.ForeignKey("identities.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("crop_key", sa.String(512)),
        sa.Column("created_at", Moment, nullable=False),
        indexes=("identity_id",))
    _create_missing(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", Moment, nullable=False))
    _create_missing(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", Moment, nullable=False),
        indexes=("user_id",))
