"""Webhook benchmark: ``epoch_end`` upsert throughput and latency through the production server.

``python -m bench bench_webhook``. For SQLite and PostgreSQL, ``fitwire webhook
serve`` (waitress, 8 threads) runs in a subprocess; 1 and then 8 client threads
each own a run and POST ``epoch_end`` events (new epochs and re-sent ones, as an
outbox does) for a fixed time. Printed: requests per second, p50 and p99
latency. Clients share the machine with the server, so absolute figures are
context; compare rows.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import requests

from fitwire.cli.webhook_cmd import DEFAULT_THREADS
from fitwire.contract import EpochEnd, TrainBegin, encode

SECONDS = 8.0
WARMUP_SECONDS = 1.0
CLIENTS = (1, 8)
SERVER_THREADS = DEFAULT_THREADS  # fitwire webhook serve's
POSTGRES_ADMIN_URL = os.environ.get("FITWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@contextmanager
def _sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


@contextmanager
def _postgres() -> Iterator[str]:
    import psycopg

    from fitwire.webhook.store import migrate
    from fitwire.webhook.store.sql import make_engine

    admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    name = f"fitwire_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def _server(store_url: str, timings: Path | None = None, threads: int = SERVER_THREADS,
            store_class: str = "", connection_limit: int = 0, switch_interval: float = 0.0) -> Iterator[str]:
    """``fitwire webhook serve`` on ``store_url`` in a subprocess; its base URL.

    With ``timings``, the same app under ``bench._timed_webhook``, which writes each
    ``POST /api/v1/events``'s time inside the app to that file when it ends.
    """
    port = _free_port()
    # The bench's broker is a developer broker (guest), not one that asks this webhook about logins:
    # the webhook hands the runs its URL as is.
    env = {**os.environ, "FITWIRE_STORE": store_url, "FITWIRE_WEBHOOK_URL": f"http://127.0.0.1:{port}",
           "FITWIRE_BROKER_LOGINS": "shared"}
    if store_class:  # only the timed server takes these (bench._timed_webhook)
        env["FITWIRE_BENCH_STORE"] = store_class
    if connection_limit:
        env["FITWIRE_BENCH_CONNECTION_LIMIT"] = str(connection_limit)
    if switch_interval:
        env["FITWIRE_BENCH_SWITCH_INTERVAL"] = str(switch_interval)
    command = ([sys.executable, "-m", "bench._timed_webhook", "serve", str(timings), str(threads)]
               if timings else [str(Path(sys.executable).with_name("fitwire")), "webhook", "serve",
                                "--threads", str(threads)])
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=Path(__file__).parents[1])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/health", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the webhook did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _token_and_model(store_url: str, base: str) -> tuple[str, str]:
    from fitwire.webhook.security import hash_password
    from fitwire.webhook.store import open_store

    store = open_store(store_url)
    store.create_user("bench", hash_password("bench-password"), now=datetime.now(UTC))
    store.close()
    token = requests.post(f"{base}/api/v1/auth/login", json={"username": "bench", "password": "bench-password"},
                          timeout=10).json()["token"]
    key = requests.post(f"{base}/api/v1/models", json={"name": f"bench-{uuid.uuid4().hex[:6]}"},
                        headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["key"]
    return token, key


def _measure(base: str, token: str, key: str, clients: int, minimal: bool = False,
             seconds: float = SECONDS) -> tuple[int, float, list[float]]:
    """(requests, seconds, latencies) of ``clients`` threads posting epoch_end for SECONDS after a warm-up.

    ``minimal``: with ``Prefer: return=minimal``, as the Tracker's outbox sends them (204, no run read back).
    """
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    barrier = threading.Barrier(clients + 1)
    window: dict[str, float] = {}

    def client(i: int) -> None:
        run_id = uuid.uuid4().hex
        with requests.Session() as http:
            http.post(f"{base}/api/v1/events", data=encode(TrainBegin(run_id=run_id, model_key=key)),
                      headers=headers, timeout=30).raise_for_status()
            barrier.wait()
            epoch, ok = 0, 204 if minimal else 200
            while time.perf_counter() < window["end"]:
                body = encode(EpochEnd(run_id=run_id, model_key=key, epoch=epoch // 2,
                                       logs={"loss": 1.0 / (epoch + 1), "accuracy": 0.5}))
                started = time.perf_counter()
                response = http.post(f"{base}/api/v1/events", data=body, timeout=30,
                                     headers={**headers, "Prefer": "return=minimal"} if minimal else headers)
                done = time.perf_counter()
                if response.status_code != ok:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    return
                if started >= window["start"]:
                    latencies[i].append(done - started)
                epoch += 1  # every epoch is sent twice: an insert, then an idempotent re-send

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    window.update(start=now + WARMUP_SECONDS, end=now + WARMUP_SECONDS + seconds)
    barrier.wait()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"epoch upsert failed: {failures[0]}")
    flat = [x for per in latencies for x in per]
    return len(flat), seconds, flat


def main() -> None:
    backends = [("sqlite", _sqlite)]
    try:
        import psycopg

        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
        backends.append(("postgresql", _postgres))
    except Exception as exc:  # the SQLite figures are still worth printing
        print(f"PostgreSQL at {POSTGRES_ADMIN_URL} not reachable ({exc}); its rows are left out.")
    rows = []
    for name, make in backends:
        with make() as store_url, _server(store_url) as base:
            token, key = _token_and_model(store_url, base)
            for clients in CLIENTS:
                # Side by side on one server, in A-B-B-A halves: the database grows and SQLite
                # checkpoints its WAL as it goes, which must not land on one answer only.
                halves: dict[bool, list[float]] = {False: [], True: []}
                for minimal in (False, True, True, False):
                    halves[minimal] += _measure(base, token, key, clients, minimal, SECONDS / 2)[2]
                for answer, minimal in (("the run", False), ("204", True)):
                    latencies = halves[minimal]
                    rows.append((name, clients, answer, len(latencies), len(latencies) / SECONDS,
                                 statistics.median(latencies) * 1000, _percentile(latencies, 99) * 1000))
    print(f"epoch_end upserts through waitress ({SERVER_THREADS} threads), {SECONDS:.0f} s per row; answer: "
          "the run (any client), or 204 with Prefer: return=minimal (the Tracker's outbox)")
    print(f"{'store':<11} {'clients':>7} {'answer':>8} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, clients, answer, count, rate, p50, p99 in rows:
        print(f"{name:<11} {clients:>7} {answer:>8} {count:>9} {rate:>8.0f} {p50:>8.1f} {p99:>8.1f}")
    rates = {(name, clients, answer): rate for name, clients, answer, _, rate, _, _ in rows}
    for (name, clients, answer), rate in rates.items():
        if answer == "204":
            print(f"{name}, {clients} client(s): 204 gives {rate / rates[(name, clients, 'the run')]:.2f}x "
                  "the throughput of answering the run")
        elif clients > 1:
            print(f"{name}: {clients} clients give {rate / rates[(name, 1, answer)]:.1f}x the throughput of 1")


if __name__ == "__main__":
    main()
