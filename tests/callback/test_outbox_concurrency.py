"""Many runs on one host: each run's records are sent once, by one sender, and none is lost at run end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fitwire.callback import RunSession
from fitwire.callback.outbox import outbox_files
from fitwire.cli.main import app
from fitwire.contract.messages import Signal
from fitwire.settings import Settings
from fitwire.webhook import create_app
from fitwire.webhook.store import open_store
from tests.callback.conftest import TOKEN, USER, free_port
from tests.callback.helpers import SignalSender
from tests.callback.receiver import Receiver
from tests.fixtures.webhook import LiveWebhook, serve_in_thread

RUNS = 30
ROUNDS = 2
STEPS = 4
MAX_EPOCHS = 400
"""Never reached: every run is stopped soon after epoch 1; only bounds a run whose STOP went missing."""


class EventPosts:
    """Counts how often the webhook accepted each record (run, type, epoch) on ``POST /api/v1/events``."""

    def __init__(self) -> None:
        self.accepted: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()

    def wrap(self, wsgi: Callable[..., Any]) -> Callable[..., Any]:
        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if environ["REQUEST_METHOD"] != "POST" or environ["PATH_INFO"] != "/api/v1/events":
                return wsgi(environ, start_response)
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            event = json.loads(body)
            record = (event["run_id"], event["type"], event.get("epoch", -1))

            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                if status.startswith("2"):
                    with self._lock:
                        self.accepted[record] += 1
                return start_response(status, headers, exc_info)

            return wsgi(environ, start)

        return counted


@pytest.fixture
def counted_webhook(tmp_path: Path) -> Iterator[tuple[LiveWebhook, EventPosts]]:
    """The real webhook (waitress, SQLite store), counting what the outboxes POST."""
    backing = open_store(f"sqlite:///{tmp_path / 'webhook.db'}")
    # BROKER_LOGINS shared: the test broker is a permissive developer broker (guest).
    flask_app = create_app({"STORE": backing, "SIGNUP": "open", "BROKER_LOGINS": "shared",
                            "AMQP_URL": os.environ.get("FITWIRE_AMQP_URL", "amqp://guest:guest@localhost:5672/")})
    posts = EventPosts()
    url, server, thread = serve_in_thread(posts.wrap(flask_app), threads=8)
    live = LiveWebhook(url=url, store=backing)
    try:
        yield live, posts
    finally:
        live.session.close()
        server.close()
        thread.join(timeout=10)
        backing.close()


def _stopped_run(key: str, token: str, url: str, settings: Settings, ready: threading.Barrier,
                 done: dict[str, int]) -> None:
    """One run: two epochs, wait until every run is there, then go on until its STOP arrives."""
    with RunSession(key, token=token, webhook_url=url, settings=settings) as run:
        run.start(epochs=MAX_EPOCHS, steps=STEPS)
        assert run._transport is not None and run._transport.connected.wait(60)  # its signal queue exists
        for epoch in range(MAX_EPOCHS):
            run.begin_epoch(epoch)
            for batch in range(STEPS):
                run.log_batch(epoch, batch, {"loss": 1.0 / (batch + 1)})
                time.sleep(0.002)
            run.log_epoch(epoch, {"loss": 1.0 / (epoch + 1)})
            done[run.run_id] = epoch + 1
            if epoch == 1:
                ready.wait(120)
            if run.stop_requested:
                break
        # __exit__ ends it: stopped, since the STOP arrived


def test_runs_ending_together_under_stop_are_stored_whole_and_sent_once(
    settings: Settings, counted_webhook: tuple[LiveWebhook, EventPosts], monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook, posts = counted_webhook
    token = webhook.create_user("gina", "a long enough password")
    key = webhook.create_model(token, "crowd")
    done: dict[str, int] = {}
    for _ in range(ROUNDS):
        ready = threading.Barrier(RUNS + 1)
        workers = [threading.Thread(target=_stopped_run, args=(key, token, webhook.url, settings, ready, done))
                   for _ in range(RUNS)]
        for w in workers:
            w.start()
        ready.wait(180)
        sender = SignalSender(settings.amqp_url)
        try:
            sender.send(Signal(action="stop", model_key=key), "gina")  # every running run of the model
        finally:
            sender.close()
        for w in workers:
            w.join(180)
        assert not any(w.is_alive() for w in workers)
    assert len(done) == RUNS * ROUNDS

    # Whatever outbox_wait did not cover is in the outbox: a flush finishes it.
    monkeypatch.setenv("FITWIRE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FITWIRE_CONFIG_DIR", str(settings.config_dir))
    flushed = CliRunner().invoke(app, ["outbox", "flush", "--json"])
    assert flushed.exit_code == 0, flushed.output
    assert outbox_files(settings) == []

    runs = webhook.api("GET", f"/api/v1/models/{key}/runs", token).json()["runs"]
    assert sorted(r["run_id"] for r in runs) == sorted(done)
    assert {r["status"] for r in runs} == {"stopped"}
    for run_id, epochs in done.items():
        stored = webhook.api("GET", f"/api/v1/runs/{run_id}/epochs", token).json()["epochs"]
        assert [e["epoch"] for e in stored] == list(range(epochs)), run_id
    # Each record was accepted once: no run sent another run's records (one shared outbox used to
    # make it 8 times). A resend after a request timed out on a loaded webhook may repeat a few.
    records = sum(epochs + 2 for epochs in done.values())
    assert len(posts.accepted) == records
    repeated = {r: n for r, n in posts.accepted.items() if n > 1}
    assert len(repeated) <= records // 20 and max(posts.accepted.values()) <= 2, repeated


def test_records_of_dead_processes_are_sent_once_by_the_next_fits(
    settings: Settings, model_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script = tmp_path / "die.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        from fitwire.callback import RunSession
        for _ in range(3):
            run = RunSession({model_key!r}, token={TOKEN!r}, webhook_url={url!r})
            run.start(epochs=5)
            run.log_epoch(0, {{"loss": 1.0}})
            run.log_epoch(1, {{"loss": 0.5}})
            print(run.run_id, flush=True)
        os._exit(0)  # as a killed process: no train_end, nothing closed
    """))
    env = {**os.environ, "FITWIRE_DATA_DIR": str(settings.data_dir), "FITWIRE_CONFIG_DIR": str(settings.config_dir),
           "FITWIRE_AMQP_URL": settings.amqp_url, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    dead_runs = out.stdout.split()
    assert len(dead_runs) == 3

    monkeypatch.setenv("FITWIRE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FITWIRE_CONFIG_DIR", str(settings.config_dir))
    status = json.loads(CliRunner().invoke(app, ["outbox", "status", "--json"]).output)
    assert status["pending"] == 9 and not any(r["live"] for r in status["records"])

    rec = Receiver(settings.amqp_url, port).start()
    try:
        rec.add_user(USER, TOKEN, model_key)
        new_runs: list[str] = []

        def fit() -> None:
            with RunSession(model_key, token=TOKEN, webhook_url=url, settings=settings) as run:
                new_runs.append(run.run_id)
                run.start(epochs=3)
                for epoch in range(3):
                    time.sleep(0.3)
                    run.log_epoch(epoch, {"loss": 1.0})

        fits = [threading.Thread(target=fit) for _ in range(4)]
        for t in fits:
            t.start()
        for t in fits:
            t.join(60)

        for run_id in dead_runs:  # the webhook cannot know they died: stored as far as they went
            assert rec.store.runs[run_id]["status"] == "running"
            assert rec.run_epochs(run_id) == [0, 1]
        for run_id in new_runs:
            assert rec.store.runs[run_id]["status"] == "completed"
            assert rec.run_epochs(run_id) == [0, 1, 2]
        posted = [status for method, path, status in rec.store.requests if method == "POST"]
        assert all(200 <= status < 300 for status in posted)
        assert len(posted) == 3 * 3 + 4 * 5  # every record once: none multiplied by the four senders
        assert outbox_files(settings) == []
    finally:
        rec.stop()
