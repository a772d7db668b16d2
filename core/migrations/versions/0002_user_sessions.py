"""Users: a session token each (rotated to end every session at once) and ids never reused.

Revision ID: 0002_user_sessions
Revises: 0001_baseline
Create Date: 2026-11-01

Every user gets a fresh random token; cookies of 0.1 named a user by id alone, so each is
refused after this upgrade (everyone logs in once more, on purpose). API tokens are kept. On
SQLite the table is rebuilt with AUTOINCREMENT (its sqlite_sequence starts at the highest id
kept); PostgreSQL's SERIAL sequence never gave an id twice already.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002_user_sessions"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("session_token", sa.String(64), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("session_token", sa.String))
    bind = op.get_bind()
    for user_id in bind.execute(sa.select(users.c.id)).scalars().all():
        bind.execute(users.update().where(users.c.id == user_id).values(session_token=secrets.token_urlsafe(32)))
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table("users", recreate="always" if sqlite else "auto",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("session_token", existing_type=sa.String(64), nullable=False)
