"""`fitwire webhook serve` with many live runs at once: each keeps its connection open, and all are served."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from fitwire.contract import EpochEnd, TrainBegin, encode
from fitwire.webhook.security import hash_password
from fitwire.webhook.store import open_store
from tests.fixtures.webhook import free_port

RUNS = 150
"""More live runs than waitress's default connection limit (100 sockets, its own two included)."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``fitwire webhook serve`` with its default options on a SQLite store; (base URL, a user's token)."""
    store_url = f"sqlite:///{tmp_path / 'webhook.db'}"
    store = open_store(store_url)
    store.create_user("alice", hash_password("correct horse"), now=datetime.now(UTC))
    store.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FITWIRE_STORE": store_url, "FITWIRE_WEBHOOK_URL": base}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("fitwire")), "webhook", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/health", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stdout.read().decode() if proc.stdout else "no output") from None
                time.sleep(0.2)
        login = requests.post(f"{base}/api/v1/auth/login", json={"username": "alice", "password": "correct horse"},
                              timeout=30)
        yield base, login.json()["token"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_every_live_run_is_served_while_all_keep_their_connections_open(served: tuple[str, str]) -> None:
    base, token = served
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    key = requests.post(f"{base}/api/v1/models", json={"name": "mnist"}, headers=headers, timeout=30).json()["key"]
    # One keep-alive session per run, as each run's outbox holds one: all open at once.
    sessions = [requests.Session() for _ in range(RUNS)]
    try:
        statuses = []
        for i, http in enumerate(sessions):
            statuses.append(http.post(f"{base}/api/v1/events", data=encode(TrainBegin(run_id=f"run{i}", model_key=key)),
                                      headers=headers, timeout=(5, 30)).status_code)
        for i, http in enumerate(sessions):  # each run's next record, on the connection it kept
            statuses.append(http.post(f"{base}/api/v1/events", data=encode(EpochEnd(
                run_id=f"run{i}", model_key=key, epoch=0, logs={"loss": 0.5})), headers=headers,
                timeout=(5, 30)).status_code)
    finally:
        for http in sessions:
            http.close()
    assert statuses == [201] * RUNS + [200] * RUNS
    epochs = requests.get(f"{base}/api/v1/runs/run{RUNS - 1}/epochs", headers=headers, timeout=30).json()["epochs"]
    assert [e["epoch"] for e in epochs] == [0]
