"""``POST /api/v1/jobs`` with the webhook's kept broker connection, against one connection per request.

``python -m bench bench_job_submit [--jobs N] [--rounds N]``. The real app (SQLite in a
temporary directory, the broker at ``FITWIRE_AMQP_URL``) takes jobs through Flask's test
client, so the figures are the app's own work: validating, storing, declaring the pool
and publishing with confirms. The "per request" variant swaps the app's broker for one
that opens and closes a connection for every publish, as the webhook did before it kept
one per serving thread. Rounds alternate the two; printed: median and p90 per POST and
the ratio. The jobs go to a pool of the benchmark's own, deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fitwire.broker.adapter import Broker
from fitwire.contract import new_id

T = TypeVar("T")

POOL = f"bench-{new_id()[:8]}"
BUNDLE = "def build(**params):\n    raise RuntimeError('never run: the benchmark only queues jobs')\n"


class PerRequestBroker:
    """What the webhook did before: a new connection for every publish, closed after it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, operation: Callable[[Any], T]) -> T:
        broker = Broker(self.url, name="fitwire-webhook-jobs", confirm=True)
        try:
            return broker.run(operation)
        finally:
            broker.close()


def _client(tmp: Path, amqp_url: str) -> tuple[Any, dict[str, str], str, Any]:
    from fitwire.webhook import create_app

    app = create_app({"STORE_URL": f"sqlite:///{tmp / 'bench.db'}", "SIGNUP": "open", "AMQP_URL": amqp_url,
                      "JOB_POOLS": (POOL,)})
    client = app.test_client()
    user = f"bench{new_id()[:6]}"
    assert client.post("/api/v1/auth/signup", json={"username": user, "password": "a long password"}).status_code == 201
    token = client.post("/api/v1/auth/login", json={"username": user, "password": "a long password"}).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    key = client.post("/api/v1/models", json={"name": "bench"}, headers=headers).json["key"]
    return client, headers, key, app


def _round(client: Any, headers: dict[str, str], key: str, jobs: int) -> list[float]:
    took = []
    for _ in range(jobs):
        began = time.perf_counter()
        response = client.post("/api/v1/jobs", headers=headers,
                               json={"pool": POOL, "spec": {"model_key": key}, "bundle_source": BUNDLE})
        took.append(time.perf_counter() - began)
        assert response.status_code == 201, response.json
    return took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100, help="POSTs per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv if argv is not None else [])
    amqp_url = os.environ.get("FITWIRE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FITWIRE_DATA_DIR", tmp)
        client, headers, key, app = _client(Path(tmp), amqp_url)
        kept = app.extensions["fitwire_broker"]
        variants: dict[str, Any] = {"kept connection": kept, "per request": PerRequestBroker(amqp_url)}
        times: dict[str, list[float]] = {name: [] for name in variants}
        try:
            _round(client, headers, key, 5)  # warm up: the pool's queue exists, the store is open
            for _ in range(args.rounds):
                for name, broker in variants.items():
                    app.extensions["fitwire_broker"] = broker
                    times[name] += _round(client, headers, key, args.jobs)
        finally:
            app.extensions["fitwire_broker"] = kept
            for queue in (f"jobs.{POOL}", f"rpc.predict.{POOL}"):  # the pool's, declared at start; never consumed
                kept.run(lambda channel, queue=queue: channel.queue_delete(queue))
            kept.close()
    print(f"POST /api/v1/jobs, {args.rounds} alternating rounds of {args.jobs} per variant (ms per POST)")
    print(f"{'variant':<18} {'median':>8} {'p90':>8} {'ratio':>7}")
    base = statistics.median(times["kept connection"])
    for name, values in times.items():
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(f"{name:<18} {statistics.median(values) * 1e3:8.2f} {p90 * 1e3:8.2f} "
              f"{statistics.median(values) / base:7.2f}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
