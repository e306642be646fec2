"""The broker restarts in the middle of a fit: the fit goes on, progress and signals resume."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import pytest

from fitwire.broker import connect, declare_all
from fitwire.broker.local import LocalNode, free_port
from fitwire.callback import Tracker
from fitwire.contract import Signal
from fitwire.contract.errors import LocalBrokerError
from fitwire.settings import Settings
from tests.callback.conftest import TOKEN, USER, warnings_of
from tests.callback.helpers import Watcher, fitwire_threads, send_signal, tiny_data, tiny_model
from tests.callback.receiver import Receiver
from tests.fixtures.services import service_missing

GIVE_UP_S = 240.0


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LocalNode]:
    """A private RabbitMQ node this test may stop and start at will."""
    local = LocalNode(tmp_path / "rabbit", free_port())
    try:
        local.start()
    except LocalBrokerError as exc:
        service_missing(f"a private RabbitMQ node ({exc})")
    conn = connect(local.url)
    declare_all(conn.channel())  # durable: still there after the restart
    conn.close()
    yield local
    local.stop()


class Pace(keras.callbacks.Callback):
    """Slows steps to ~20/s so the fit outlives a broker restart; gives up after GIVE_UP_S."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        time.sleep(0.05)
        if time.monotonic() - self.started > GIVE_UP_S:
            self.model.stop_training = True


@pytest.mark.slow
def test_broker_restarted_mid_fit(node: LocalNode, settings: Settings, receiver: Receiver, model_key: str,
                                  fitwire_log: pytest.LogCaptureFixture) -> None:
    tracker = Tracker(model_key, token=TOKEN, webhook_url=receiver.url, amqp_url=node.url, settings=settings,
                      max_batches_per_second=None)
    before = Watcher(node.url, f"*.{model_key}.*")
    seen: dict[str, Any] = {}
    errors: list[BaseException] = []

    def restart_broker() -> None:
        try:
            assert before.wait_for(lambda w: len(w.events(kind="batch")) >= 5, timeout=60)
            seen["last_before"] = before.events(kind="batch")[-1]
            node.stop()
            time.sleep(1.0)
            node.start()
            after = Watcher(node.url, f"*.{model_key}.*")
            seen["after"] = after
            # Progress resumes on the restarted broker …
            assert after.wait_for(lambda w: len(w.events(tracker.run_id, "batch")) >= 3, timeout=60)
            # … and so does the run's signal queue.
            send_signal(node.url, Signal(action="stop", model_key=model_key), owner=USER)
        except BaseException as exc:
            errors.append(exc)
            send_signal_safely(node.url, model_key)

    controller = threading.Thread(target=restart_broker, daemon=True)
    controller.start()
    x, y = tiny_data(64)
    started = time.monotonic()
    tiny_model().fit(x, y, batch_size=8, epochs=10_000, verbose=0, callbacks=[Pace(), tracker])
    elapsed = time.monotonic() - started
    controller.join(30)
    before.close()
    after = seen.get("after")
    try:
        assert not errors, errors
        assert elapsed < GIVE_UP_S, "the STOP sent after the restart never arrived"
        assert after is not None
        assert after.wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")))
        resumed = after.events(tracker.run_id, "batch")
        last = seen["last_before"]
        assert (resumed[0].epoch, resumed[0].batch) > (last.epoch, last.batch)
        assert resumed[0].seq > last.seq
        assert after.events(tracker.run_id, "train_end")[0].status == "stopped"
        assert [a.ok for a in after.events(tracker.run_id, "signal_ack")] == [True]
        lines = warnings_of(fitwire_log)
        assert len(lines) == 1 and "lost the broker" in lines[0]
        assert fitwire_threads() == []
        assert receiver.store.runs[tracker.run_id]["status"] == "stopped"
    finally:
        if after is not None:
            after.close()


def send_signal_safely(url: str, model_key: str) -> None:
    """End the fit when the scenario broke half-way, so the test fails fast instead of hanging."""
    for _ in range(60):
        try:
            send_signal(url, Signal(action="stop", model_key=model_key), owner=USER)
            return
        except Exception:
            time.sleep(1)
