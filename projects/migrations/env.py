"""Alembic environment: runs on the connection `projects.schema` hands over, never on a URL."""

from alembic import context

from projects.models import Base

connection = context.config.attributes["connection"]
# Batch mode rebuilds tables for the ALTERs SQLite lacks.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
