"""End to end: a real Keras ``fit`` with the real Tracker leaves its run and every epoch in the webhook's store."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from fitwire.settings import Settings
from tests.fixtures.webhook import LiveWebhook

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.mark.slow
def test_a_tracked_fit_is_stored(live_webhook: LiveWebhook, amqp_url: str, tmp_path: Path) -> None:
    pytest.importorskip("keras")
    import keras
    import numpy as np

    from fitwire.callback import Tracker

    token = live_webhook.create_user("alice", "correct horse")
    key = live_webhook.create_model(token, "mnist")
    settings = Settings.from_env(environ={}, amqp_url=amqp_url, data_dir=tmp_path / "data",
                                 config_dir=tmp_path / "config", outbox_wait=10.0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    tracker = Tracker(key, token=token, webhook_url=live_webhook.url, amqp_url=amqp_url, settings=settings)
    history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0, callbacks=[tracker])

    alice = live_webhook.store.get_credentials("alice").user
    deadline = time.monotonic() + 30  # the outbox may still be delivering after fit returns
    while live_webhook.store.get_run(alice.id, tracker.run_id).status == "running" \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    run = live_webhook.store.get_run(alice.id, tracker.run_id)
    assert (run.name, run.status, run.owner, run.model_key, run.epochs) == (
        "training_001", "completed", "alice", key, 3)
    assert run.framework in ("keras", "tf_keras") and run.host
    epochs = live_webhook.store.list_epochs(alice.id, tracker.run_id)
    assert [e.epoch for e in epochs] == [0, 1, 2]
    for epoch, stored in zip(range(3), epochs, strict=True):
        for name in ("loss", "val_loss"):
            assert math.isclose(stored.logs[name], history.history[name][epoch], rel_tol=1e-6)  # type: ignore[arg-type]
