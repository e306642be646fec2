"""What tracking costs a fit: issue 12's table, rebuilt side by side in one run.

``python scripts/with_broker.py .venv/bin/python -m bench bench_overhead`` (``make
bench`` runs it with the others); for more rounds or a subset, run the module:

    python scripts/with_broker.py .venv/bin/python -m bench.bench_overhead --rounds 13
    python scripts/with_broker.py .venv/bin/python -m bench.bench_overhead --workload mlp \\
        --variant "proto=/tmp/proto/fast_tracker.py:make"

Variants: a plain fit; the Tracker as it comes (every batch, consecutive batches
carried together in ``batches`` messages) and capped at 20 batch events a second
(``max_batches_per_second=20``); DL-Tracker's design (a str()-valued JSON
publish on the training thread per batch); Keras ``TensorBoard(update_freq="batch")``;
and, when installed, W&B offline (``WandbMetricsLogger(log_freq="batch")``) and
MLflow (``MlflowCallback`` logging every batch, SQLite store). W&B and MLflow are
never fitwire dependencies: install them into the bench environment
(``pip install wandb mlflow``); without them their rows say "skipped".

``--variant NAME=FILE.py:FACTORY`` adds a row from a file outside the repo (a
prototype): ``FACTORY(model_key, settings)`` returns a Keras callback with a
``run_id`` attribute after ``fit``.

Every round runs every variant once on the same model and data, in alternating
order; a row's ratio is its fit time over the plain fit's in the same round
(median, and min–max over rounds), so a busy machine slows all rows alike.
For the fitwire rows a watcher in another process counts the batch values that
reached it ("delivered"), since dropping batches is how a tracker hides its cost.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
    Build,
    amqp_url,
    calibrated,
    convnet,
    mlp,
    require_broker,
    settings,
    stolen_seconds,
)

ROUNDS = 5
FIT_SECONDS = 2.0
"""Target length of one measured fit: long enough that fit's fixed start-up cost does not dominate."""
WORKLOADS: dict[str, tuple[str, Build, int, float]] = {
    "mlp": ("tiny MLP, ~1 ms/step", mlp, 32, 0.001),
    "convnet": ("convnet, ~20 ms/step", convnet, 32, 0.020),
}


@dataclass
class Variant:
    """One row: how to make its callbacks before a fit and what to close after it."""

    name: str
    make: Callable[[], list[Any]]
    after: Callable[[list[Any]], None] = lambda callbacks: None
    counted: bool = False
    """A fitwire-style tracker: its ``run_id`` is looked up in the watcher's counts."""
    skipped: str = ""
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    """The process's CPU seconds (every thread) during each fit."""
    delivered: list[float] = field(default_factory=list)


class DLTrackerStyle:
    """What DL-Tracker did: every batch as str()-valued JSON, published synchronously on the training thread."""

    def __new__(cls, url: str, key: str) -> Any:
        import keras
        import pika

        class _Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs: Any = None) -> None:
                self.conn = pika.BlockingConnection(pika.URLParameters(url))
                self.channel = self.conn.channel()
                self.queue = f"updates_{key}"
                self.channel.queue_declare(self.queue, auto_delete=True, arguments={"x-message-ttl": 5000})

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                body = json.dumps({"batch": str(batch), **{k: str(v) for k, v in (logs or {}).items()}})
                self.channel.basic_publish(exchange="", routing_key=self.queue, body=body)

            def on_train_end(self, logs: Any = None) -> None:
                self.conn.close()

        return _Callback()


def _wandb(tmp: Path) -> Variant:
    name = 'W&B offline, WandbMetricsLogger(log_freq="batch")'
    if importlib.util.find_spec("wandb") is None:
        return Variant(name, list, skipped="wandb not installed (pip install wandb in the bench environment)")
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(tmp), WANDB_CONSOLE="off")
    import wandb
    from wandb.integration.keras import WandbMetricsLogger

    def make() -> list[Any]:
        wandb.init(mode="offline", dir=str(tmp), project="fitwire-bench", settings=wandb.Settings(silent=True))
        return [WandbMetricsLogger(log_freq="batch")]

    return Variant(name, make, after=lambda _: wandb.finish())


def _mlflow(tmp: Path) -> Variant:
    name = "MLflow, MlflowCallback(log_every_n_steps=1) (async logging)"
    if importlib.util.find_spec("mlflow") is None:
        return Variant(name, list, skipped="mlflow not installed (pip install mlflow in the bench environment)")
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")  # MLflow 3's default backend
    # its artifacts in the bench's temporary directory too, not ./mlruns in the working tree
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("fitwire-bench", artifact_location=tmp.as_uri()))
    try:
        from mlflow.keras import MlflowCallback
    except ImportError:  # older MLflow: the TensorFlow flavour has it
        from mlflow.tensorflow import MlflowCallback

    def make() -> list[Any]:
        mlflow.start_run()
        return [MlflowCallback(log_every_epoch=False, log_every_n_steps=1)]

    return Variant(name, make, after=lambda _: mlflow.end_run())


def _external(spec: str, model_key: str, cfg: Any) -> Variant:
    """``NAME=FILE.py:FACTORY``: a prototype measured against the current code without touching the repo."""
    name, _, target = spec.partition("=")
    path, _, factory = target.rpartition(":")
    if not (name and path and factory):
        raise SystemExit(f"--variant wants NAME=FILE.py:FACTORY, got {spec!r}")
    module_spec = importlib.util.spec_from_file_location(f"bench_variant_{uuid.uuid4().hex[:6]}", path)
    if module_spec is None or module_spec.loader is None:
        raise SystemExit(f"--variant {spec!r}: cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    make = getattr(module, factory)
    return Variant(name, lambda: [make(model_key, cfg)], counted=True)


def variants(tmp: Path, model_key: str, extra: list[str]) -> list[Variant]:
    import keras

    from fitwire.callback import Tracker

    cfg = settings(tmp)
    return [
        Variant("plain fit", list),
        Variant("Tracker, default (every batch, batches messages)",
                lambda: [Tracker(model_key, settings=cfg)], counted=True),
        Variant("Tracker, capped (max_batches_per_second=20)",
                lambda: [Tracker(model_key, settings=cfg, max_batches_per_second=20)], counted=True),
        *[_external(spec, model_key, cfg) for spec in extra],
        Variant("DL-Tracker style: synchronous publish on the training thread",
                lambda: [DLTrackerStyle(amqp_url(), f"bench{os.getpid()}")]),
        Variant('Keras TensorBoard(update_freq="batch")',
                lambda: [keras.callbacks.TensorBoard(log_dir=str(tmp / "tb"), update_freq="batch")]),
        _wandb(tmp),
        _mlflow(tmp),
    ]


class _Counter:
    """The batch-counting watcher process (bench/_batch_counter.py)."""

    def __init__(self, pattern: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._batch_counter", pattern],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).parents[1])
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the batch-counting watcher did not start")

    def counts(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        return {k: int(v) for k, v in json.loads(self.proc.stdout.readline()).items()}

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def measure(workload: str, rounds: int, fit_seconds: float, extra: list[str], watch: bool,
            only: list[str]) -> None:
    title, build, batch, target = WORKLOADS[workload]
    model, x, y, batch, step = calibrated(build, batch, target)
    steps = max(20, int(fit_seconds / step))
    reps = -(-steps * batch // len(x))
    xs, ys = x.repeat(reps, axis=0)[: steps * batch], y.repeat(reps, axis=0)[: steps * batch]
    model_key = f"bench-overhead-{uuid.uuid4().hex[:6]}"
    counter = _Counter(f"*.{model_key}.*") if watch else None
    with tempfile.TemporaryDirectory(prefix="fitwire-bench-") as tmp:
        rows = variants(Path(tmp), model_key, extra)
        if only:
            rows = [rows[0], *(v for v in rows[1:] if any(o.lower() in v.name.lower() for o in only))]
        active = [v for v in rows if not v.skipped]
        stolen, began = stolen_seconds(), time.perf_counter()
        for v in active:  # warm-up: first-use costs (imports, tracing, connections) are not overhead
            callbacks = v.make()
            model.fit(xs[: batch * 10], ys[: batch * 10], batch_size=batch, epochs=1, verbose=0,
                      callbacks=callbacks)
            v.after(callbacks)
        for r in range(rounds):
            order = active if r % 2 == 0 else active[::-1]
            for v in order:
                callbacks = v.make()
                started, cpu_started = time.perf_counter(), time.process_time()
                model.fit(xs, ys, batch_size=batch, epochs=1, verbose=0, callbacks=callbacks)
                v.times.append(time.perf_counter() - started)
                v.cpu.append(time.process_time() - cpu_started)
                v.after(callbacks)
                if counter is not None and v.counted:
                    run_id = callbacks[0].run_id
                    v.delivered.append(counter.counts().get(run_id, 0) / steps)
        stolen, wall = stolen_seconds() - stolen, time.perf_counter() - began
    if counter is not None:
        counter.close()
    plain = rows[0].times
    print(f"\n{title}: {step * 1000:.2f} ms/step measured, {steps} steps per fit (batch {batch}), "
          f"{rounds} alternating rounds; ratio = fit time / plain fit in the same round; the hypervisor took "
          f"{stolen:.1f} s of CPU from this VM in those {wall:.0f} s (steal: other guests of a shared host)",
          flush=True)
    # A shared VM's other guests only ever add time, so the fastest fits of each variant show the
    # cost with the least interference; the process's CPU (every thread) is not inflated by waiting.
    print("| variant | fit-time ratio, median (min–max) | fastest fits' ratio | process CPU ratio | cost per batch "
          "| batches delivered |", flush=True)
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    for v in rows:
        if v.skipped:
            print(f"| {v.name} | skipped: {v.skipped} | | | | |", flush=True)
            continue
        ratios = [t / p for t, p in zip(v.times, plain, strict=True)]
        per_batch_us = (statistics.median(v.times) - statistics.median(plain)) / steps * 1e6
        delivered = f"{statistics.median(v.delivered):.0%}" if v.delivered else ""
        fastest = min(v.times) / min(plain)
        cpu_ratio = statistics.median(v.cpu) / statistics.median(rows[0].cpu)
        print(f"| {v.name} | {statistics.median(ratios):.3f} ({min(ratios):.2f}–{max(ratios):.2f}) | "
              f"{fastest:.3f} | {cpu_ratio:.3f} | {per_batch_us:+.0f} µs | {delivered} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternating rounds (default {ROUNDS})")
    parser.add_argument("--fit-seconds", type=float, default=FIT_SECONDS, help="target length of one fit")
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FILE.py:FACTORY",
                        help="an extra tracker row, e.g. a prototype outside the repo (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="keep only the rows whose name contains TEXT (and the plain fit; repeatable)")
    parser.add_argument("--no-watcher", action="store_true",
                        help="no watcher process (the broker then drops the progress messages)")
    args = parser.parse_args(argv or [])
    logging.getLogger("fitwire").setLevel(logging.ERROR)  # the no-token notice, once per fit
    logging.getLogger("absl").setLevel(logging.ERROR)
    require_broker()
    for workload in WORKLOADS if args.workload == "all" else [args.workload]:
        measure(workload, args.rounds, args.fit_seconds, args.variant, not args.no_watcher, args.only)


if __name__ == "__main__":
    main(sys.argv[1:])
