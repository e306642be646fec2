"""Placement by free GPU memory, decided by RabbitMQ consumer priorities (fake NVML probes)."""

from __future__ import annotations

import time

from fitwire.broker import connect
from fitwire.broker.topology import job_queue

from .conftest import Fabric


def test_the_agent_with_most_free_gpu_memory_wins(fabric: Fabric) -> None:
    fabric.start_agent("--fake-gpu-mb", "4000")
    big = fabric.start_agent("--fake-gpu-mb", "12000")
    fabric.start_agent()  # CPU-only: bids 0
    fabric.wait_consumers(3)
    job = fabric.submit("tiny_mlp.py", epochs=1, gpus=1, gpu_memory_mb=2000)
    assert fabric.wait_state(job, "succeeded", "failed", "dead")[0] == "succeeded"
    record = fabric.journal.record(job.job_id)
    assert record is not None
    assert [h["node_id"] for h in record["history"] if h["state"] == "running"] == [big.node_id]


def test_a_job_no_agent_can_fit_waits_queued_without_spending_deliveries(fabric: Fabric) -> None:
    small = fabric.start_agent("--fake-gpu-mb", "4000")
    fabric.wait_consumers(1)
    job = fabric.submit("tiny_mlp.py", epochs=1, gpus=1, gpu_memory_mb=8000)
    fabric.wait_until(lambda: "handed job" in small.log(), "the agent to hand the job back")
    time.sleep(5)  # several placement pauses: the job bounces, it must not die
    assert fabric.journal.status(job.job_id) == ("queued", None)
    assert "started in pid" not in small.log()
    small.process.kill()
    small.process.wait()
    fabric.wait_until(lambda: fabric.queue_counts() == (1, 0), "the job back in the queue")
    conn = connect(fabric.amqp_url)
    method, props, _ = conn.channel().basic_get(job_queue(fabric.pool).name, auto_ack=True)
    conn.close()
    assert method is not None
    assert props.headers.get("x-fitwire-handbacks", 0) >= 2
    assert props.headers.get("x-delivery-count", 0) <= 1
