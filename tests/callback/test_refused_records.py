"""A record the webhook refuses for its size or content never leaves a run ``running``."""

from __future__ import annotations

import json
import time
from typing import Any

import keras
import pytest

from fitwire.broker.connection import login_name
from fitwire.callback import RunSession, Tracker
from fitwire.contract.messages import MAX_NAME_CHARS, Signal, decode, encode
from fitwire.settings import Settings
from tests.callback.conftest import warnings_of
from tests.callback.helpers import fitwire_threads, send_signal, tiny_data, tiny_model
from tests.fixtures.webhook import LiveWebhook

FIVE_MIB = 5 * 1024 * 1024


def test_text_fields_are_cut_to_their_documented_caps_not_refused() -> None:
    signal = decode(encode(Signal(action="stop", model_key="mk")).replace(b'"sender":""', b'"sender":"' + b"s" * 10_000 + b'"'),
                    Signal)
    assert len(signal.sender) == MAX_NAME_CHARS and signal.sender.endswith("…")
    assert Signal(action="stop", model_key="mk", sender="bob").sender == "bob"


class _StopWithAHugeSender(keras.callbacks.Callback):
    """At the end of epoch 0, a STOP whose sender is 5 MiB arrives through the real broker."""

    def __init__(self, amqp_url: str, tracker: Tracker) -> None:
        super().__init__()
        self.amqp_url = amqp_url
        self.tracker = tracker

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        session = self.tracker.session
        if epoch != 0 or session is None:
            return
        signal = Signal(action="stop", model_key=self.tracker.model_key, run_id=session.run_id)
        body = json.loads(encode(signal))
        body["sender"] = "m" * FIVE_MIB
        send_signal(self.amqp_url, signal, owner="erin", body=json.dumps(body).encode())
        deadline = time.monotonic() + 15
        while not session.stop_requested and time.monotonic() < deadline:
            time.sleep(0.02)


def test_a_stop_from_a_5_mib_sender_ends_the_run_stopped(settings: Settings, live_webhook: LiveWebhook) -> None:
    token = live_webhook.create_user("erin", "a long enough password")
    key = live_webhook.create_model(token, "huge sender")
    tracker = Tracker(key, token=token, webhook_url=live_webhook.url, settings=settings)
    x, y = tiny_data(32)
    history = tiny_model().fit(x, y, batch_size=8, epochs=30, verbose=0,
                               callbacks=[tracker, _StopWithAHugeSender(settings.amqp_url, tracker)])

    assert len(history.history["loss"]) < 30  # the STOP worked
    assert tracker.session is not None and tracker.session.stored is True
    run = live_webhook.api("GET", f"/api/v1/runs/{tracker.run_id}", token).json()
    assert run["status"] == "stopped"
    # The body's 5 MiB sender is never trusted: the sender is the broker-validated login.
    assert run["reason"] == f"STOP signal from {login_name(settings.amqp_url)}"
    assert fitwire_threads() == []


def test_a_train_end_too_large_for_the_webhook_is_sent_again_smaller(
    settings: Settings, live_webhook: LiveWebhook, fitwire_log: pytest.LogCaptureFixture
) -> None:
    token = live_webhook.create_user("fred", "a long enough password")
    key = live_webhook.create_model(token, "many metrics")
    # About 2 MiB of final logs: more than the webhook's 1 MiB body limit (413).
    huge_logs = {f"metric_{i:06d}_{'x' * 50}": float(i) for i in range(30_000)}
    with RunSession(key, token=token, webhook_url=live_webhook.url, settings=settings) as run:
        run.start(epochs=2)
        run.log_epoch(0, {"loss": 1.0})
        run.log_epoch(1, {"loss": 0.5})
        run.end("completed", "done", logs=huge_logs)

    assert run.stored is True
    stored = live_webhook.api("GET", f"/api/v1/runs/{run.run_id}", token).json()
    assert (stored["status"], stored["reason"], stored["final_logs"]) == ("completed", "done", {})
    epochs = live_webhook.api("GET", f"/api/v1/runs/{run.run_id}/epochs", token).json()["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    lines = warnings_of(fitwire_log)
    assert len(lines) == 1 and "refused a train_end record (413)" in lines[0]
