"""Datasets (uploaded CSV tables and images zips, with what inspecting them found), and the network
spec a model may carry (``models.design``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_datasets_owner_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_datasets"),
        sa.UniqueConstraint("owner_id", "name", name="uq_datasets_owner_id_name"),
    )
    op.create_index("ix_datasets_owner_id", "datasets", ["owner_id"])
    op.create_index("ix_datasets_name", "datasets", ["name"])
    op.create_index("ix_datasets_sha256", "datasets", ["sha256"])
    op.add_column("models", sa.Column("design", sa.JSON(), nullable=True))  # models tracked from scripts: none


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:  # batch: SQLite drops a column by copying the table
        batch.drop_column("design")
    op.drop_table("datasets")
