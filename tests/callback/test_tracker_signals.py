"""Remote control of a real Keras fit over real RabbitMQ: stop, set_lr, checkpoint, stale signals."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import pytest

from fitwire.broker import topology
from fitwire.broker.connection import login_name
from fitwire.callback import Tracker
from fitwire.callback.identity import ANONYMOUS
from fitwire.contract import Signal
from fitwire.settings import Settings
from tests.callback.conftest import TOKEN, USER
from tests.callback.helpers import (
    SignalSender,
    Watcher,
    fitwire_threads,
    send_signal,
    tiny_data,
    tiny_model,
)
from tests.callback.receiver import Receiver


class Script(keras.callbacks.Callback):
    """Runs ``action`` once at a given train (or validation) batch, slows every step, counts steps."""

    def __init__(self, at: tuple[int, int], action: Callable[[], None], *, in_validation: bool = False,
                 delay: float = 0.02) -> None:
        super().__init__()
        self.at, self.action, self.in_validation, self.delay = at, action, in_validation, delay
        self.epoch = 0
        self.fired = False
        self.train_steps_after = 0
        self.test_steps_after = 0
        self.epochs_begun = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch
        self.epochs_begun += 1

    def _maybe_fire(self, batch: int, validation: bool) -> None:
        if not self.fired and validation == self.in_validation and (self.epoch, batch) == self.at:
            self.fired = True
            self.action()
            time.sleep(0.3)  # plenty for the signal to arrive: the step in flight is the one that ends
        elif self.fired:
            if validation:
                self.test_steps_after += 1
            else:
                self.train_steps_after += 1

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self._maybe_fire(batch, False)
        time.sleep(self.delay)

    def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
        self._maybe_fire(batch, True)
        time.sleep(self.delay)


@pytest.fixture
def sender(amqp_url: str) -> Any:
    s = SignalSender(amqp_url)
    yield s
    s.close()


def _acks(w: Watcher, run_id: str) -> list[Any]:
    w.wait_for(lambda w: bool(w.events(run_id, "train_end")))
    return w.events(run_id, "signal_ack")


def test_stop_halts_at_the_next_batch_and_the_run_ends_stopped(
    settings: Settings, receiver: Receiver, model_key: str, watchers: list[Watcher], sender: SignalSender
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    stop = Signal(action="stop", model_key=model_key, sender="bob@phone")  # a claim, never trusted
    script = Script(at=(1, 2), action=lambda: sender.send(stop, USER))
    tracker = Tracker(model_key, token=TOKEN, webhook_url=receiver.url, settings=settings)
    x, y = tiny_data(64)
    history = tiny_model().fit(x, y, batch_size=8, epochs=20, verbose=0, callbacks=[script, tracker])
    # The STOP went out before step (1, 2) ran; that step finishes, no other one starts.
    assert script.train_steps_after == 0
    assert len(history.history["loss"]) == 2
    acks = _acks(watchers[0], tracker.run_id)
    assert [(a.signal_id, a.action, a.ok) for a in acks] == [(stop.id, "stop", True)]
    assert "stop_training" in acks[0].detail
    end = watchers[0].events(tracker.run_id, "train_end")[0]
    # The sender is the login RabbitMQ validated (user_id), not the body's claim.
    assert end.status == "stopped" and end.reason == f"STOP signal from {login_name(settings.amqp_url)}"
    assert receiver.store.runs[tracker.run_id]["status"] == "stopped"
    assert fitwire_threads() == []


def test_stop_during_validation_cuts_it_short_and_saves_a_checkpoint(
    settings: Settings, model_key: str, watchers: list[Watcher], sender: SignalSender, tmp_path: Path
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    script = Script(at=(0, 1), in_validation=True,
                    action=lambda: sender.send(Signal(action="stop", model_key=model_key)))
    ckpt = tmp_path / "ckpt" / "model-{epoch}.weights.h5"
    tracker = Tracker(model_key, settings=settings, checkpoint_path=ckpt)
    x, y = tiny_data(64)
    vx, vy = tiny_data(160, seed=1)  # 20 validation steps of 8
    tiny_model().fit(x, y, batch_size=8, epochs=5, validation_data=(vx, vy), verbose=0,
                     callbacks=[script, tracker])
    assert script.fired and script.test_steps_after == 0  # 18 validation steps were skipped
    assert script.epochs_begun == 1
    acks = _acks(watchers[0], tracker.run_id)
    assert acks[0].ok and "stop_evaluating" in acks[0].detail
    end = watchers[0].events(tracker.run_id, "train_end")[0]
    assert end.status == "stopped"
    assert (tmp_path / "ckpt" / "model-1.weights.h5").exists()


def test_stop_before_the_run_or_for_another_run_changes_nothing(
    settings: Settings, model_key: str, watchers: list[Watcher], sender: SignalSender, amqp_url: str
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    # Before the run exists: to the whole model and to the id the run will have.
    send_signal(amqp_url, Signal(action="stop", model_key=model_key))
    send_signal(amqp_url, Signal(action="stop", model_key=model_key, run_id="future-run"))
    other = Signal(action="stop", model_key=model_key, run_id="another-run")
    misrouted = Signal(action="stop", model_key=model_key, run_id="another-run")

    def during() -> None:
        sender.send(other)  # routed to <model>.another-run: never reaches this run's queue
        send_signal(amqp_url, misrouted, routing_run=topology.ANY_RUN)  # reaches it, but names another run

    script = Script(at=(0, 1), action=during)
    tracker = Tracker(model_key, settings=settings, run_id="future-run")
    x, y = tiny_data(32)
    history = tiny_model().fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[script, tracker])
    assert len(history.history["loss"]) == 3
    assert _acks(watchers[0], "future-run") == []
    assert watchers[0].events("future-run", "train_end")[0].status == "completed"


def test_set_lr_changes_the_optimizer_mid_fit_and_the_ack_says_so(
    settings: Settings, model_key: str, watchers: list[Watcher], sender: SignalSender
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    signal = Signal(action="set_lr", model_key=model_key, value=0.05)
    seen: list[float] = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seen.append(float(self.model.optimizer.learning_rate.numpy()))

    script = Script(at=(1, 0), action=lambda: sender.send(signal))
    model = tiny_model(lr=0.01)
    tracker = Tracker(model_key, settings=settings)
    x, y = tiny_data(32)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[script, tracker, Probe()])
    assert seen[0] == pytest.approx(0.01) and seen[1:] == [pytest.approx(0.05)] * 2
    acks = _acks(watchers[0], tracker.run_id)
    assert [(a.signal_id, a.ok) for a in acks] == [(signal.id, True)]
    assert "0.01 -> 0.05" in acks[0].detail


def test_set_lr_refuses_a_rate_out_of_bounds_and_the_optimizer_keeps_its_own(
    settings: Settings, model_key: str, watchers: list[Watcher], sender: SignalSender
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    huge = Signal(action="set_lr", model_key=model_key, value=1e6)
    negative = Signal(action="set_lr", model_key=model_key, value=-0.1)
    seen: list[float] = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seen.append(float(self.model.optimizer.learning_rate.numpy()))

    def both() -> None:
        sender.send(huge)
        sender.send(negative)

    model = tiny_model(lr=0.01)
    tracker = Tracker(model_key, settings=settings)
    x, y = tiny_data(32)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Script(at=(0, 1), action=both), tracker, Probe()])
    acks = {a.signal_id: a for a in _acks(watchers[0], tracker.run_id)}
    for signal in (huge, negative):
        assert not acks[signal.id].ok and "at most 10" in acks[signal.id].detail
    assert seen == [pytest.approx(0.01)] * 2


def test_set_lr_is_refused_when_the_learning_rate_is_a_schedule_and_checkpoint_needs_a_path(
    settings: Settings, model_key: str, watchers: list[Watcher], sender: SignalSender
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    set_lr = Signal(action="set_lr", model_key=model_key, value=0.05)
    checkpoint = Signal(action="checkpoint", model_key=model_key)

    def both() -> None:
        sender.send(set_lr)
        sender.send(checkpoint)

    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    model = tiny_model(lr=schedule)
    tracker = Tracker(model_key, settings=settings)
    x, y = tiny_data(32)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Script(at=(0, 1), action=both), tracker])
    acks = {a.signal_id: a for a in _acks(watchers[0], tracker.run_id)}
    assert not acks[set_lr.id].ok and "schedule" in acks[set_lr.id].detail
    assert not acks[checkpoint.id].ok and "checkpoint_path" in acks[checkpoint.id].detail
    assert isinstance(model.optimizer._learning_rate, keras.optimizers.schedules.ExponentialDecay)


def test_checkpoint_signal_saves_the_model(
    settings: Settings, model_key: str, watchers: list[Watcher], sender: SignalSender, tmp_path: Path
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    signal = Signal(action="checkpoint", model_key=model_key)
    target = tmp_path / "model.keras"
    tracker = Tracker(model_key, settings=settings, checkpoint_path=target)
    x, y = tiny_data(32)
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=0,
                     callbacks=[Script(at=(0, 1), action=lambda: sender.send(signal)), tracker])
    acks = _acks(watchers[0], tracker.run_id)
    assert acks[0].ok and str(target) in acks[0].detail
    assert keras.models.load_model(target).count_params() > 0


def test_an_undecodable_signal_is_dropped_and_the_fit_goes_on(
    settings: Settings, model_key: str, watchers: list[Watcher], sender: SignalSender
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))

    def garbage() -> None:
        sender.publish_raw(ANONYMOUS, model_key, b'{"type": "signal", "action": "explode"}')

    tracker = Tracker(model_key, settings=settings)
    x, y = tiny_data(32)
    history = tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=0,
                               callbacks=[Script(at=(0, 1), action=garbage), tracker])
    assert len(history.history["loss"]) == 2
    assert watchers[0].wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")))
    assert watchers[0].events(tracker.run_id, "train_end")[0].status == "completed"
    assert fitwire_threads() == []


def test_a_signal_without_user_id_is_answered_refused_and_the_fit_goes_on(
    settings: Settings, model_key: str, watchers: list[Watcher], sender: SignalSender
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    stop = Signal(action="stop", model_key=model_key, sender="admin")
    tracker = Tracker(model_key, settings=settings)
    x, y = tiny_data(32)

    def send_and_wait_for_the_answer() -> None:
        # A fit of 12 tiny steps can end before the signal's round trip: the run's queue goes with it.
        sender.send(stop, user_id=False)
        watchers[0].wait_for(lambda w: bool(w.events(tracker.run_id, "signal_ack")))

    history = tiny_model().fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[
        Script(at=(0, 1), action=send_and_wait_for_the_answer), tracker])
    assert len(history.history["loss"]) == 3
    acks = _acks(watchers[0], tracker.run_id)
    assert [(a.signal_id, a.ok) for a in acks] == [(stop.id, False)]
    assert acks[0].detail.startswith("unauthenticated signal")
    assert watchers[0].events(tracker.run_id, "train_end")[0].status == "completed"
