"""A whole fabric for agent tests: a live webhook (real SQLite store, artifacts in a temp dir),
the real broker, agents with node tokens, and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from fitwire.broker import connect
from fitwire.broker.topology import job_queue
from fitwire.webhook import create_app
from fitwire.webhook.security import hash_password
from fitwire.webhook.store import Store, open_store
from fitwire.webhook.store.base import DoesNotExist
from tests.fixtures.webhook import serve_in_thread

from .conftest import WAIT_S, AgentProcess

CLI = [sys.executable, "-c", "from fitwire.cli.main import app; app()"]


@dataclass
class Hub:
    url: str
    store: Store
    amqp_url: str
    data_dir: Path
    pool: str
    app: Any = None
    """The Flask app (``app.config`` may be changed by a test, e.g. ``UNSCHEDULABLE_AFTER``)."""
    admin_token: str = ""
    user_token: str = ""
    user_id: str = ""
    model_key: str = ""
    agents: list[AgentProcess] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.user_token}"}
        return self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def login(self, username: str, admin: bool = False) -> tuple[str, str]:
        user = self.store.create_user(username, hash_password("password-123"), is_admin=admin, now=datetime.now(UTC))
        r = self.http.post(self.url + "/api/v1/auth/login", json={"username": username, "password": "password-123"})
        r.raise_for_status()
        return user.id, str(r.json()["token"])

    def node_token(self, name: str = "box") -> str:
        r = self.api("POST", "/api/v1/nodes", self.admin_token, json={"name": name})
        r.raise_for_status()
        return str(r.json()["token"])

    def env(self, token: str) -> dict[str, str]:
        return dict(os.environ, FITWIRE_DATA_DIR=str(self.data_dir), FITWIRE_AMQP_URL=self.amqp_url,
                    FITWIRE_WEBHOOK_URL=self.url, FITWIRE_TOKEN=token,
                    FITWIRE_CONFIG_DIR=str(self.data_dir / "config"))

    def start_agent(self, *extra: str, token: str | None = None) -> AgentProcess:
        name = f"agent-{len(self.agents)}"
        log_path = self.data_dir / f"{name}.log"
        process = subprocess.Popen(
            [*CLI, "agent", "start", "--pool", self.pool, "--telemetry-interval", "1", "-v", *extra],
            env=self.env(token or self.node_token(name)), stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
        )
        agent = AgentProcess(process, name, log_path)
        self.agents.append(agent)
        return agent

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=self.env(token or self.user_token), capture_output=True,
                              text=True, timeout=120)

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.api("GET", f"/api/v1/jobs/{job_id}")
        r.raise_for_status()
        return dict(r.json())

    def wait_job(self, job_id: str, *states: str, timeout: float = WAIT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["state"] in states:
                return job
            time.sleep(0.3)
        logs = "\n".join(f"--- {a.node_id}\n{a.log()[-3000:]}" for a in self.agents)
        raise AssertionError(f"job never reached {states}: {self.job(job_id)}\n{logs}")

    def epochs(self, run_id: str) -> list[int]:
        """The run's stored epochs; none before the run exists."""
        try:
            return [e.epoch for e in self.store.list_epochs(self.user_id, run_id)]
        except DoesNotExist:
            return []


@pytest.fixture
def hub(amqp_url: str, tmp_path: Path) -> Iterator[Hub]:
    backing = open_store(f"sqlite:///{tmp_path / 'webhook.db'}")
    pool = f"test-{uuid.uuid4().hex[:10]}"
    # the admin declares the test's pool (FITWIRE_POOLS): jobs may be submitted before an agent runs
    # BROKER_LOGINS shared: the test broker is a permissive developer broker (guest), not one the webhook checks.
    app = create_app({"STORE": backing, "SIGNUP": "open", "AMQP_URL": amqp_url, "BROKER_LOGINS": "shared",
                      "JOB_POOLS": ("default", pool),
                      "ARTIFACTS_DIR": str(tmp_path / "server-artifacts")})
    url, server, thread = serve_in_thread(app, threads=8)
    h = Hub(url=url, store=backing, amqp_url=amqp_url, data_dir=tmp_path / "agents", pool=pool, app=app)
    h.data_dir.mkdir()
    _, h.admin_token = h.login("admin", admin=True)
    h.user_id, h.user_token = h.login("ada")
    r = h.api("POST", "/api/v1/models", json={"name": "tiny"})
    r.raise_for_status()
    h.model_key = r.json()["key"]
    try:
        yield h
    finally:
        for agent in h.agents:
            if agent.process.poll() is None:
                agent.process.kill()
            agent.process.wait(timeout=30)
        conn = connect(amqp_url)
        conn.channel().queue_delete(job_queue(pool).name)
        conn.close()
        h.http.close()
        server.close()
        thread.join(timeout=10)
        backing.close()
