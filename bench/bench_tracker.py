"""Tracker benchmarks: fit overhead, publish→watcher latency, STOP-to-halt.

Run with ``python -m bench bench_tracker`` (``make bench`` runs every module).
Ratios are measured side by side in one run, alternating the variants, so a
busy shared machine slows them all alike; absolute times are only context.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROUNDS = 7
FIT_SECONDS = 2.0
"""Target length of one measured fit: long enough that fit's fixed start-up cost does not dominate."""
LATENCY_RATE_HZ = 50.0
LATENCY_SECONDS = 12.0
STOP_TRIALS = 24


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def _amqp_url() -> str:
    return os.environ.get("FITWIRE_AMQP_URL", "amqp://guest:guest@localhost:5672/")


def _settings(tmp: Path) -> Any:
    from fitwire.settings import Settings

    return Settings.from_env(environ={}, amqp_url=_amqp_url(), data_dir=tmp / "data",
                             config_dir=tmp / "config")


# --- models --------------------------------------------------------------------------


def _mlp(batch: int) -> tuple[Any, Any, Any]:
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(batch * 64, 32)).astype("float32")
    return model, x, x[:, :1]


def _convnet(batch: int) -> tuple[Any, Any, Any]:
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(batch * 8, 32, 32, 3)).astype("float32")
    return model, x, np.zeros((len(x), 10), "float32")


def _step_seconds(model: Any, x: Any, y: Any, batch: int) -> float:
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # trace and warm up
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return (time.perf_counter() - started) / (len(x) // batch)


def _calibrated(build: Callable[[int], tuple[Any, Any, Any]], batch: int, target_s: float) -> tuple[Any, ...]:
    """Scale the batch size until one step takes about ``target_s``."""
    for _ in range(3):
        model, x, y = build(batch)
        step = _step_seconds(model, x, y, batch)
        if 0.7 < step / target_s < 1.4:
            break
        batch = max(16, int(batch * target_s / step))  # a loaded machine must not shrink it to nothing
    return model, x, y, batch, step


# --- the baselines -----------------------------------------------------------------------


class DLTrackerStyle:
    """What DL-Tracker did: every batch as str()-valued JSON, published synchronously on the training thread."""

    def __new__(cls, amqp_url: str, key: str) -> Any:
        import keras
        import pika

        class _Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs: Any = None) -> None:
                self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
                self.channel = self.conn.channel()
                self.queue = f"updates_{key}"
                self.channel.queue_declare(self.queue, auto_delete=True, arguments={"x-message-ttl": 5000})

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                body = json.dumps({"batch": str(batch), **{k: str(v) for k, v in (logs or {}).items()}})
                self.channel.basic_publish(exchange="", routing_key=self.queue, body=body)

            def on_train_end(self, logs: Any = None) -> None:
                self.conn.close()

        return _Callback()


# --- 1. overhead ---------------------------------------------------------------------------


def overhead(tmp: Path) -> None:
    import keras

    from fitwire.callback import Tracker

    settings = _settings(tmp)
    cases = [("MLP ~1 ms/step", _mlp, 32, 0.001), ("convnet ~20 ms/step", _convnet, 32, 0.020)]
    for title, build, batch, target in cases:
        model, x, y, batch, step = _calibrated(build, batch, target)
        steps = max(20, int(FIT_SECONDS / step))
        reps = -(-steps * batch // len(x))
        xs = x.repeat(reps, axis=0)[: steps * batch]
        ys = y.repeat(reps, axis=0)[: steps * batch]
        variants: dict[str, Callable[[], list[Any]]] = {
            "plain": list,
            "Tracker (default rate)": lambda: [Tracker("bench", settings=settings)],
            "Tracker (every batch)": lambda: [Tracker("bench", settings=settings, max_batches_per_second=None)],
            "DL-Tracker style": lambda: [DLTrackerStyle(_amqp_url(), f"bench{os.getpid()}")],
            "TensorBoard(batch)": lambda: [keras.callbacks.TensorBoard(log_dir=str(tmp / "tb"),
                                                                       update_freq="batch")],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for make in variants.values():  # warm-up: first-use costs (imports, tracing) are not overhead
            model.fit(xs[: batch * 10], ys[: batch * 10], batch_size=batch, epochs=1, verbose=0, callbacks=make())
        for r in range(ROUNDS):
            order = list(variants.items())
            if r % 2:
                order.reverse()
            for name, make in order:
                callbacks = make()
                started = time.perf_counter()
                model.fit(xs, ys, batch_size=batch, epochs=1, verbose=0, callbacks=callbacks)
                times[name].append(time.perf_counter() - started)
        print(f"\n{title}: {step * 1000:.2f} ms/step measured, {steps} steps/fit, batch {batch}, "
              f"{ROUNDS} alternating rounds", flush=True)
        plain = times["plain"]
        for name, values in times.items():
            ratios = [v / p for v, p in zip(values, plain, strict=True)]
            print(f"  {name:24s} median fit {statistics.median(values):6.3f} s   "
                  f"ratio to plain (median of rounds) {statistics.median(ratios):.3f}", flush=True)


# --- 2. latency ------------------------------------------------------------------------------


def latency(tmp: Path) -> None:
    from fitwire.callback import RunSession
    from tests.callback.helpers import Watcher

    settings = _settings(tmp)
    watcher = Watcher(_amqp_url(), "*.bench-latency.*")
    session = RunSession("bench-latency", settings=settings, max_batches_per_second=None)
    session.start(params={}, epochs=1, steps=None)
    time.sleep(1.0)  # connected and declared: measure the steady state, not the connect
    period = 1.0 / LATENCY_RATE_HZ
    n = int(LATENCY_SECONDS * LATENCY_RATE_HZ)
    next_at = time.perf_counter()
    for i in range(n):
        session.log_batch(0, i, {"loss": 1.0})
        next_at += period
        time.sleep(max(0.0, next_at - time.perf_counter()))
    session.end("completed")
    watcher.wait_for(lambda w: bool(w.events(session.run_id, "train_end")), timeout=10)
    with watcher._lock:
        samples = [(recv - m.ts) * 1000 for recv, m in watcher.messages
                   if m.run_id == session.run_id and m.type == "batch"]
    watcher.close()
    print(f"\npublish→watcher latency at {LATENCY_RATE_HZ:.0f} batches/s ({len(samples)}/{n} received): "
          f"p50 {_percentile(samples, 50):.2f} ms, p99 {_percentile(samples, 99):.2f} ms, "
          f"max {max(samples):.2f} ms (target p99 < 10 ms)", flush=True)


# --- 3. STOP-to-halt -------------------------------------------------------------------------


def _GiveUp(seconds: float) -> Any:  # noqa: N802 - a factory standing in for a class
    """Ends a trial whose STOP was lost, so the benchmark reports instead of hanging."""
    import keras

    class _Cb(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.deadline = time.monotonic() + seconds

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if time.monotonic() > self.deadline:
                self.model.stop_training = True

    return _Cb()



def stop_to_halt(tmp: Path) -> None:
    from fitwire.broker import Signal
    from fitwire.callback import Tracker
    from tests.callback.helpers import SignalSender

    settings = _settings(tmp)
    model, x, y, batch, _ = _calibrated(_mlp, 32, 0.002)
    vx, vy = x.copy(), y.copy()  # validation as long as an epoch: about half the STOPs land in it
    train_step = _step_seconds(model, x, y, batch)
    started = time.perf_counter()
    model.evaluate(vx, vy, batch_size=batch, verbose=0)
    eval_step = (time.perf_counter() - started) / (len(vx) // batch)
    sender = SignalSender(_amqp_url())
    halts: list[float] = []
    deliveries: list[float] = []
    in_validation = 0
    rng = random.Random(0)
    for _ in range(STOP_TRIALS):
        tracker = Tracker("bench-stop", settings=settings)
        sent: dict[str, float] = {}

        def stop_later(tracker: Any = tracker, sent: dict[str, float] = sent) -> None:
            while tracker.session is None or tracker.session._transport is None:
                time.sleep(0.01)
            # A STOP published before the run's queue exists is dropped by design: wait for it.
            tracker.session._transport.connected.wait(30)
            time.sleep(rng.uniform(0.2, 1.0))
            sent["evaluating"] = float(tracker._evaluating)
            sent["at"] = time.perf_counter()
            sender.send(Signal(action="stop", model_key="bench-stop", run_id=tracker.run_id))

        hook = tracker._on_remote_stop

        def timed_hook(signal: Any, hook: Any = hook, sent: dict[str, float] = sent) -> str:
            sent["flag_set"] = time.perf_counter()  # stop_training is set right after this
            return str(hook(signal))

        tracker._on_remote_stop = timed_hook  # see where the time goes: delivery vs Keras winding down
        thread = threading.Thread(target=stop_later, daemon=True)
        thread.start()
        model.fit(x, y, batch_size=batch, epochs=10_000, validation_data=(vx, vy), verbose=0,
                  callbacks=[tracker, _GiveUp(60.0)])
        returned = time.perf_counter()
        thread.join()
        halts.append((returned - sent["at"]) * 1000)
        deliveries.append((sent["flag_set"] - sent["at"]) * 1000)
        in_validation += int(sent["evaluating"])
    sender.close()
    net = [h - train_step * 1000 for h in halts]
    print(f"\nSTOP-to-halt over {STOP_TRIALS} trials with validation ({in_validation} STOPs landed in validation); "
          f"train step {train_step * 1000:.2f} ms, eval step {eval_step * 1000:.2f} ms", flush=True)
    print(f"  publish → fit returned:              p50 {_percentile(halts, 50):.1f} ms, "
          f"p99 {_percentile(halts, 99):.1f} ms", flush=True)
    print(f"  publish → stop_training set:         p50 {_percentile(deliveries, 50):.1f} ms, "
          f"p99 {_percentile(deliveries, 99):.1f} ms", flush=True)
    print(f"  minus one train step:                p50 {_percentile(net, 50):.1f} ms, "
          f"p99 {_percentile(net, 99):.1f} ms "
          f"(target p99 < 100 ms + one eval step = {100 + eval_step * 1000:.1f} ms)", flush=True)


def main() -> None:
    from fitwire.broker import answers

    logging.getLogger("fitwire").setLevel(logging.ERROR)  # the no-token notice, once per fit
    if not answers(_amqp_url()):
        raise RuntimeError(f"no RabbitMQ answers at {_amqp_url()}; start one with `fitwire dev broker up`")
    with tempfile.TemporaryDirectory(prefix="fitwire-bench-") as tmp:
        overhead(Path(tmp))
        latency(Path(tmp))
        stop_to_halt(Path(tmp))


if __name__ == "__main__":
    main()
