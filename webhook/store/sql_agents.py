"""Jobs and nodes of the SQL store, mixed into :class:`~fitwire.webhook.store.sql.SqlStore`.

Same habits as the rest of the SQL store: one managed session per method
(``self._session``), rows become entities before they leave, and a state
change reads and writes the row in one writing transaction (``BEGIN
IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE`` on PostgreSQL), so two agents
reporting at once cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fitwire.webhook.store.base import (
    JOB_ENDED,
    DoesNotExist,
    InvalidState,
    Job,
    JobState,
    Node,
    Unauthenticated,
    check_claim,
)
from fitwire.webhook.store.sql_schema import JobRow, ModelRow, NodeRow, UserRow


class SqlAgents:
    """The jobs-and-nodes half of the SQL store."""

    _session: Callable[..., AbstractContextManager[Session]]

    def create_job(self, owner_id: str, *, job_id: str, run_id: str, pool: str, model_key: str,
                   spec: dict[str, Any], now: datetime) -> Job:
        with self._session(write=True) as s:
            found = s.execute(
                select(ModelRow.key, UserRow.username).join(UserRow, UserRow.id == ModelRow.owner_id)
                .where(ModelRow.key == model_key, ModelRow.owner_id == owner_id)
            ).first()
            if found is None:
                raise DoesNotExist(f"No model with key {model_key!r}.")
            row = JobRow(job_id=job_id, owner_id=owner_id, run_id=run_id, pool=pool, model_key=model_key,
                         state="queued", reason=None, node_id=None, spec=spec, created_at=now, updated_at=now)
            s.add(row)
            s.flush()  # a taken job id is an IntegrityError → AlreadyExists in _session
            return row.to_entity(found[1])

    def _job(self, s: Session, job_id: str, owner_id: str | None, lock: bool = False) -> tuple[JobRow, str]:
        query = select(JobRow, UserRow.username).join(UserRow, UserRow.id == JobRow.owner_id) \
            .where(JobRow.job_id == job_id)
        if owner_id is not None:
            query = query.where(JobRow.owner_id == owner_id)
        if lock:
            query = query.with_for_update(of=JobRow)
        found = s.execute(query).first()
        if found is None:
            raise DoesNotExist(f"No job with id {job_id!r}.")
        return found[0], found[1]

    def get_job(self, job_id: str, owner_id: str | None = None) -> Job:
        with self._session() as s:
            row, owner = self._job(s, job_id, owner_id)
            return row.to_entity(owner)

    def list_jobs(self, owner_id: str | None = None) -> list[Job]:
        query = select(JobRow, UserRow.username).join(UserRow, UserRow.id == JobRow.owner_id) \
            .order_by(JobRow.created_at.desc(), JobRow.job_id)
        if owner_id is not None:
            query = query.where(JobRow.owner_id == owner_id)
        with self._session() as s:
            return [row.to_entity(owner) for row, owner in s.execute(query)]

    def set_job_state(self, job_id: str, state: JobState, *, reason: str | None, node_id: str | None,
                      now: datetime, allowed_from: frozenset[str] | None = None) -> Job:
        with self._session(write=True) as s:
            row, owner = self._job(s, job_id, None, lock=True)
            if row.state in JOB_ENDED and row.state == state:
                return row.to_entity(owner)  # a retried report of the same end
            if row.state in JOB_ENDED or (allowed_from is not None and row.state not in allowed_from):
                raise InvalidState(f"Job {job_id} is {row.state}; it cannot become {state}.")
            row.state, row.reason, row.updated_at = state, reason, now
            if node_id is not None:
                row.node_id = node_id
            return row.to_entity(owner)

    def claim_job(self, job_id: str, *, node_id: str, token_hash: str, delivery: int, now: datetime) -> Job:
        with self._session(write=True) as s:
            row, owner = self._job(s, job_id, None, lock=True)
            check_claim(job_id, row.state, row.claimed_delivery, delivery)
            row.state, row.reason, row.node_id, row.updated_at = "running", None, node_id, now
            row.token_hash, row.claimed_delivery = token_hash, delivery
            return row.to_entity(owner)

    def job_for_token(self, token_hash: str) -> Job:
        with self._session() as s:
            found = s.execute(
                select(JobRow, UserRow.username).join(UserRow, UserRow.id == JobRow.owner_id)
                .where(JobRow.token_hash == token_hash)
            ).first()
            if found is None or found[0].state != "running":
                raise Unauthenticated("The job token is unknown, or its job is no longer running.")
            return found[0].to_entity(found[1])

    def revoke_node(self, node_id: str, now: datetime) -> Node:
        with self._session(write=True) as s:
            row = s.get(NodeRow, node_id)
            if row is None:
                raise DoesNotExist(f"No node {node_id!r}.")
            if row.revoked_at is None:
                row.revoked_at = now
            return row.to_entity()

    def create_node(self, node_id: str, name: str, token_hash: str, created_by: str, now: datetime) -> Node:
        with self._session(write=True) as s:
            row = NodeRow(node_id=node_id, name=name, token_hash=token_hash, created_by=created_by,
                          created_at=now, last_seen=None, agent_version="", protocol_version=None, telemetry=None)
            s.add(row)
            s.flush()
            return row.to_entity()

    def node_for_token(self, token_hash: str) -> Node:
        with self._session() as s:
            row = s.scalar(select(NodeRow).where(NodeRow.token_hash == token_hash))
            if row is None:
                raise Unauthenticated("The token is not a node token this server knows.")
            if row.revoked_at is not None:
                raise Unauthenticated("This node's token was revoked; an admin creates a new node.")
            return row.to_entity()

    def report_node(self, node_id: str, telemetry: dict[str, Any], *, agent_version: str,
                    protocol_version: int, now: datetime, pools: tuple[str, ...] | None = None) -> Node:
        with self._session(write=True) as s:
            row = s.get(NodeRow, node_id)
            if row is None:
                raise DoesNotExist(f"No node {node_id!r}.")
            row.telemetry, row.agent_version, row.protocol_version, row.last_seen = (
                telemetry, agent_version, protocol_version, now)
            if pools is not None:
                row.pools = list(pools)
            return row.to_entity()

    def get_node(self, node_id: str) -> Node:
        with self._session() as s:
            row = s.get(NodeRow, node_id)
            if row is None:
                raise DoesNotExist(f"No node {node_id!r}.")
            return row.to_entity()

    def list_nodes(self) -> list[Node]:
        with self._session() as s:
            return [r.to_entity() for r in s.scalars(select(NodeRow).order_by(NodeRow.name, NodeRow.node_id))]
