"""Model specs on agents: training request → first batch on a warm agent, next to a bundle job.

Both kinds go the same way (webhook → job queue → agent → child process → Tracker), so the
difference is what a spec job does before its first batch: fetch the dataset (cached after
the first round), read it into ``tf.data`` and build the model from the spec. Rounds
alternate the two kinds. A real webhook (SQLite) in this process, a real agent process,
RabbitMQ at FITWIRE_AMQP_URL (``make bench`` starts one), a small CSV dataset.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from fitwire.broker import connect
from fitwire.broker.topology import PROGRESS, job_queue, watcher_queue_arguments
from fitwire.contract import ProgressMessage, decode
from fitwire.settings import Settings
from fitwire.webhook import create_app
from fitwire.webhook.security import hash_password
from fitwire.webhook.store import open_store
from tests.datasets.generate import sample_csv
from tests.fixtures.webhook import serve_in_thread

BUNDLE = Path(__file__).resolve().parents[1] / "examples" / "jobs" / "tiny_mlp.py"
ROUNDS = 3
SPEC = {"format": "csv", "layers": [{"type": "Dense", "layer": {"units": 16, "activation": "relu"}},
                                    {"type": "Dense", "layer": {"units": None, "activation": "sigmoid"}}]}


class _Fabric:
    def __init__(self) -> None:
        self.amqp_url = Settings.from_env().amqp_url
        self.dir = Path(tempfile.mkdtemp(prefix="fitwire-bench-spec-"))
        self.pool = f"bench-{uuid.uuid4().hex[:8]}"
        self.store = open_store(f"sqlite:///{self.dir / 'webhook.db'}")
        app = create_app({"STORE": self.store, "AMQP_URL": self.amqp_url, "BROKER_LOGINS": "shared",
                          "JOB_POOLS": (self.pool,), "ARTIFACTS_DIR": str(self.dir / "artifacts")})
        self.url, self.server, _ = serve_in_thread(app, threads=8)
        self.http = requests.Session()
        self.admin = self._login("admin", admin=True)
        self.user = self._login("ada")
        self.agent: subprocess.Popen[bytes] | None = None

    def _login(self, name: str, admin: bool = False) -> str:
        self.store.create_user(name, hash_password("password-123"), is_admin=admin, now=datetime.now(UTC))
        answer = self.http.post(self.url + "/api/v1/auth/login", json={"username": name, "password": "password-123"})
        return str(answer.json()["token"])

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        response = self.http.request(method, self.url + path, headers={"Authorization": f"Bearer {token or self.user}"},
                                     timeout=60, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def start_agent(self) -> None:
        node = self.api("POST", "/api/v1/nodes", self.admin, json={"name": "bench"})["token"]
        cache = Path(tempfile.mkdtemp(prefix="fitwire-bench-datasets-"))
        cache.chmod(0o755)  # readable by the job user when the agent runs as root
        env = dict(os.environ, FITWIRE_DATA_DIR=str(self.dir / "agent"), FITWIRE_AMQP_URL=self.amqp_url,
                   FITWIRE_WEBHOOK_URL=self.url, FITWIRE_TOKEN=node, FITWIRE_DATASET_CACHE_DIR=str(cache))
        self.agent = subprocess.Popen(
            [sys.executable, "-c", "from fitwire.cli.main import app; app()", "agent", "start", "--pool", self.pool],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            conn = connect(self.amqp_url)
            try:
                queue = conn.channel().queue_declare(job_queue(self.pool).name, passive=True)
                if queue.method.consumer_count:
                    return
            except Exception:  # not declared yet
                pass
            finally:
                if conn.is_open:
                    conn.close()
            time.sleep(0.2)
        raise TimeoutError("the agent never consumed")

    def wait_job(self, job_id: str) -> None:
        while self.api("GET", f"/api/v1/jobs/{job_id}")["state"] in ("queued", "running"):
            time.sleep(0.1)

    def close(self) -> None:
        if self.agent is not None:
            self.agent.kill()
            self.agent.wait()
        conn = connect(self.amqp_url)
        conn.channel().queue_delete(job_queue(self.pool).name)
        conn.close()
        self.server.close()
        self.store.close()


def _first_batch(channel: Any, queue: str, run_id: str, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.005)
            continue
        event = decode(body, ProgressMessage)
        if event.run_id == run_id and event.type in ("batch", "batches"):
            return time.time()
    raise TimeoutError("no batch event")


def main() -> None:
    fabric = _Fabric()
    conn = connect(fabric.amqp_url)
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True, auto_delete=True,
                                  arguments=watcher_queue_arguments()).method.queue
    channel.queue_bind(queue, PROGRESS.name, "#")
    try:
        with sample_csv(fabric.dir / "people.csv", rows=2000).open("rb") as body:
            fabric.api("POST", "/api/v1/datasets?name=people", data=body)
        bundle_key = fabric.api("POST", "/api/v1/models", json={"name": "bundle"})["key"]
        spec_key = fabric.api("POST", "/api/v1/models", json={"name": "spec"})["key"]
        fabric.api("PUT", f"/api/v1/models/{spec_key}/spec", json=SPEC)
        fabric.api("POST", f"/api/v1/models/{spec_key}/shape",
                   json={"dataset": "people", "inputs": ["age", "height", "city"], "outputs": ["smoker"]})
        fabric.start_agent()
        times: dict[str, list[float]] = {"bundle job (tiny_mlp.py)": [], "spec job (CSV, 2,000 rows)": []}
        for round_ in range(ROUNDS + 1):  # round 0 warms the agent and fills the dataset cache
            for kind in times:
                t0 = time.time()
                if kind.startswith("bundle"):
                    job = fabric.api("POST", "/api/v1/jobs", json={
                        "pool": fabric.pool, "spec": {"model_key": bundle_key}, "bundle_source": BUNDLE.read_text()})
                else:
                    job = fabric.api("POST", f"/api/v1/models/{spec_key}/train",
                                     json={"pool": fabric.pool, "batch_size": 32})
                t_batch = _first_batch(channel, queue, job["run_id"])
                fabric.wait_job(job["job_id"])
                if round_:
                    times[kind].append(t_batch - t0)
                if not kind.startswith("bundle") and round_ < ROUNDS:  # the cap on trained models per model
                    for entry in fabric.api("GET", f"/api/v1/models/{spec_key}/trained")["trained"]:
                        fabric.api("DELETE", f"/api/v1/models/{spec_key}/trained/{entry['run_id']}")
                time.sleep(1.0)  # idle and bidding again
        base = statistics.median(times["bundle job (tiny_mlp.py)"])
        print(f"request -> first batch on a warm agent ({ROUNDS} rounds each, alternating):")
        for kind, values in times.items():
            median = statistics.median(values)
            print(f"  {kind:<28} median {median:.2f} s (min {min(values):.2f}, max {max(values):.2f}), "
                  f"{median / base:.2f}x the bundle job")
        print("  both include the job's child process starting (Python + TensorFlow import); the spec job "
              "also reads the cached dataset and builds its model from the spec")
    finally:
        conn.close()
        fabric.close()


if __name__ == "__main__":
    main()
