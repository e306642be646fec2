"""The SQL schema as SQLAlchemy ORM classes; Alembic revisions in ``fitwire.webhook.migrations`` create it.

Rows stay inside :mod:`fitwire.webhook.store.sql`; each class turns itself into
an entity with ``to_entity()``. A change here needs a new Alembic revision
(``alembic revision --autogenerate`` against a database at head), or
``fitwire webhook serve`` refuses the database as out of date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fitwire.webhook.store import base

# Named constraints, so Alembic revisions can alter them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite keeps no zone, so it is put back on reading."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def to_entity(self) -> base.User:
        return base.User(
            id=self.id,
            username=self.username,
            display_name=self.display_name,
            is_admin=self.is_admin,
            created_at=self.created_at,
        )


class TokenRow(Base):
    __tablename__ = "tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InvitationRow(Base):
    __tablename__ = "invitations"

    invitation_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_models_owner_id_name"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The last run number handed out; only ever incremented inside the run-creating transaction.
    run_counter: Mapped[int] = mapped_column(Integer, default=0)
    design: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    def to_entity(self, owner: str, runs: int) -> base.Model:
        return base.Model(key=self.key, name=self.name, owner=owner, created_at=self.created_at, runs=runs,
                          design=self.design)  # type: ignore[arg-type]


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("model_key", "number", name="uq_runs_model_key_number"),)

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_key: Mapped[str] = mapped_column(ForeignKey("models.key", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    epochs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host: Mapped[str] = mapped_column(String(255))
    framework: Mapped[str] = mapped_column(String(64))
    framework_version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    final_logs: Mapped[dict[str, Any]] = mapped_column(JSON)

    def to_entity(self, owner: str) -> base.Run:
        return base.Run(
            run_id=self.run_id,
            model_key=self.model_key,
            owner=owner,
            number=self.number,
            status=self.status,  # type: ignore[arg-type]
            reason=self.reason,
            params=self.params,
            epochs=self.epochs,
            steps=self.steps,
            host=self.host,
            framework=self.framework,
            framework_version=self.framework_version,
            started_at=self.started_at,
            ended_at=self.ended_at,
            final_logs=base.logs_from_json(self.final_logs),
        )


class EpochRow(Base):
    __tablename__ = "epochs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    logs: Mapped[dict[str, Any]] = mapped_column(JSON)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)

    def to_entity(self) -> base.Epoch:
        fields = {name: getattr(self, name) for name in base.Epoch.model_fields}
        return base.Epoch(**{**fields, "logs": base.logs_from_json(self.logs)})


class JobRow(Base):
    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)  # begin_run checks the reservation
    pool: Mapped[str] = mapped_column(String(64))
    model_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    node_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The hash of the current job token (one per claim) and the broker delivery it was claimed for.
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    claimed_delivery: Mapped[int | None] = mapped_column(Integer, nullable=True)

    def to_entity(self, owner: str) -> base.Job:
        return base.Job(
            job_id=self.job_id, run_id=self.run_id, pool=self.pool, owner=owner, owner_id=self.owner_id,
            model_key=self.model_key,
            state=self.state, reason=self.reason, node_id=self.node_id, spec=self.spec,  # type: ignore[arg-type]
            created_at=self.created_at, updated_at=self.updated_at, claimed_delivery=self.claimed_delivery,
        )


class NodeRow(Base):
    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    protocol_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    telemetry: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    pools: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def to_entity(self) -> base.Node:
        return base.Node(
            node_id=self.node_id, name=self.name, created_by=self.created_by, created_at=self.created_at,
            last_seen=self.last_seen, agent_version=self.agent_version,
            protocol_version=self.protocol_version, telemetry=self.telemetry,
            pools=tuple(self.pools or ()), revoked_at=self.revoked_at,
        )


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_datasets_owner_id_name"),)

    dataset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64), index=True)  # public names are unique across owners
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    format: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    info: Mapped[dict[str, Any]] = mapped_column(JSON)

    def to_entity(self, owner: str) -> base.Dataset:
        return base.Dataset(
            dataset_id=self.dataset_id, name=self.name, owner=owner, owner_id=self.owner_id, public=self.public,
            format=self.format, size=self.size, sha256=self.sha256,  # type: ignore[arg-type]
            created_at=self.created_at, info=self.info,  # type: ignore[arg-type]
        )
