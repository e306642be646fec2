"""Jobs through a real broker and real agent processes: run, fail, die, cancel, resume."""

from __future__ import annotations

import os
import signal
import time

import pytest

from fitwire.agent.jobs import cancel
from fitwire.contract.artifacts import checkpoint_key

from .conftest import Fabric

SLOW = {"params": {"sleep_per_batch": 0.15}}
"""6 batches per epoch: about a second per epoch, so a test can act mid-training."""


def test_submitted_job_runs_every_epoch(fabric: Fabric) -> None:
    fabric.start_agent()
    job = fabric.submit("tiny_mlp.py", epochs=3)
    assert fabric.wait_state(job, "succeeded", "failed", "dead") == ("succeeded", None)
    assert sorted(fabric.journal.epochs(job.run_id)) == [0, 1, 2]
    assert fabric.queue_counts()[0] == 0


def test_job_that_raises_fails_with_its_last_line_and_is_not_retried(fabric: Fabric) -> None:
    fabric.start_agent()
    job = fabric.submit("failing.py")
    state, reason = fabric.wait_state(job, "succeeded", "failed", "dead")
    assert state == "failed"
    assert reason == "ValueError: the dataset path /data/missing does not exist"
    time.sleep(1)
    record = fabric.journal.record(job.job_id)
    assert record is not None
    assert [h["state"] for h in record["history"]] == ["queued", "running", "failed"]
    assert fabric.queue_counts()[0] == 0


def test_poison_job_is_dead_after_the_delivery_limit(fabric: Fabric) -> None:
    fabric.start_agent()
    job = fabric.submit("poison.py")
    state, reason = fabric.wait_state(job, "dead", "succeeded", "failed")
    assert state == "dead"
    assert reason is not None and "delivered 4 times" in reason and "signal 9" in reason
    record = fabric.journal.record(job.job_id)
    assert record is not None
    assert [h["state"] for h in record["history"]].count("running") == 4


def test_cancelled_queued_job_never_runs(fabric: Fabric) -> None:
    job = fabric.submit("tiny_mlp.py")
    cancel(fabric.journal, job)
    agent = fabric.start_agent()
    fabric.wait_until(lambda: fabric.queue_counts() == (0, 1), "the agent to drop the cancelled job")
    assert fabric.journal.status(job.job_id) == ("cancelled", "cancelled while queued")
    assert "started in pid" not in agent.log()


def test_killed_agent_job_resumes_elsewhere_with_every_epoch_once(fabric: Fabric) -> None:
    first = fabric.start_agent()
    job = fabric.submit("tiny_mlp.py", epochs=4, **SLOW)
    fabric.wait_until(lambda: len(fabric.journal.epochs(job.run_id)) >= 2, "two epochs on the first agent")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)
    resumed_at = max(fabric.journal.epochs(job.run_id))
    second = fabric.start_agent()
    assert fabric.wait_state(job, "succeeded", "failed", "dead") == ("succeeded", None)

    assert sorted(fabric.journal.epochs(job.run_id)) == [0, 1, 2, 3]
    writes = fabric.journal.epoch_writes(job.run_id)
    # the second agent re-asserts the checkpointed epoch (an idempotent upsert), then goes on from it
    before, after = writes[: writes.index(resumed_at) + 1], writes[writes.index(resumed_at) + 1:]
    assert before == list(range(resumed_at + 1))
    assert after[0] == resumed_at and after[1:] == list(range(resumed_at + 1, 4))
    record = fabric.journal.record(job.job_id)
    assert record is not None and record["node_id"] == second.node_id
    assert fabric.artifacts.get(checkpoint_key(job.job_id)) is not None


def test_sigterm_returns_the_job_to_the_queue_without_spending_a_delivery(fabric: Fabric) -> None:
    agent = fabric.start_agent()
    job = fabric.submit("tiny_mlp.py", epochs=30, **SLOW)
    fabric.wait_until(lambda: len(fabric.journal.epochs(job.run_id)) >= 1, "a first epoch")
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(timeout=60) == 0
    state, reason = fabric.journal.status(job.job_id) or ("?", None)
    assert state == "queued" and reason is not None and "shut down" in reason
    assert fabric.queue_counts() == (1, 0)
    from fitwire.broker import connect
    from fitwire.broker.topology import job_queue

    conn = connect(fabric.amqp_url)
    method, props, _ = conn.channel().basic_get(job_queue(fabric.pool).name, auto_ack=True)
    conn.close()
    assert method is not None
    assert props.headers.get("x-fitwire-handbacks") == 1
    assert props.headers.get("x-delivery-count", 0) == 0


@pytest.mark.skipif(os.environ.get("FITWIRE_SKIP_SLOW") == "1", reason="slow")
def test_sigterm_then_new_agent_finishes_the_job(fabric: Fabric) -> None:
    agent = fabric.start_agent()
    job = fabric.submit("tiny_mlp.py", epochs=3, **SLOW)
    fabric.wait_until(lambda: len(fabric.journal.epochs(job.run_id)) >= 1, "a first epoch")
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(timeout=60) == 0
    fabric.start_agent()
    assert fabric.wait_state(job, "succeeded", "failed", "dead") == ("succeeded", None)
    assert sorted(fabric.journal.epochs(job.run_id)) == [0, 1, 2]


def test_stop_signal_ends_a_running_job_stopped(fabric: Fabric) -> None:
    import pika

    from fitwire.broker import connect
    from fitwire.broker.connection import login_name
    from fitwire.broker.topology import SIGNALS, owner_signal_key
    from fitwire.contract import Signal, encode

    fabric.start_agent()
    job = fabric.submit("tiny_mlp.py", epochs=30, **SLOW)
    fabric.wait_until(lambda: len(fabric.journal.epochs(job.run_id)) >= 1, "a first epoch")
    stop = Signal(action="stop", model_key=job.spec.model_key, run_id=job.run_id, sender="tester")
    conn = connect(fabric.amqp_url)
    key = owner_signal_key(job.owner, job.spec.model_key, job.run_id)
    # user_id: the run trusts only the broker-validated sender (the body's "tester" is a claim).
    conn.channel().basic_publish(SIGNALS.name, key, encode(stop), pika.BasicProperties(user_id=login_name(fabric.amqp_url)))
    conn.close()
    state, reason = fabric.wait_state(job, "stopped", "succeeded", "failed", "dead")
    assert (state, reason) == ("stopped", f"STOP signal from {login_name(fabric.amqp_url)}")
    assert len(fabric.journal.epochs(job.run_id)) < 30
    assert fabric.queue_counts()[0] == 0
