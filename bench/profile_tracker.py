"""Where the Tracker's every-batch cost goes: CPU per thread, the transport thread's profile, per-event costs.

``python scripts/with_broker.py .venv/bin/python -m bench.profile_tracker [--steps 3000]``
(not part of ``make bench``: it prints a profile, not a benchmark figure).

1. A fit of the tiny MLP with ``Tracker(max_batches_per_second=None)`` and a
   plain fit of the same length: wall time, and CPU seconds of the training
   thread, the transport thread and the rest of the process (from
   ``/proc/self/task``), per batch.
2. cProfile of the transport thread during that fit, grouped by what the time
   is spent on (log conversion, pydantic model, JSON encoding, pika publish,
   waiting for the socket).
3. Per-event micro-costs of each step on the hot path, against one plain
   ``json.dumps`` of already-converted floats.
4. One publish through the adapter's ``Consumer``: as one ``send`` of cached frame
   bytes (``fitwire.broker.frames``) against pika's ``basic_publish``, back to back and
   between batches (a 50 ms sleep first, as a run's transport does: cold caches).

``--variant FILE.py:FACTORY`` profiles a prototype instead of the Tracker
(``FACTORY(model_key, settings)`` returns the callback).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import json
import logging
import os
import pstats
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import Any

from bench._common import amqp_url, mlp, require_broker, settings

_TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = {
    "log conversion (numbers)": ("transport.py", "numbers"),
    "pydantic model build": ("pydantic/main.py", "__init__"),
    "JSON encoding (model_dump_json)": ("", "model_dump_json"),
    "publish: one send of cached frames": ("frames.py", "publish"),
    "publish: pika basic_publish (where one send cannot)": ("blocking_connection.py", "basic_publish"),
    "pika process_data_events (wait + reads)": ("blocking_connection.py", "process_data_events"),
    "event queue take_all / coalesce": ("transport.py", "take_all"),
    "batches encoding (encode_batches)": ("transport.py", "encode_batches"),
}


def _thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every thread of this process, by native id."""
    out: dict[int, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            continue
    return out


class _TransportSpy:
    """Wraps ``Transport.run``: each transport thread's CPU seconds, and a cProfile of it when asked."""

    def __init__(self) -> None:
        from fitwire.callback import transport

        self.profile = False
        self.profiles: list[cProfile.Profile] = []
        self.cpu: list[float] = []
        # A prototype's subclass may have its own loop: wrap every class that defines run.
        for cls in (transport.Transport, *transport.Transport.__subclasses__()):
            if "run" in vars(cls):
                self._wrap(cls)

    def _wrap(self, cls: type) -> None:
        original = cls.run  # type: ignore[attr-defined]

        def run(inner: Any) -> None:
            started = time.thread_time()  # read inside the thread: it is gone from /proc when fit returns
            try:
                if self.profile:
                    prof = cProfile.Profile()
                    self.profiles.append(prof)
                    prof.runcall(original, inner)
                else:
                    original(inner)
            finally:
                self.cpu.append(time.thread_time() - started)

        cls.run = run  # type: ignore[attr-defined]


def _grouped(stats: pstats.Stats) -> list[tuple[str, float]]:
    rows = []
    for label, (file_part, func) in GROUPS.items():
        total = 0.0
        for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if name == func and file_part in filename:
                total = max(total, ct)  # cumulative of the outermost frame of that name
        rows.append((label, total))
    return rows


def _fit(model: Any, xs: Any, ys: Any, callbacks: list[Any]) -> tuple[float, float, float]:
    """(wall, training thread CPU, CPU of the process's other live threads) of one fit, seconds."""
    main_tid = threading.get_native_id()
    before = _thread_cpu()
    started = time.perf_counter()
    model.fit(xs, ys, batch_size=32, verbose=0, callbacks=callbacks)
    wall = time.perf_counter() - started
    after = _thread_cpu()
    cpu = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    main = cpu.pop(main_tid, 0.0)
    return wall, main, sum(cpu.values())


def fit_profile(steps: int, factory: Any) -> None:
    model, x, y = mlp(32)
    reps = -(-steps * 32 // len(x))
    xs, ys = x.repeat(reps, axis=0)[: steps * 32], y.repeat(reps, axis=0)[: steps * 32]
    model.fit(xs[:640], ys[:640], batch_size=32, verbose=0)
    spy = _TransportSpy()
    with tempfile.TemporaryDirectory(prefix="fitwire-profile-") as tmp:
        cfg = settings(Path(tmp))
        model.fit(xs[:320], ys[:320], batch_size=32, verbose=0, callbacks=[factory("bench-profile", cfg)])
        plain = _fit(model, xs, ys, [])
        spy.cpu.clear()
        tracked_cb = factory("bench-profile", cfg)
        tracked = _fit(model, xs, ys, [tracked_cb])
        thread = getattr(getattr(tracked_cb, "session", None), "_transport", None)
        if thread is not None:
            thread.join(10)  # fit returns before the connection's close handshake: its CPU comes at the end
        transport_cpu = spy.cpu[-1] if spy.cpu else float("nan")
        published = getattr(thread, "published", "?")
        spy.profile = True
        model.fit(xs, ys, batch_size=32, verbose=0, callbacks=[factory("bench-profile", cfg)])
    print(f"\n1. fit of {steps} steps, tiny MLP (batch 32): per batch, µs")
    print(f"{'':9s} {'wall':>6s} {'training thread CPU':>20s} {'transport thread CPU':>21s} "
          f"{'other live threads CPU':>23s}")
    for name, (wall, main, other), trans in (("plain", plain, 0.0), ("tracked", tracked, transport_cpu)):
        print(f"{name:9s} {wall / steps * 1e6:6.0f} {main / steps * 1e6:20.0f} {trans / steps * 1e6:21.0f} "
              f"{other / steps * 1e6:23.0f}")
    print(f"  tracked: {published} events published for {steps} batches")
    if spy.profiles:
        stats = pstats.Stats(spy.profiles[-1])
        total = sum(tt for (_cc, _nc, tt, _ct, _c) in stats.stats.values())  # type: ignore[attr-defined]
        print(f"\n2. transport thread under cProfile ({total:.2f} s in the thread; cProfile inflates "
              "Python-heavy parts; socket calls include the wait to get the GIL back):")
        for label, seconds in _grouped(stats):
            print(f"  {label:45s} {seconds:6.2f} s  {seconds / total:5.0%}   {seconds / steps * 1e6:6.0f} µs/batch")
        out = io.StringIO()
        pstats.Stats(spy.profiles[-1], stream=out).sort_stats("tottime").print_stats(14)
        print("  top functions by own time:")
        print("\n".join("    " + line for line in out.getvalue().splitlines()[6:24] if line.strip()))


def micro_costs() -> None:
    import numpy as np
    import pika

    from fitwire.broker import connect
    from fitwire.broker.topology import PROGRESS
    from fitwire.callback.transport import numbers
    from fitwire.contract.messages import Batch, encode

    logs = {"loss": np.float32(0.123), "mae": np.float32(0.456)}  # what Keras 3 hands a batch hook
    plain = {"loss": 0.123, "mae": 0.456}
    event = {"type": "batch", "ts": time.time(), "epoch": 0, "batch": 7, "progress": 0.5, "seq": 9}
    ids = {"run_id": "a" * 32, "model_key": "k" * 12, "owner": "alice"}
    conn = connect(amqp_url())
    channel = conn.channel()
    channel.exchange_declare(exchange=PROGRESS.name, exchange_type=PROGRESS.type, durable=PROGRESS.durable)
    props = pika.BasicProperties(content_type="application/json", delivery_mode=1)
    body = encode(Batch(**ids, **event, logs=plain))
    rows = [
        ("numbers(logs) (numpy float32 -> float)", lambda: numbers(logs)),
        ("Batch(...) pydantic model", lambda: Batch(**ids, **event, logs=plain)),
        ("encode(model) (model_dump_json)", lambda: encode(Batch(**ids, **event, logs=plain))),
        ("json.dumps of plain floats", lambda: json.dumps({**ids, **event, "logs": plain}).encode()),
        ("pika basic_publish (one message)",
         lambda: channel.basic_publish(PROGRESS.name, "bench.nobody.x", body, props)),
    ]
    print("\n3. per-event costs on this machine, µs (best of 5):")
    for label, fn in rows:
        n = 2000
        best = min(timeit.repeat(fn, number=n, repeat=5)) / n
        print(f"  {label:45s} {best * 1e6:7.1f}")
    batched = json.dumps({**ids, "type": "batches", "epoch": 0, "batch": list(range(50)),
                          "logs": {"loss": [0.1] * 50, "mae": [0.2] * 50}}).encode()
    best = min(timeit.repeat(lambda: channel.basic_publish(PROGRESS.name, "bench.nobody.x", batched, props),
                             number=500, repeat=5)) / 500
    print(f"  {'one publish of 50 batches in one message':45s} {best * 1e6:7.1f}  ({len(batched)} bytes)")
    conn.close()


def publish_costs(rounds: int = 200) -> None:
    from fitwire.broker import frames
    from fitwire.broker.adapter import Broker, Consumer, publish_properties
    from fitwire.broker.topology import LIVE, PROGRESS

    consumer = Consumer(Broker(amqp_url(), name="bench-publish", uses=LIVE))
    consumer.open()
    body = json.dumps({"type": "batches", "epoch": 0, "batch": list(range(3)),
                       "logs": {"loss": [0.1] * 3, "mae": [0.2] * 3}, "run_id": "a" * 32}).encode()
    props = publish_properties()
    one_send = frames.FrameWriter.publish

    def pika_only(*_args: Any, **_kwargs: Any) -> bool:
        return False

    print(f"\n4. Consumer.publish, CPU µs per message ({len(body)} bytes; median of {rounds}):")
    try:
        for gap in (0.0, 0.05):
            cells = []
            for label, method in (("one send", one_send), ("pika basic_publish", pika_only)):
                frames.FrameWriter.publish = method  # type: ignore[method-assign]
                costs = []
                for _ in range(rounds):
                    if gap:
                        consumer.poll(gap)
                    started = time.thread_time()
                    consumer.publish(PROGRESS.name, "bench.nobody.x", body, props)
                    costs.append(time.thread_time() - started)
                cells.append(f"{label} {sorted(costs)[len(costs) // 2] * 1e6:6.0f}")
            print(f"  {'between batches (50 ms apart)' if gap else 'back to back':32s}" + "   ".join(cells))
    finally:
        frames.FrameWriter.publish = one_send  # type: ignore[method-assign]
        consumer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_tracker")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--variant", metavar="FILE.py:FACTORY", help="profile a prototype instead")
    args = parser.parse_args(argv or [])
    logging.getLogger("fitwire").setLevel(logging.ERROR)
    require_broker()
    if args.variant:
        path, _, name = args.variant.rpartition(":")
        spec = importlib.util.spec_from_file_location("bench_profiled_variant", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        factory = getattr(module, name)
    else:
        from fitwire.callback import Tracker

        def factory(key: str, cfg: Any) -> Any:
            return Tracker(key, settings=cfg, max_batches_per_second=None)

    fit_profile(args.steps, factory)
    micro_costs()
    publish_costs()


if __name__ == "__main__":
    main(sys.argv[1:])
