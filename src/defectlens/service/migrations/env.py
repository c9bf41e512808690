"""Alembic environment: runs on the connection :func:`defectlens.service.db.migrate` passes in."""

from __future__ import annotations

from alembic import context

from defectlens.service.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the service always passes its connection
    raise RuntimeError("run migrations through defectlens.service.db.migrate(engine)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
