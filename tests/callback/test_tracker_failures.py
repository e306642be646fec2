"""Outages and refusals: the fit completes on time, one warning line per condition, nothing lingers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fitwire.callback import Tracker
from fitwire.callback.outbox import Outbox, outbox_files
from fitwire.cli.main import app
from fitwire.settings import Settings
from tests.callback.conftest import TOKEN, USER, free_port, warnings_of
from tests.callback.helpers import Watcher, fitwire_threads, tiny_data, tiny_model
from tests.callback.receiver import Receiver

FIT_BOUND_S = 30.0
"""Generous: a tiny fit takes about a second; an outage may add the bounded outbox wait."""


def _fit(tracker: Tracker, epochs: int = 3) -> float:
    x, y = tiny_data(32)
    started = time.monotonic()
    history = tiny_model().fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[tracker])
    assert len(history.history["loss"]) == epochs  # training itself was not affected
    return time.monotonic() - started


def _counts(settings: Settings) -> dict[str, int]:
    """What `fitwire outbox status` would count, over every run's outbox file."""
    total = {"pending": 0, "rejected": 0}
    for path in outbox_files(settings):
        outbox = Outbox(path, create=False)
        try:
            for state, n in outbox.counts().items():
                total[state] += n
        finally:
            outbox.close()
    return total


def test_broker_down_at_start(settings: Settings, receiver: Receiver, model_key: str,
                              fitwire_log: pytest.LogCaptureFixture) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    tracker = Tracker(model_key, token=TOKEN, webhook_url=receiver.url, amqp_url=dead, settings=settings)
    assert _fit(tracker) < FIT_BOUND_S
    lines = warnings_of(fitwire_log)
    assert len(lines) == 1 and "no RabbitMQ" in lines[0]
    assert fitwire_threads() == []
    # Persistence does not depend on the broker.
    assert receiver.store.runs[tracker.run_id]["status"] == "completed"
    assert receiver.run_epochs(tracker.run_id) == [0, 1, 2]


@pytest.mark.parametrize("outage", ["refused", "503"])
def test_webhook_down_keeps_records_for_fitwire_outbox_flush(
    settings: Settings, model_key: str, watchers: list[Watcher], fitwire_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch, outage: str
) -> None:
    port = free_port()
    down = None
    if outage == "503":
        down = Receiver(settings.amqp_url, port).start()
        down.add_user(USER, TOKEN, model_key)
        down.store.down = True
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    tracker = Tracker(model_key, token=TOKEN, webhook_url=f"http://127.0.0.1:{port}", settings=settings)
    assert _fit(tracker) < FIT_BOUND_S
    lines = warnings_of(fitwire_log)
    assert len(lines) == 1 and "webhook" in lines[0]
    assert fitwire_threads() == []
    # Live progress was not affected; the owner falls back to anonymous without a login.
    assert watchers[0].wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")))
    assert watchers[0].events(tracker.run_id, "train_begin")[0].owner == "anonymous"
    assert _counts(settings) == {"pending": 5, "rejected": 0}  # begin, 3 epochs, end
    if down is not None:
        down.stop()

    # The webhook is back: `fitwire outbox flush` delivers everything, in order.
    rec = Receiver(settings.amqp_url, port).start()
    try:
        rec.add_user(USER, TOKEN, model_key)
        monkeypatch.setenv("FITWIRE_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("FITWIRE_CONFIG_DIR", str(settings.config_dir))
        result = CliRunner().invoke(app, ["outbox", "flush", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["sent"] == 5
        assert rec.store.runs[tracker.run_id]["status"] == "completed"
        assert rec.run_epochs(tracker.run_id) == [0, 1, 2]
        status = CliRunner().invoke(app, ["outbox", "status", "--json"])
        assert json.loads(status.output)["pending"] == 0
    finally:
        rec.stop()


def test_wrong_credentials_warn_once_and_are_not_retried(
    settings: Settings, receiver: Receiver, model_key: str, watchers: list[Watcher],
    fitwire_log: pytest.LogCaptureFixture
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    tracker = Tracker(model_key, token="not-a-token", webhook_url=receiver.url, settings=settings)
    assert _fit(tracker) < FIT_BOUND_S
    lines = warnings_of(fitwire_log)
    assert len(lines) == 1 and "401" in lines[0]
    assert _counts(settings) == {"pending": 0, "rejected": 5}
    assert watchers[0].wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")))
    assert fitwire_threads() == []
    # The next fit does not retry the refused records.
    before = len(receiver.store.requests)
    _fit(Tracker(model_key, token=TOKEN, webhook_url=receiver.url, settings=settings), epochs=1)
    posted = [r for r in receiver.store.requests[before:] if r[0] == "POST"]
    assert len(posted) == 3 and all(status < 300 for _, _, status in posted)


def test_unknown_model_key_warns_once(settings: Settings, receiver: Receiver,
                                      fitwire_log: pytest.LogCaptureFixture) -> None:
    tracker = Tracker("no-such-model", token=TOKEN, webhook_url=receiver.url, settings=settings)
    assert _fit(tracker) < FIT_BOUND_S
    lines = warnings_of(fitwire_log)
    assert len(lines) == 1 and "404" in lines[0]
    assert _counts(settings) == {"pending": 0, "rejected": 5}
    assert receiver.store.runs == {}
    assert fitwire_threads() == []


def test_process_exits_promptly_with_broker_and_webhook_down(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, keras
        from fitwire.callback import Tracker
        x = np.zeros((32, 3), "float32"); y = np.zeros((32, 1), "float32")
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Tracker("mk", token="t")])
        print("fit returned")
    """))
    env = {**os.environ, "FITWIRE_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
           "FITWIRE_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}", "FITWIRE_DATA_DIR": str(tmp_path / "d"),
           "FITWIRE_CONFIG_DIR": str(tmp_path / "c"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fit returned" in out.stdout
    fitwire_lines = [line for line in out.stderr.splitlines() if line.startswith("fitwire:")]
    assert len(fitwire_lines) == 2, out.stderr[-2000:]  # one for the webhook, one for the broker


def test_records_left_by_a_webhook_outage_are_sent_by_the_next_fit(settings: Settings, model_key: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = Tracker(model_key, token=TOKEN, webhook_url=url, settings=settings)
    _fit(first, epochs=2)
    assert _counts(settings)["pending"] == 4
    rec = Receiver(settings.amqp_url, port).start()
    try:
        rec.add_user(USER, TOKEN, model_key)
        second = Tracker(model_key, token=TOKEN, webhook_url=url, settings=settings)
        _fit(second, epochs=1)
        # The next fit's outbox thread sends the leftovers as soon as it starts.
        assert rec.store.runs[first.run_id]["status"] == "completed"
        assert rec.run_epochs(first.run_id) == [0, 1]
        assert rec.store.runs[second.run_id]["status"] == "completed"
        assert _counts(settings) == {"pending": 0, "rejected": 0}
    finally:
        rec.stop()
