"""Where a part judged good still peaks above the image threshold, as data.

The report said it in words ("at the upper left (63.1)") and the overlay ringed it, but the API had
no coordinates, where `inspect`'s JSON has them: a client marking the spot on its own view of the
image had to parse the words. Rows written before this revision have none (NULL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``hot_spot`` column ([x, y] in image pixels)."""
    op.add_column("inspections", sa.Column("hot_spot", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    op.drop_column("inspections", "hot_spot")
