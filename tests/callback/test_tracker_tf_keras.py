"""The same Tracker inside a tf_keras (Keras 2) fit, where tf_keras is installed."""

from __future__ import annotations

from typing import Any

import pytest

from fitwire.callback import Tracker
from fitwire.contract import Signal
from fitwire.settings import Settings
from tests.callback.helpers import SignalSender, Watcher, fitwire_threads, tiny_data

tf_keras = pytest.importorskip("tf_keras", reason="tf_keras is an optional framework")


def test_tf_keras_fit_streams_and_obeys_stop(settings: Settings, model_key: str, watchers: list[Watcher],
                                             amqp_url: str) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    sender = SignalSender(amqp_url)

    class StopAt(tf_keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if self.params and batch == 2 and not hasattr(self, "sent"):
                self.sent = True
                sender.send(Signal(action="stop", model_key=model_key))
                import time

                time.sleep(0.3)

    model = tf_keras.Sequential([tf_keras.layers.Dense(4, activation="relu", input_shape=(3,)),
                                 tf_keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    tracker = Tracker(model_key, settings=settings, max_batches_per_second=None)
    x, y = tiny_data(64)
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[StopAt(), tracker])
    sender.close()
    assert len(history.history["loss"]) == 1
    w = watchers[0]
    assert w.wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")))
    assert [b.batch for b in w.events(tracker.run_id, "batch")] == [0, 1, 2]
    assert isinstance(w.events(tracker.run_id, "batch")[0].logs["loss"], float)
    assert w.events(tracker.run_id, "train_end")[0].status == "stopped"
    assert w.events(tracker.run_id, "train_begin")[0].framework == "tf_keras"
    assert fitwire_threads() == []
