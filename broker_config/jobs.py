"""Jobs on the broker: publishing to a pool's durable quorum queue, persistent and publisher-confirmed.

The webhook publishes jobs, agents publish hand-backs: both use these, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pika

from fitwire.broker.connection import translate_errors
from fitwire.broker.topology import JOBS, declare, job_pool_topology, job_queue
from fitwire.contract import BrokerError, Job, encode

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
