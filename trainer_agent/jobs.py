"""Submitting jobs: persistent, publisher-confirmed, to the pool's durable quorum queue."""

from __future__ import annotations

from typing import Any

from fitwire.agent.backends import JobEvents
from fitwire.broker.adapter import Broker
from fitwire.broker.jobs import declare_pool, publish_job
from fitwire.contract import BrokerError, Job, JobSpec
from fitwire.contract.artifacts import ArtifactStore, bundle_id, bundle_key


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
    broker = Broker(amqp_url, name="fitwire-submit", confirm=True)

    def publish(channel: Any) -> None:
        declare_pool(channel, pool)
        publish_job(channel, job)
    try:
        broker.run(publish)
    except BrokerError as exc:  # never a ghost: no job stays queued without its message
        events.job_state(job, "failed", reason=f"broker unavailable: the job could not be queued ({exc})")
        raise
    finally:
        broker.close()
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
