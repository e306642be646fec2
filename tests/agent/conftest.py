"""Fixtures for agent tests: real RabbitMQ, real agent processes, one private pool per test.

Nothing here declares broker topology: the session's vhost starts empty, and the
agents and ``submit`` declare what they use, as on a fresh broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from fitwire.agent import LocalArtifacts, LocalJournal, submit
from fitwire.broker import connect
from fitwire.broker.topology import job_queue
from fitwire.contract import Job, JobSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"
WAIT_S = 120.0
"""Generous: two cores are shared with other test suites, and every job child imports TensorFlow."""


@dataclass
class AgentProcess:
    process: subprocess.Popen[bytes]
    node_id: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Fabric:
    """One test's pool, data dir and agents."""

    amqp_url: str
    pool: str
    data_dir: Path
    agents: list[AgentProcess]

    @property
    def journal(self) -> LocalJournal:
        return LocalJournal(self.data_dir / "journal")

    @property
    def artifacts(self) -> LocalArtifacts:
        return LocalArtifacts(self.data_dir / "artifacts")

    def start_agent(self, *extra: str) -> AgentProcess:
        node_id = f"node-{len(self.agents)}-{uuid.uuid4().hex[:4]}"
        log_path = self.data_dir / f"{node_id}.log"
        env = dict(os.environ, FITWIRE_DATA_DIR=str(self.data_dir), FITWIRE_AMQP_URL=self.amqp_url)
        env.pop("FITWIRE_TOKEN", None)
        process = subprocess.Popen(
            [sys.executable, "-c", "from fitwire.cli.main import app; app()", "agent", "start",
             "--local", "--pool", self.pool, "--node-id", node_id, "--telemetry-interval", "1", "-v",
             *extra],
            env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
        )
        agent = AgentProcess(process, node_id, log_path)
        self.agents.append(agent)
        return agent

    def submit(self, bundle: str, *, epochs: int = 2, **spec: object) -> Job:
        source = (EXAMPLES / bundle).read_bytes()
        return submit(self.amqp_url, JobSpec(model_key="m-test", bundle="-", epochs=epochs, **spec),  # type: ignore[arg-type]
                      source, owner="tester", pool=self.pool, events=self.journal,
                      artifacts=self.artifacts)

    def wait_state(self, job: Job, *states: str, timeout: float = WAIT_S) -> tuple[str, str | None]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.journal.status(job.job_id)
            if status is not None and status[0] in states:
                return status
            time.sleep(0.2)
        logs = "\n".join(f"--- {a.node_id}\n{a.log()[-3000:]}" for a in self.agents)
        raise AssertionError(f"job never reached {states}; now {self.journal.status(job.job_id)}\n{logs}")

    def wait_until(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        logs = "\n".join(f"--- {a.node_id}\n{a.log()[-3000:]}" for a in self.agents)
        raise AssertionError(f"timed out waiting for {what}; queue (ready, consumers) = "
                             f"{self.queue_counts()}\n{logs}")

    def queue_counts(self) -> tuple[int, int]:
        """(ready messages, consumers) of the pool's queue; (0, 0) before anything declared it."""
        conn = connect(self.amqp_url)
        try:
            ok = conn.channel().queue_declare(job_queue(self.pool).name, passive=True).method
            return ok.message_count, ok.consumer_count
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            return 0, 0
        finally:
            if conn.is_open:
                conn.close()

    def wait_consumers(self, n: int) -> None:
        self.wait_until(lambda: self.queue_counts()[1] == n, f"{n} consumer(s) on the pool")


@pytest.fixture
def fabric(amqp_url: str, tmp_path: Path) -> Iterator[Fabric]:
    pool = f"test-{uuid.uuid4().hex[:10]}"
    fab = Fabric(amqp_url, pool, tmp_path, [])
    try:
        yield fab
    finally:
        for agent in fab.agents:
            if agent.process.poll() is None:
                agent.process.send_signal(signal.SIGKILL)
            agent.process.wait(timeout=30)
        conn = connect(amqp_url)
        conn.channel().queue_delete(job_queue(pool).name)  # a no-op when the test never declared it
        conn.close()


from .hub import hub  # noqa: E402,F401  the webhook fabric fixture (hub.py imports the names above)
