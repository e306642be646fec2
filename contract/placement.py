"""Placement: which jobs this node can run now, and how strongly it bids for the next one.

fitwire places jobs with RabbitMQ's own means, no scheduler of its own:

* every agent consumes its pool's one quorum queue with prefetch 1, so an agent
  that is running a job is not offered another;
* among the free agents, RabbitMQ delivers to the consumer with the highest
  ``x-priority``, and each agent bids its largest free GPU memory (MiB), so the
  node whose GPU has the most free memory wins (WebML's policy);
* an agent that is offered a job it cannot run now (not enough GPUs with the
  memory the job states) hands it back without spending a delivery attempt —
  see :mod:`fitwire.agent.agent` — and pauses a little before bidding again;
* a job that needs more than a node has at all (:func:`capacity_shortfall`) is
  not merely waiting: after a bounded number of such hand-backs it ends
  ``unschedulable`` unless the webhook knows a registered node that could run it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fitwire.contract import GpuInfo, JobSpec

SIGNIFICANT_CHANGE_MB = 512
"""A GPU whose used memory moved by this much is reported at once (WebML's rule) and re-bid."""

MAX_PRIORITY = 2**31 - 1
"""``x-priority`` is a signed 32-bit integer."""


def gpus_needed(spec: JobSpec) -> int:
    """GPUs the job needs; stating GPU memory without a count means one GPU."""
    if spec.gpus:
        return spec.gpus
    return 1 if spec.gpu_memory_mb > 0 else 0


def choose_gpus(spec: JobSpec, gpus: Sequence[GpuInfo]) -> list[int] | None:
    """Indices of the GPUs to give the job (most free memory first), or None when it cannot run now."""
    needed = gpus_needed(spec)
    if needed == 0:
        return []
    fitting = [g for g in gpus if g.memory_free_mb >= spec.gpu_memory_mb]
    if len(fitting) < needed:
        return None
    fitting.sort(key=lambda g: g.memory_free_mb, reverse=True)
    return sorted(g.index for g in fitting[:needed])


def consumer_priority(gpus: Sequence[GpuInfo]) -> int:
    """This node's bid: the free memory (MiB) of its emptiest GPU; 0 on a CPU-only node."""
    best = max((g.memory_free_mb for g in gpus), default=0)
    return max(0, min(best, MAX_PRIORITY))


def significant_change(before: Sequence[GpuInfo], after: Sequence[GpuInfo]) -> bool:
    """True when a GPU appeared or vanished, or its used memory moved by SIGNIFICANT_CHANGE_MB."""
    if [g.index for g in before] != [g.index for g in after]:
        return True
    return any(
        abs(a.memory_used_mb - b.memory_used_mb) >= SIGNIFICANT_CHANGE_MB
        for a, b in zip(before, after, strict=True)
    )


def capacity_shortfall(spec: JobSpec, gpus: Sequence[GpuInfo]) -> str | None:
    """Why a node with these GPUs could never run the job, even idle; None when it could."""
    needed = gpus_needed(spec)
    large_enough = [g for g in gpus if g.memory_total_mb >= spec.gpu_memory_mb]
    if len(large_enough) >= needed:
        return None
    if len(gpus) < needed:
        return f"it needs {needed} GPU(s) and the node has {len(gpus)}"
    return (f"it needs {needed} GPU(s) with {spec.gpu_memory_mb} MiB each and the node has "
            f"{len(large_enough)} that large")


def fleet_shortfall(spec: JobSpec, nodes: Sequence[Sequence[GpuInfo]]) -> str | None:
    """Why none of these nodes (each a list of GPUs) could ever run the job; None when one could or none is known."""
    if not nodes or any(capacity_shortfall(spec, gpus) is None for gpus in nodes):
        return None
    most = max(len(gpus) for gpus in nodes)
    largest = max((g.memory_total_mb for gpus in nodes for g in gpus), default=0)
    return (f"it needs {gpus_needed(spec)} GPU(s) with {spec.gpu_memory_mb} MiB each; the registered nodes "
            f"have at most {most} GPU(s), the largest with {largest} MiB")
