"""Tracker benchmarks: publish→watcher latency, and STOP-to-halt split into where its time goes.

``python scripts/with_broker.py .venv/bin/python -m bench bench_tracker`` (``make
bench`` runs it; the fit-overhead table is ``bench_overhead``). Options, when
run as a module (``python -m bench.bench_tracker …``):

* ``--busy N``: N other processes keep a core busy each during the STOP trials,
  as another job on the box would (issue 12 measured its p99 on a busy machine);
* ``--trials N``: STOP trials (default 24); ``--stop-only``: skip the latency part.

STOP-to-halt is timed from the publish of the STOP to ``fit`` returning, and
split at timestamps taken on the way: the signal reaching the transport thread's
handler, ``stop_training`` set, the next batch hook of Keras, the validation pass
Keras still runs after a stopped epoch, ``on_train_end``, the Tracker's end
(final publishes, closing the connection), and Keras's own teardown after it. The
three slowest trials are printed whole, so a tail shows its cause. Python's garbage
collector stops every thread while it runs, and a full collection walks the whole
process's heap (mostly TensorFlow's), so its pauses are timed too and shown beside
each figure they fall in.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import (
    amqp_url,
    busy_cores,
    calibrated,
    mlp,
    percentile,
    require_broker,
    settings,
    step_seconds,
)

LATENCY_RATE_HZ = 50.0
LATENCY_SECONDS = 12.0
STOP_TRIALS = 24


# --- 1. latency ------------------------------------------------------------------------------


def latency(tmp: Path) -> None:
    from fitwire.callback import RunSession
    from fitwire.callback.transport import FLUSH_S
    from tests.callback.helpers import Watcher

    watcher = Watcher(amqp_url(), "*.bench-latency.*")
    session = RunSession("bench-latency", settings=settings(tmp), max_batches_per_second=None)
    session.start(params={}, epochs=1, steps=None)
    time.sleep(1.0)  # connected and declared: measure the steady state, not the connect
    period = 1.0 / LATENCY_RATE_HZ
    n = int(LATENCY_SECONDS * LATENCY_RATE_HZ)
    next_at = time.perf_counter()
    logged: dict[int, float] = {}
    for i in range(n):
        logged[i] = time.time()  # per batch: a ``batches`` message carries only its last batch's ts
        session.log_batch(0, i, {"loss": 1.0})
        next_at += period
        time.sleep(max(0.0, next_at - time.perf_counter()))
    session.end("completed")
    watcher.wait_for(lambda w: bool(w.events(session.run_id, "train_end")), timeout=10)
    with watcher._lock:
        samples = [(recv - logged[m.batch]) * 1000 for recv, m in watcher.messages
                   if m.run_id == session.run_id and m.type == "batch"]
    watcher.close()
    print(f"\npublish→watcher latency at {LATENCY_RATE_HZ:.0f} batches/s ({len(samples)}/{n} received): "
          f"p50 {percentile(samples, 50):.2f} ms, p99 {percentile(samples, 99):.2f} ms, "
          f"max {max(samples):.2f} ms (a batch waits up to flush_interval {FLUSH_S * 1000:.0f} ms for the "
          f"ones after it; target p99 < {FLUSH_S * 1000 + 10:.0f} ms)", flush=True)


# --- 2. STOP-to-halt -------------------------------------------------------------------------


def _GiveUp(seconds: float) -> Any:  # noqa: N802 - a factory standing in for a class
    """Ends a trial whose STOP was lost, so the benchmark reports instead of hanging."""
    import keras

    class _Cb(keras.callbacks.Callback):
        async_safe = True  # must not turn the Tracker's async batch hooks synchronous

        def on_train_begin(self, logs: Any = None) -> None:
            self.deadline = time.monotonic() + seconds

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if time.monotonic() > self.deadline:
                self.model.stop_training = True

    return _Cb()


def _Marks() -> Any:  # noqa: N802 - a factory standing in for a class
    """Timestamps of the hooks Keras calls on the training thread (the begin hooks are never async)."""
    import keras

    class _Cb(keras.callbacks.Callback):
        async_safe = True

        def __init__(self) -> None:
            super().__init__()
            self.marks: list[tuple[float, str]] = []

        def _mark(self, what: str) -> None:
            self.marks.append((time.perf_counter(), what))

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._mark("train_batch")

        def on_test_begin(self, logs: Any = None) -> None:
            self._mark("test_begin")

        def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._mark("test_batch")

        def on_test_end(self, logs: Any = None) -> None:
            self._mark("test_end")

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self._mark("epoch_end")

        def on_train_end(self, logs: Any = None) -> None:
            self._mark("train_end")  # first in the list: before the Tracker's own on_train_end

    return _Cb()


class _GcPauses:
    """When Python's garbage collector ran in this process (it holds the interpreter: every thread waits)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.spans.append((self._began, time.perf_counter()))

    def within(self, start: float, end: float) -> float:
        """Milliseconds of collection between two ``perf_counter`` timestamps."""
        return 1000 * sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.spans)

    def close(self) -> None:
        gc.callbacks.remove(self._on_gc)


class _TransportClock:
    """Patches the transport class to timestamp a signal's arrival and the end of the connection."""

    def __init__(self) -> None:
        from fitwire.callback import session, transport

        self.received: dict[str, float] = {}
        self.closed: dict[str, tuple[float, float]] = {}
        self.close_asked: dict[str, float] = {}
        self.ended: dict[str, tuple[float, float]] = {}
        on_message, disconnect = transport.Transport._on_message, transport.Transport._disconnect
        close, end = transport.Transport.close, session.RunSession.end
        clock = self

        def timed_close(self: Any) -> None:
            clock.close_asked.setdefault(self._run_id, time.perf_counter())
            close(self)

        def timed_end(self: Any, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            end(self, *args, **kwargs)
            clock.ended.setdefault(self.run_id, (started, time.perf_counter()))

        def timed_on_message(self: Any, *args: Any) -> None:
            clock.received.setdefault(self._run_id, time.perf_counter())
            on_message(self, *args)

        def timed_disconnect(self: Any) -> None:
            started = time.perf_counter()
            disconnect(self)
            clock.closed.setdefault(self._run_id, (started, time.perf_counter()))

        transport.Transport._on_message = timed_on_message  # type: ignore[method-assign]
        transport.Transport._disconnect = timed_disconnect  # type: ignore[method-assign]
        transport.Transport.close = timed_close  # type: ignore[method-assign]
        session.RunSession.end = timed_end  # type: ignore[method-assign]


SEGMENTS = [
    ("delivery: publish → transport thread's handler", "sent", "received"),
    ("handler → stop_training set", "received", "flag"),
    ("step in flight: flag → next Keras hook", "flag", "next_hook"),
    ("Keras after the stop: → on_train_end (validation, epoch end)", "next_hook", "train_end"),
    ("Tracker end: on_train_end → RunSession.end returned", "train_end", "end_end"),
    ("  on_train_end → RunSession.end called", "train_end", "end_start"),
    ("  end → transport asked to close", "end_start", "close_asked"),
    ("  asked → last events published", "close_asked", "close_start"),
    ("  last events published → RunSession.end returns", "close_start", "end_end"),
    ("Keras's teardown: RunSession.end returned → fit returned", "end_end", "returned"),
    ("  (after fit returned, in the background) AMQP close handshake", "close_start", "close_end"),
]
OWN = [("sent", "received"), ("received", "flag"), ("train_end", "end_end")]
"""fitwire's own part of a STOP: delivery, setting the flag, and the Tracker's end; the rest is Keras.

After ``RunSession.end`` returns, no fitwire code runs on the training thread: what follows
is the other callbacks' ``on_train_end`` and ``fit``'s own locals being freed as it returns
(sampling the thread there finds it in Keras's ``error_handler`` with ``fit``'s frame gone:
its locals, TensorFlow's iterators among them, being freed). The control measures the
same segment for Keras alone.
"""


HOOKS = ["train_batch", "test_begin", "test_batch", "test_end", "epoch_end", "train_end"]


def _trial_marks(marks: list[tuple[float, str]], flag: float) -> dict[str, float]:
    out: dict[str, float] = {}
    before = [what for t, what in marks if t < flag]
    after = [(t, what) for t, what in marks if t >= flag]
    if after:
        out["next_hook"] = after[0][0]
        out["next_kind"] = float(HOOKS.index(after[0][1]))
    if before:
        out["prev_kind"] = float(HOOKS.index(before[-1]))
    out["train_end"] = next((t for t, what in marks if what == "train_end"), float("nan"))
    out["val_after_stop"] = float(any(what == "test_begin" for _, what in after))
    return out


def stop_to_halt(tmp: Path, trials: int, busy: int) -> None:
    from fitwire.callback import Tracker
    from fitwire.contract import Signal
    from tests.callback.helpers import SignalSender

    cfg = settings(tmp)
    clock = _TransportClock()
    pauses = _GcPauses()
    model, x, y, batch, _ = calibrated(mlp, 32, 0.002)
    vx, vy = x.copy(), y.copy()  # validation as long as an epoch: about half the STOPs land in it
    train_step = step_seconds(model, x, y, batch)
    started = time.perf_counter()
    model.evaluate(vx, vy, batch_size=batch, verbose=0)
    eval_step = (time.perf_counter() - started) / (len(vx) // batch)
    sender = SignalSender(amqp_url())
    rows: list[dict[str, float]] = []
    pace: dict[str, list[float]] = {}
    rng = random.Random(0)
    with busy_cores(busy):
        for _ in range(trials):
            tracker = Tracker("bench-stop", settings=cfg)
            marks = _Marks()
            sent: dict[str, float] = {}

            def stop_later(tracker: Any = tracker, sent: dict[str, float] = sent) -> None:
                while tracker.session is None or tracker.session._transport is None:
                    time.sleep(0.01)
                # A STOP published before the run's queue exists is dropped by design: wait for it.
                tracker.session._transport.connected.wait(30)
                time.sleep(rng.uniform(0.2, 1.0))
                sent["evaluating"] = float(tracker._evaluating)
                sent["sent"] = time.perf_counter()
                sender.send(Signal(action="stop", model_key="bench-stop", run_id=tracker.run_id))

            hook = tracker._stop

            def timed_hook(signal: Any, hook: Any = hook, sent: dict[str, float] = sent) -> tuple[bool, str]:
                sent["flag"] = time.perf_counter()  # stop_training is set right after this
                return hook(signal)  # type: ignore[no-any-return]

            tracker._stop = timed_hook  # type: ignore[method-assign]
            thread = threading.Thread(target=stop_later, daemon=True)
            thread.start()
            model.fit(x, y, batch_size=batch, epochs=10_000, validation_data=(vx, vy), verbose=0,
                      callbacks=[marks, tracker, _GiveUp(60.0)])
            returned = time.perf_counter()
            thread.join()
            run_id = tracker.run_id or ""
            close_start, close_end = clock.closed.get(run_id, (float("nan"), float("nan")))
            end_start, end_end = clock.ended.get(run_id, (float("nan"), float("nan")))
            row = {**sent, "returned": returned, "received": clock.received.get(run_id, float("nan")),
                   "close_start": close_start, "close_end": close_end, "end_start": end_start, "end_end": end_end,
                   "close_asked": clock.close_asked.get(run_id, float("nan"))}
            row.update(_trial_marks(marks.marks, sent.get("flag", returned)))
            row["gc_ms"] = pauses.within(row["sent"], returned)
            own_spans = [(row.get(a, math.nan), row.get(b, math.nan)) for a, b in OWN]
            row["gc_own_ms"] = sum(pauses.within(s, e) for s, e in own_spans if s == s and e == e)  # nan: no mark
            rows.append(row)
            _pace(marks.marks, sent.get("flag", returned), pace)
        sender.close()  # now: idle through the control trials, its heartbeats unserviced, the broker would drop it
        control, control_gc, control_after = _keras_only(model, x, y, vx, vy, batch, trials, rng, pauses)
    pauses.close()
    _report(rows, train_step, eval_step, busy)
    print(f"  control, Keras alone ({len(control)} trials, same load): a plain thread sets stop_training "
          f"(and stop_evaluating in validation; a later validation is cut as the Tracker does) at a random time; set → fit returned: "
          f"p50 {percentile(control, 50):.1f} ms, p99 {percentile(control, 99):.1f} ms, max {max(control):.1f} ms; "
          f"the collector ran in {sum(1 for g in control_gc if g > 0)} of them, up to {max(control_gc):.1f} ms",
          flush=True)
    print(f"    Keras alone after its last hook (on_train_end → fit returned): p50 {percentile(control_after, 50):.1f} ms, p99 {percentile(control_after, 99):.1f} ms, "
          f"max {max(control_after):.1f} ms; with the Tracker, RunSession.end returned → fit returned: p99 "
          f"{percentile([(r['returned'] - r['end_end']) * 1000 for r in rows if r['end_end'] == r['end_end']], 99):.1f} ms",
          flush=True)
    tracker_p99 = percentile([(r["returned"] - r["sent"]) * 1000 for r in rows], 99)
    verdict = "met" if tracker_p99 <= percentile(control, 99) + 100 else "NOT met"
    print(f"  side by side: Tracker p99 {tracker_p99:.1f} ms vs Keras alone p99 {percentile(control, 99):.1f} ms "
          f"+ 100 ms (target: Tracker p99 ≤ Keras-alone p99 + 100 ms): {verdict}", flush=True)
    print("  Keras's own pace in the same trials before each STOP (gap from one hook to the next, ms):", flush=True)
    for name, gaps in pace.items():
        print(f"    {name:34s} n={len(gaps):6d}  p50 {percentile(gaps, 50):7.1f}  p99 {percentile(gaps, 99):7.1f}  "
              f"max {max(gaps):7.1f}", flush=True)


def _pace(marks: list[tuple[float, str]], flag: float, pace: dict[str, list[float]]) -> None:
    """Gaps between consecutive hooks before the STOP: how fast Keras alone moves on this machine now."""
    for (t0, a), (t1, b) in zip(marks, marks[1:], strict=False):
        if t1 >= flag:
            break
        name = f"{a} → {b}"
        pace.setdefault(name, []).append((t1 - t0) * 1000)


def _keras_only(model: Any, x: Any, y: Any, vx: Any, vy: Any, batch: int, trials: int,
                rng: random.Random, pauses: _GcPauses) -> tuple[list[float], list[float], list[float]]:
    """STOP-to-halt with no fitwire at all: the floor Keras itself sets on this machine under this load.

    Returns each trial's halt, the garbage collector's pauses within it, and its time from
    ``on_train_end`` to ``fit`` returning (what Keras does after the last hook), in ms.
    """
    import keras

    class _Flags(keras.callbacks.Callback):
        async_safe = True
        evaluating = False
        train_end = math.nan

        def on_test_begin(self, logs: Any = None) -> None:
            self.evaluating = True
            self.on_test_batch_begin(0)

        def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
            if self.model.stop_training:  # the Tracker's policy: a stopped fit's validation is cut short
                self.model.stop_evaluating = True

        def on_test_end(self, logs: Any = None) -> None:
            self.evaluating = False

        def on_train_end(self, logs: Any = None) -> None:
            self.train_end = time.perf_counter()

    halts: list[float] = []
    collected: list[float] = []
    after_hooks: list[float] = []
    for _ in range(trials):
        flags = _Flags()
        at: dict[str, float] = {}

        def stop_later(flags: _Flags = flags, at: dict[str, float] = at) -> None:
            while flags.model is None:  # fit has not begun yet (a slow machine)
                time.sleep(0.01)
            time.sleep(0.3 + rng.uniform(0.2, 1.0))  # about when the Tracker trials sent theirs
            at["set"] = time.perf_counter()
            flags.model.stop_training = True
            if flags.evaluating:
                flags.model.stop_evaluating = True

        thread = threading.Thread(target=stop_later, daemon=True)
        thread.start()
        model.fit(x, y, batch_size=batch, epochs=10_000, validation_data=(vx, vy), verbose=0,
                  callbacks=[flags, _GiveUp(60.0)])
        returned = time.perf_counter()
        halts.append((returned - at["set"]) * 1000)
        collected.append(pauses.within(at["set"], returned))
        after_hooks.append((returned - flags.train_end) * 1000)
        thread.join()
    return halts, collected, after_hooks


def _report(rows: list[dict[str, float]], train_step: float, eval_step: float, busy: int) -> None:
    halts = [(r["returned"] - r["sent"]) * 1000 for r in rows]
    net = [h - train_step * 1000 for h in halts]
    landed = sum(int(r.get("evaluating", 0)) for r in rows)
    val_after = sum(int(r.get("val_after_stop", 0)) for r in rows)
    print(f"\nSTOP-to-halt over {len(rows)} trials with validation"
          f"{f', {busy} other process(es) burning a core' if busy else ''}: "
          f"{landed} STOPs landed in validation, {val_after} trials ran a validation pass after the STOP; "
          f"train step {train_step * 1000:.2f} ms, eval step {eval_step * 1000:.2f} ms", flush=True)
    print(f"  publish → fit returned:    p50 {percentile(halts, 50):7.1f} ms, p99 {percentile(halts, 99):7.1f} ms, "
          f"max {max(halts):7.1f} ms", flush=True)
    print(f"  minus one train step:      p50 {percentile(net, 50):7.1f} ms, p99 {percentile(net, 99):7.1f} ms "
          f"(target p99 < 100 ms + one eval step = {100 + eval_step * 1000:.1f} ms)", flush=True)
    complete = [r for r in rows if all(r.get(k) is not None and r[k] == r[k] for pair in OWN for k in pair)]
    own = [sum((r[b] - r[a]) * 1000 for a, b in OWN) for r in complete]
    if own:
        print(f"  fitwire's own part (delivery + setting the flag + the Tracker's end): p50 "
              f"{percentile(own, 50):7.1f} ms, p99 {percentile(own, 99):7.1f} ms (target p99 < 100 ms)", flush=True)
        own_net = [ms - r["gc_own_ms"] for ms, r in zip(own, complete, strict=True)]
        print(f"    the same without the garbage collector's pauses in it: p50 {percentile(own_net, 50):7.1f} ms, "
              f"p99 {percentile(own_net, 99):7.1f} ms", flush=True)
    gcs = [r["gc_ms"] for r in rows]
    print(f"  Python's garbage collector ran during {sum(1 for g in gcs if g > 0)} of the {len(rows)} STOPs, "
          f"up to {max(gcs):.1f} ms (p99 {percentile(gcs, 99):.1f} ms); during fitwire's own part up to "
          f"{max(r['gc_own_ms'] for r in rows):.1f} ms", flush=True)
    print("  where the time goes (ms):                                      p50      p99      max     mean",
          flush=True)
    for label, a, b in SEGMENTS:
        values = [(r[b] - r[a]) * 1000 for r in rows if r.get(a) is not None and r.get(b) is not None]
        values = [v for v in values if v == v]  # nan: a mark that did not happen in that trial
        if values:
            print(f"  {label:62s} {percentile(values, 50):7.1f}  {percentile(values, 99):7.1f}  "
                  f"{max(values):7.1f}  {statistics.mean(values):7.1f}", flush=True)
    print("  slowest trials (ms per segment):", flush=True)
    for r in sorted(rows, key=lambda r: r["returned"] - r["sent"], reverse=True)[:3]:
        parts = ", ".join(f"{label.split(':')[0].strip()} {(r[b] - r[a]) * 1000:.1f}" for label, a, b in SEGMENTS
                          if r.get(a) is not None and r.get(b) is not None and not label.startswith(" "))
        where = "in validation" if r.get("evaluating") else "in training"
        hooks = (f"last hook before {HOOKS[int(r['prev_kind'])] if 'prev_kind' in r else '-'}, "
                 f"next {HOOKS[int(r['next_kind'])] if 'next_kind' in r else '-'}")
        print(f"    {(r['returned'] - r['sent']) * 1000:7.1f} total, STOP {where} ({hooks}): {parts}; "
              f"of all that, the garbage collector {r['gc_ms']:.1f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tracker", description=__doc__.split("\n")[0])
    parser.add_argument("--busy", type=int, default=0, help="processes burning a core each during STOP trials")
    parser.add_argument("--trials", type=int, default=STOP_TRIALS, help=f"STOP trials (default {STOP_TRIALS})")
    parser.add_argument("--stop-only", action="store_true", help="skip the latency measurement")
    args = parser.parse_args(argv or [])
    logging.getLogger("fitwire").setLevel(logging.ERROR)  # the no-token notice, once per fit
    require_broker()
    with tempfile.TemporaryDirectory(prefix="fitwire-bench-") as tmp:
        if not args.stop_only:
            latency(Path(tmp))
        stop_to_halt(Path(tmp), args.trials, args.busy)


if __name__ == "__main__":
    main(sys.argv[1:])
