"""Models (model keys), runs (trainings) and epochs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("run_counter", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_models_owner_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key", name="pk_models"),
        sa.UniqueConstraint("owner_id", "name", name="uq_models_owner_id_name"),
    )
    op.create_index("ix_models_owner_id", "models", ["owner_id"])
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("model_key", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("framework", sa.String(64), nullable=False),
        sa.Column("framework_version", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("final_logs", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_key"], ["models.key"], name="fk_runs_model_key_models", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
        # Also the index behind "a model's runs, newest first".
        sa.UniqueConstraint("model_key", "number", name="uq_runs_model_key_number"),
    )
    op.create_table(
        "epochs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("logs", sa.JSON(), nullable=False),
        sa.Column("ended_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_epochs_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "epoch", name="pk_epochs"),
    )


def downgrade() -> None:
    op.drop_table("epochs")
    op.drop_table("runs")
    op.drop_index("ix_models_owner_id", table_name="models")
    op.drop_table("models")
