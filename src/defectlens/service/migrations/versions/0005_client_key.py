"""The key a client gives an upload (``Idempotency-Key``), so a retried upload is answered with its first result.

A line's gateway that timed out on an upload and sent it again had stored the part twice: the first request had been
committed after the client gave up (integration probe 2026-12-06). Rows written before this revision have none (NULL);
the index is unique, and NULLs do not clash in it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``client_key`` column and its unique index."""
    op.add_column("inspections", sa.Column("client_key", sa.String(200), nullable=True))
    op.create_index("ix_inspections_client_key", "inspections", ["client_key"], unique=True)


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_inspections_client_key", table_name="inspections")
    op.drop_column("inspections", "client_key")
