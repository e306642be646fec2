"""Predictions over the fabric: latency cold (the agent loads the model) and warm, requests/s with one
agent, side by side with Keras predicting the same row in this process (the ratio is the fabric's cost).

A real webhook (SQLite) in this process, one real agent process, RabbitMQ at FITWIRE_AMQP_URL
(``make bench`` starts one). A small CSV model is trained ``MODELS`` times (1 epoch each) and the agent
keeps one model loaded (``FITWIRE_PREDICT_MODELS=1``), so asking the trained models in turn makes
every request a cold one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench._common import percentile
from bench.bench_spec_train import _Fabric
from fitwire.broker import connect
from fitwire.broker.topology import rpc_queue
from tests.datasets.generate import sample_csv

MODELS = 2
ROW = {"age": 44, "height": 1.71, "city": "Oslo"}
SPEC = {"format": "csv", "layers": [{"type": "Dense", "layer": {"units": 32, "activation": "relu"}},
                                    {"type": "Dense", "layer": {"units": None, "activation": "sigmoid"}}]}


def _wait_predictor(fabric: _Fabric, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = connect(fabric.amqp_url)
        try:
            if conn.channel().queue_declare(rpc_queue(fabric.pool).name, passive=True).method.consumer_count:
                return
        except Exception:  # not declared yet
            pass
        finally:
            if conn.is_open:
                conn.close()
        time.sleep(0.2)
    raise TimeoutError("the agent's predictor never consumed")


def _timed(fabric: _Fabric, key: str, run_id: str) -> float:
    t0 = time.perf_counter()
    fabric.api("POST", f"/api/v1/models/{key}/predict", json={"pool": fabric.pool, "run_id": run_id, "row": ROW})
    return time.perf_counter() - t0


def _throughput(fabric: _Fabric, key: str, run_id: str, clients: int, seconds: float) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        while time.monotonic() < stop:
            _timed(fabric, key, run_id)
            done[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def _in_process(fabric: _Fabric, key: str, run_id: str, requests: int) -> tuple[list[float], list[float]]:
    """Keras on the downloaded file: ``model(x)`` (what the agent calls) and ``model.predict(x)``."""
    import keras
    import numpy as np

    response = fabric.http.get(f"{fabric.url}/api/v1/models/{key}/trained/{run_id}/file",
                               headers={"Authorization": f"Bearer {fabric.user}"}, timeout=60)
    with tempfile.NamedTemporaryFile(suffix=".keras") as f:
        f.write(response.content)
        f.flush()
        model = keras.models.load_model(f.name, compile=False)
    x = {"age": np.array([44.0], "float32"), "height": np.array([1.71], "float32"),
         "city": np.array(["Oslo"], dtype=object)}
    calls, predicts = [], []
    for _ in range(requests):
        t0 = time.perf_counter()
        model(x, training=False)
        calls.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.predict(x, verbose=0)
        predicts.append(time.perf_counter() - t0)
    return calls[5:], predicts[5:]  # the first calls trace the graph


def _line(name: str, values: list[float], base: float | None = None) -> str:
    p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
    ratio = f", {p50 / (base * 1000):.1f}x in-process model(x)" if base else ""
    return f"  {name:<38} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   (n={len(values)}{ratio})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="warm requests (sequential)")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput run, per client count")
    args = parser.parse_args()
    fabric = _Fabric()
    try:
        with sample_csv(Path(fabric.dir) / "people.csv", rows=400).open("rb") as body:
            fabric.api("POST", "/api/v1/datasets?name=people", data=body)
        key = fabric.api("POST", "/api/v1/models", json={"name": "predictor"})["key"]
        fabric.api("PUT", f"/api/v1/models/{key}/spec", json=SPEC)
        fabric.api("POST", f"/api/v1/models/{key}/shape",
                   json={"dataset": "people", "inputs": ["age", "height", "city"], "outputs": ["smoker"]})
        os.environ["FITWIRE_PREDICT_MODELS"] = "1"  # the agent inherits it: alternating runs are cold
        fabric.start_agent()
        runs = []
        for _ in range(MODELS):
            job = fabric.api("POST", f"/api/v1/models/{key}/train", json={"pool": fabric.pool, "epochs": 1})
            fabric.wait_job(job["job_id"])
            runs.append(job["run_id"])
        _wait_predictor(fabric)
        first = _timed(fabric, key, runs[0])  # the very first: the agent's first model
        cold = [_timed(fabric, key, runs[(i + 1) % MODELS]) for i in range(3 * MODELS)]  # LRU of 1 < 2 models
        warm_run = runs[0]
        for _ in range(5):
            _timed(fabric, key, warm_run)
        warm = [_timed(fabric, key, warm_run) for _ in range(args.requests)]
        rates = {n: _throughput(fabric, key, warm_run, n, args.seconds) for n in (1, 4)}
        calls, predicts = _in_process(fabric, key, warm_run, args.requests)
        base = percentile(calls, 50)
        print("prediction of one CSV row (Dense 32 → 1), one agent, webhook and agent on this machine:")
        print(f"  first request of the agent's life          {first * 1000:8.2f} ms")
        print(_line("cold (download + load the .keras)", cold, base))
        print(_line("warm (model in the agent's LRU)", warm, base))
        print(_line("in-process model(x) (what the agent runs)", calls))
        print(_line("in-process model.predict(x)", predicts, base))
        for n, rate in rates.items():
            print(f"  warm requests/s, {n} HTTP client(s)           {rate:8.1f}")
        print(f"  fabric's cost per warm request: {1000 * (statistics.median(warm) - base):.2f} ms "
              "(HTTP + checks + broker round trip + decoding)")
    finally:
        fabric.close()


if __name__ == "__main__":
    main()
