"""The web client: publish → DOM latency at 50 batches/s against the CLI watcher's, and page load time.

``python -m bench bench_web_client [--batches N] [--rate R] [--loads N]``. Everything real and
on this machine: a private RabbitMQ node configured as ``fitwire dev broker up`` configures it
(HTTP auth backend, Web STOMP), a webhook on SQLite serving the page, and headless system
Chromium (``scripts/ensure_chromium.py``) signed in as a user. One process publishes ``batch``
messages of one run with that user's own broker login at ``--rate`` per second, each carrying its
send time (``ts``); in the same run, side by side:

* page: the time from ``ts`` until the run page's animation frame drew that batch (the page
  keeps ``[ts, drawn at]`` per batch in ``window.fitwire.draws``);
* CLI watcher: the time from ``ts`` until ``fitwire watch``'s queue consumer (``WatchQueue``)
  decoded it.

Both clocks are this machine's. Page load: a fresh browser context (no cache, no service worker)
from navigation to the signed-in models list drawn, ``--loads`` times. Memory: the run page kept
open on a live run (``--rate`` batches/s, an ``epoch_end`` every 500 batches) for
``--soak-minutes``; the page's JavaScript heap after a forced garbage collection (Chrome
DevTools Protocol) and its DOM node count, sampled every 30 s: a leak shows as steady growth.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import percentile

PASSWORD = "bench password 1"


@dataclass
class Stack:
    web_url: str
    amqp_url: str  # the user's own broker login
    user: str
    token: str
    model: str


@contextmanager
def stack(tmp: Path) -> Iterator[Stack]:
    """A private auth-configured broker node and a webhook it asks about logins; one user with one model."""
    import requests
    from waitress.server import create_server

    from fitwire.broker import connect, declare_all
    from fitwire.broker.local import LocalNode, free_port
    from fitwire.webhook import create_app
    from fitwire.webhook.security import hash_password
    from fitwire.webhook.store import open_store

    http_port = free_port()
    node = LocalNode(tmp / "rabbitmq", free_port(), webhook_url=f"http://127.0.0.1:{http_port}")
    store = open_store(f"sqlite:///{tmp / 'webhook.db'}")
    app = create_app({"STORE": store, "AMQP_URL": node.url, "DECLARE_TOPOLOGY": False})
    server = create_server(app, host="127.0.0.1", port=http_port, threads=8)
    thread = threading.Thread(target=server.run, name="bench-webhook", daemon=True)
    thread.start()
    web = f"http://127.0.0.1:{http_port}"
    node.start()
    try:
        conn = connect(node.url)
        declare_all(conn.channel())
        conn.close()
        store.create_user("bench", hash_password(PASSWORD), now=datetime.now(UTC))
        token = requests.post(f"{web}/api/v1/auth/login", json={"username": "bench", "password": PASSWORD},
                              timeout=10).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        model = requests.post(f"{web}/api/v1/models", json={"name": "bench"}, headers=auth, timeout=10).json()["key"]
        session = requests.get(f"{web}/api/v1/session", headers=auth, timeout=10).json()
        yield Stack(web, session["amqp_url"], "bench", token, model)
    finally:
        node.stop()
        server.close()
        thread.join(timeout=10)
        store.close()


def signed_in_page(browser: Any, web_url: str) -> tuple[Any, float]:
    """A fresh context signed in through the form; the seconds from navigation to the models list."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, service_workers="block")
    page = context.new_page()
    page.goto(web_url + "/")
    page.get_by_label("Username").fill("bench")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your models").wait_for()
    started = time.perf_counter()
    page.reload()  # signed in now (the token is kept): a cold start of the app, as a returning user sees it
    page.get_by_role("heading", name="Your models").wait_for()
    page.locator("#conn.live").wait_for()
    return page, time.perf_counter() - started


def measure(s: Stack, browser: Any, batches: int, rate: float) -> tuple[list[float], list[float]]:
    """(page latencies, watcher latencies) in seconds for ``batches`` batch messages at ``rate``/s."""
    import requests

    from fitwire.broker import connect
    from fitwire.broker.topology import progress_key
    from fitwire.cli.wire import WatchQueue, run_pattern
    from fitwire.contract import TrainBegin, encode, new_id

    run_id = new_id()
    begin = TrainBegin(run_id=run_id, model_key=s.model, owner=s.user, epochs=1, steps=batches)
    requests.post(f"{s.web_url}/api/v1/events", data=encode(begin), timeout=10,
                  headers={"Authorization": f"Bearer {s.token}", "Content-Type": "application/json"}).raise_for_status()
    page, _ = signed_in_page(browser, s.web_url)
    page.goto(f"{s.web_url}/#/runs/{run_id}")
    page.locator("#epoch-label").wait_for()

    watcher = WatchQueue(s.amqp_url, [run_pattern(s.user, s.model, run_id)], name="bench-watch")
    watcher.open()
    received: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for event in watcher.poll(0.05):
                if event.type == "batch" and event.batch >= 0:
                    received.append(time.time() - event.ts)

    reader = threading.Thread(target=watch, name="bench-watch", daemon=True)
    reader.start()
    conn = connect(s.amqp_url, attempts=1)
    channel = conn.channel()
    key = progress_key(s.user, s.model, run_id)
    try:
        return _publish(page, channel, key, s, run_id, batches, rate, received)
    finally:
        done.set()
        reader.join(5)
        conn.close()
        watcher.close()
        page.context.close()


def _publish(page: Any, channel: Any, key: str, s: Stack, run_id: str, batches: int, rate: float,
             received: list[float]) -> tuple[list[float], list[float]]:
    from fitwire.broker.topology import PROGRESS
    from fitwire.contract import Batch, encode

    def send(batch: int) -> None:
        message = Batch(run_id=run_id, model_key=s.model, owner=s.user, seq=batch + 1, epoch=0, batch=batch,
                        progress=max(0, batch + 1) / batches, logs={"loss": 1.0 / (batch + 2)})
        channel.basic_publish(PROGRESS.name, key, encode(message))

    # Until the page's subscription is bound (it says so by drawing): warm-up batches, not counted.
    deadline = time.monotonic() + 20
    while not page.evaluate("(window.fitwire.draws || []).length"):
        if time.monotonic() > deadline:
            raise RuntimeError("the page drew nothing in 20 s")
        send(-1)
        time.sleep(0.1)
    time.sleep(0.5)  # the warm-up's stragglers, then a clean slate
    page.evaluate("window.fitwire.draws.length = 0")
    received.clear()

    started = time.perf_counter()
    for batch in range(batches):
        send(batch)
        time.sleep(max(0.0, started + (batch + 1) / rate - time.perf_counter()))
    time.sleep(1.0)  # the last ones arrive
    draws = page.evaluate("window.fitwire.draws")
    return [drawn - ts for ts, drawn in draws if drawn], list(received)


def soak(s: Stack, browser: Any, minutes: float, rate: float) -> list[tuple[float, float, float]]:
    """``(minute, JS heap MiB after GC, DOM nodes)`` samples of a run page on a live run for ``minutes``."""
    import requests

    from fitwire.broker import connect
    from fitwire.broker.topology import PROGRESS, progress_key
    from fitwire.contract import Batch, EpochEnd, TrainBegin, encode, new_id

    run_id, steps = new_id(), 500
    epochs = int(minutes * 60 * rate / steps) + 1
    begin = TrainBegin(run_id=run_id, model_key=s.model, owner=s.user, epochs=epochs, steps=steps)
    requests.post(f"{s.web_url}/api/v1/events", data=encode(begin), timeout=10,
                  headers={"Authorization": f"Bearer {s.token}", "Content-Type": "application/json"}).raise_for_status()
    page, _ = signed_in_page(browser, s.web_url)
    page.goto(f"{s.web_url}/#/runs/{run_id}")
    page.locator("#epoch-label").wait_for()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")

    def sample(minute: float) -> tuple[float, float, float]:
        cdp.send("HeapProfiler.collectGarbage")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return minute, metrics["JSHeapUsedSize"] / 2**20, metrics["Nodes"]

    conn = connect(s.amqp_url, attempts=1)
    channel = conn.channel()
    key = progress_key(s.user, s.model, run_id)
    samples: list[tuple[float, float, float]] = []
    started = time.perf_counter()
    next_sample, seq, sent = started, 0, 0
    try:
        while (elapsed := time.perf_counter() - started) < minutes * 60:
            epoch, batch = divmod(sent, steps)
            seq += 1
            channel.basic_publish(PROGRESS.name, key, encode(Batch(
                run_id=run_id, model_key=s.model, owner=s.user, seq=seq, epoch=epoch, batch=batch,
                progress=(batch + 1) / steps, logs={"loss": 1.0 / (sent + 2), "accuracy": sent / (sent + 9)})))
            if batch == steps - 1:
                seq += 1
                channel.basic_publish(PROGRESS.name, key, encode(EpochEnd(
                    run_id=run_id, model_key=s.model, owner=s.user, seq=seq, epoch=epoch,
                    logs={"loss": 1.0 / (epoch + 2), "val_loss": 1.1 / (epoch + 2)}, duration=steps / rate)))
            sent += 1
            if time.perf_counter() >= next_sample:
                samples.append(sample(elapsed / 60))
                next_sample += 30
            time.sleep(max(0.0, started + sent / rate - time.perf_counter()))
        samples.append(sample(minutes))
    finally:
        conn.close()
        page.context.close()
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_web_client")
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="batches per second")
    parser.add_argument("--loads", type=int, default=5, help="page loads to time")
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="minutes of a live run page for memory")
    args = parser.parse_args(argv if argv is not None else [])
    import shutil

    from playwright.sync_api import sync_playwright

    executable = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if executable is None:
        raise RuntimeError("no chromium on the PATH (scripts/ensure_chromium.py installs Debian's)")
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp)) as s, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            loads = []
            for _ in range(args.loads):
                page, seconds = signed_in_page(browser, s.web_url)
                page.context.close()
                loads.append(seconds)
            page_lat, watch_lat = measure(s, browser, args.batches, args.rate)
            samples = soak(s, browser, args.soak_minutes, args.rate) if args.soak_minutes > 0 else []
        finally:
            browser.close()
    print(f"{args.batches} batches at {args.rate:g}/s, one run; latency from publish to:")
    print(f"{'':18}{'seen':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, values in (("web page (drawn)", page_lat), ("CLI watcher", watch_lat)):
        if not values:
            print(f"{name:18}{0:>8}")
            continue
        ms = [v * 1000 for v in values]
        print(f"{name:18}{len(ms):>8}{percentile(ms, 50):>10.1f}{percentile(ms, 99):>10.1f}{max(ms):>10.1f}")
    if page_lat and watch_lat:
        print(f"page p50 / watcher p50: {percentile(page_lat, 50) / percentile(watch_lat, 50):.2f}")
    print(f"page load (signed in, cold context, to the models list and a live broker connection): "
          f"p50 {percentile(loads, 50) * 1000:.0f} ms, max {max(loads) * 1000:.0f} ms over {len(loads)}")
    if len(samples) >= 3:
        settled = samples[2]  # after the first minute: the app, its charts and its connection set up
        print(f"run page on a live run for {args.soak_minutes:g} min at {args.rate:g} batches/s: JS heap after GC "
              f"{settled[1]:.1f} MiB at {settled[0]:.1f} min, {samples[-1][1]:.1f} MiB at the end "
              f"(max {max(x[1] for x in samples):.1f}); DOM nodes {settled[2]:.0f} → {samples[-1][2]:.0f}")
        print("  samples (min, MiB, nodes): " + ", ".join(f"{m:.1f}/{h:.1f}/{n:.0f}" for m, h, n in samples))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
