"""Submitting jobs: persistent, publisher-confirmed, to the pool's durable quorum queue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pika

from fitwire.agent.backends import ArtifactStore, JobEvents, bundle_key
from fitwire.agent.bundle import bundle_id
from fitwire.broker import connect, translate_errors
from fitwire.broker.topology import JOBS, declare, job_pool_topology, job_queue
from fitwire.contract import BrokerError, Job, JobSpec, encode

HANDBACKS_HEADER = "x-fitwire-handbacks"
"""How often agents handed the job back unrun (no room now, shutting down); spends no delivery attempt."""
MISFITS_HEADER = "x-fitwire-misfits"
"""How often in a row agents that could never run the job (too few or too small GPUs) handed it back."""
MISFIT_LIMIT = 5
"""After this many such hand-backs the job ends ``unschedulable`` (unless the webhook knows a node that fits)."""


def declare_pool(channel: Any, pool: str) -> str:
    """Declare what publishing to or consuming ``pool`` needs: the exchange, ``jobs.<pool>`` and its
    binding, and the dead-letter path (idempotent); returns the queue name."""
    declare(channel, job_pool_topology(pool))
    return job_queue(pool).name


def job_properties(job: Job, headers: Mapping[str, Any] | None = None) -> pika.BasicProperties:
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type="application/json",
        message_id=job.job_id,
        type=job.type,
        headers=dict(headers or {}),
    )


def publish_job(channel: Any, job: Job, headers: Mapping[str, Any] | None = None) -> None:
    """Publish on a channel in confirm mode; returns once the broker has the job safely.

    Raises:
        BrokerError: the broker nacked the job or could not route it (no queue for the pool).
    """
    with translate_errors():
        try:
            channel.basic_publish(
                exchange=JOBS.name, routing_key=job.pool, body=encode(job),
                properties=job_properties(job, headers), mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            raise BrokerError(f"no queue takes jobs for pool {job.pool!r}") from None
        except pika.exceptions.NackError:
            raise BrokerError(f"the broker did not accept job {job.job_id}") from None


def submit(
    amqp_url: str,
    spec: JobSpec,
    source: bytes,
    *,
    owner: str,
    pool: str = "default",
    events: JobEvents,
    artifacts: ArtifactStore,
) -> Job:
    """Upload the bundle, record the job as queued, and publish it (what the webhook's POST /jobs does).

    Raises:
        BrokerError: the broker did not take the job; it is recorded ``failed`` ("broker unavailable").
    """
    spec = spec.model_copy(update={"bundle": bundle_id(source)})
    artifacts.put(bundle_key(spec.bundle), source)
    job = Job(owner=owner, pool=pool, spec=spec)
    events.job_state(job, "queued")
    try:
        conn = connect(amqp_url, name="fitwire-submit")
        try:
            with translate_errors():
                channel = conn.channel()
                channel.confirm_delivery()
                declare_pool(channel, pool)
                publish_job(channel, job)
        finally:
            if conn.is_open:
                conn.close()
    except BrokerError as exc:  # never a ghost: no job stays queued without its message
        events.job_state(job, "failed", reason=f"broker unavailable: the job could not be queued ({exc})")
        raise
    return job


def cancel(events: JobEvents, job: Job) -> None:
    """Cancel a queued job: agents drop its message instead of running it.

    Raises:
        ValueError: the job is not queued (a running job is stopped with a STOP signal instead).
    """
    status = events.status(job.job_id)
    if status is None or status[0] != "queued":
        raise ValueError(f"job {job.job_id} is {status[0] if status else 'unknown'}, not queued")
    events.job_state(job, "cancelled", reason="cancelled while queued")
