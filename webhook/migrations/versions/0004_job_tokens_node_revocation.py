"""Job tokens scoped to their job, run-id reservations, node pools and node-token revocation (issue 11).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:  # batch: SQLite cannot add a unique column in place
        batch.add_column(sa.Column("token_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_delivery", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_jobs_token_hash", ["token_hash"])
    op.create_index("ix_jobs_run_id", "jobs", ["run_id"])
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("pools", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("revoked_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("pools")
    op.drop_index("ix_jobs_run_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_token_hash", type_="unique")
        batch.drop_column("claimed_delivery")
        batch.drop_column("token_hash")
