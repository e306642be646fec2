"""The SQLAlchemy store: SQLite (default, embedded) and PostgreSQL (by URL).

Every public method runs in one managed session (commit on success, rollback
on any error); rows become entities before they leave. Database errors become
domain errors: a database that does not answer is :class:`Unavailable`.

Concurrency: on SQLite every writing transaction starts with ``BEGIN
IMMEDIATE``, so writers queue on the file lock (up to ``busy_timeout``) instead
of failing when a read lock would need upgrading; on PostgreSQL the run counter
is an ``UPDATE … RETURNING`` on the model's row, which serialises concurrent
``begin_run`` calls of one model and nothing else.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, delete, event, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fitwire.webhook.store import migrate
from fitwire.webhook.store.base import (
    FINISHED,
    AlreadyExists,
    Design,
    DoesNotExist,
    Epoch,
    InvalidState,
    Model,
    Run,
    RunStart,
    RunState,
    RunStatus,
    Store,
    StoreError,
    Unavailable,
    to_wire_json,
)
from fitwire.webhook.store.sql_agents import SqlAgents
from fitwire.webhook.store.sql_datasets import SqlDatasets
from fitwire.webhook.store.sql_schema import (
    EpochRow,
    JobRow,
    ModelRow,
    RunRow,
    UserRow,
)
from fitwire.webhook.store.sql_users import SqlUsers

SQLITE_BUSY_SECONDS = 30
"""How long a SQLite writer waits for the file lock before the request fails as unavailable."""


def make_engine(url: str) -> Engine:
    """An engine for `url` with fitwire's connection settings (SQLite pragmas and BEGIN IMMEDIATE, psycopg 3)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; fsync per checkpoint
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("fitwire_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})


# The statements of the hot path (every run's outbox sends its epochs and its end; every request
# reads a run), built once with bind parameters: building one per call cost more CPU than running it.
# Epochs and ends are one statement each under the writer lock, the ownership and state checks in
# its WHERE, the run sent back read after the commit. On SQLite every statement the lock holder runs
# gives up the interpreter lock and waits to get it back behind the request threads, so a read
# first and ORM objects flushed made the hold, and the queue of writers behind it, several times longer.
_RUN_OF_OWNER = (
    select(RunRow, UserRow.username).join(ModelRow, ModelRow.key == RunRow.model_key)
    .join(UserRow, UserRow.id == ModelRow.owner_id)
    .where(RunRow.run_id == bindparam("run_id"), ModelRow.owner_id == bindparam("owner_id"))
)
# p_: an INSERT's or UPDATE's bind parameter may not share a column's name.
_OWNED_LIVE_RUN = (
    (RunRow.run_id == bindparam("p_run_id"))
    & RunRow.model_key.in_(select(ModelRow.key).where(ModelRow.owner_id == bindparam("p_owner_id")))
    & RunRow.status.not_in(bindparam("p_finished", expanding=True))
)
_END_RUN = update(RunRow).where(_OWNED_LIVE_RUN).values(
    {name: bindparam(f"p_{name}", type_=RunRow.__table__.c[name].type)
     for name in ("status", "reason", "ended_at", "final_logs")}
)


EPOCH_FIELDS = [name for name in Epoch.model_fields if name != "run_id"]
"""The epoch's columns: its entity's fields (``EpochRow`` has one column for each)."""


def _upsert_epoch(insert: Any) -> Any:
    """``INSERT … SELECT … ON CONFLICT DO UPDATE`` of one epoch of an owned, live run (``insert``: the dialect's)."""
    columns = EpochRow.__table__.c
    row = select(RunRow.run_id, *(bindparam(f"p_{name}", type_=columns[name].type) for name in EPOCH_FIELDS))
    stmt = insert(EpochRow).from_select(["run_id", *EPOCH_FIELDS], row.where(_OWNED_LIVE_RUN))
    # One statement, so two deliveries of the same epoch cannot race into a duplicate key.
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "epoch"],
        set_={name: stmt.excluded[name] for name in EPOCH_FIELDS if name != "epoch"},
    ).returning(EpochRow.epoch)  # a row when written (psycopg's rowcount of INSERT … SELECT is -1)


class _RaceLost(StoreError):
    """Another transaction inserted the same run id first; the caller retries once."""


class SqlStore(SqlAgents, SqlDatasets, SqlUsers, Store):
    """A :class:`Store` on SQLite or PostgreSQL.

    Args:
        url: ``sqlite:///path`` or ``postgresql://user@host/db``.
        auto_create: create the schema when the database is empty (default: on
            SQLite only, for zero set-up). A database at an older revision is
            refused either way.

    Raises:
        SchemaOutOfDate: the schema is not this build's; the message names the upgrade command.
        Unavailable: the database does not answer.
    """

    def __init__(self, url: str, *, auto_create: bool | None = None) -> None:
        self.engine = make_engine(url)
        self.kind = "sqlite" if self.engine.dialect.name == "sqlite" else "postgresql"
        self._where = self.engine.url.render_as_string(hide_password=True)
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=self.engine.execution_options(fitwire_write=True), expire_on_commit=False
        )
        # SQLite has one writer at a time. Threads of this process queue on a lock and start
        # the moment it is free; left to SQLite's busy handler they would poll with growing
        # sleeps (p99 in the hundreds of ms with 8 writers). Other processes still wait
        # through the busy timeout.
        self._writer_lock = threading.RLock() if self.kind == "sqlite" else contextlib.nullcontext()
        self._upsert_epoch = _upsert_epoch(sqlite_insert if self.kind == "sqlite" else pg_insert)
        if auto_create is None:
            auto_create = self.kind == "sqlite"
        try:
            if auto_create and migrate.is_empty(self.engine):
                migrate.upgrade(self.engine)
            migrate.check(self.engine, self._where)
        except (OperationalError, InterfaceError) as exc:
            self.engine.dispose()
            raise Unavailable(f"The database at {self._where} does not answer ({exc.orig}).") from None
        except StoreError:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        """One transaction: commit when the block ends, roll back and translate on any error."""
        with self._writer_lock if write else contextlib.nullcontext():
            with self._transaction(write) as session:
                yield session

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Session]:
        session = (self._write if write else self._read)()
        try:
            yield session
            session.commit()
        except StoreError:
            session.rollback()
            raise
        except IntegrityError as exc:
            session.rollback()
            raise AlreadyExists(f"That conflicts with an existing record ({exc.orig}).") from None
        except (OperationalError, InterfaceError) as exc:
            session.rollback()
            raise Unavailable(f"The database at {self._where} does not answer ({exc.orig}).") from None
        except DBAPIError as exc:
            session.rollback()
            if exc.connection_invalidated:
                raise Unavailable(f"The database at {self._where} dropped the connection.") from None
            raise
        finally:
            session.close()

    # --- models ----------------------------------------------------------------------------

    def _model(self, s: Session, owner_id: str, key: str) -> tuple[ModelRow, str]:
        found = s.execute(
            select(ModelRow, UserRow.username).join(UserRow, UserRow.id == ModelRow.owner_id)
            .where(ModelRow.key == key, ModelRow.owner_id == owner_id)
        ).first()
        if found is None:
            raise DoesNotExist(f"No model with key {key!r}.")
        return found[0], found[1]

    def _count_runs(self, s: Session, key: str) -> int:
        return s.scalar(select(func.count()).select_from(RunRow).where(RunRow.model_key == key)) or 0

    def _name_taken(self, s: Session, owner_id: str, name: str, but: str | None = None) -> None:
        query = select(ModelRow.key).where(ModelRow.owner_id == owner_id, ModelRow.name == name)
        if but is not None:
            query = query.where(ModelRow.key != but)
        if s.scalar(query) is not None:
            raise AlreadyExists(f"You have a model named {name!r} already.")

    def create_model(self, owner_id: str, key: str, name: str, now: datetime, design: Design | None = None) -> Model:
        with self._session(write=True) as s:
            owner = self._user_row(s, owner_id).username
            self._name_taken(s, owner_id, name)
            row = ModelRow(key=key, owner_id=owner_id, name=name, created_at=now, run_counter=0,
                           design=None if design is None else design.model_dump(mode="json"))
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                raise AlreadyExists(f"You have a model named {name!r} already.") from None
            return row.to_entity(owner, 0)

    def list_models(self, owner_id: str) -> list[Model]:
        runs = select(func.count()).where(RunRow.model_key == ModelRow.key).correlate(ModelRow).scalar_subquery()
        with self._session() as s:
            rows = s.execute(
                select(ModelRow, UserRow.username, runs).join(UserRow, UserRow.id == ModelRow.owner_id)
                .where(ModelRow.owner_id == owner_id).order_by(ModelRow.created_at, ModelRow.key)
            ).all()
            return [row.to_entity(owner, count) for row, owner, count in rows]

    def get_model(self, owner_id: str, key: str) -> Model:
        with self._session() as s:
            row, owner = self._model(s, owner_id, key)
            return row.to_entity(owner, self._count_runs(s, key))

    def rename_model(self, owner_id: str, key: str, name: str) -> Model:
        with self._session(write=True) as s:
            row, owner = self._model(s, owner_id, key)
            self._name_taken(s, owner_id, name, but=key)
            row.name = name
            return row.to_entity(owner, self._count_runs(s, key))

    def update_design(self, owner_id: str, key: str, change: Callable[[Design | None], Design | None]) -> Model:
        with self._session(write=True) as s:
            row, owner = self._model(s, owner_id, key)
            if self.kind == "postgresql":  # SQLite's writer is alone already (BEGIN IMMEDIATE)
                s.refresh(row, with_for_update=True)
            current = None if row.design is None else Design.model_validate(row.design)
            changed = change(current)
            row.design = None if changed is None else changed.model_dump(mode="json")
            return row.to_entity(owner, self._count_runs(s, key))

    def models_using_dataset(self, dataset_id: str) -> list[Model]:
        # Designs are JSON: filtered here rather than with each database's own JSON operators.
        query = select(ModelRow, UserRow.username).join(UserRow, UserRow.id == ModelRow.owner_id) \
            .where(ModelRow.design.is_not(None))
        with self._session() as s:
            return [row.to_entity(owner, 0) for row, owner in s.execute(query)
                    if (row.design or {}).get("dataset_id") == dataset_id]

    def delete_model(self, owner_id: str, key: str) -> None:
        with self._session(write=True) as s:
            self._model(s, owner_id, key)
            run_ids = select(RunRow.run_id).where(RunRow.model_key == key)
            s.execute(delete(EpochRow).where(EpochRow.run_id.in_(run_ids)))
            s.execute(delete(RunRow).where(RunRow.model_key == key))
            s.execute(delete(ModelRow).where(ModelRow.key == key))

    # --- runs and epochs ---------------------------------------------------------------------

    def _run(self, s: Session, owner_id: str, run_id: str) -> tuple[RunRow, str]:
        found = s.execute(_RUN_OF_OWNER, {"owner_id": owner_id, "run_id": run_id}).first()
        if found is None:
            raise DoesNotExist(f"No run with id {run_id!r}.")
        return found[0], found[1]

    def begin_run(self, owner_id: str, start: RunStart) -> tuple[Run, bool]:
        try:
            return self._begin_run(owner_id, start)
        except _RaceLost:
            # Two requests raced to create the same run id (the outbox retried while the
            # first was still in flight): the loser's insert failed; now the run exists.
            return self._begin_run(owner_id, start)

    def _begin_run(self, owner_id: str, start: RunStart) -> tuple[Run, bool]:
        with self._session(write=True) as s:
            model, owner = self._model(s, owner_id, start.model_key)
            existing = s.get(RunRow, start.run_id)
            if existing is not None:
                if existing.model_key != model.key:
                    raise AlreadyExists(f"The run id {start.run_id!r} belongs to another model.")
                return existing.to_entity(owner), False
            reserved = s.scalar(select(JobRow).where(JobRow.run_id == start.run_id))
            if reserved is not None and (reserved.owner_id != owner_id or reserved.model_key != model.key):
                raise AlreadyExists(f"The run id {start.run_id!r} is reserved by a job of another model.")
            number = s.execute(
                update(ModelRow).where(ModelRow.key == model.key)
                .values(run_counter=ModelRow.run_counter + 1).returning(ModelRow.run_counter)
            ).scalar_one()
            row = RunRow(
                run_id=start.run_id, model_key=model.key, number=number, status="running", reason=None,
                params=to_wire_json(start.params), epochs=start.epochs, steps=start.steps, host=start.host,
                framework=start.framework, framework_version=start.framework_version,
                started_at=start.started_at, ended_at=None, final_logs={},
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                raise _RaceLost(start.run_id) from None
            return row.to_entity(owner), True

    def upsert_epoch(self, owner_id: str, epoch: Epoch) -> Run:
        self.record_epoch(owner_id, epoch)
        return self.get_run(owner_id, epoch.run_id)  # after the commit, outside the writer lock

    def record_epoch(self, owner_id: str, epoch: Epoch) -> None:
        run_id = epoch.run_id
        fields = {**epoch.model_dump(include=set(EPOCH_FIELDS)), "logs": to_wire_json(epoch.logs)}
        values = {"p_owner_id": owner_id, "p_run_id": run_id, "p_finished": sorted(FINISHED),
                  **{f"p_{name}": value for name, value in fields.items()}}
        with self._session(write=True) as s:
            written = s.connection().execute(self._upsert_epoch, values).first() is not None
        if not written:  # not the owner's run (DoesNotExist from get_run), or it has finished
            run = self.get_run(owner_id, run_id)
            raise InvalidState(f"The run {run_id!r} has finished ({run.status}); it takes no more epochs.")

    def end_run(
        self, owner_id: str, run_id: str, status: RunStatus, reason: str | None,
        logs: dict[str, float | None], ended_at: datetime,
    ) -> Run:
        self.record_end(owner_id, run_id, status, reason, logs, ended_at)
        return self.get_run(owner_id, run_id)  # ended now, or before (a resent end changes nothing)

    def record_end(
        self, owner_id: str, run_id: str, status: RunStatus, reason: str | None,
        logs: dict[str, float | None], ended_at: datetime,
    ) -> None:
        values = {"p_owner_id": owner_id, "p_run_id": run_id, "p_status": status, "p_reason": reason,
                  "p_final_logs": to_wire_json(logs), "p_ended_at": ended_at, "p_finished": sorted(FINISHED)}
        with self._session(write=True) as s:
            written = s.connection().execute(_END_RUN, values).rowcount
        if not written:  # ended before (fine), or not the owner's run (DoesNotExist from get_run)
            self.get_run(owner_id, run_id)

    def get_run(self, owner_id: str, run_id: str) -> Run:
        with self._session() as s:
            run, owner = self._run(s, owner_id, run_id)
            return run.to_entity(owner)

    def list_runs(self, owner_id: str, model_key: str) -> list[Run]:
        with self._session() as s:
            _, owner = self._model(s, owner_id, model_key)
            rows = s.scalars(select(RunRow).where(RunRow.model_key == model_key).order_by(RunRow.number.desc()))
            return [row.to_entity(owner) for row in rows]

    def delete_run(self, owner_id: str, run_id: str) -> None:
        with self._session(write=True) as s:
            self._run(s, owner_id, run_id)
            s.execute(delete(EpochRow).where(EpochRow.run_id == run_id))
            s.execute(delete(RunRow).where(RunRow.run_id == run_id))

    def _epochs(self, s: Session, run_id: str) -> list[Epoch]:
        return [row.to_entity() for row in s.scalars(
            select(EpochRow).where(EpochRow.run_id == run_id).order_by(EpochRow.epoch))]

    def list_epochs(self, owner_id: str, run_id: str) -> list[Epoch]:
        with self._session() as s:
            self._run(s, owner_id, run_id)
            return self._epochs(s, run_id)

    def run_state(self, owner_id: str, run_id: str) -> RunState:
        with self._session() as s:  # one snapshot: the run and epochs agree
            run, owner = self._run(s, owner_id, run_id)
            return RunState(run=run.to_entity(owner), epochs=self._epochs(s, run_id))
