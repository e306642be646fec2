"""Jobs and nodes of the Firestore store, mixed into :class:`~fitwire.webhook.store.firestore.FirestoreStore`.

Layout: ``jobs/{job_id}`` — owner_id, owner, run_id, pool, model_key, state,
reason, node_id, spec, created_at, updated_at, token_hash, claimed_delivery;
``job_runs/{run_id}`` — ``{job_id, owner_id, model_key}`` (the run id a job reserves);
``job_tokens/{sha256}`` — ``{job_id}``; ``nodes/{node_id}`` — name,
token_hash, created_by, created_at, last_seen, agent_version,
protocol_version, telemetry, pools, revoked_at; ``node_tokens/{sha256}`` — ``{node_id}``.
A job's state changes in a transaction (read, check, write). Listing filters
on one field and sorts here, so no composite index is needed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore as gfirestore

from fitwire.webhook.store.base import (
    JOB_ENDED,
    AlreadyExists,
    DoesNotExist,
    InvalidState,
    Job,
    JobState,
    Node,
    Unauthenticated,
    check_claim,
)

T = TypeVar("T")


def _translated(method: Callable[..., T]) -> Callable[..., T]:
    """The store's own error translation (``firestore._translated``), looked up at call time:
    that module imports this one, so it cannot be imported here at load time."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        from fitwire.webhook.store.firestore import _translated as translate

        return translate(method)(self, *args, **kwargs)

    return wrapper


def _job(doc: Any) -> Job:
    d = doc.to_dict()
    return Job(job_id=doc.id, run_id=d["run_id"], pool=d["pool"], owner=d["owner"], owner_id=d["owner_id"],
               model_key=d["model_key"],
               state=d["state"], reason=d["reason"], node_id=d["node_id"], spec=d["spec"],
               created_at=d["created_at"], updated_at=d["updated_at"],
               claimed_delivery=d.get("claimed_delivery"))


def _node(doc: Any) -> Node:
    d = doc.to_dict()
    return Node(node_id=doc.id, name=d["name"], created_by=d["created_by"], created_at=d["created_at"],
                last_seen=d["last_seen"], agent_version=d["agent_version"],
                protocol_version=d["protocol_version"], telemetry=d["telemetry"],
                pools=tuple(d.get("pools") or ()), revoked_at=d.get("revoked_at"))


class FirestoreAgents:
    """The jobs-and-nodes half of the Firestore store (methods wrapped by ``_translated`` there)."""

    db: Any
    _ref: Callable[[str, str], Any]
    _transact: Callable[[Callable[[Any], Any]], Any]
    _model_doc: Callable[..., Any]

    @_translated
    def create_job(self, owner_id: str, *, job_id: str, run_id: str, pool: str, model_key: str,
                   spec: dict[str, Any], now: datetime) -> Job:
        owner = self._model_doc(owner_id, model_key).get("owner")
        data = {"owner_id": owner_id, "owner": owner, "run_id": run_id, "pool": pool, "model_key": model_key,
                "state": "queued", "reason": None, "node_id": None, "spec": spec, "created_at": now,
                "updated_at": now}
        job_ref, run_ref = self._ref("jobs", job_id), self._ref("job_runs", run_id)

        def create(tx: Any) -> None:
            if job_ref.get(transaction=tx).exists:
                raise AlreadyExists(f"A job with id {job_id!r} exists already.")
            tx.create(job_ref, data)
            # the reservation that begin_run reads: nobody else may begin a run under this id
            tx.set(run_ref, {"job_id": job_id, "owner_id": owner_id, "model_key": model_key})

        self._transact(create)
        return _job(job_ref.get())

    @_translated
    def get_job(self, job_id: str, owner_id: str | None = None) -> Job:
        doc = self._ref("jobs", job_id).get()
        if not doc.exists or (owner_id is not None and doc.get("owner_id") != owner_id):
            raise DoesNotExist(f"No job with id {job_id!r}.")
        return _job(doc)

    @_translated
    def list_jobs(self, owner_id: str | None = None) -> list[Job]:
        query = self.db.collection("jobs")
        if owner_id is not None:
            query = query.where(filter=gfirestore.FieldFilter("owner_id", "==", owner_id))
        jobs = [_job(d) for d in query.stream()]
        return sorted(jobs, key=lambda j: (j.created_at, j.job_id), reverse=True)

    @_translated
    def set_job_state(self, job_id: str, state: JobState, *, reason: str | None, node_id: str | None,
                      now: datetime, allowed_from: frozenset[str] | None = None) -> Job:
        ref = self._ref("jobs", job_id)

        def change(tx: Any) -> None:
            doc = ref.get(transaction=tx)
            if not doc.exists:
                raise DoesNotExist(f"No job with id {job_id!r}.")
            current = doc.get("state")
            if current in JOB_ENDED and current == state:
                return
            if current in JOB_ENDED or (allowed_from is not None and current not in allowed_from):
                raise InvalidState(f"Job {job_id} is {current}; it cannot become {state}.")
            update: dict[str, Any] = {"state": state, "reason": reason, "updated_at": now}
            if node_id is not None:
                update["node_id"] = node_id
            tx.update(ref, update)

        self._transact(change)
        return _job(ref.get())

    @_translated
    def claim_job(self, job_id: str, *, node_id: str, token_hash: str, delivery: int, now: datetime) -> Job:
        ref = self._ref("jobs", job_id)

        def claim(tx: Any) -> None:
            doc = ref.get(transaction=tx)
            if not doc.exists:
                raise DoesNotExist(f"No job with id {job_id!r}.")
            d = doc.to_dict()
            check_claim(job_id, d["state"], d.get("claimed_delivery"), delivery)
            if d.get("token_hash"):
                tx.delete(self._ref("job_tokens", d["token_hash"]))
            tx.create(self._ref("job_tokens", token_hash), {"job_id": job_id})
            tx.update(ref, {"state": "running", "reason": None, "node_id": node_id, "updated_at": now,
                            "token_hash": token_hash, "claimed_delivery": delivery})

        self._transact(claim)
        return _job(ref.get())

    @_translated
    def job_for_token(self, token_hash: str) -> Job:
        refusal = Unauthenticated("The job token is unknown, or its job is no longer running.")
        claim = self._ref("job_tokens", token_hash).get()
        if not claim.exists:
            raise refusal
        doc = self._ref("jobs", claim.get("job_id")).get()
        if not doc.exists or doc.get("state") != "running" or doc.to_dict().get("token_hash") != token_hash:
            raise refusal
        return _job(doc)

    @_translated
    def revoke_node(self, node_id: str, now: datetime) -> Node:
        ref = self._ref("nodes", node_id)

        def revoke(tx: Any) -> None:
            doc = ref.get(transaction=tx)
            if not doc.exists:
                raise DoesNotExist(f"No node {node_id!r}.")
            if doc.to_dict().get("revoked_at") is None:
                tx.update(ref, {"revoked_at": now})

        self._transact(revoke)
        return _node(ref.get())

    @_translated
    def create_node(self, node_id: str, name: str, token_hash: str, created_by: str, now: datetime) -> Node:
        node_ref = self._ref("nodes", node_id)
        token_ref = self._ref("node_tokens", token_hash)

        def create(tx: Any) -> None:
            if node_ref.get(transaction=tx).exists:
                raise AlreadyExists(f"A node with id {node_id!r} exists already.")
            tx.create(token_ref, {"node_id": node_id})
            tx.create(node_ref, {"name": name, "token_hash": token_hash, "created_by": created_by,
                                 "created_at": now, "last_seen": None, "agent_version": "",
                                 "protocol_version": None, "telemetry": None})

        self._transact(create)
        return _node(node_ref.get())

    @_translated
    def node_for_token(self, token_hash: str) -> Node:
        try:
            claim = self._ref("node_tokens", token_hash).get()
        except DoesNotExist:
            claim = None
        if claim is None or not claim.exists:
            raise Unauthenticated("The token is not a node token this server knows.")
        node = self.get_node(claim.get("node_id"))
        if node.revoked_at is not None:
            raise Unauthenticated("This node's token was revoked; an admin creates a new node.")
        return node

    @_translated
    def report_node(self, node_id: str, telemetry: dict[str, Any], *, agent_version: str,
                    protocol_version: int, now: datetime, pools: tuple[str, ...] | None = None) -> Node:
        ref = self._ref("nodes", node_id)
        update: dict[str, Any] = {"telemetry": telemetry, "agent_version": agent_version,
                                  "protocol_version": protocol_version, "last_seen": now}
        if pools is not None:
            update["pools"] = list(pools)
        try:
            ref.update(update)
        except gexc.NotFound:
            raise DoesNotExist(f"No node {node_id!r}.") from None
        return _node(ref.get())

    @_translated
    def get_node(self, node_id: str) -> Node:
        doc = self._ref("nodes", node_id).get()
        if not doc.exists:
            raise DoesNotExist(f"No node {node_id!r}.")
        return _node(doc)

    @_translated
    def list_nodes(self) -> list[Node]:
        return sorted((_node(d) for d in self.db.collection("nodes").stream()), key=lambda n: (n.name, n.node_id))
