"""Which defectlens and which fit of the model made each inspection.

`inspect`'s JSON has recorded both since 2026-12-04, the service's rows did not: a model refitted under the
same name, or a service upgraded, could not be told apart in a year's history. Rows written before this
revision have none (NULL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``defectlens_version``, ``model_fitted_at`` and ``model_fingerprint`` columns."""
    op.add_column("inspections", sa.Column("defectlens_version", sa.String(32), nullable=True))
    op.add_column("inspections", sa.Column("model_fitted_at", sa.String(40), nullable=True))
    op.add_column("inspections", sa.Column("model_fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop the columns."""
    for column in ("model_fingerprint", "model_fitted_at", "defectlens_version"):
        op.drop_column("inspections", column)
