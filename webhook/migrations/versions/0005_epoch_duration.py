"""An epoch's wall-clock duration, as the Tracker measured it (issue 10).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("epochs", sa.Column("duration", sa.Float(), nullable=True))  # older epochs: unknown


def downgrade() -> None:
    with op.batch_alter_table("epochs") as batch:  # batch: SQLite drops a column by copying the table
        batch.drop_column("duration")
