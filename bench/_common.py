"""What the Keras benchmarks share: the broker URL, settings, calibrated workloads, percentiles, a CPU burner."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def stolen_seconds() -> float:
    """CPU time the hypervisor gave other guests while this VM wanted it (``steal`` in /proc/stat), all cores.

    A benchmark prints how much of it fell within its run: on a shared host it says when the
    figures were measured on a machine that was not all there. 0 where /proc/stat is missing.
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def amqp_url() -> str:
    return os.environ.get("FITWIRE_AMQP_URL", "amqp://guest:guest@localhost:5672/")


def settings(tmp: Path) -> Any:
    """Settings that never touch the user's own data dir or login file."""
    from fitwire.settings import Settings

    return Settings.from_env(environ={}, amqp_url=amqp_url(), data_dir=tmp / "data", config_dir=tmp / "config")


def require_broker() -> None:
    from fitwire.broker import answers

    if not answers(amqp_url()):
        raise RuntimeError(f"no RabbitMQ answers at {amqp_url()}; run the bench through "
                           "`python scripts/with_broker.py` or start one with `fitwire dev broker up`")


# --- workloads -----------------------------------------------------------------------

Build = Callable[[int], tuple[Any, Any, Any]]


def mlp(batch: int) -> tuple[Any, Any, Any]:
    """A tiny MLP: at batch 32 a step is about 1 ms on a laptop core, so per-batch costs show."""
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).normal(size=(batch * 64, 32)).astype("float32")
    return model, x, x[:, :1]


def convnet(batch: int) -> tuple[Any, Any, Any]:
    """A small convnet, about 20 ms a step: a realistic small training."""
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).normal(size=(batch * 8, 32, 32, 3)).astype("float32")
    return model, x, np.zeros((len(x), 10), "float32")


def step_seconds(model: Any, x: Any, y: Any, batch: int) -> float:
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # trace and warm up
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return (time.perf_counter() - started) / (len(x) // batch)


def calibrated(build: Build, batch: int, target_s: float) -> tuple[Any, Any, Any, int, float]:
    """(model, x, y, batch, step seconds), the batch size scaled until one step takes about ``target_s``."""
    for _ in range(3):
        model, x, y = build(batch)
        step = step_seconds(model, x, y, batch)
        if 0.7 < step / target_s < 1.4:
            break
        batch = max(16, int(batch * target_s / step))  # a loaded machine must not shrink it to nothing
    return model, x, y, batch, step


# --- a busy machine ------------------------------------------------------------------------


def _burn(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


@contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """``n`` other processes keep a core each busy (pure Python loops), as a second job on the box would."""
    if n <= 0:
        yield
        return
    ctx = multiprocessing.get_context("spawn")  # no forked TensorFlow state in the burners
    stop = ctx.Event()
    procs = [ctx.Process(target=_burn, args=(stop,), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
