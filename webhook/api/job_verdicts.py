"""Which pools take jobs, and the verdicts the webhook gives jobs that no agent could ever run.

A pool exists when the server's admin declared it (``FITWIRE_POOLS``) or a
registered agent reported it (its telemetry lists its pools). The webhook is the
one place that knows every registered node, so it judges:

* at submit, a job that needs more GPUs or GPU memory than any registered node of
  its pool has ends ``unschedulable`` at once (it is never published);
* a node may report a job ``unschedulable`` only when no registered node of the pool
  could run it (an agent alone sees only itself);
* a job left ``queued`` for ``UNSCHEDULABLE_AFTER`` seconds in a pool where no agent
  has been seen for that long ends ``unschedulable`` the next time anyone looks at it
  (list or show): the verdict needs no scheduler of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from pydantic import ValidationError

from fitwire.contract import GpuInfo, JobSpec
from fitwire.contract.errors import InvalidState, NotFound
from fitwire.contract.placement import capacity_shortfall, fleet_shortfall
from fitwire.webhook.api.common import now, store
from fitwire.webhook.store.base import InvalidState as StoreInvalidState
from fitwire.webhook.store.base import Job, Node


@dataclass(frozen=True)
class _Agent:
    name: str
    pools: frozenset[str]
    gpus: list[GpuInfo]
    last_seen: datetime | None


def _agents(nodes: list[Node]) -> list[_Agent]:
    found = []
    for node in nodes:
        telemetry: dict[str, Any] = node.telemetry or {}
        try:
            gpus = [GpuInfo.model_validate(g) for g in telemetry.get("gpus", [])]
        except ValidationError:
            gpus = []
        found.append(_Agent(node.name, frozenset(telemetry.get("pools", [])), gpus, node.last_seen))
    return found


def check_pool(pool: str) -> None:
    """Raises NotFound (404) unless an admin or a registered agent declared ``pool``."""
    declared = set(current_app.config["JOB_POOLS"])
    reported = {p for a in _agents(store().list_nodes()) for p in a.pools}
    if pool not in declared | reported:
        known = ", ".join(sorted(declared | reported)) or "none"
        raise NotFound(
            f"No pool {pool!r}: the pools are {known}. An admin declares pools with FITWIRE_POOLS; "
            "an agent declares its own with `fitwire agent start --pool NAME`."
        )


def capacity_verdict(spec: JobSpec, pool: str) -> str | None:
    """Why no registered node of ``pool`` could ever run the job; None when one could or none has reported."""
    fleet = [a.gpus for a in _agents(store().list_nodes()) if pool in a.pools]
    shortfall = fleet_shortfall(spec, fleet)
    return None if shortfall is None else f"no registered node of pool {pool!r} could ever run it: {shortfall}"


def check_unschedulable(job: Job) -> None:
    """Raises InvalidState when a registered node of the job's pool could run it after all."""
    spec = JobSpec.model_validate(job.spec)
    for agent in _agents(store().list_nodes()):
        if job.pool in agent.pools and capacity_shortfall(spec, agent.gpus) is None:
            raise InvalidState(f"Node {agent.name!r} of pool {job.pool!r} could run job {job.job_id}; "
                               "it stays queued until that node is free.")


def judge_waiting(jobs: list[Job]) -> list[Job]:
    """``jobs`` with every long-queued job of an agentless pool turned ``unschedulable`` (stored)."""
    after = timedelta(seconds=float(current_app.config["UNSCHEDULABLE_AFTER"]))
    moment = now()
    waiting = [j for j in jobs if j.state == "queued" and moment - j.updated_at >= after]
    if not waiting:
        return jobs
    agents = _agents(store().list_nodes())
    judged: dict[str, Job] = {}
    for job in waiting:
        seen = [a.last_seen for a in agents if job.pool in a.pools and a.last_seen is not None]
        if seen and moment - max(seen) < after:
            continue
        reason = (f"no agent of pool {job.pool!r} has been seen for {after.total_seconds():g} s "
                  "(FITWIRE_UNSCHEDULABLE_AFTER)")
        try:
            judged[job.job_id] = store().set_job_state(job.job_id, "unschedulable", reason=reason, node_id=None,
                                                       now=moment, allowed_from=frozenset({"queued"}))
        except StoreInvalidState:  # an agent claimed it meanwhile
            judged[job.job_id] = store().get_job(job.job_id)
    return [judged.get(j.job_id, j) for j in jobs]
