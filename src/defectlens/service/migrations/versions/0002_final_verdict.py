"""The verdict that stands (the reviewer's, else the machine's) as a column of its own, indexed.

The history's verdict filter read ``coalesce(reviewed_verdict, verdict)``, which no index serves:
on 150 000 inspections it read the whole table (149 ms for a page, growing with the table).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``final_verdict``, fill it from the two verdicts, index it."""
    op.add_column("inspections", sa.Column("final_verdict", sa.String(16), nullable=True))
    op.execute("UPDATE inspections SET final_verdict = COALESCE(reviewed_verdict, verdict)")
    op.create_index("ix_inspections_final_verdict", "inspections", ["final_verdict"])


def downgrade() -> None:
    """Drop the column and its index."""
    op.drop_index("ix_inspections_final_verdict", table_name="inspections")
    op.drop_column("inspections", "final_verdict")
