"""What watchers and the webhook see of a real Keras fit with the Tracker (real RabbitMQ)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fitwire.callback import RunSession, Tracker
from fitwire.settings import Settings
from tests.callback.conftest import TOKEN, USER
from tests.callback.helpers import Watcher, fitwire_threads, tiny_data, tiny_model
from tests.callback.receiver import Receiver

EPOCHS, SAMPLES, BATCH = 2, 64, 8
STEPS = SAMPLES // BATCH


def test_two_watchers_both_see_every_batch_and_the_stored_run(
    settings: Settings, receiver: Receiver, model_key: str, watchers: list[Watcher]
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"{USER}.{model_key}.*"))
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.#"))
    tracker = Tracker(model_key, token=TOKEN, webhook_url=receiver.url, settings=settings,
                      max_batches_per_second=None)
    x, y = tiny_data(SAMPLES)
    tiny_model().fit(x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=0.25, verbose=0,
                     callbacks=[tracker])
    run_id = tracker.run_id
    assert run_id
    steps = int(math.ceil(SAMPLES * 0.75 / BATCH))
    for w in watchers:
        assert w.wait_for(lambda w: bool(w.events(run_id, "train_end")))
        kinds = [m.type for m in w.events(run_id)]
        assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
        batches = w.events(run_id, "batch")
        assert [(b.epoch, b.batch) for b in batches] == [(e, b) for e in range(EPOCHS) for b in range(steps)]
        assert batches[-1].progress == 1.0 and isinstance(batches[0].logs["loss"], float)
        begin = w.events(run_id, "train_begin")[0]
        assert (begin.owner, begin.epochs, begin.steps, begin.framework) == (USER, EPOCHS, steps, "keras")
        ends = w.events(run_id, "epoch_end")
        assert [e.epoch for e in ends] == list(range(EPOCHS))
        assert {"loss", "val_loss"} <= set(ends[-1].logs)
        assert w.events(run_id, "train_end")[0].status == "completed"
        seqs = [m.seq for m in w.events(run_id)]
        assert seqs == sorted(seqs)
    # Persistence: the webhook has the run, its final status and every epoch.
    assert receiver.store.runs[run_id]["status"] == "completed"
    assert receiver.run_epochs(run_id) == list(range(EPOCHS))
    assert "val_loss" in receiver.store.epochs[(run_id, EPOCHS - 1)]
    assert fitwire_threads() == []


def test_by_default_a_watcher_gets_every_batch_with_its_loss_before_the_epoch_end(
    settings: Settings, model_key: str, watchers: list[Watcher]
) -> None:
    """500 batches at full speed with default options: each batch's value arrives exactly once, in order."""
    import keras

    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    seen: dict[tuple[int, int], float] = {}

    class Record(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            seen[(self.epoch, batch)] = float(logs["loss"])

    tracker = Tracker(model_key, settings=settings)
    x, y = tiny_data(250)
    tiny_model().fit(x, y, batch_size=1, epochs=2, verbose=0, callbacks=[Record(), tracker])
    w = watchers[0]
    assert w.wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")), timeout=60)
    events = w.events(tracker.run_id)
    batches = [(e.epoch, e.batch) for e in events if e.type == "batch"]
    assert batches == [(e, b) for e in range(2) for b in range(250)]
    assert {(e.epoch, e.batch): e.logs["loss"] for e in events if e.type == "batch"} == seen
    epoch_ends = {e.epoch: i for i, e in enumerate(events) if e.type == "epoch_end"}
    for i, e in enumerate(events):
        if e.type == "batch":
            assert i < epoch_ends[e.epoch]  # a late batch would redraw a finished epoch's bar
    assert fitwire_threads() == []


def test_each_fit_is_a_new_run_and_a_fixed_run_id_is_kept(
    settings: Settings, receiver: Receiver, model_key: str, watchers: list[Watcher]
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    x, y = tiny_data(16)
    model = tiny_model()
    tracker = Tracker(model_key, token=TOKEN, webhook_url=receiver.url, settings=settings)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[tracker])
    first = tracker.run_id
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[tracker])
    assert tracker.run_id != first
    fixed = Tracker(model_key, token=TOKEN, webhook_url=receiver.url, settings=settings, run_id="resumed-run-1")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[fixed])
    model.fit(x, y, batch_size=8, epochs=3, initial_epoch=2, verbose=0, callbacks=[fixed])
    assert fixed.run_id == "resumed-run-1"
    w = watchers[0]
    assert w.wait_for(lambda w: len(w.events(kind="train_end")) == 4)
    assert {m.run_id for m in w.events(kind="train_begin")} == {first, tracker.run_id, "resumed-run-1"}
    assert [m.initial_epoch for m in w.events("resumed-run-1", "train_begin")] == [0, 2]
    assert receiver.run_epochs("resumed-run-1") == [0, 1, 2]
    assert fitwire_threads() == []


def test_rate_option_sends_every_nth_batch_and_always_the_last(
    settings: Settings, model_key: str, watchers: list[Watcher]
) -> None:
    watchers.append(Watcher(settings.amqp_url, f"*.{model_key}.*"))
    tracker = Tracker(model_key, settings=settings, every_n_batches=3, max_batches_per_second=None)
    x, y = tiny_data(SAMPLES)
    tiny_model().fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[tracker])
    w = watchers[0]
    assert w.wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")))
    assert [b.batch for b in w.events(tracker.run_id, "batch")] == [2, 5, 7]


def test_framework_free_loop_example(settings: Settings, receiver: Receiver, model_key: str,
                                     watchers: list[Watcher]) -> None:
    """The README's 10-line example, with a plain Python loop."""
    watchers.append(Watcher(settings.amqp_url, f"{USER}.{model_key}.*"))
    with RunSession(model_key, token=TOKEN, webhook_url=receiver.url, settings=settings,
                    max_batches_per_second=None) as run:
        run.start(params={"lr": 0.1}, epochs=2, steps=4)
        for epoch in range(2):
            run.begin_epoch(epoch)
            for i in range(4):
                run.log_batch(epoch, i, {"loss": 1.0 / (epoch * 4 + i + 1)})
                if run.stop_requested:
                    break
            run.log_epoch(epoch, {"loss": 0.5, "acc": float("nan")})
    w = watchers[0]
    assert w.wait_for(lambda w: bool(w.events(run.run_id, "train_end")))
    assert len(w.events(run.run_id, "batch")) == 8
    end = w.events(run.run_id, "epoch_end")[-1]
    assert end.logs["loss"] == 0.5 and math.isnan(end.logs["acc"])
    assert w.events(run.run_id, "train_begin")[0].framework == "python"
    assert receiver.store.runs[run.run_id]["status"] == "completed"
    assert receiver.run_epochs(run.run_id) == [0, 1]


def test_session_context_manager_ends_failed_on_exception(
    settings: Settings, receiver: Receiver, model_key: str
) -> None:
    with pytest.raises(RuntimeError), RunSession(model_key, token=TOKEN, webhook_url=receiver.url,
                                                 settings=settings) as run:
        run.start(epochs=1)
        raise RuntimeError("loss exploded")
    assert receiver.store.runs[run.run_id]["status"] == "failed"
    assert "loss exploded" in receiver.store.runs[run.run_id]["reason"]
    assert fitwire_threads() == []


def test_a_fit_that_raised_is_closed_as_failed_by_the_next_fit(
    settings: Settings, receiver: Receiver, model_key: str
) -> None:
    import keras

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            raise ValueError("boom")

    tracker = Tracker(model_key, token=TOKEN, webhook_url=receiver.url, settings=settings)
    x, y = tiny_data(16)
    model = tiny_model()
    with pytest.raises(ValueError):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Boom(), tracker])
    failed = tracker.run_id
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[tracker])
    assert receiver.store.runs[failed]["status"] == "failed"
    assert receiver.store.runs[tracker.run_id]["status"] == "completed"
    assert fitwire_threads() == []


def test_import_does_not_need_keras() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['keras'] = None; sys.modules['tf_keras'] = None\n"
            "import fitwire.callback as c; print(c.RunSession.__name__)\n"
            "try:\n    c.Tracker\nexcept ImportError as e:\n    print('ImportError', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "RunSession"
    assert "ImportError" in out.stdout and "RunSession" in out.stdout.splitlines()[1]
