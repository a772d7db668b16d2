"""Alembic's environment: runs the revisions on the connection ``core.schema`` hands it.

Only ``core.schema`` starts migrations (``vidfarm db upgrade``, or a process opening the
database); it opens the transaction, takes the database's lock and passes the connection in
``config.attributes["connection"]``. There is no alembic.ini and no URL here.
"""

from alembic import context

from core.schema import schema_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `vidfarm db upgrade` (core.schema), not the alembic command")
context.configure(connection=connection, target_metadata=schema_metadata(),
                  render_as_batch=True,          # SQLite changes tables by copying them
                  transactional_ddl=True)        # core.schema runs everything in one transaction
with context.begin_transaction():
    context.run_migrations()
