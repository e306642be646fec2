"""Through the production server: concurrent fits, the CLI's serve command, and a store that goes away."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fitwire.contract import TrainBegin, encode
from fitwire.webhook import create_app
from fitwire.webhook.store import migrate, open_store
from fitwire.webhook.store.sql import make_engine
from tests.fixtures.services import service_missing
from tests.fixtures.webhook import POSTGRES_ADMIN_URL, LiveWebhook, free_port, serve_in_thread


def test_fits_started_at_once_get_consecutive_names(live_webhook: LiveWebhook) -> None:
    token = live_webhook.create_user("alice", "correct horse")
    key = live_webhook.create_model(token, "mnist")
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    names: list[str] = []

    def fit(i: int) -> None:
        barrier.wait()
        with requests.Session() as http:
            response = http.post(f"{live_webhook.url}/api/v1/events", data=encode(TrainBegin(
                run_id=f"run{i}", model_key=key)), headers={"Authorization": f"Bearer {token}"}, timeout=30)
        statuses.append(response.status_code)
        names.append(response.json()["run"]["name"])

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 8
    assert sorted(names) == [f"training_{n:03d}" for n in range(1, 9)]


def test_fitwire_webhook_serve_answers_health(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "FITWIRE_DATA_DIR": str(tmp_path), "FITWIRE_WEBHOOK_URL": f"http://127.0.0.1:{port}"}
    env.pop("FITWIRE_STORE", None)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("fitwire")), "webhook", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert health is not None, proc.stdout.read().decode() if proc.stdout else ""
        assert health.json()["store"] == "sqlite"
        assert health.headers["Server"] == "fitwire"  # waitress, not Flask's development server
        assert (tmp_path / "fitwire.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def doomed_postgres() -> Iterator[tuple[str, object]]:
    """A PostgreSQL database at head, and a callable that drops it while the store is open."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        service_missing(f"PostgreSQL at {POSTGRES_ADMIN_URL}")
        return
    name = f"fitwire_doomed_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    migrate.upgrade(make_engine(url))
    try:
        yield url, lambda: admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_a_store_that_goes_away_is_503_temporarily_unavailable(doomed_postgres: tuple[str, object]) -> None:
    url, drop = doomed_postgres
    store = open_store(url)
    app = create_app({"STORE": store})
    base, server, thread = serve_in_thread(app)
    try:
        assert requests.get(f"{base}/health", timeout=10).json()["store"] == "postgresql"
        drop()  # type: ignore[operator]
        health = requests.get(f"{base}/health", timeout=30)
        login = requests.post(f"{base}/api/v1/auth/login", json={"username": "a", "password": "b"}, timeout=30)
        for response in (health, login):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "TEMPORARILY_UNAVAILABLE"
    finally:
        server.close()
        thread.join(timeout=10)
        store.close()
