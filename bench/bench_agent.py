"""Trainer agents: submit-to-first-batch latency with a warm agent, and failover time.

* **submit → first batch**: an idle agent is consuming; we time from ``submit``
  (bundle stored, job recorded, publish confirmed) to the first ``batch`` event
  of the job's run on ``fitwire.progress``, split at the moment the agent
  claimed the job (delivery) and the moment the child built the model.
* **agent death → training again**: two idle agents; the one running a job is
  SIGKILLed after its first checkpoint; we time from the kill to the first
  ``batch`` event of the resumed run on the other agent.

Needs RabbitMQ at FITWIRE_AMQP_URL (``make bench`` starts one). Local mode
(no webhook), real agent processes, a tiny MLP.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fitwire.agent import LocalArtifacts, LocalJournal, declare_pool, submit
from fitwire.broker import connect
from fitwire.broker.topology import PROGRESS, job_queue, watcher_queue_arguments
from fitwire.contract import JobSpec, ProgressMessage, decode
from fitwire.settings import Settings

BUNDLE = Path(__file__).resolve().parents[1] / "examples" / "jobs" / "tiny_mlp.py"
ROUNDS = 3


class _Bench:
    def __init__(self) -> None:
        self.url = Settings.from_env().amqp_url
        self.pool = f"bench-{uuid.uuid4().hex[:8]}"
        self.dir = Path(tempfile.mkdtemp(prefix="fitwire-bench-agent-"))
        self.journal = LocalJournal(self.dir / "journal")
        self.artifacts = LocalArtifacts(self.dir / "artifacts")
        self.agents: list[subprocess.Popen[bytes]] = []
        conn = connect(self.url)
        declare_pool(conn.channel(), self.pool)
        conn.close()

    def start_agent(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, FITWIRE_DATA_DIR=str(self.dir), FITWIRE_AMQP_URL=self.url)
        proc = subprocess.Popen(
            [sys.executable, "-c", "from fitwire.cli.main import app; app()", "agent", "start", "--local",
             "--pool", self.pool, "--node-id", f"bench-{len(self.agents)}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.agents.append(proc)
        return proc

    def wait_consumers(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = connect(self.url)
            count = conn.channel().queue_declare(job_queue(self.pool).name, passive=True).method.consumer_count
            conn.close()
            if count == n:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{n} agents never consumed")

    def watch(self) -> tuple[object, object, str]:
        conn = connect(self.url)
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True, auto_delete=True, arguments=watcher_queue_arguments()).method.queue
        ch.queue_bind(queue, PROGRESS.name, "#")
        return conn, ch, queue

    def first_batch(self, ch: object, run_id: str, after: float, timeout: float = 180) -> float:
        """Wall time of the first batch of ``run_id`` from a process that began training after ``after``.

        Waiting for a ``train_begin`` first skips the last batches a killed child sent while dying.
        """
        deadline = time.monotonic() + timeout
        began = False
        while time.monotonic() < deadline:
            method, _props, body = ch.basic_get(ch_queue(ch), auto_ack=True)  # type: ignore[attr-defined]
            if method is None:
                time.sleep(0.01)
                continue
            event = decode(body, ProgressMessage)
            if event.run_id != run_id or event.ts < after:
                continue
            began = began or event.type == "train_begin"
            if began and event.type in ("batch", "batches"):
                return time.time()
        raise TimeoutError("no batch event")

    def submit(self, epochs: int, sleep: float = 0.0) -> tuple[float, object]:
        spec = JobSpec(model_key="bench", bundle="-", epochs=epochs, params={"sleep_per_batch": sleep})
        t0 = time.time()
        job = submit(self.url, spec, BUNDLE.read_bytes(), owner="bench", pool=self.pool, events=self.journal,
                     artifacts=self.artifacts)
        return t0, job

    def claimed_at(self, job_id: str) -> float:
        record = self.journal.record(job_id) or {"history": []}
        return next((h["at"] for h in record["history"] if h["state"] == "running"), float("nan"))

    def close(self) -> None:
        for proc in self.agents:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        conn = connect(self.url)
        conn.channel().queue_delete(job_queue(self.pool).name)
        conn.close()


_QUEUES: dict[int, str] = {}


def ch_queue(ch: object) -> str:
    return _QUEUES[id(ch)]


def main() -> None:
    bench = _Bench()
    conn, ch, queue = bench.watch()
    _QUEUES[id(ch)] = queue
    try:
        bench.start_agent()
        bench.wait_consumers(1)
        totals, to_claim = [], []
        for _ in range(ROUNDS):
            t0, job = bench.submit(epochs=1)
            t_batch = bench.first_batch(ch, job.run_id, t0)  # type: ignore[attr-defined]
            totals.append(t_batch - t0)
            to_claim.append(bench.claimed_at(job.job_id) - t0)  # type: ignore[attr-defined]
            while (bench.journal.status(job.job_id) or ("",))[0] != "succeeded":  # type: ignore[attr-defined]
                time.sleep(0.05)
            time.sleep(1.0)  # idle and bidding again (a quorum queue counts a cancelled consumer
            # until its message is settled, so the consumer count cannot tell)
        print(f"submit -> first batch, warm agent ({ROUNDS} rounds): median {statistics.median(totals):.2f} s "
              f"(min {min(totals):.2f}, max {max(totals):.2f})")
        print(f"  of which submit -> claimed by the agent: {', '.join(f'{c * 1000:.0f}' for c in to_claim)} ms; "
              "the rest is the job's child process starting (Python + TensorFlow import, model build)")

        second = bench.start_agent()
        time.sleep(3.0)  # both idle and consuming
        _, job = bench.submit(epochs=6, sleep=0.1)
        while not bench.journal.epochs(job.run_id):  # type: ignore[attr-defined]
            time.sleep(0.05)
        record = bench.journal.record(job.job_id) or {}  # type: ignore[attr-defined]
        victim = bench.agents[0] if record.get("node_id") == "bench-0" else second
        t_kill = time.time()
        victim.send_signal(signal.SIGKILL)
        t_resumed = bench.first_batch(ch, job.run_id, t_kill)  # type: ignore[attr-defined]
        t_claim = max(h["at"] for h in (bench.journal.record(job.job_id) or {})["history"]  # type: ignore[attr-defined]
                      if h["state"] == "running")
        print(f"agent SIGKILLed -> job training again on the other agent: {t_resumed - t_kill:.2f} s "
              f"(redelivered and claimed after {(t_claim - t_kill) * 1000:.0f} ms; the rest is the child "
              "starting and restoring the checkpoint)")
        print("  a machine that vanishes without closing its TCP connection is noticed by the broker's "
              "heartbeat instead: up to 2 x 30 s more")
    finally:
        conn.close()  # type: ignore[attr-defined]
        bench.close()


if __name__ == "__main__":
    main()
