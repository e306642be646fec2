"""One box, many live runs: N concurrent runs with 2 watchers each against the real webhook and broker.

``python scripts/with_broker.py .venv/bin/python -m bench.bench_scale [--runs 100] [--quick]``
(``make bench`` runs the quick form: 10 runs for 8 s).

Each run is a ``RunSession`` (every batch published, a token, the webhook on
SQLite through ``fitwire webhook serve``) driven by a thread that logs 20
batches a second and ends an epoch every 2 s; the runs share one data dir, as
runs on one host do, and are spread over a few driver processes and started
over the first 2 s. Every run has 2 watchers (their own queues bound to the
run's routing key) in a few watcher processes. Printed: epochs published,
watched (by each watcher) and stored, with what was lost; batches watched;
watcher latency (event made → watcher got it); ``POST /api/v1/events``
latency as the runs' outboxes saw it, and how many POSTs per stored record;
records left in the outbox; CPU per component.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from bench._common import amqp_url, percentile, require_broker, stolen_seconds

EVENTS_PATH = "/api/v1/events"


# --- driver processes: the runs ------------------------------------------------------------


def _drive(cfg: dict[str, Any], results: Any) -> None:
    """One process running ``cfg['runs']`` as threads; puts one result dict on ``results``."""
    from fitwire.callback import RunSession
    from fitwire.settings import Settings

    session_class: Any = RunSession
    if cfg["session"]:  # a prototype's RunSession subclass, measured without touching the repo
        import importlib.util

        path, _, name = cfg["session"].rpartition(":")
        spec = importlib.util.spec_from_file_location("bench_scale_session", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        session_class = getattr(module, name)
    logging.getLogger("fitwire").setLevel(logging.ERROR)
    posts: list[float] = []
    posted_at: list[float] = []  # when each POST began, in s after this process started its runs (runs_began)
    failed: list[str] = []
    original = requests.Session.post

    def timed_post(self: requests.Session, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            response = original(self, url, *args, **kwargs)
        except requests.RequestException as exc:
            if url.endswith(EVENTS_PATH):
                failed.append(type(exc).__name__)
            raise
        finally:
            if url.endswith(EVENTS_PATH):
                posts.append(time.perf_counter() - started)
                posted_at.append(started - runs_began)
        if url.endswith(EVENTS_PATH) and not response.ok:
            failed.append(f"HTTP {response.status_code}")
        return response

    requests.Session.post = timed_post  # type: ignore[method-assign]  # what every outbox POST costs
    def settings_for(run_id: str) -> Settings:
        data_dir = Path(cfg["data_dir"]) / (run_id if cfg["data_dir_per_run"] else "")
        return Settings.from_env(environ={}, amqp_url=cfg["amqp_url"], data_dir=data_dir,
                                 config_dir=data_dir / "config")

    period, steps, epochs = 1.0 / cfg["batch_rate"], cfg["steps"], cfg["epochs"]
    runs: list[dict[str, Any]] = []
    lock = threading.Lock()

    def one_run(run_id: str, offset: float) -> None:
        session = session_class(cfg["model_key"], token=cfg["token"], run_id=run_id, webhook_url=cfg["webhook"],
                                amqp_url=cfg["amqp_url"], settings=settings_for(run_id),
                                max_batches_per_second=None)
        time.sleep(offset)
        session.start(params={"bench": True}, epochs=epochs, steps=steps)
        next_at = time.perf_counter()
        for epoch in range(epochs):
            session.begin_epoch(epoch)
            for i in range(steps):
                next_at += period
                time.sleep(max(0.0, next_at - time.perf_counter()))
                session.log_batch(epoch, i, {"loss": 1.0 / (i + 1), "accuracy": i / steps})
            session.log_epoch(epoch, {"loss": 0.5, "accuracy": 0.5, "val_loss": 0.6})
        session.end("completed")
        transport = session._transport
        with lock:
            runs.append({"run_id": run_id, "epochs": epochs, "batches": epochs * steps,
                         "published": transport.published if transport else 0,
                         "coalesced": session._events.coalesced, "stored": session.stored,
                         "widest": getattr(session._events, "widest", 0.0)})

    threads = [threading.Thread(target=one_run, args=(rid, off)) for rid, off in cfg["runs"]]
    runs_began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put({"role": "driver", "runs": runs, "posts": posts, "posted_at": posted_at, "failed": failed,
                 "cpu": usage.ru_utime + usage.ru_stime})


# --- watcher processes -------------------------------------------------------------------------


def _watch(cfg: dict[str, Any], results: Any, ready: Any, stop: Any) -> None:
    """Watchers of ``cfg['watched']`` ((watcher, run_id) pairs) on one connection, one queue each."""
    from fitwire.broker import connect
    from fitwire.broker.topology import PROGRESS, watcher_queue_arguments

    conn = connect(cfg["amqp_url"])
    channel = conn.channel()
    channel.exchange_declare(exchange=PROGRESS.name, exchange_type=PROGRESS.type, durable=PROGRESS.durable)
    epochs: dict[str, set[int]] = {}
    batches: dict[str, int] = {}
    batch_lat: list[float] = []
    first_lat: list[float] = []  # the message's first batch, made (count - 1) batch periods before its last
    epoch_lat: list[float] = []
    epoch_of_lat: list[int] = []  # each epoch_end latency's epoch: the first ends while other runs still start
    period = 1.0 / cfg["batch_rate"]

    def consumer(watcher: str) -> Any:
        def on_message(_ch: Any, _method: Any, _props: Any, body: bytes) -> None:
            now = time.time()
            try:
                msg = json.loads(body)
            except ValueError:
                return
            kind = msg.get("type", "")
            if kind.startswith("batch"):
                # ``batches`` carries ``count``; a prototype's list form, its length (ts: the last batch's)
                n = msg.get("count") or (len(msg["batch"]) if isinstance(msg.get("batch"), list) else 1)
                batches[watcher] = batches.get(watcher, 0) + n
                batch_lat.append(now - float(msg.get("ts", now)))
                first_lat.append(batch_lat[-1] + (n - 1) * period)
            elif kind == "epoch_end":
                epochs.setdefault(watcher, set()).add(int(msg["epoch"]))
                epoch_lat.append(now - float(msg.get("ts", now)))
                epoch_of_lat.append(int(msg["epoch"]))
        return on_message

    for watcher, run_id in cfg["watched"]:
        queue = channel.queue_declare(queue="", exclusive=True, auto_delete=True,
                                      arguments=watcher_queue_arguments()).method.queue
        channel.queue_bind(queue=queue, exchange=PROGRESS.name, routing_key=f"*.{cfg['model_key']}.{run_id}")
        channel.basic_consume(queue=queue, on_message_callback=consumer(f"{watcher}/{run_id}"), auto_ack=True)
    ready.set()
    while not stop.is_set():
        conn.process_data_events(time_limit=0.2)
    deadline = time.monotonic() + 3.0  # what is still in flight when the runs end
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    conn.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put({"role": "watcher", "epochs": {k: sorted(v) for k, v in epochs.items()}, "batches": batches,
                 "batch_lat": batch_lat, "first_lat": first_lat, "epoch_lat": epoch_lat,
                 "epoch_of_lat": epoch_of_lat, "cpu": usage.ru_utime + usage.ru_stime})


# --- the parent ----------------------------------------------------------------------------------


def _cpu_of(pid: int | None) -> float:
    if pid is None:
        return 0.0
    import psutil

    try:
        return float(sum(psutil.Process(pid).cpu_times()[:2]))  # children come and go: the process alone
    except psutil.Error:
        return 0.0


def _broker_pid() -> int | None:
    """The RabbitMQ node listening on the bench's AMQP port (a box may run several)."""
    from urllib.parse import urlsplit

    import psutil

    port = urlsplit(amqp_url()).port or 5672
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def _server_pid(port: str) -> int | None:
    import psutil

    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            if "serve" in (proc.info["cmdline"] or []) and port in (proc.info["environ"] or {}).get(
                    "FITWIRE_WEBHOOK_URL", ""):
                return int(proc.pid)
        except psutil.Error:
            continue
    return None


def _stored(base: str, token: str, run_ids: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Epoch rows and status of each run as the webhook has them."""
    headers = {"Authorization": f"Bearer {token}"}
    epochs: dict[str, int] = {}
    status: dict[str, str] = {}
    with requests.Session() as http:
        for run_id in run_ids:
            run = http.get(f"{base}/api/v1/runs/{run_id}", headers=headers, timeout=30)
            status[run_id] = run.json().get("status", "?") if run.ok else f"HTTP {run.status_code}"
            rows = http.get(f"{base}/api/v1/runs/{run_id}/epochs", headers=headers, timeout=30)
            epochs[run_id] = len(rows.json().get("epochs", [])) if rows.ok else 0
    return epochs, status


def _outbox_left(data_dir: Path) -> int:
    """Records still pending in every outbox file under ``data_dir`` (one per run); -1 for an unreadable file."""
    from fitwire.callback.outbox import outbox_files
    from fitwire.settings import Settings

    left = 0
    for path in outbox_files(Settings.from_env(environ={}, data_dir=data_dir, config_dir=data_dir / "config")):
        try:
            with sqlite3.connect(path) as db:
                left += int(db.execute("SELECT count(*) FROM records WHERE state = 'pending'").fetchone()[0])
        except sqlite3.Error:
            return -1
    return left


def run(n_runs: int, seconds: float, drivers: int, watcher_procs: int, batch_rate: float,
        epoch_seconds: float, session: str = "", data_dir_per_run: bool = False, server_threads: int = 0,
        store_class: str = "", connection_limit: int = 0, switch_interval: float = 0.0,
        start_over: float = 0.0) -> dict[str, float]:
    """One round; prints its report and returns its headline figures (ms; counts)."""
    from bench.bench_webhook import SERVER_THREADS, _server, _sqlite, _token_and_model

    server_threads = server_threads or SERVER_THREADS

    steps = max(1, round(batch_rate * epoch_seconds))
    epochs = max(1, round(seconds / epoch_seconds))
    ctx = multiprocessing.get_context("spawn")
    timings = Path(tempfile.mkdtemp(prefix="fitwire-bench-scale-timings-")) / "in_app.txt"
    with tempfile.TemporaryDirectory(prefix="fitwire-bench-scale-") as tmp, _sqlite() as store_url, \
            _server(store_url, timings, server_threads, store_class, connection_limit, switch_interval) as base:
        token, model_key = _token_and_model(store_url, base)
        run_ids = [uuid.uuid4().hex for _ in range(n_runs)]
        results = ctx.Queue()
        stop, readies = ctx.Event(), []
        watchers = []
        pairs = [(w, rid) for rid in run_ids for w in ("w1", "w2")]
        for i in range(watcher_procs):
            ready = ctx.Event()
            cfg = {"amqp_url": amqp_url(), "model_key": model_key, "watched": pairs[i::watcher_procs],
                   "batch_rate": batch_rate}
            watchers.append(ctx.Process(target=_watch, args=(cfg, results, ready, stop)))
            readies.append(ready)
        for p in watchers:
            p.start()
        for ready in readies:
            if not ready.wait(120):
                raise RuntimeError("a watcher process did not come up")
        broker_pid, server_pid = _broker_pid(), _server_pid(base.rsplit(":", 1)[1])
        cpu_before = {"broker (beam.smp)": _cpu_of(broker_pid), "webhook (waitress)": _cpu_of(server_pid)}
        stolen_before = stolen_seconds()
        started = time.perf_counter()
        start_over = start_over or epoch_seconds  # by default the starts are spread over one epoch
        offsets = [start_over * i / n_runs for i in range(n_runs)]
        procs = []
        for i in range(drivers):
            cfg = {"amqp_url": amqp_url(), "model_key": model_key, "token": token, "webhook": base,
                   "data_dir": str(Path(tmp) / "data"), "batch_rate": batch_rate, "steps": steps,
                   "epochs": epochs, "runs": list(zip(run_ids, offsets, strict=True))[i::drivers],
                   "session": session, "data_dir_per_run": data_dir_per_run}
            procs.append(ctx.Process(target=_drive, args=(cfg, results)))
        for p in procs:
            p.start()
        outs = [results.get() for _ in procs]  # before join: a full queue would block the child's exit
        wall = time.perf_counter() - started
        stop.set()
        outs += [results.get() for _ in watchers]
        for p in (*procs, *watchers):
            p.join(30)
        cpu = {name: _cpu_of(pid) - cpu_before[name]
               for name, pid in (("broker (beam.smp)", broker_pid), ("webhook (waitress)", server_pid))}
        cpu["taken by the hypervisor (steal)"] = stolen_seconds() - stolen_before  # a shared host's other guests
        stored_epochs, status = _stored(base, token, run_ids)
        data = Path(tmp) / "data"
        left = sum(_outbox_left(d) for d in ([data / rid for rid in run_ids] if data_dir_per_run else [data]))
    in_app = ([json.loads(line) for line in timings.read_text().splitlines() if line.strip()]
              if timings.exists() else [])
    return _report(n_runs, epochs, steps, batch_rate, wall, outs, stored_epochs, status, left, cpu, drivers,
                   watcher_procs, in_app, server_threads, start_over)


def _report(n_runs: int, epochs: int, steps: int, batch_rate: float, wall: float, outs: list[dict[str, Any]],
            stored_epochs: dict[str, int], status: dict[str, str], left: int, cpu: dict[str, float],
            drivers: int, watcher_procs: int, in_app: list[dict[str, float]],
            server_threads: int, start_over: float) -> dict[str, float]:
    runs = [r for o in outs if o["role"] == "driver" for r in o["runs"]]
    posts = [x * 1000 for o in outs if o["role"] == "driver" for x in o["posts"]]
    watched: dict[str, list[int]] = {}
    batches_watched = 0
    batch_lat: list[float] = []
    first_lat: list[float] = []
    epoch_lat: list[float] = []
    later_epoch_lat: list[float] = []  # epochs after each run's first
    for o in outs:
        if o["role"] != "watcher":
            continue
        later_epoch_lat += [x * 1000 for x, e in zip(o["epoch_lat"], o["epoch_of_lat"], strict=True) if e > 0]
        for key, eps in o["epochs"].items():
            watched[key] = eps
        batches_watched += sum(o["batches"].values())
        batch_lat += [x * 1000 for x in o["batch_lat"]]
        first_lat += [x * 1000 for x in o["first_lat"]]
        epoch_lat += [x * 1000 for x in o["epoch_lat"]]
    published = sum(r["epochs"] for r in runs)
    watched_total = sum(len(v) for v in watched.values())
    stored_total = sum(min(n, epochs) for n in stored_epochs.values())
    complete = sum(1 for rid, n in stored_epochs.items() if n >= epochs and status.get(rid) == "completed")
    records = n_runs * (epochs + 2)  # train_begin + epochs + train_end
    phases = _post_phases(outs, steps / batch_rate, epochs * steps / batch_rate, start_over)
    print(f"\n{n_runs} concurrent runs × 2 watchers, {steps} batches/epoch at {batch_rate:.0f}/s, "
          f"{epochs} epochs each, started over {start_over:g} s; {drivers} driver and {watcher_procs} watcher processes; "
          f"{wall:.1f} s wall ({len(runs)} runs finished)", flush=True)
    print(f"  epochs published {published}; watched {watched_total}/{2 * published} "
          f"(lost {2 * published - watched_total}); stored {stored_total}/{published} "
          f"(lost {published - stored_total}); runs stored whole and completed {complete}/{n_runs}; "
          f"records left in the outbox {left}", flush=True)
    statuses: dict[str, int] = {}
    for s in status.values():
        statuses[s] = statuses.get(s, 0) + 1
    print(f"  run status on the webhook: {statuses}", flush=True)
    print(f"  batches logged {n_runs * epochs * steps}, watched {batches_watched}/{2 * n_runs * epochs * steps}; "
          f"events published {sum(r['published'] for r in runs)}, coalesced {sum(r['coalesced'] for r in runs)}",
          flush=True)
    if batch_lat:
        print(f"  watcher latency (event made → watcher got it), batch, each message's last: "
              f"p50 {percentile(batch_lat, 50):.0f} ms, p99 {percentile(batch_lat, 99):.0f} ms; its first (the "
              f"oldest, {1000 / batch_rate:.0f} ms a batch earlier per batch before the last): "
              f"p50 {percentile(first_lat, 50):.0f} ms, p99 {percentile(first_lat, 99):.0f} ms; "
              f"epoch_end: p50 {percentile(epoch_lat, 50):.0f} ms, p99 {percentile(epoch_lat, 99):.0f} ms "
              "(target p99 < 250 ms)", flush=True)
    if later_epoch_lat:
        print(f"    epoch_end after each run's first epoch (which ends while other runs still start): "
              f"p50 {percentile(later_epoch_lat, 50):.0f} ms, p99 {percentile(later_epoch_lat, 99):.0f} ms", flush=True)
    widest = [r["widest"] for r in runs if r["widest"]]
    if widest:
        from fitwire.callback.transport import FLUSH_S

        print(f"  flush window (widens while a run's transport is late): widened in "
              f"{sum(1 for w in widest if w > FLUSH_S)} of {len(widest)} runs; each run's widest: "
              f"median {percentile(widest, 50) * 1000:.0f} ms, max {max(widest) * 1000:.0f} ms", flush=True)
    if posts:
        print(f"  POST {EVENTS_PATH}: {len(posts)} requests for {records} records "
              f"({len(posts) / records:.1f}×), p50 {percentile(posts, 50):.0f} ms, "
              f"p99 {percentile(posts, 99):.0f} ms (target p99 < 100 ms)", flush=True)
        failed: dict[str, int] = {}
        for o in outs:
            for what in o.get("failed", []):
                failed[what] = failed.get(what, 0) + 1
        print(f"    failed (the outbox retries them later): {failed or 'none'}", flush=True)
        print("    by phase: " + "; ".join(
            f"{name} {len(values)} POSTs, p50 {percentile(values, 50):.0f} ms, p99 {percentile(values, 99):.0f} ms"
            for name, values in phases.items() if values), flush=True)
    if in_app:
        _report_server(in_app, server_threads)
    summary = {"stored": float(stored_total), "published": float(published), "watched": float(watched_total),
               "left": float(left)}
    steady = phases[STEADY]
    for name, values in (("post", posts), ("post_steady", steady), ("batch_lat", batch_lat), ("first_lat", first_lat),
                         ("epoch_lat", epoch_lat),
                         ("later_epoch_lat", later_epoch_lat),
                         *((part, [r.get(part, 0.0) * 1000 for r in in_app]) for part, _ in SERVER_PARTS)):
        if values:
            summary[f"{name}_p50"], summary[f"{name}_p99"] = percentile(values, 50), percentile(values, 99)
    drivers_cpu = sum(o["cpu"] for o in outs if o["role"] == "driver")
    watchers_cpu = sum(o["cpu"] for o in outs if o["role"] == "watcher")
    print("  CPU, seconds (and cores busy on average over the run):", flush=True)
    for name, seconds in (("runs (driver processes)", drivers_cpu), ("watchers", watchers_cpu), *cpu.items()):
        print(f"    {name:32s} {seconds:7.1f} s  ({seconds / wall:.2f} cores)", flush=True)
    return summary


STEADY = "all runs live"


def _post_phases(outs: list[dict[str, Any]], epoch_seconds: float, run_seconds: float,
                 start_over: float) -> dict[str, list[float]]:
    """The runs' POST times (ms) by when they began: while runs start, while all are live, while they end.

    Runs start over ``start_over`` seconds, so that and one epoch more holds every ``train_begin``,
    the connection set-ups and the first epochs; the first run ends ``run_seconds`` in.
    """
    phases: dict[str, list[float]] = {"runs starting": [], STEADY: [], "runs ending": []}
    for o in outs:
        for at, seconds in zip(o.get("posted_at", ()), o.get("posts", ()), strict=False):
            name = "runs starting" if at < start_over + epoch_seconds else "runs ending" if at >= run_seconds else STEADY
            phases[name].append(seconds * 1000)
    return phases


SERVER_PARTS = (
    ("queue", "waiting for a waitress thread"),
    ("app", "inside the app"),
    ("cpu", "the app's own CPU"),
    ("auth", "token lookup"),
    ("lock_wait", "waiting for the writer lock"),
    ("lock_held", "the write transaction"),
)


def _report_server(records: list[dict[str, float]], threads: int) -> None:
    """The webhook's side of each POST: where its time went (``bench._timed_webhook``), and the slowest 1%'s."""
    print(f"    the webhook's side ({threads} waitress threads), ms (the rest of the client's time: the network "
          "and the client's own process getting the CPU back):", flush=True)
    slow = sorted(records, key=lambda r: r.get("queue", 0.0) + r["app"])[-max(1, len(records) // 100):]
    for part, label in SERVER_PARTS:
        values = [r.get(part, 0.0) * 1000 for r in records]
        tail = sum(r.get(part, 0.0) for r in slow) * 1000 / len(slow)
        print(f"      {label:30s} p50 {percentile(values, 50):6.1f}  p99 {percentile(values, 99):6.1f}  "
              f"max {max(values):6.0f}  (mean in the slowest 1%: {tail:6.1f})", flush=True)
    sockets = [int(r.get("sockets", 0)) for r in records]
    print(f"      open sockets in waitress: up to {max(sockets)} (at its connection_limit it accepts no more; "
          "a new connection then waits unseen above)", flush=True)


def _webhook_variant(text: str) -> tuple[str, int, int, float, str]:
    """``LABEL=THREADS[/CONNECTIONS][~SWITCH_MS][,FILE.py:CLASS]`` → (label, threads, connection limit or 0,
    the interpreter's switch interval in s or 0, store class)."""
    label, sep, rest = text.partition("=")
    server, _, store_class = rest.partition(",")
    server, _, switch_ms = server.partition("~")
    threads, _, connections = server.partition("/")
    try:
        switch = float(switch_ms or 0) / 1000
    except ValueError:
        switch = -1.0
    if not sep or not label or not threads.isdigit() or not (connections or "0").isdigit() or switch < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=THREADS[/CONNECTIONS][~SWITCH_MS][,FILE.py:CLASS]")
    return label, int(threads), int(connections or 0), switch, store_class


def _compare(rows: list[tuple[str, dict[str, float]]]) -> None:
    """The rounds side by side: each variant's medians over its rounds."""
    import statistics

    print("\nSide by side (median over each variant's rounds; ms):", flush=True)
    columns = (("POST p50", "post_p50"), ("POST p99", "post_p99"), ("queue p99", "queue_p99"),
               ("app p99", "app_p99"), ("lock wait p99", "lock_wait_p99"), ("write p99", "lock_held_p99"),
               ("auth p99", "auth_p99"), ("live POST p99", "post_steady_p99"), ("watch p99", "batch_lat_p99"),
               ("first p99", "first_lat_p99"), ("epoch p99", "epoch_lat_p99"),
               ("later epoch p99", "later_epoch_lat_p99"),
               ("stored", "stored"))
    print(f"  {'variant':18s}" + "".join(f"{title:>14s}" for title, _ in columns), flush=True)
    for label in dict.fromkeys(label for label, _ in rows):
        mine = [summary for name, summary in rows if name == label]
        cells = []
        for _, key in columns:
            values = [m[key] for m in mine if key in m]
            cells.append(f"{statistics.median(values):14.0f}" if values else f"{'—':>14s}")
        print(f"  {label:18s}" + "".join(cells) + f"   ({len(mine)} rounds)", flush=True)


def start_costs(n_runs: int) -> None:
    """CPU of one run's start and of its end, by process: ``n_runs`` runs started one after another.

    Each start waits until the run's connection is up and its ``train_begin`` posted; the
    idle rate of each process, measured first, is subtracted.
    """
    from bench.bench_webhook import SERVER_THREADS, _server, _sqlite, _token_and_model
    from fitwire.callback import RunSession
    from fitwire.settings import Settings

    timings = Path(tempfile.mkdtemp(prefix="fitwire-bench-scale-timings-")) / "in_app.txt"
    with tempfile.TemporaryDirectory(prefix="fitwire-bench-starts-") as tmp, _sqlite() as store_url, \
            _server(store_url, timings, SERVER_THREADS, "", 0, 0.0) as base:
        token, model_key = _token_and_model(store_url, base)
        data = Path(tmp) / "data"
        settings = Settings.from_env(environ={}, amqp_url=amqp_url(), data_dir=data, config_dir=data / "config")
        broker_pid, server_pid = _broker_pid(), _server_pid(base.rsplit(":", 1)[1])

        def cpu() -> list[float]:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return [usage.ru_utime + usage.ru_stime, _cpu_of(broker_pid), _cpu_of(server_pid)]

        def session() -> Any:
            return RunSession(model_key, token=token, run_id=uuid.uuid4().hex, webhook_url=base,
                              amqp_url=amqp_url(), settings=settings, max_batches_per_second=None)

        warm = session()
        warm.start()
        warm.end("completed")
        before, idle_from = cpu(), time.perf_counter()
        time.sleep(3.0)
        idle = [(b - a) / (time.perf_counter() - idle_from) for a, b in zip(before, cpu(), strict=True)]

        def per_run(phase: Any) -> list[float]:
            began, at = cpu(), time.perf_counter()
            phase()
            took = time.perf_counter() - at
            return [(b - a - rate * took) / n_runs * 1000 for a, b, rate in zip(began, cpu(), idle, strict=True)]

        sessions: list[Any] = []

        def start_all() -> None:
            for _ in range(n_runs):
                run = session()
                run.start(params={"bench": True}, epochs=10, steps=40)
                sessions.append(run)
                while not (run._transport and run._transport.published):  # connected, train_begin out
                    time.sleep(0.002)
            time.sleep(0.5)  # the last train_begin's POST

        def end_all() -> None:
            for run in sessions:
                run.end("completed")
            time.sleep(1.5)  # the connections' close handshakes

        starts, ends = per_run(start_all), per_run(end_all)
    print(f"\nCPU per run, ms ({n_runs} runs one after another, each process's idle rate subtracted):", flush=True)
    for name, values in (("start", starts), ("end", ends)):
        print(f"  {name:6s} the run's process {values[0]:5.1f}   broker {values[1]:5.1f}   webhook {values[2]:5.1f}   "
              f"all {sum(values):5.1f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    parser.add_argument("--drivers", type=int, default=4, help="processes the runs are spread over")
    parser.add_argument("--watcher-processes", type=int, default=2)
    parser.add_argument("--batch-rate", type=float, default=20.0, help="batches per second per run")
    parser.add_argument("--epoch-seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="smoke: 10 runs for 8 s")
    parser.add_argument("--data-dir-per-run", action="store_true",
                        help="each run its own data dir (so its own outbox), unlike runs on one host")
    parser.add_argument("--webhook", action="append", type=_webhook_variant, default=[],
                        metavar="LABEL=THREADS[/CONNECTIONS][~SWITCH_MS][,FILE.py:CLASS]",
                        help="a webhook variant: waitress threads, its connection limit [default: fitwire webhook "
                             "serve's], the interpreter's switch interval (sys.setswitchinterval, ms), a store class "
                             "from a file outside the repo (e.g. the code before a change); "
                             "repeat to compare, the variants alternating round by round")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each --webhook variant")
    parser.add_argument("--session", default="", metavar="FILE.py:CLASS",
                        help="a RunSession subclass from a file outside the repo (a prototype)")
    parser.add_argument("--start-over", type=float, default=0.0, metavar="SECONDS",
                        help="spread the runs' starts over this long [default: one epoch]")
    parser.add_argument("--start-costs", type=int, default=0, metavar="N",
                        help="instead: the CPU of a run's start and end by process, over N runs started in turn")
    args = parser.parse_args(argv if argv is not None else ["--quick"])
    if args.quick:
        args.runs, args.seconds = min(args.runs, 10), min(args.seconds, 8.0)
    logging.getLogger("fitwire").setLevel(logging.ERROR)
    require_broker()
    os.environ.setdefault("FITWIRE_AMQP_URL", amqp_url())  # the webhook announces it to the runs
    if args.start_costs:
        start_costs(args.start_costs)
        return
    variants = args.webhook or [("", 0, 0, 0.0, "")]
    rows: list[tuple[str, dict[str, float]]] = []
    for round_no in range(args.rounds):
        for label, threads, connections, switch, store_class in variants:
            if label:
                print(f"\n=== {label} (round {round_no + 1}/{args.rounds}) ===", flush=True)
            rows.append((label, run(args.runs, args.seconds, args.drivers, args.watcher_processes, args.batch_rate,
                                    args.epoch_seconds, args.session, args.data_dir_per_run, threads, store_class,
                                    connections, switch, args.start_over)))
    if len(variants) > 1 or args.rounds > 1:
        _compare(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
